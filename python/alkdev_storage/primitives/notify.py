"""Ephemeral notifications: ``db.notify`` / ``tx.notify`` / ``db.listen``.

Rows live in honker's ``_honker_notifications`` table (created by
honker-core's bootstrap): ``tx.notify`` (native) calls honker's ``notify()``
SQL function, ``db.notify`` inserts the same row with the prepared
:data:`SQL_NOTIFY` (cheaper than calling the function, see
:mod:`alkdev_storage.primitives._sql`). Listeners in any honker binding see
them, and ours see theirs.

Decisions
---------
* A :class:`Listener` starts at the channel's current ``MAX(id)``: history
  is not replayed (``pg_notify`` semantics, as in the honker binding). Use a
  stream for durable replay.
* Listeners of one Database share one reader (:mod:`.fanout`): one
  prepared ``SELECT`` past the last id read, per commit tick, for every
  channel, demultiplexed into bounded per-listener buffers (overflow drops
  the oldest and counts it in ``Listener.dropped``; docs/0014); ids are
  monotonic (AUTOINCREMENT, single writer), so delivery is ordered and
  without duplicates.
* Besides ``async for``, a Listener supports blocking ``for`` and
  ``get(timeout)``; ``listen(..., timeout=s)`` ends iteration after ``s``
  idle seconds.
* ``fallback_poll_s`` (honker's paranoia re-read when no wake arrives) is
  kept with honker's default of 15 s.
* ``Listener(db, label, match=f)`` listens to every channel ``f(channel)``
  accepts (prefixes, patterns, sets of ``topic:id`` channels), fed by the
  same one read per commit; ``channel`` is then only its label (docs/0021).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from alkdev_storage import _native
from alkdev_storage.errors import InterfaceError
from alkdev_storage.primitives.fanout import fanout_of
from alkdev_storage.primitives.payload import decode
from alkdev_storage.primitives.shared_reader import wake_future
from alkdev_storage.primitives.validate import check_name, is_closed_error
from alkdev_storage.primitives.wake import END, IDLE, NOTHING, WakeIterator, resolve

if TYPE_CHECKING:
    import asyncio

    from alkdev_storage.primitives.contract import DatabaseContract

__all__ = ["SQL_NOTIFY", "Listener", "Notification", "UpdateEvents"]

DEFAULT_MAX_BUFFERED = 10_000
_UNSET: Any = object()

# ?1 channel ?2 payload (JSON text): the row honker-core's notify() inserts.
SQL_NOTIFY = "INSERT INTO _honker_notifications (channel, payload) VALUES (?1, ?2) RETURNING id"


class Notification:
    """One row of ``_honker_notifications``. ``payload`` is decoded from JSON
    lazily, on first access (a payload that is not JSON is returned as the
    raw string, as in the honker binding)."""

    __slots__ = ("_payload", "_payload_raw", "channel", "created_at", "id")

    def __init__(self, row: dict[str, Any]) -> None:
        self.id = row["id"]
        self.channel = row["channel"]
        self._payload_raw = row["payload"]
        self._payload = _UNSET
        self.created_at = row.get("created_at", 0)

    @classmethod
    def _from_tuple(cls, row: tuple[Any, ...]) -> Notification:
        n = cls.__new__(cls)
        n.id, n.channel, n._payload_raw, n.created_at = row
        n._payload = _UNSET
        return n

    @property
    def payload(self) -> Any:
        """The decoded JSON payload (decoded on first access; the raw text
        if it is not JSON)."""
        if self._payload is _UNSET:
            raw = self._payload_raw
            if raw is None or raw == "" or raw == "null":
                self._payload = None
            else:
                try:
                    self._payload = decode(raw)
                except (ValueError, TypeError):
                    self._payload = raw
        return self._payload

    def __repr__(self) -> str:
        return f"Notification(id={self.id}, channel={self.channel!r})"


class Listener(WakeIterator):
    """Iterator over notifications published to ``channel`` after it was
    created (sync and async; see :mod:`alkdev_storage.primitives.notify`).

    Fed by the Database's one :class:`~alkdev_storage.primitives.fanout.Fanout`
    (one read per commit for every listener). At most ``max_buffered``
    notifications wait in its buffer; beyond that the oldest is dropped and
    :attr:`dropped` counts it.

    With ``match`` (a function of a channel name) it receives every
    notification whose channel ``match`` accepts, not only ``channel``'s
    (which is then only a label), starting after the table's current
    ``MAX(id)``. ``match`` runs inside the shared read for every row: keep it
    fast, never block or use the Database in it (an exception counts as no
    match)."""

    def __init__(
        self,
        db: DatabaseContract,
        channel: str,
        fallback_poll_s: float | None = 15.0,
        *,
        timeout: float | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        match: Callable[[str], bool] | None = None,
    ) -> None:
        check_name(channel, "channel")
        if match is not None and not callable(match):
            raise TypeError(f"match must be callable or None, not {type(match).__name__}")
        if type(max_buffered) is not int:
            raise TypeError(f"max_buffered must be an int, got {type(max_buffered).__name__}")
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {max_buffered}")
        super().__init__(db, timeout)
        self.db = db
        self.channel = channel
        self.fallback_poll_s = None if fallback_poll_s is None else float(fallback_poll_s)
        self.max_buffered = max_buffered
        self.match = match
        """The channel filter (None: exactly ``channel``)."""
        self.dropped = 0
        """Notifications dropped because the buffer was full."""
        self._buffer: deque[Notification] = deque()
        self._ready = threading.Event()
        self._leader = False
        self._fan = fanout_of(db)
        self._start: int = self._fan.register(self)
        self._last_seen: int = self._start

    @property
    def last_seen(self) -> int:
        """Id of the last notification handed out (the start id before)."""
        return self._last_seen

    def _push(self, n: Notification) -> None:
        # Called by the fan-out under its lock.
        buf = self._buffer
        if len(buf) >= self.max_buffered:
            buf.popleft()
            self.dropped += 1
        buf.append(n)
        self._ready.set()
        if self._fut is not None:
            wake_future(self._fut)

    def _take(self) -> Notification | None:
        """The oldest buffered notification (marked as seen), or None."""
        buf = self._buffer
        if not buf:
            return None
        n = buf.popleft()
        self._last_seen = n.id
        return n

    def _poll(self) -> Any:
        n = self._take()
        return NOTHING if n is None else n

    async def _next_async(self, timeout: float | None) -> Any:
        if self._closed:
            return END
        db = self._db
        fan = self._fan
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                n = self._take()
                if n is not None:
                    return n
                if self._closed:
                    return END
                hub = db.wake_hub()
                if db.closed or hub.ended:
                    hub.raise_if_failed()
                    fan.end()
                    return self._end()
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return IDLE
                await fan.wait_async(self, remaining)
        except InterfaceError:
            if self._closed or db.closed:
                fan.end()
                return self._end()
            raise

    def _wait_hint(self) -> float | None:
        return self.fallback_poll_s

    def _next_blocking(self, timeout: float | None) -> Any:
        if self._closed:
            return END
        db = self._db
        fan = self._fan
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                n = self._take()
                if n is not None:
                    return n
                if self._closed:
                    return END
                if db.closed:
                    return self._end()
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return IDLE
                fan.wait(self, remaining)
        except InterfaceError:
            if self._closed or db.closed:
                fan.end()
                return self._end()
            raise
        finally:
            fan.leave()

    def _end(self) -> Any:
        self._fan.unregister(self)
        return super()._end()

    def _on_close(self, exc: BaseException | None) -> None:
        self._fan.unregister(self)

    def __repr__(self) -> str:
        return (
            f"<Listener channel={self.channel!r} last_seen={self._last_seen} "
            f"buffered={len(self._buffer)} dropped={self.dropped}>"
        )


class UpdateEvents:
    """honker's ``db.update_events()``: yields ``None`` once per observed
    commit to the file (from any process; bursts coalesce). Async and
    blocking iteration; ``close()`` ends it."""

    def __init__(self, db: DatabaseContract, *, timeout: float | None = None) -> None:
        self._db = db
        self._timeout = timeout
        # Subscribe now (a channel on the shared watcher, no thread), so
        # ticks between creation and the first wait are not lost.
        self._sub: _native.UpdateSubscription | None = db.subscribe_updates()
        self._token: int | None = None
        self._fut: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def path(self) -> str:
        """The database file's path."""
        return str(self._db.path)

    @property
    def closed(self) -> bool:
        """True once closed (or its Database closed)."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<UpdateEvents {self.path!r} {state}>"

    def __iter__(self) -> UpdateEvents:
        return self

    def __next__(self) -> None:
        if self._wait_blocking(self._timeout):
            return None
        raise StopIteration

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the next commit; False on timeout or once closed."""
        return self._wait_blocking(timeout)

    def _wait_blocking(self, timeout: float | None) -> bool:
        sub = self._sub
        if self._closed or sub is None:
            return False
        try:
            return bool(sub.wait(timeout))
        except InterfaceError as e:
            if self._closed or is_closed_error(self._db, e):
                self._closed = True
                return False
            raise

    def __aiter__(self) -> UpdateEvents:
        return self

    async def __anext__(self) -> None:
        if self._closed:
            raise StopAsyncIteration
        try:
            hub = self._db.wake_hub()
            if self._token is None:
                self._token = hub.token()
                sub = self._sub
                if sub is not None and sub.wait(0):
                    return None  # a commit landed since creation
            deadline = None if self._timeout is None else time.monotonic() + self._timeout
            while True:
                cur = hub.token()
                if cur != self._token:
                    self._token = cur
                    return None
                if self._closed:
                    raise StopAsyncIteration
                if hub.ended:
                    hub.raise_if_failed()
                    self._closed = True
                    raise StopAsyncIteration
                wait_s = None
                if deadline is not None:
                    wait_s = deadline - time.monotonic()
                    if wait_s <= 0:
                        raise StopAsyncIteration
                await hub.wait(self._token, wait_s, self)
        except InterfaceError as e:
            if self._closed or is_closed_error(self._db, e):
                self._closed = True
                raise StopAsyncIteration from None
            raise

    def close(self) -> None:
        """End the iteration (idempotent); a waiting ``async for`` returns."""
        if self._closed:
            return
        self._closed = True
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()
        fut = self._fut
        if fut is not None and not fut.done():
            try:
                fut.get_loop().call_soon_threadsafe(resolve, fut)
            except RuntimeError:
                pass

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()

    def __enter__(self) -> UpdateEvents:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False
