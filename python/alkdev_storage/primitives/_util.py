"""Shared helpers: JSON payloads, name validation, transaction arguments.

Decisions
---------
* Payloads are JSON text. Encoding is strict (``allow_nan=False``): NaN and
  the infinities are not JSON and other honker bindings (Node, Go) cannot
  parse them. Every encoding failure (an unserializable object, a circular
  reference, NaN) raises :class:`TypeError` naming the payload's type, and
  it is raised before any statement runs, so nothing is written.
* Names (queues, streams, channels, consumers, workers, locks, schedules)
  must be non-empty ``str``: ``TypeError`` for other types, ``ValueError``
  for the empty string.
"""

from __future__ import annotations

import json
from typing import Any

from alkdev_storage import errors as _errors

__all__ = [
    "check_name",
    "decode",
    "encode",
    "is_closed_error",
]

_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
_encode = _ENCODER.encode
decode = json.loads


def encode(payload: Any, what: str = "payload") -> str:
    """JSON text of ``payload``; ``TypeError`` if it is not JSON-serializable."""
    try:
        return _encode(payload)
    except TypeError as e:
        raise TypeError(f"{what} is not JSON-serializable: {e}") from None
    except (ValueError, RecursionError) as e:
        # Circular references and NaN/Infinity (allow_nan=False).
        raise TypeError(
            f"{what} of type {type(payload).__name__} cannot be encoded as JSON: {e}"
        ) from None


def check_name(value: Any, what: str) -> str:
    """Validate a queue/stream/channel/consumer/... name."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


def check_tx(tx: Any) -> Any:
    """A transaction argument: anything with ``fetchone`` (the native
    Transaction, or the honker handle of a SQLAlchemy transaction)."""
    if not hasattr(tx, "fetchone"):
        raise TypeError(f"tx must be a transaction from db.transaction(), not {type(tx).__name__}")
    return tx


def is_closed_error(db: Any, exc: BaseException) -> bool:
    """True when ``exc`` means the Database was closed under us."""
    return isinstance(exc, _errors.InterfaceError) and bool(getattr(db, "closed", False))


def as_int(value: Any, what: str) -> int:
    """``int(value)`` (as the honker binding does) with errors naming ``what``."""
    try:
        return int(value)
    except TypeError:
        raise TypeError(f"{what} must be a number, not {type(value).__name__}") from None
    except (ValueError, OverflowError):
        raise ValueError(f"{what} must be a whole number, got {value!r}") from None


def opt_int(value: Any, what: str) -> int | None:
    return None if value is None else as_int(value, what)
