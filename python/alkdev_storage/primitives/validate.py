"""Argument checks shared by the primitives and ``Database``.

Decisions
---------
* Names (queues, streams, channels, consumers, workers, locks, schedules)
  must be non-empty ``str``: ``TypeError`` for other types, ``ValueError``
  for the empty string (docs/0006-payloads-and-names.md).
* Whole-number arguments (delays, priorities, ids, TTLs, timeouts in
  whole seconds, counts) must be integers: ``int`` or anything with
  ``__index__`` (numpy integers), never ``bool``. Anything else, floats
  included, is a ``TypeError`` naming the argument: ``delay=1.5`` is
  refused rather than truncated to 1 (docs/0013-honker-parity.md). A
  value outside SQLite's signed 64-bit range is a ``ValueError`` naming
  the argument (not a bind error naming a parameter number).
* Durations to wait (``timeout``, ``idle_poll_s``, ``save_every_s``) are
  ints or floats, never bools or strings, never negative or NaN.
"""

from __future__ import annotations

import operator
from typing import Any

from alkdev_storage.errors import InterfaceError

__all__ = [
    "I64_MAX",
    "I64_MIN",
    "as_int",
    "as_seconds",
    "check_name",
    "is_closed_error",
    "opt_int",
    "opt_seconds",
]

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


def check_name(value: Any, what: str) -> str:
    """Validate a queue/stream/channel/consumer/... name."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


def as_int(value: Any, what: str) -> int:
    """``value`` as an ``int``: an int or an integer type with
    ``__index__`` (never a bool, a float or a str); ``TypeError`` naming
    ``what`` otherwise."""
    if type(value) is int and I64_MIN <= value <= I64_MAX:
        return value
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{what} must be an int, not {type(value).__name__} ({value!r})")
    n = operator.index(value)
    if not I64_MIN <= n <= I64_MAX:
        raise ValueError(f"{what} must fit in a signed 64-bit integer, got {n}")
    return n


def as_seconds(value: Any, what: str) -> float:
    """A duration to wait (``timeout``, ``idle_poll_s``, ...): an int or a
    float, not a bool, not NaN, not negative; errors name ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    f = float(value)
    if not f >= 0:  # also NaN
        raise ValueError(f"{what} must be >= 0 seconds, got {value!r}")
    return f


def opt_seconds(value: Any, what: str) -> float | None:
    """:func:`as_seconds`, or None for None."""
    return None if value is None else as_seconds(value, what)


def opt_int(value: Any, what: str) -> int | None:
    """:func:`as_int`, or None for None."""
    return None if value is None else as_int(value, what)


def is_closed_error(db: Any, exc: BaseException) -> bool:
    """True when ``exc`` means the Database was closed under us."""
    return isinstance(exc, InterfaceError) and bool(getattr(db, "closed", False))
