"""The wake path: commits (from any process) wake listeners and workers.

Decisions
---------
* One update watcher thread for the whole process (the native
  ``db.subscribe_updates()``: it polls every watched file's WAL-index
  header, 1 ms by default, see docs/0012-one-watcher.md).
* asyncio: one hub per Database (:class:`WakeHub`) holding one
  subscription, and one Python bridge thread for the whole process
  (:class:`_Bridge`), never one per listener or per Database. The hubs'
  subscriptions forward their ticks to one native ``WakeSink``; the bridge
  blocks on it (GIL released) and, for each hub with a tick, bumps the
  hub's generation counter and resolves every registered asyncio future
  with one ``call_soon_threadsafe`` per event loop. No busy polling: idle
  hubs cost nothing but the one blocked bridge thread.
* Blocking iteration: each blocking iterator owns an ``UpdateSubscription``
  (a channel on the same shared watcher, no thread of its own) and waits on
  it with the GIL released.
* Nothing starts until something has to wait: an iterator that finds items
  (a replay, a backlog) never subscribes; the first time it finds nothing it
  subscribes (or starts the bridge) and reads once more before sleeping.
* No lost wake-ups: a waiter takes its wake token (generation, or its own
  subscription) *before* it reads the database, and sleeps only if no tick
  arrived since. Ticks coalesce; every wake re-reads state.
* Closing the Database ends the watcher; the hub ends, and every
  open iterator (sync or async) stops cleanly (``StopIteration`` /
  ``StopAsyncIteration``). If the watcher dies while the Database is still
  open (file replaced), iterators raise ``InterfaceError``.
* The hub holds only a weak reference to the Database; garbage-collecting
  the Database stops the hub (``Database.__del__``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from alkdev_storage import _native
from alkdev_storage import errors as _errors
from alkdev_storage.primitives.aio import off_loop

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import DatabaseContract

__all__ = ["END", "IDLE", "NOTHING", "WakeHub", "WakeIterator"]

# Sentinels of the iterator machinery.
NOTHING: Any = object()  # _poll found nothing
END: Any = object()  # the iterator ended (closed, or the Database closed)
IDLE: Any = object()  # the caller's timeout passed without an item


def resolve(fut: asyncio.Future[None]) -> None:
    """Resolve ``fut`` unless it is done (a loop callback)."""
    if not fut.done():
        fut.set_result(None)


def _resolve_all(futs: set[asyncio.Future[None]]) -> None:
    for f in futs:
        if not f.done():
            f.set_result(None)


class _Bridge:
    """The process's one asyncio bridge thread: waits on the ``WakeSink``
    every started hub forwards its subscription to, and hands each tick to
    its hub."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sink: _native.WakeSink | None = None
        self._hubs: dict[int, WakeHub] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def _after_fork(self) -> None:
        """In a child made by fork(): the parent's thread and sink are not
        ours; the next hub starts a new bridge."""
        self._lock = threading.Lock()
        self._sink = None
        self._hubs = {}
        self._thread = None

    def on_bridge_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def add(self, hub: WakeHub, sub: _native.UpdateSubscription) -> int:
        with self._lock:
            if self._sink is None:
                self._sink = _native.WakeSink()
                self._thread = threading.Thread(
                    target=self._run, args=(self._sink,), name="alkdev-storage-wake", daemon=True
                )
                self._thread.start()
            self._next += 1
            key = self._next
            self._hubs[key] = hub
            sink = self._sink
        sub.forward_to(sink, key)
        return key

    def remove(self, key: int) -> None:
        with self._lock:
            self._hubs.pop(key, None)

    def _run(self, sink: _native.WakeSink) -> None:
        while True:
            keys = sink.wait(None)  # blocks with the GIL released
            with self._lock:
                hubs = [h for h in map(self._hubs.get, dict.fromkeys(keys)) if h is not None]
            for hub in hubs:
                hub._ready()


_BRIDGE = _Bridge()
os.register_at_fork(after_in_child=_BRIDGE._after_fork)


class WakeHub:
    """Bridges one update subscription into asyncio for one Database
    (``db.wake_hub()``)."""

    __slots__ = (
        "__weakref__",
        "_db_ref",
        "_done",
        "_ended",
        "_error",
        "_gen",
        "_key",
        "_lock",
        "_path",
        "_stopping",
        "_sub",
        "_waiters",
    )

    def __init__(self, db: DatabaseContract) -> None:
        self._db_ref = weakref.ref(db)
        self._path = db.path
        self._lock = threading.Lock()
        self._gen = 0
        self._waiters: dict[asyncio.AbstractEventLoop, set[asyncio.Future[None]]] = {}
        self._sub: _native.UpdateSubscription | None = None
        self._key = 0
        self._done = threading.Event()
        self._ended = False
        self._stopping = False
        self._error: str | None = None

    # -- state -------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once the hub has stopped (Database closed, or the watcher
        died)."""
        return self._ended

    def __repr__(self) -> str:
        state = "ended" if self._ended else "running" if self.running else "idle"
        return f"<WakeHub {self._path!r} {state} generation={self._gen}>"

    def raise_if_failed(self) -> None:
        """Raise ``InterfaceError`` if the watcher died while the Database
        was open."""
        if self._error is not None:
            raise _errors.InterfaceError(self._error)

    @property
    def started(self) -> bool:
        """True once the bridge has subscribed (first ``token()``)."""
        return self._sub is not None

    @property
    def running(self) -> bool:
        """True while the hub is bridged (started and not ended)."""
        return self._sub is not None and not self._ended

    def token(self) -> int:
        """The current generation; starts the bridge on first use. Take it
        before reading the database."""
        if self._sub is None and not self._ended:
            self._start()
        return self._gen

    def _start(self) -> None:
        with self._lock:
            if self._sub is not None or self._ended:
                return
            db = self._db_ref()
            if db is None:
                self._ended = True
                self._done.set()
                return
            sub = db.subscribe_updates()  # InterfaceError if already closed
            self._sub = sub
        self._key = _BRIDGE.add(self, sub)

    # -- bridge thread -----------------------------------------------

    def _ready(self) -> None:
        """On the bridge thread: the subscription got a tick or ended."""
        sub = self._sub
        if sub is None or self._ended:
            return
        try:
            if sub.wait(0):
                self._fire()
        except BaseException as e:
            self._finish(e)

    def _finish(self, failure: BaseException) -> None:
        db = self._db_ref()
        with self._lock:
            if self._ended:
                return
            self._ended = True
            clean = self._stopping or db is None or db.closed
            if not clean:
                self._error = (
                    f"the update watcher of {self._path!r} stopped ({failure}); "
                    "the database file may have been replaced: reopen it"
                )
        _BRIDGE.remove(self._key)
        self._fire()
        sub = self._sub
        if sub is not None:
            try:
                sub.close()
            except Exception:
                pass
        self._done.set()

    def _fire(self) -> None:
        with self._lock:
            self._gen += 1
            waiters = self._waiters
            self._waiters = {}
        for loop, futs in waiters.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, futs)
            except RuntimeError:
                pass  # that loop is closed

    # -- asyncio side ------------------------------------------------

    async def wait(self, token: int, timeout: float | None, owner: Any = None) -> None:
        """Return when a commit lands after ``token`` was taken, when
        ``timeout`` seconds pass, or when the hub ends. ``owner`` (an
        iterator) gets the future in ``owner._fut`` so ``close()`` can wake
        it early."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._gen != token or self._ended:
                return
            fut: asyncio.Future[None] = loop.create_future()
            futs = self._waiters.get(loop)
            if futs is None:
                futs = self._waiters[loop] = set()
            futs.add(fut)
        handle = loop.call_later(max(0.0, timeout), resolve, fut) if timeout is not None else None
        if owner is not None:
            owner._fut = fut
        try:
            await fut
        finally:
            if owner is not None:
                owner._fut = None
            if handle is not None:
                handle.cancel()
            with self._lock:
                futs = self._waiters.get(loop)
                if futs is not None:
                    futs.discard(fut)
                    if not futs:
                        del self._waiters[loop]

    # -- shutdown ----------------------------------------------------

    def stop(self, join: bool = True, timeout: float = 5.0) -> None:
        """Stop the hub (idempotent); ``join`` waits until the bridge thread
        has ended it (its waiters resolved)."""
        with self._lock:
            self._stopping = True
            sub = self._sub
            if sub is None:
                self._ended = True
                self._done.set()
        if sub is not None:
            try:
                sub.close()  # the bridge thread sees the end and finishes the hub
            except Exception:
                pass
            if join and not _BRIDGE.on_bridge_thread():
                self._done.wait(timeout)


class WakeIterator:
    """Base of every wake-driven iterator (listen, claim, subscribe,
    update_events): iterable both with ``for`` (blocking, GIL released while
    waiting) and ``async for``; ``get(timeout)`` for one item with a timeout.

    An iterator belongs to one thread or task at a time (``close()`` may
    come from anywhere).

    Subclasses implement ``_poll()`` (return an item, or ``NOTHING``), and
    may override ``_wait_hint()`` (longest sleep before polling again
    without a commit: fallback polls, ``run_at`` deadlines), ``_on_end()``
    and ``_on_close(exc)``.
    """

    _timeout: float | None

    def __init__(self, db: DatabaseContract, timeout: float | None = None) -> None:
        if timeout is not None:
            timeout = float(timeout)
            if not timeout >= 0:
                raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
        self._db = db
        self._timeout = timeout
        self._sub: _native.UpdateSubscription | None = None
        self._fut: asyncio.Future[None] | None = None
        self._closed = False

    # -- subclass hooks ----------------------------------------------

    # True when ``_poll`` writes (claims, offset saves): the async loop
    # then runs it on a write-waiting thread (primitives.aio), never on
    # the event loop.
    _poll_writes = False

    def _poll(self) -> Any:
        raise NotImplementedError

    def _discard(self, item: Any) -> None:
        """An item polled off the loop after the iterator was closed: undo
        what handing it out did (a claim iterator gives the job back)."""

    def _wait_hint(self) -> float | None:
        return None

    def _on_close(self, exc: BaseException | None) -> None:
        """Called once by close()/__exit__ (exc: the exception leaving a
        ``with`` block, else None)."""

    # -- core loops --------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the iterator has ended (closed, or its Database closed)."""
        return self._closed

    def _end(self) -> Any:
        self._closed = True
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()
        return END

    def _next_blocking(self, timeout: float | None) -> Any:
        if self._closed:
            return END
        db = self._db
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                item = self._poll()
                if item is not NOTHING:
                    return item
                if self._closed:
                    return END
                wait_s = self._wait_hint()
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return IDLE
                    wait_s = remaining if wait_s is None else min(wait_s, remaining)
                sub = self._sub
                if sub is None:
                    # Subscribe only once there is something to wait for (a
                    # replay never needs the watcher), then read again: a
                    # commit after that read wakes the wait below.
                    self._sub = db.subscribe_updates()
                    continue
                sub.wait(wait_s)
        except _errors.InterfaceError:
            if self._closed or db.closed:
                return self._end()
            raise

    async def _next_async(self, timeout: float | None) -> Any:
        if self._closed:
            return END
        db = self._db
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            hub = db.wake_hub()
            # The wake token is taken before each read; the bridge starts
            # only once there is something to wait for.
            token = hub.token() if hub.started else None
            while True:
                if self._poll_writes:
                    item = await off_loop(self._poll)
                    if self._closed and item is not NOTHING:
                        self._discard(item)
                        return END
                else:
                    item = self._poll()
                if item is not NOTHING:
                    return item
                if self._closed:
                    return END
                if hub.ended:
                    hub.raise_if_failed()
                    return self._end()
                wait_s = self._wait_hint()
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return IDLE
                    wait_s = remaining if wait_s is None else min(wait_s, remaining)
                if token is None:
                    token = hub.token()
                    continue
                await hub.wait(token, wait_s, self)
                token = hub.token()
        except _errors.InterfaceError:
            if self._closed or db.closed:
                return self._end()
            raise

    # -- protocols ---------------------------------------------------

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        item = self._next_blocking(self._timeout)
        if item is END or item is IDLE:
            raise StopIteration
        return item

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        item = await self._next_async(self._timeout)
        if item is END or item is IDLE:
            raise StopAsyncIteration
        return item

    def get(self, timeout: float | None = None) -> Any:
        """Block (GIL released) for the next item; ``None`` if ``timeout``
        seconds pass first or the iterator has ended (see ``closed``)."""
        if timeout is not None and not float(timeout) >= 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
        item = self._next_blocking(None if timeout is None else float(timeout))
        return None if item is END or item is IDLE else item

    async def aget(self, timeout: float | None = None) -> Any:
        """Async :meth:`get`."""
        if timeout is not None and not float(timeout) >= 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
        item = await self._next_async(None if timeout is None else float(timeout))
        return None if item is END or item is IDLE else item

    def close(self) -> None:
        """End the iterator (idempotent). A thread blocked in it returns;
        a task awaiting it finishes its iteration."""
        self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._on_close(exc)
        finally:
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
        self._finish(None)

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self._finish(exc)
        return False

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self._finish(exc)
        return False
