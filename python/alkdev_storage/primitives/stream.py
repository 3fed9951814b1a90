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
  one being handled, so that one is redelivered. ``save_every_n=0`` and
  ``save_every_s=0`` turn automatic saving off entirely (on close and when
  idle too): the consumer saves with ``save_offset`` itself.
* Besides ``async for``: blocking ``for``, ``get(timeout)``, and
  ``subscribe(..., timeout=s)`` to stop after ``s`` idle seconds (a replay
  of the backlog with ``timeout=0`` stops at its end).
* Offsets given by the caller (``save_offset``, ``reset``, ``read`` and
  ``subscribe``'s ``from_offset``) must be ints between 0 and the last
  offset ever assigned in the file (offsets are one sequence shared by
  every topic): a negative or past-the-end offset is a ``ValueError``,
  since it would silently skip events published later.
* Subscriptions that are caught up share one read per commit: they join
  the Database's :class:`~alkdev_storage.primitives.stream_fanout.StreamFanout`
  (``WHERE offset > last`` for every topic at once, demultiplexed by topic
  into bounded per-subscription buffers, ``max_buffered`` events each). A
  subscription that is behind (replaying, or after its buffer overflowed)
  reads on its own until it catches up. On overflow nothing is dropped:
  the subscription leaves the shared feed and reads on its own again from
  the offset after its buffer (docs/0028).
* ``reset(consumer, offset=0)`` sets a consumer's offset, backwards too
  (replay); ``delete_consumer(consumer)`` forgets it (the next
  ``subscribe(consumer)`` starts from the beginning).

Delivery contract
-----------------
``subscribe(consumer)`` is **at-least-once**: an event may be delivered
again after a crash or an exception (everything after the last saved
offset is replayed), never skipped. For **exactly-once effects**, write
the effect and the offset in one transaction and turn auto-saving off::

    sub = stream.subscribe("billing", save_every_n=0, save_every_s=0)
    for event in sub:
        with db.transaction() as tx:
            tx.execute("INSERT INTO ledger ...", (...))
            stream.save_offset("billing", event.offset, tx=tx)

A crash before the commit leaves neither the effect nor the offset, so
the event is handled again; after the commit it is never handled again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from alkdev_storage.errors import InterfaceError
from alkdev_storage.primitives import _sql
from alkdev_storage.primitives.aio import off_loop, write
from alkdev_storage.primitives.contract import executor
from alkdev_storage.primitives.payload import decode, encode
from alkdev_storage.primitives.stream_fanout import stream_fanout_of
from alkdev_storage.primitives.validate import as_int, as_seconds, check_name, opt_seconds
from alkdev_storage.primitives.wake import END, IDLE, NOTHING, WakeIterator

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import DatabaseContract, TransactionContract

__all__ = ["Event", "Stream", "StreamSubscription"]

_UNSET: Any = object()
_READ_BATCH = 1000
DEFAULT_MAX_BUFFERED = 10_000

SQL_READ = (
    "SELECT offset, topic, key, payload, created_at FROM _honker_stream "
    "WHERE topic = ?1 AND offset > ?2 ORDER BY offset ASC LIMIT ?3"
)
SQL_READ_SINCE = "SELECT honker_stream_read_since(?1, ?2, ?3)"
# The last offset ever assigned (AUTOINCREMENT: never reused, even after
# events were deleted).
SQL_LAST_OFFSET = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = '_honker_stream'), 0), "
    "coalesce((SELECT max(offset) FROM _honker_stream), 0))"
)
SQL_RESET_OFFSET = (
    "INSERT INTO _honker_stream_consumers (name, topic, offset) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (name, topic) DO UPDATE SET offset = excluded.offset"
)
SQL_DELETE_CONSUMER = "DELETE FROM _honker_stream_consumers WHERE name = ?1 AND topic = ?2"
SQL_CONSUMERS = "SELECT name, offset FROM _honker_stream_consumers WHERE topic = ?1 ORDER BY name"


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

    async def apublish(
        self, payload: Any, key: str | None = None, tx: TransactionContract | None = None
    ) -> int:
        """Awaitable :meth:`publish`: waits for the writer off the event
        loop (with ``tx`` it joins that transaction)."""
        if tx is not None:
            return self.publish(payload, key, tx)
        return await write(
            self.db, lambda t: self.publish(payload, key, t), lambda: self.publish(payload, key)
        )

    def _read_since(self, offset: int, limit: int = 1000) -> list[dict[str, Any]]:
        """honker-compatible: rows after ``offset`` as dicts (through
        ``honker_stream_read_since``)."""
        row = self.db.fetchone(
            self.db.statement(SQL_READ_SINCE),
            (self.name, as_int(offset, "offset"), as_int(limit, "limit")),
        )
        rows: list[dict[str, Any]] = decode(row[0]) if row else []
        return rows

    def _check_offset(
        self, offset: Any, what: str, tx: TransactionContract | None = None
    ) -> int:
        """``offset`` validated: an int from 0 to the last offset assigned."""
        n = as_int(offset, what)
        if n < 0:
            raise ValueError(f"{what} must be >= 0, got {n}")
        if n:
            row = executor(self.db, tx).fetchone(self.db.statement(SQL_LAST_OFFSET))
            last = int(row[0]) if row else 0
            if n > last:
                raise ValueError(
                    f"{what}={n} is past the end of the stream (the last offset is {last})"
                )
        return n

    def _read_rows(self, offset: int, limit: int = _READ_BATCH) -> list[tuple[Any, ...]]:
        return self.db.fetchall(self._s_read, (self.name, offset, limit))

    def read(self, from_offset: int = 0, limit: int = _READ_BATCH) -> list[Event]:
        """Events after ``from_offset`` (at most ``limit``), without waiting."""
        lim = as_int(limit, "limit")
        if lim < 0:
            raise ValueError(f"limit must be >= 0, got {lim}")
        start = self._check_offset(from_offset, "from_offset")
        return [_event(r) for r in self._read_rows(start, lim)]

    def save_offset(
        self, consumer: str, offset: int, tx: TransactionContract | None = None
    ) -> None:
        """Persist a consumer's high-water mark: the offset of the last
        event it handled (never rewinds: use :meth:`reset` for that).
        ``ValueError`` for a negative or past-the-end offset. With ``tx``
        it commits with the consumer's own writes: the exactly-once recipe
        (see the module docstring)."""
        check_name(consumer, "consumer")
        params = (consumer, self.name, self._check_offset(offset, "offset", tx))
        executor(self.db, tx).execute(self._s_save_offset, params)

    def reset(
        self, consumer: str, offset: int = 0, tx: TransactionContract | None = None
    ) -> None:
        """Set ``consumer``'s offset to ``offset``, backwards too (0:
        replay the whole stream on its next ``subscribe``). A running
        subscription of that consumer keeps its own position (and saves
        it again as it goes): reset while it is stopped."""
        check_name(consumer, "consumer")
        params = (consumer, self.name, self._check_offset(offset, "offset", tx))
        executor(self.db, tx).execute(self.db.statement(SQL_RESET_OFFSET), params)

    def delete_consumer(self, consumer: str, tx: TransactionContract | None = None) -> bool:
        """Forget ``consumer``'s saved offset on this stream; True if it had
        one."""
        check_name(consumer, "consumer")
        stmt = self.db.statement(SQL_DELETE_CONSUMER)
        return executor(self.db, tx).execute(stmt, (consumer, self.name)).changes > 0

    def consumers(self) -> dict[str, int]:
        """Every consumer of this stream with its saved offset."""
        db = self.db
        return {r[0]: int(r[1]) for r in db.fetchall(db.statement(SQL_CONSUMERS), (self.name,))}

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
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> StreamSubscription:
        """Events after ``from_offset`` (default: the consumer's saved
        offset, else 0), then live events as they are committed.

        Once caught up, the subscription is fed by the Database's one
        shared read per commit (every topic at once; docs/0028), with at
        most ``max_buffered`` events waiting for it; if that fills up it
        goes back to reading on its own from its offset (nothing is lost)
        and rejoins once caught up.

        At-least-once: with a ``consumer`` the offset is saved
        automatically (every ``save_every_n`` events / ``save_every_s``
        seconds, and on close) only for events already handled, so after
        a crash the events since the last save are delivered again. Set
        both to 0 and save with ``save_offset(..., tx=tx)`` in the
        transaction of the event's effects for exactly-once effects."""
        if consumer is not None:
            check_name(consumer, "consumer")
        if from_offset is None:
            start = self.get_offset(consumer) if consumer is not None else 0
        else:
            start = self._check_offset(from_offset, "from_offset")
        return StreamSubscription(
            self,
            start,
            consumer=consumer,
            save_every_n=as_int(save_every_n, "save_every_n"),
            save_every_s=as_seconds(save_every_s, "save_every_s"),
            timeout=opt_seconds(timeout, "timeout"),
            max_buffered=max_buffered,
        )


class StreamSubscription(WakeIterator):
    """Iterator returned by :meth:`Stream.subscribe`.

    It reads on its own while behind (replay), then joins the Database's
    :class:`~alkdev_storage.primitives.stream_fanout.StreamFanout`: one
    shared read per commit feeds every caught-up subscription, through a
    buffer of at most ``max_buffered`` events. On overflow it leaves the
    shared feed (``overflows`` counts it), keeps its buffer and reads on its
    own again from the offset after it until it catches up: no event is
    ever dropped. ``shared=False`` keeps the pre-fan-out behaviour (its
    own read on every wake), for comparison benchmarks."""

    def __init__(
        self,
        stream: Stream,
        from_offset: int,
        consumer: str | None = None,
        save_every_n: int = 1000,
        save_every_s: float = 1.0,
        *,
        timeout: float | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        shared: bool = True,
    ) -> None:
        if type(max_buffered) is not int:
            raise TypeError(f"max_buffered must be an int, got {type(max_buffered).__name__}")
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {max_buffered}")
        super().__init__(stream.db, timeout)
        self.stream = stream
        self.consumer = consumer
        self.max_buffered = max_buffered
        """Most events waiting in the shared-feed buffer."""
        self.overflows = 0
        """Times a full buffer sent this subscription back to its own reads."""
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
        # Shared-feed state, guarded by the fan-out's lock (stream_fanout).
        self._topic = stream.name
        self._sharing = bool(shared)
        self._fan = stream_fanout_of(stream.db)
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._member = False
        self._fed = from_offset
        self._leader = False
        self._ready = threading.Event()

    @property
    def offset(self) -> int:
        """Offset of the last event handed out (the resume point)."""
        i = self._i
        return self._rows[i - 1][0] if i else self._base

    @property
    def shared(self) -> bool:
        """True while fed by the shared read (caught up), False while it
        reads on its own (replaying, or after an overflow)."""
        return self._member

    @property
    def buffered(self) -> int:
        """Events read for it and not handed out yet."""
        return len(self._rows) - self._i + len(self._buffer)

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
        # An offset of an event we read: no need to validate it.
        st = self.stream
        st.db.execute(st._s_save_offset, (self.consumer, st.name, offset))
        self._saved = offset
        self._since_save = 0
        self._last_save_at = time.monotonic()

    def _save_due(self) -> bool:
        return bool(
            (self._save_n and self._since_save >= self._save_n)
            or (self._save_s and time.monotonic() - self._last_save_at >= self._save_s)
        )

    def _maybe_save(self) -> None:
        # Called when the next event is requested: every event handed out
        # so far has been handled.
        if self._save_due():
            self._save(self.offset)

    def flush(self) -> None:
        """Save the offset of the last event handed out, now."""
        self._save(self.offset)

    # -- iteration -----------------------------------------------------

    def _more(self) -> list[tuple[Any, ...]]:
        """The next rows for this subscription, or [] (nothing yet)."""
        fan = self._fan
        offset = self.offset
        if not self._sharing:
            return fan.read_topic(self._topic, offset, _READ_BATCH)
        if self._buffer:
            return fan.take(self)  # fed by the shared read (or left by an overflow)
        if self._member:
            return []
        # On its own: read, and join the shared feed once caught up.
        seq0 = fan.seq()
        rows = fan.read_topic(self._topic, offset, _READ_BATCH)
        if len(rows) < _READ_BATCH:
            extra = fan.join(self, rows[-1][0] if rows else offset, seq0)
            if extra:
                rows = rows + extra
        return rows

    def _poll(self) -> Any:
        if self._autosave:
            self._maybe_save()
        return self._step()

    def _step(self) -> Any:
        i = self._i
        rows = self._rows
        if i >= len(rows):
            offset = self.offset
            fresh = self._more()
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
        if self._sharing:
            item = self._next_blocking_shared(timeout)
        else:
            item = super()._next_blocking(timeout)
        if item is IDLE and self._autosave:
            self._save(self.offset)  # the caller asked for more: all handled
        return item

    def _next_blocking_shared(self, timeout: float | None) -> Any:
        if self._closed:
            return END
        db = self._db
        fan = self._fan
        deadline = None if timeout is None else time.monotonic() + timeout
        seq0 = -1
        # Joined during this call: its own reads already saw every commit
        # made before the call, no refresh needed.
        refreshed = not self._member
        try:
            while True:
                item = self._poll()
                if item is not NOTHING:
                    return item
                if self._closed:
                    return END
                if seq0 < 0:
                    seq0 = fan.seq()  # a shared read after this sees every earlier commit
                if db.closed:
                    fan.end()
                    return self._end()
                wait_s = self._wait_hint()
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if not refreshed:
                            # Committed before the call: seen even if the
                            # watcher's tick has not arrived yet.
                            refreshed = True
                            fan.refresh(seq0)
                            continue
                        return IDLE
                    wait_s = remaining if wait_s is None else min(wait_s, remaining)
                fan.wait(self, wait_s)
        except InterfaceError:
            if self._closed or db.closed:
                fan.end()
                return self._end()
            raise
        finally:
            fan.leave()

    async def _next_async(self, timeout: float | None) -> Any:
        # Offset saves are writes: made off the event loop (primitives.aio).
        if not self._sharing:
            if self._autosave and self._save_due() and not self._closed:
                await off_loop(self._save, self.offset)
            item = await super()._next_async(timeout)
        else:
            item = await self._next_async_shared(timeout)
        if item is IDLE and self._autosave:
            await off_loop(self._save, self.offset)
        return item

    async def _next_async_shared(self, timeout: float | None) -> Any:
        if self._closed:
            return END
        db = self._db
        fan = self._fan
        deadline = None if timeout is None else time.monotonic() + timeout
        seq0 = -1
        # Joined during this call: its own reads already saw every commit
        # made before the call, no refresh needed.
        refreshed = not self._member
        try:
            while True:
                if self._autosave and self._save_due() and not self._closed:
                    await off_loop(self._save, self.offset)
                item = self._step()
                if item is not NOTHING:
                    return item
                if self._closed:
                    return END
                if seq0 < 0:
                    seq0 = fan.seq()
                hub = db.wake_hub()
                if db.closed or hub.ended:
                    hub.raise_if_failed()
                    fan.end()
                    return self._end()
                wait_s = self._wait_hint()
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if not refreshed:
                            refreshed = True
                            fan.refresh(seq0)
                            continue
                        return IDLE
                    wait_s = remaining if wait_s is None else min(wait_s, remaining)
                await fan.wait_async(self, wait_s)
        except InterfaceError:
            if self._closed or db.closed:
                fan.end()
                return self._end()
            raise

    def _wait_hint(self) -> float | None:
        if self._autosave and self._save_s and self.offset > self._saved:
            return max(0.0, self._last_save_at + self._save_s - time.monotonic())
        return None

    def _end(self) -> Any:
        self._fan.unregister(self)
        return super()._end()

    def __del__(self) -> None:
        # Dropped without close(): leave the shared feed (a replay that ran
        # to its end with timeout=0 joined it) so the file is not watched
        # for nobody.
        try:
            if self._member:
                self._fan.forget(self)
        except Exception:
            pass  # interpreter shutdown

    def _on_close(self, exc: BaseException | None) -> None:
        try:
            if not self._autosave or self._db.closed:
                return
            self._save(self.offset if exc is None else self._prev_offset())
        finally:
            self._fan.unregister(self)

    def __repr__(self) -> str:
        return (
            f"<StreamSubscription stream={self.stream.name!r} consumer={self.consumer!r} "
            f"offset={self.offset} shared={self._member} buffered={self.buffered} "
            f"overflows={self.overflows}>"
        )
