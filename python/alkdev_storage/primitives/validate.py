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
  refused rather than truncated to 1 (docs/0013-honker-parity.md).
"""

from __future__ import annotations

import operator
from typing import Any

from alkdev_storage.errors import InterfaceError

__all__ = ["as_int", "check_name", "is_closed_error", "opt_int"]


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
    if type(value) is int:
        return value
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{what} must be an int, not {type(value).__name__} ({value!r})")
    return operator.index(value)


def opt_int(value: Any, what: str) -> int | None:
    """:func:`as_int`, or None for None."""
    return None if value is None else as_int(value, what)


def is_closed_error(db: Any, exc: BaseException) -> bool:
    """True when ``exc`` means the Database was closed under us."""
    return isinstance(exc, InterfaceError) and bool(getattr(db, "closed", False))
