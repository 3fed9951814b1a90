"""Column types and value factories shared by the system and tenant tables.

* :func:`new_id` -- every ``id`` column's Python-side default: a ULID
  (26 characters of Crockford base32, uppercase), sortable by creation
  time and strictly increasing within the process (thread-safe; a forked
  child starts a fresh sequence).
* :func:`utcnow` -- the current time, aware UTC, truncated to milliseconds
  (the precision :class:`UTCDateTime` stores).
* :class:`UTCDateTime` -- a datetime stored as fixed-width TEXT
  ``YYYY-MM-DDTHH:MM:SS.mmmZ``, so text order is time order (docs/0015).

``UTC_NOW_SQL`` is the same format computed by SQLite (the server default
of the ``created_at``/``updated_at`` columns, for rows written by raw SQL).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["ID_LENGTH", "UTC_NOW_SQL", "UTCDateTime", "new_id", "utcnow"]

#: Length of an id from :func:`new_id`.
ID_LENGTH = 26

#: SQLite expression producing the current time in :class:`UTCDateTime`'s
#: storage format (``%f`` is ``SS.SSS``).
UTC_NOW_SQL = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_RANDOM_LIMIT = 1 << _RANDOM_BITS
_TIME_LIMIT = 1 << 48


class _UlidState:
    """The last id's (milliseconds, random part), under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_ms = -1
        self.last_random = 0

    def reset(self) -> None:
        # After fork(): a fresh lock (the parent's may have been held) and a
        # fresh random part, so parent and child never hand out one id twice.
        self.lock = threading.Lock()
        self.last_ms = -1
        self.last_random = 0


_state = _UlidState()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_state.reset)


def _encode(value: int) -> str:
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id() -> str:
    """A new ULID: 26 uppercase Crockford base32 characters (URL-safe),
    48 bits of milliseconds since the epoch then 80 random bits.

    Ids sort by creation time, and within one process every id is greater
    than the previous one: in the same millisecond (or if the clock steps
    back) the random part of the last id is incremented instead of drawn
    again. Thread-safe."""
    now = time.time_ns() // 1_000_000
    st = _state
    with st.lock:
        if now > st.last_ms:
            ms, rnd = now, secrets.randbits(_RANDOM_BITS)
        else:
            ms, rnd = st.last_ms, st.last_random + 1
            if rnd >= _RANDOM_LIMIT:  # 2**80 ids in one millisecond: borrow the next one
                ms, rnd = ms + 1, secrets.randbits(_RANDOM_BITS)
        st.last_ms, st.last_random = ms, rnd
    if ms >= _TIME_LIMIT:  # pragma: no cover - year 10889
        raise OverflowError("ULID time part exhausted")
    return _encode((ms << _RANDOM_BITS) | rnd)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime, truncated to milliseconds
    (exactly what a :class:`UTCDateTime` column stores and gives back)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_utc(value: datetime) -> str:
    """``value`` in the storage format ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (aware
    datetimes only; converted to UTC, truncated to milliseconds)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, not {type(value).__name__} ({value!r})")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(
            f"naive datetime {value.isoformat()} refused: timestamps are UTC; pass an aware "
            "datetime (datetime.now(UTC), alkdev_storage.schema.utcnow())"
        )
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:"
        f"{v.second:02d}.{v.microsecond // 1000:03d}Z"
    )


def parse_utc(text: str) -> datetime:
    """The aware UTC datetime of a stored timestamp (the storage format; a
    value written by raw SQL in another ISO 8601 form without an offset is
    read as UTC)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as fixed-width TEXT ``YYYY-MM-DDTHH:MM:SS.mmmZ``
    (UTC, milliseconds), so text order is time order and the value reads the
    same in any SQLite tool.

    Binding an aware datetime converts it to UTC and truncates it to
    milliseconds; a naive datetime (or anything but a datetime) is refused
    with a ``ValueError``/``TypeError`` naming the value (SQLAlchemy reports
    it as ``StatementError``). Results are aware UTC datetimes.
    """

    impl = sa.Text
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return format_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return parse_utc(str(value))

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        if value is None:
            return "NULL"
        return "'" + format_utc(value) + "'"


#: Constraint and index names of both schemas (Alembic batch migrations and
#: autogenerate need every constraint named).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def enum_type(name: str, *values: str) -> sa.Enum:
    """A TEXT column type holding one of ``values``: a CHECK constraint
    ``ck_<table>_<name>`` in SQL and a ``LookupError`` naming the allowed
    values before a bad value is sent (``validate_strings``). The declared
    type is ``VARCHAR`` without a length (TEXT affinity)."""
    return sa.Enum(
        *values,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        length=None,
    )


__all__ += ["NAMING_CONVENTION", "enum_type"]
