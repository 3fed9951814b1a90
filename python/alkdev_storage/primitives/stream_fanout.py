"""Stream fan-out: one read of ``_honker_stream`` per commit for every
caught-up (tailing) subscription of a Database, demultiplexed by topic
(docs/0028).

Decisions
---------
* One :class:`StreamFanout` per Database (``stream_fanout_of(db)``). It
  holds one update subscription while it has members, the offset of the
  last row it read (``last_offset``, the *shared position*) and its
  members by topic (weakly: a subscription dropped without ``close()``
  stops receiving).
* A shared read is ``SELECT ... FROM _honker_stream WHERE offset > last
  ORDER BY offset LIMIT 1000`` (repeated while a batch comes back full),
  for every topic at once, run under the fan-out lock; each row goes to
  the buffer of every member of its topic that does not have it yet.
  Offsets are one AUTOINCREMENT sequence assigned under SQLite's single
  writer, so a committed row never appears below one already read: the
  shared position never skips anything.
* Who is a member: a subscription that is **caught up**. A subscription
  starts on its own (replaying from its offset with its own ``WHERE topic
  = ? AND offset > ?`` reads, as before). When an own read comes back
  short of a full batch it *joins* (:meth:`StreamFanout.join`): it becomes
  a member if no shared read ran since its own read began (then its own
  read saw every row of its topic up to the shared position); otherwise
  the join re-reads its topic under the fan-out lock first. Rows it got
  both ways are not delivered twice (each member keeps the highest offset
  it was fed, ``_fed``).
* Bounded buffers: at most ``max_buffered`` rows wait in a member's
  buffer (``subscribe(..., max_buffered=10_000)``). **Overflow never loses
  an event**: a row for a full buffer is not pushed; instead the
  subscription *leaves* the shared feed (counted in ``overflows``), keeps
  what is buffered, and then reads on its own from the offset after its
  buffer, exactly like a replaying subscription, until it catches up and
  joins again. A slow consumer therefore never stalls the others and never
  grows without bound, and a durable consumer never misses an event.
* Waiting, without a thread of our own, is
  :class:`~.shared_reader.SharedReader`'s (as for :mod:`.fanout`):
  leader/follower blocking waits on the shared subscription, asyncio
  waits on the Database's wake hub.
* Determinism of ``get(0)`` / ``timeout=`` kept: a member whose wait
  times out with nothing runs one shared read if none started since its
  call began, so an event committed before the call is always seen (the
  watcher's tick may not have arrived yet).
* ``queries`` counts every ``SELECT`` on ``_honker_stream`` made for the
  subscriptions of this Database (shared reads, their own reads, join
  checks); ``reads`` counts shared reads.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from alkdev_storage import errors as _errors
from alkdev_storage.primitives.shared_reader import SharedReader, wake_future

if TYPE_CHECKING:
    from alkdev_storage import _native
    from alkdev_storage.primitives.contract import DatabaseContract
    from alkdev_storage.primitives.stream import StreamSubscription

__all__ = ["STREAM_FANOUT_BATCH", "StreamFanout", "stream_fanout_of"]

STREAM_FANOUT_BATCH = 1000

SQL_SHARED_READ = (
    "SELECT offset, topic, key, payload, created_at FROM _honker_stream "
    "WHERE offset > ?1 ORDER BY offset ASC LIMIT " + str(STREAM_FANOUT_BATCH)
)
SQL_TOPIC_READ = (
    "SELECT offset, topic, key, payload, created_at FROM _honker_stream "
    "WHERE topic = ?1 AND offset > ?2 ORDER BY offset ASC LIMIT ?3"
)
SQL_MAX_OFFSET = "SELECT COALESCE(MAX(offset), 0) FROM _honker_stream"

_registry: weakref.WeakKeyDictionary[Any, StreamFanout] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def stream_fanout_of(db: DatabaseContract) -> StreamFanout:
    """The one :class:`StreamFanout` of ``db`` (created on first use)."""
    fan = _registry.get(db)
    if fan is None:
        with _registry_lock:
            fan = _registry.get(db)
            if fan is None:
                fan = _registry[db] = StreamFanout(db)
    return fan


class StreamFanout(SharedReader):
    """Shared ``_honker_stream`` reader of one Database (see the module
    doc)."""

    def __init__(self, db: DatabaseContract) -> None:
        super().__init__(db)
        self._topics: dict[str, weakref.WeakSet[StreamSubscription]] = {}
        self._last = 0
        self._seq = 0  # shared reads started (and feed starts)
        # Statements are prepared on first use: a subscription made on a
        # closed Database ends on its first step, as it always did.
        self._s_read: _native.Statement | None = None
        self._s_topic: _native.Statement | None = None
        self.queries = 0
        """``SELECT`` statements on ``_honker_stream`` made for the
        subscriptions of this Database (shared reads, their own reads,
        join checks)."""
        self.reads = 0
        """Shared reads (one per wake that had members waiting)."""
        self.overflows = 0
        """Times a member's full buffer sent it back to its own reads."""

    # -- state ---------------------------------------------------------

    @property
    def last_offset(self) -> int:
        """The shared position: offset of the last row read for the
        members (meaningful while there are members)."""
        return self._last

    @property
    def watching(self) -> bool:
        """True while the feed holds an update subscription on the file:
        while it has members (and, after the last one left on overflow,
        until the next join)."""
        return self._sub is not None

    def member_count(self) -> int:
        """Subscriptions currently fed by the shared reads."""
        with self._lock:
            return sum(len(s) for s in self._topics.values())

    def __repr__(self) -> str:
        return (
            f"<StreamFanout last_offset={self._last} members={self.member_count()} "
            f"reads={self.reads} queries={self.queries} overflows={self.overflows}>"
        )

    # -- own reads and joining -------------------------------------------

    def seq(self) -> int:
        """A token taken before an own read (see :meth:`join`)."""
        with self._lock:
            return self._seq

    def _topic_stmt(self, db: DatabaseContract) -> _native.Statement:
        st = self._s_topic
        if st is None:
            st = self._s_topic = db.statement(SQL_TOPIC_READ)
        return st

    def read_topic(self, topic: str, offset: int, limit: int) -> list[tuple[Any, ...]]:
        """A subscription's own read: rows of ``topic`` after ``offset``."""
        db = self._db()
        rows = db.fetchall(self._topic_stmt(db), (topic, offset, limit))
        self.queries += 1
        return rows

    def join(self, m: StreamSubscription, pos: int, seq0: int) -> list[tuple[Any, ...]]:
        """Make ``m`` a member: it has every row of its topic up to ``pos``,
        and its own read (begun after ``seq0 = self.seq()``) came back short
        of a full batch. Returns the rows of its topic after ``pos`` that
        the join had to read itself (deliver them after the own read's);
        if those fill a batch, ``m`` is still behind and stays on its own."""
        topic = m._topic
        with self._lock:
            if m._member or m.closed:
                return []
            db = self._db()
            if self._sub is None or not self._topics:
                # (Re)start the feed: subscribe before reading the position,
                # so any commit after that read ticks the subscription. With
                # no members nobody read: the old position may be far behind.
                old = self._sub
                self._sub = db.subscribe_updates()
                if old is not None:
                    old.close()
                row = db.fetchone(db.statement(SQL_MAX_OFFSET))
                self.queries += 1
                self._last = int(row[0]) if row else 0
                self._seq += 1
                self._async_gen = -1
            rows: list[tuple[Any, ...]] = []
            if self._seq != seq0:
                # A shared read (or the start) ran since m's own read began:
                # rows of its topic up to the shared position may be missing.
                rows = db.fetchall(self._topic_stmt(db), (topic, pos, STREAM_FANOUT_BATCH))
                self.queries += 1
                if len(rows) >= STREAM_FANOUT_BATCH:
                    return rows
                if rows:
                    pos = rows[-1][0]
            m._fed = pos
            m._member = True
            subs = self._topics.get(topic)
            if subs is None:
                subs = self._topics[topic] = weakref.WeakSet()
            subs.add(m)
            return rows

    def take(self, m: StreamSubscription) -> list[tuple[Any, ...]]:
        """The rows buffered for ``m`` (emptying its buffer)."""
        with self._lock:
            buf = m._buffer
            if not buf:
                return []
            rows = list(buf)
            buf.clear()
            return rows

    def unregister(self, m: StreamSubscription) -> None:
        """``m`` leaves (closed or ended; idempotent). A blocked leader
        returns."""
        with self._lock:
            self._remove_locked(m)
            self._waiting.pop(m, None)
            self._awaiting.pop(m, None)
            if m._leader or not self._topics:
                # Wake the thread blocked on the subscription: swap it for a
                # new one (or none once there are no members) and re-read.
                old = self._sub
                self._sub = None
                if self._topics and old is not None:
                    try:
                        self._sub = self._db().subscribe_updates()
                        self._force = True
                    except _errors.InterfaceError:
                        self._sub = None  # the Database is closed
                if old is not None:
                    old.close()
            self._handoff_locked()
            self._ahandoff_locked()
        m._ready.set()

    def forget(self, m: StreamSubscription) -> None:
        """``m`` is being garbage-collected without ``close()``: drop it, and
        stop watching the file once no member is left. Never blocks (a
        collection can run while this thread holds the lock): if the lock
        is busy, the weak set drops ``m`` and the next join restarts the
        feed."""
        if not m._member or not self._lock.acquire(blocking=False):
            return
        try:
            self._remove_locked(m)
            if not self._topics and not self._leading and not self._aleading:
                sub, self._sub = self._sub, None
                if sub is not None:
                    sub.close()
        finally:
            self._lock.release()

    def _remove_locked(self, m: StreamSubscription) -> None:
        m._member = False
        subs = self._topics.get(m._topic)
        if subs is not None:
            subs.discard(m)
            if not subs:
                del self._topics[m._topic]

    # -- shared reads ----------------------------------------------------

    def _read_locked(self) -> None:
        db = self._db()
        topics = self._topics
        s_read = self._s_read
        if s_read is None:
            s_read = self._s_read = db.statement(SQL_SHARED_READ)
        self.reads += 1
        self._seq += 1
        full: list[StreamSubscription] = []
        while True:
            rows = db.fetchall(s_read, (self._last,))
            self.queries += 1
            if not rows:
                break
            for r in rows:
                subs = topics.get(r[1])
                if subs:
                    off = r[0]
                    for m in subs:
                        if off > m._fed and m._member:
                            buf = m._buffer
                            if len(buf) >= m.max_buffered:
                                m._member = False  # overflow: leave, lose nothing
                                full.append(m)
                                continue
                            buf.append(r)
                            m._fed = off
                            m._ready.set()
                            if m._fut is not None:
                                wake_future(m._fut)
            self._last = rows[-1][0]
            if len(rows) < STREAM_FANOUT_BATCH:
                break
        for m in full:
            self._remove_locked(m)
            m.overflows += 1
            self.overflows += 1
            m._ready.set()
            if m._fut is not None:
                wake_future(m._fut)

    def refresh(self, seq0: int) -> None:
        """One shared read unless one started since ``seq0 = self.seq()``
        (a member's wait ran out: see the module doc)."""
        with self._lock:
            if self._seq == seq0 and self._sub is not None and self._topics:
                self._read_locked()

    # -- SharedReader hook (waiting is in shared_reader.py) ----------------

    def _idle(self, member: Any) -> bool:
        m: StreamSubscription = member
        return bool(m._buffer) or not m._member or m.closed
