"""Durable streams on honker's ``_honker_stream`` and
``_honker_stream_consumers`` tables, API-compatible with the honker binding.

Decisions
---------
* ``publish`` inserts exactly what ``honker_stream_publish`` inserts (a
  prepared statement, see :mod:`alkdev_storage.primitives._sql`) and
  returns the new event's offset (the honker binding returns None; the
  offset costs nothing and lets a producer record where its event landed).
  With ``tx=`` the event exists only if that transaction commits.
* Offsets are saved as ``honker_stream_save_offset`` saves them
  (monotonic: never rewinds). ``save_offset`` also accepts ``tx=`` to commit an offset with
  the consumer's own writes (exactly-once processing).
* Replay reads ``_honker_stream`` with a prepared ``SELECT`` that is the
  same query as honker-core's ``honker_stream_read_since`` (topic, offset >
  n, ordered, batches of 1000) but returns rows as tuples on a reader
  connection, without the JSON round trip: this is the replay hot path.
* ``subscribe(consumer)`` resumes after the consumer's saved offset and
  auto-saves, at-least-once: an offset is saved only once the consumer has
  asked for the next event (so the previous one was handled), after every
  ``save_every_n`` events or ``save_every_s`` seconds (also while idle),
  and when the subscription is closed. Closing because of an exception
  (``with`` / ``async with`` block) saves only up to the event *before* the
  one being handled, so that one is redelivered.
* Besides ``async for``: blocking ``for``, ``get(timeout)``, and
  ``subscribe(..., timeout=s)`` to stop after ``s`` idle seconds (a replay
  of the backlog with ``timeout=0`` stops at its end).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from alkdev_storage.primitives import _sql
from alkdev_storage.primitives.contract import executor
from alkdev_storage.primitives.payload import decode, encode
from alkdev_storage.primitives.validate import as_int, check_name
from alkdev_storage.primitives.wake import IDLE, NOTHING, WakeIterator

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import DatabaseContract, TransactionContract

__all__ = ["Event", "Stream", "StreamSubscription"]

_UNSET: Any = object()
_READ_BATCH = 1000

SQL_READ = (
    "SELECT offset, topic, key, payload, created_at FROM _honker_stream "
    "WHERE topic = ?1 AND offset > ?2 ORDER BY offset ASC LIMIT ?3"
)
SQL_READ_SINCE = "SELECT honker_stream_read_since(?1, ?2, ?3)"


class Event:
    """One stream event. ``payload`` is decoded from JSON lazily."""

    __slots__ = ("_payload", "_payload_raw", "created_at", "key", "offset", "topic")

    def __init__(self, row: dict[str, Any]) -> None:
        self.offset = row["offset"]
        self.topic = row["topic"]
        self.key = row["key"]
        self._payload_raw = row["payload"]
        self._payload = _UNSET
        self.created_at = row["created_at"]

    @property
    def payload(self) -> Any:
        """The decoded JSON payload (decoded on first access)."""
        if self._payload is _UNSET:
            raw = self._payload_raw
            self._payload = decode(raw) if raw else None
        return self._payload

    def __repr__(self) -> str:
        return (
            f"Event(offset={self.offset}, topic={self.topic!r}, "
            f"key={self.key!r}, payload={self.payload!r})"
        )


_new_event = Event.__new__


def _event(row: tuple[Any, ...]) -> Event:
    e = _new_event(Event)
    e.offset, e.topic, e.key, e._payload_raw, e.created_at = row
    e._payload = _UNSET
    return e


class Stream:
    """A named durable stream (``db.stream(name)``)."""

    def __init__(self, db: DatabaseContract, name: str) -> None:
        check_name(name, "stream name")
        self.db = db
        self.name = name
        self._s_publish = db.statement(_sql.STREAM_PUBLISH)
        self._s_read = db.statement(SQL_READ)
        self._s_save_offset = db.statement(_sql.STREAM_SAVE_OFFSET)

    def __repr__(self) -> str:
        return f"<Stream {self.name!r}>"

    def publish(
        self, payload: Any, key: str | None = None, tx: TransactionContract | None = None
    ) -> int:
        """Append one event; returns its offset. With ``tx`` the event
        exists only if that transaction commits."""
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a str or None, not {type(key).__name__}")
        ex = self.db if tx is None else executor(self.db, tx)
        row = ex.fetchone(self._s_publish, (self.name, key, encode(payload)))
        assert row is not None  # INSERT ... RETURNING offset
        offset: int = row[0]
        return offset

    def _read_since(self, offset: int, limit: int = 1000) -> list[dict[str, Any]]:
        """honker-compatible: rows after ``offset`` as dicts (through
        ``honker_stream_read_since``)."""
        row = self.db.fetchone(
            self.db.statement(SQL_READ_SINCE),
            (self.name, as_int(offset, "offset"), as_int(limit, "limit")),
        )
        rows: list[dict[str, Any]] = decode(row[0]) if row else []
        return rows

    def _read_rows(self, offset: int, limit: int = _READ_BATCH) -> list[tuple[Any, ...]]:
        return self.db.fetchall(self._s_read, (self.name, offset, limit))

    def read(self, from_offset: int = 0, limit: int = _READ_BATCH) -> list[Event]:
        """Events after ``from_offset`` (at most ``limit``), without waiting."""
        return [
            _event(r)
            for r in self._read_rows(as_int(from_offset, "from_offset"), as_int(limit, "limit"))
        ]

    def save_offset(
        self, consumer: str, offset: int, tx: TransactionContract | None = None
    ) -> None:
        """Persist a consumer's high-water mark (never rewinds). With ``tx``
        it commits with the consumer's own writes."""
        check_name(consumer, "consumer")
        params = (consumer, self.name, as_int(offset, "offset"))
        executor(self.db, tx).execute(self._s_save_offset, params)

    def get_offset(self, consumer: str) -> int:
        """A consumer's saved offset, 0 if unknown."""
        check_name(consumer, "consumer")
        row = self.db.fetchone(self.db.statement(_sql.STREAM_GET_OFFSET), (consumer, self.name))
        return 0 if row is None else int(row[0])

    def subscribe(
        self,
        consumer: str | None = None,
        from_offset: int | None = None,
        save_every_n: int = 1000,
        save_every_s: float = 1.0,
        *,
        timeout: float | None = None,
    ) -> StreamSubscription:
        """Events after ``from_offset`` (default: the consumer's saved
        offset, else 0), then live events as they are committed."""
        if consumer is not None:
            check_name(consumer, "consumer")
        if from_offset is None:
            from_offset = self.get_offset(consumer) if consumer is not None else 0
        return StreamSubscription(
            self,
            as_int(from_offset, "from_offset"),
            consumer=consumer,
            save_every_n=as_int(save_every_n, "save_every_n"),
            save_every_s=float(save_every_s),
            timeout=timeout,
        )


class StreamSubscription(WakeIterator):
    """Iterator returned by :meth:`Stream.subscribe`."""

    def __init__(
        self,
        stream: Stream,
        from_offset: int,
        consumer: str | None = None,
        save_every_n: int = 1000,
        save_every_s: float = 1.0,
        *,
        timeout: float | None = None,
    ) -> None:
        super().__init__(stream.db, timeout)
        self.stream = stream
        self.consumer = consumer
        # Rows read and not all handed out: _rows[:_i] are handed out.
        # _base is the offset before _rows[0], _base_prev the one before it.
        self._rows: list[tuple[Any, ...]] = []
        self._i = 0
        self._base = from_offset
        self._base_prev = from_offset
        self._saved = from_offset if consumer is not None else 0
        self._save_n = max(0, save_every_n)
        self._save_s = max(0.0, save_every_s)
        self._autosave = consumer is not None and (self._save_n > 0 or self._save_s > 0)
        self._since_save = 0
        self._last_save_at = time.monotonic()

    @property
    def offset(self) -> int:
        """Offset of the last event handed out (the resume point)."""
        i = self._i
        return self._rows[i - 1][0] if i else self._base

    def _prev_offset(self) -> int:
        """Offset before the last event handed out."""
        i = self._i
        if i >= 2:
            prev: int = self._rows[i - 2][0]
            return prev
        return self._base if i == 1 else self._base_prev

    # -- offsets -------------------------------------------------------

    def _save(self, offset: int) -> None:
        if self.consumer is None or offset <= self._saved:
            return
        self.stream.save_offset(self.consumer, offset)
        self._saved = offset
        self._since_save = 0
        self._last_save_at = time.monotonic()

    def _maybe_save(self) -> None:
        # Called when the next event is requested: every event handed out
        # so far has been handled.
        if (self._save_n and self._since_save >= self._save_n) or (
            self._save_s and time.monotonic() - self._last_save_at >= self._save_s
        ):
            self._save(self.offset)

    def flush(self) -> None:
        """Save the offset of the last event handed out, now."""
        self._save(self.offset)

    # -- iteration -----------------------------------------------------

    def _poll(self) -> Any:
        if self._autosave:
            self._maybe_save()
        i = self._i
        rows = self._rows
        if i >= len(rows):
            offset = self.offset
            fresh = self.stream._read_rows(offset)
            if not fresh:
                return NOTHING
            self._base_prev = self._prev_offset()
            self._base = offset
            self._rows = rows = fresh
            i = 0
        self._i = i + 1
        self._since_save += 1
        return _event(rows[i])

    def __next__(self) -> Event:
        # Fast path (replay): an event already read, nothing to save.
        i = self._i
        rows = self._rows
        if i < len(rows) and not self._closed and not self._autosave:
            self._i = i + 1
            e = _new_event(Event)
            e.offset, e.topic, e.key, e._payload_raw, e.created_at = rows[i]
            e._payload = _UNSET
            return e
        event: Event = super().__next__()
        return event

    def _next_blocking(self, timeout: float | None) -> Any:
        item = super()._next_blocking(timeout)
        if item is IDLE and self.consumer is not None:
            self._save(self.offset)  # the caller asked for more: all handled
        return item

    async def _next_async(self, timeout: float | None) -> Any:
        item = await super()._next_async(timeout)
        if item is IDLE and self.consumer is not None:
            self._save(self.offset)
        return item

    def _wait_hint(self) -> float | None:
        if self._autosave and self._save_s and self.offset > self._saved:
            return max(0.0, self._last_save_at + self._save_s - time.monotonic())
        return None

    def _on_close(self, exc: BaseException | None) -> None:
        if self.consumer is None or self._db.closed:
            return
        self._save(self.offset if exc is None else self._prev_offset())

    def __repr__(self) -> str:
        return (
            f"<StreamSubscription stream={self.stream.name!r} consumer={self.consumer!r} "
            f"offset={self.offset}>"
        )
