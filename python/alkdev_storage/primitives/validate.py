"""Argument checks shared by the primitives and ``Database``.

Decisions
---------
* Names (queues, streams, channels, consumers, workers, locks, schedules)
  must be non-empty ``str``: ``TypeError`` for other types, ``ValueError``
  for the empty string (docs/0006-payloads-and-names.md).
* Numbers are converted with ``int(value)``, as the honker binding does,
  with errors that name the argument.
"""

from __future__ import annotations

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
    """``int(value)`` (as the honker binding does) with errors naming ``what``."""
    try:
        return int(value)
    except TypeError:
        raise TypeError(f"{what} must be a number, not {type(value).__name__}") from None
    except (ValueError, OverflowError):
        raise ValueError(f"{what} must be a whole number, got {value!r}") from None


def opt_int(value: Any, what: str) -> int | None:
    """:func:`as_int`, or None for None."""
    return None if value is None else as_int(value, what)


def is_closed_error(db: Any, exc: BaseException) -> bool:
    """True when ``exc`` means the Database was closed under us."""
    return isinstance(exc, InterfaceError) and bool(getattr(db, "closed", False))
