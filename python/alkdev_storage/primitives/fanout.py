"""Listener fan-out: one read of ``_honker_notifications`` per wake for
every listener of a Database, demultiplexed by channel (docs/0014).

Decisions
---------
* One :class:`Fanout` per Database (``fanout_of(db)``), created with the
  first listener. It owns one update subscription, the id of the last row
  it read (``last_id``) and the live listeners by channel (weakly held: a
  listener dropped without ``close()`` stops receiving).
* Reads: ``WHERE id > last_id ORDER BY id LIMIT 1000`` (repeated while a
  batch comes back full), once per commit tick, under the fan-out lock;
  each row goes to the listeners of its channel (one shared
  :class:`~alkdev_storage.primitives.notify.Notification` object).
* Waiting (leader/follower blocking waits, asyncio waits on the wake
  hub; no thread of its own) is :class:`~.shared_reader.SharedReader`'s,
  shared with the stream fan-out.
* Buffers are bounded (``max_buffered``, default 10,000 per listener); on
  overflow the oldest buffered notification is dropped and the listener's
  ``dropped`` counter grows: a slow listener never stalls the others.
* ``fallback_poll_s`` (honker's paranoia re-read) still bounds how long a
  leader sleeps without a tick before reading anyway.
* Listeners with a ``match`` function (``Listener(..., match=f)``) get
  every row whose channel ``f`` accepts, from the same read: prefix and
  pattern subscriptions (``graph:*``) and high-cardinality ``topic:id``
  sets served by one listener (the events layer, docs/0021). ``f`` runs
  under the fan-out lock for every row read: it must be fast, must not
  block or touch the Database; an exception counts as no match.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from alkdev_storage.primitives.shared_reader import SharedReader

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import DatabaseContract
    from alkdev_storage.primitives.notify import Listener, Notification

__all__ = ["FANOUT_BATCH", "Fanout", "fanout_of"]

FANOUT_BATCH = 1000

SQL_FANOUT_READ = (
    "SELECT id, channel, payload, created_at FROM _honker_notifications "
    "WHERE id > ?1 ORDER BY id LIMIT " + str(FANOUT_BATCH)
)
SQL_MAX_ID = "SELECT COALESCE(MAX(id), 0) FROM _honker_notifications"
SQL_CHANNEL_MAX = "SELECT COALESCE(MAX(id), 0) FROM _honker_notifications WHERE channel = ?1"

_registry: weakref.WeakKeyDictionary[Any, Fanout] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def fanout_of(db: DatabaseContract) -> Fanout:
    """The one :class:`Fanout` of ``db`` (created on first use)."""
    fan = _registry.get(db)
    if fan is None:
        with _registry_lock:
            fan = _registry.get(db)
            if fan is None:
                fan = _registry[db] = Fanout(db)
    return fan


class Fanout(SharedReader):
    """Shared notification reader of one Database (see the module doc)."""

    def __init__(self, db: DatabaseContract) -> None:
        super().__init__(db)
        self._channels: dict[str, weakref.WeakSet[Listener]] = {}
        self._matchers: weakref.WeakSet[Listener] = weakref.WeakSet()
        self._last_id = 0
        self._s_read = db.statement(SQL_FANOUT_READ)
        self._s_chan_max = db.statement(SQL_CHANNEL_MAX)
        self._s_max = db.statement(SQL_MAX_ID)
        self.queries = 0
        """Number of ``SELECT`` statements run on ``_honker_notifications``."""
        self.reads = 0
        """Number of reads (one per wake that found the table changed)."""

    # -- state ---------------------------------------------------------

    @property
    def last_id(self) -> int:
        """Id of the last row read from the table (0 when no listener)."""
        return self._last_id

    def floor(self) -> int | None:
        """The highest id every live listener of this Database has already
        received (rows above it are still to be read), or None when no
        listener is alive. Automatic retention never deletes above it."""
        with self._lock:
            if self._sub is None or not (any(self._channels.values()) or self._matchers):
                return None
            return self._last_id

    def listener_count(self) -> int:
        """Live listeners registered here."""
        with self._lock:
            return sum(len(s) for s in self._channels.values()) + len(self._matchers)

    def __repr__(self) -> str:
        return (
            f"<Fanout last_id={self._last_id} listeners={self.listener_count()} "
            f"reads={self.reads} queries={self.queries}>"
        )

    # -- registration --------------------------------------------------

    def register(self, listener: Listener) -> int:
        """Add ``listener``; returns the id it starts after (its channel's
        current ``MAX(id)``, or the table's for a ``match`` listener: no
        history)."""
        db = self._db()
        with self._lock:
            if self._sub is None:
                # Subscribe before reading the start: a commit after the
                # read ticks the subscription.
                self._sub = db.subscribe_updates()
                row = db.fetchone(self._s_max)
                self._last_id = int(row[0]) if row else 0
                self._async_gen = -1
            if listener.match is not None:
                row = db.fetchone(self._s_max)
                self._matchers.add(listener)
                return int(row[0]) if row else 0
            row = db.fetchone(self._s_chan_max, (listener.channel,))
            start = int(row[0]) if row else 0
            subs = self._channels.get(listener.channel)
            if subs is None:
                subs = self._channels[listener.channel] = weakref.WeakSet()
            subs.add(listener)
            return start

    def unregister(self, listener: Listener) -> None:
        """Remove ``listener`` (idempotent). A blocked leader returns."""
        with self._lock:
            if listener.match is not None:
                self._matchers.discard(listener)
            else:
                subs = self._channels.get(listener.channel)
                if subs is not None:
                    subs.discard(listener)
                    if not subs:
                        del self._channels[listener.channel]
            self._waiting.pop(listener, None)
            self._awaiting.pop(listener, None)
            live = bool(self._channels or self._matchers)
            if listener._leader or not live:
                # Wake the thread blocked on the subscription: swap it for a
                # new one (or none once nobody listens) and re-read once.
                old = self._sub
                self._sub = None
                if live and old is not None:
                    self._sub = self._db().subscribe_updates()
                    self._force = True
                if old is not None:
                    old.close()
            self._handoff_locked()
            self._ahandoff_locked()
        listener._ready.set()

    # -- reading -------------------------------------------------------

    def _read_locked(self) -> None:
        db = self._db()
        channels = self._channels
        s_read = self._s_read
        from alkdev_storage.primitives.notify import Notification

        make = Notification._from_tuple
        matchers = list(self._matchers)
        self.reads += 1
        self._last_read = time.monotonic()
        while True:
            rows = db.fetchall(s_read, (self._last_id,))
            self.queries += 1
            if not rows:
                return
            for r in rows:
                subs = channels.get(r[1])
                n = None
                if subs:
                    n = make(r)
                    rid = r[0]
                    for lst in subs:
                        if rid > lst._start:
                            lst._push(n)
                if matchers:
                    n = _push_matching(matchers, r, n)
            self._last_id = rows[-1][0]
            if len(rows) < FANOUT_BATCH:
                return

    # -- SharedReader hooks (waiting is in shared_reader.py) --------------

    def _idle(self, member: Any) -> bool:
        listener: Listener = member
        return bool(listener._buffer) or listener.closed

    def _fallback(self, member: Any) -> float | None:
        listener: Listener = member
        return listener.fallback_poll_s


def _push_matching(
    matchers: list[Listener], r: tuple[Any, ...], n: Notification | None
) -> Notification | None:
    """Give row ``r`` to every ``match`` listener that accepts its channel
    (``n``: the row's Notification if already made)."""
    rid, channel = r[0], r[1]
    for lst in matchers:
        if rid <= lst._start:
            continue
        match = lst.match
        try:
            wanted = match is not None and match(channel)
        except Exception:
            wanted = False
        if wanted:
            if n is None:
                from alkdev_storage.primitives.notify import Notification

                n = Notification._from_tuple(r)
            lst._push(n)
    return n
