"""The waiting machinery shared by the per-Database shared readers
(:class:`~.fanout.Fanout` for ``_honker_notifications``,
:class:`~.stream_fanout.StreamFanout` for ``_honker_stream``): one read per
commit tick for every member, no thread of their own.

* Blocking waits use leader/follower: the first waiting member becomes the
  leader and waits (GIL released, signal-aware) on the reader's shared
  update subscription; on a tick (or, with a fallback period, when it is
  due) it reads once under the lock (``_read_locked``) and the read feeds
  every member; the others sleep on their own ``threading.Event`` (in
  50 ms slices in the main thread, so Ctrl-C stops them promptly) and are
  woken when their buffer fills or when leadership is handed over.
* asyncio waits use the Database's wake hub: one task (any loop) leads and
  reads when the hub's generation moved since the last asyncio-triggered
  read; the others await their own future.

A subclass implements ``_read_locked()`` and ``_idle(member)`` (the member
needs no wait: something is buffered, it ended, or it left the feed), and
may override ``_fallback(member)`` (seconds after the last read at which a
leader reads anyway without a tick; None: never). Members carry
``_ready`` (a ``threading.Event``), ``_leader`` and ``_fut``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from alkdev_storage import errors as _errors
from alkdev_storage.primitives.wake import resolve

if TYPE_CHECKING:
    from alkdev_storage import _native
    from alkdev_storage.primitives.contract import DatabaseContract

__all__ = ["MAIN_SLICE_S", "SharedReader", "shorter", "wake_future"]

MAIN_SLICE_S = 0.05
"""Main-thread follower wait slice (Ctrl-C latency)."""


class SharedReader:
    """Base of the shared readers (see the module docstring)."""

    def __init__(self, db: DatabaseContract) -> None:
        self._db_ref = weakref.ref(db)
        self._lock = threading.Lock()
        self._sub: _native.UpdateSubscription | None = None
        self._leading = False
        self._force = False
        self._waiting: dict[Any, None] = {}
        self._async_gen = -1
        self._aleading = False
        self._awaiting: dict[Any, None] = {}
        self._last_read = time.monotonic()

    def _db(self) -> DatabaseContract:
        db = self._db_ref()
        if db is None:
            raise _errors.InterfaceError("the Database was garbage-collected")
        return db

    # -- subclass hooks ----------------------------------------------------

    def _read_locked(self) -> None:
        raise NotImplementedError

    def _idle(self, member: Any) -> bool:
        raise NotImplementedError

    def _fallback(self, member: Any) -> float | None:
        return None

    def _fallback_due(self, fallback: float | None) -> bool:
        return fallback is not None and time.monotonic() - self._last_read >= fallback

    # -- blocking wait (leader / follower) ---------------------------------

    def wait(self, member: Any, timeout: float | None) -> None:
        """Block until ``member``'s buffer may have grown, ``timeout``
        passes, leadership is handed over, or the member/Database ends.
        Raises InterfaceError if the watcher died under an open Database."""
        with self._lock:
            if self._idle(member):
                return
            lead = not self._leading
            if lead:
                self._leading = True
                member._leader = True
                sub = self._sub
                force, self._force = self._force, False
            else:
                member._ready.clear()
                self._waiting[member] = None
        if not lead:
            try:
                if threading.current_thread() is threading.main_thread():
                    timeout = MAIN_SLICE_S if timeout is None else min(timeout, MAIN_SLICE_S)
                member._ready.wait(timeout)
            finally:
                with self._lock:
                    self._waiting.pop(member, None)
            return
        try:
            if sub is None:
                return
            if force:
                with self._lock:
                    if self._sub is not None:
                        self._read_locked()
                return
            fallback = self._fallback(member)
            try:
                ticked = sub.wait(shorter(timeout, fallback))
            except _errors.InterfaceError:
                if sub is not self._sub:
                    return  # swapped by unregister(): re-check state
                raise
            if ticked or self._fallback_due(fallback):
                with self._lock:
                    if self._sub is not None:
                        self._read_locked()
        finally:
            with self._lock:
                self._leading = False
                member._leader = False
                self._handoff_locked()

    def leave(self) -> None:
        """A blocking caller is done waiting: make sure someone leads if
        others still wait."""
        if self._waiting:
            with self._lock:
                self._handoff_locked()

    def _handoff_locked(self) -> None:
        if not self._leading and self._waiting:
            next(iter(self._waiting))._ready.set()

    # -- asyncio wait -------------------------------------------------------

    async def wait_async(self, member: Any, timeout: float | None) -> None:
        """asyncio twin of :meth:`wait`: one task (any loop) leads and waits
        on the wake hub, reads once per commit and wakes the members it
        fed; the others await their own future (no wake per commit)."""
        loop = asyncio.get_running_loop()
        hub = self._db().wake_hub()
        with self._lock:
            if self._idle(member):
                return
            lead = not self._aleading
            if lead:
                self._aleading = True
            else:
                fut: asyncio.Future[None] = loop.create_future()
                member._fut = fut
                self._awaiting[member] = None
        if not lead:
            handle = (
                loop.call_later(max(0.0, timeout), resolve, fut) if timeout is not None else None
            )
            try:
                await fut
            finally:
                member._fut = None
                if handle is not None:
                    handle.cancel()
                with self._lock:
                    self._awaiting.pop(member, None)
                    self._ahandoff_locked()
            return
        try:
            fallback = self._fallback(member)
            gen = hub.token()
            if gen == self._async_gen and not self._force:
                await hub.wait(gen, shorter(timeout, fallback), member)
                if hub.ended:
                    return
                gen = hub.token()
                if gen == self._async_gen and not self._force:
                    if not self._fallback_due(fallback):
                        return
            with self._lock:
                if self._sub is not None:
                    self._async_gen = gen
                    self._force = False
                    self._read_locked()
        finally:
            with self._lock:
                self._aleading = False
                self._ahandoff_locked()

    def _ahandoff_locked(self) -> None:
        if not self._aleading and self._awaiting:
            wake_future(next(iter(self._awaiting))._fut)

    def end(self) -> None:
        """The Database closed: wake every waiter."""
        with self._lock:
            waiting = list(self._waiting)
            awaiting = list(self._awaiting)
        for member in waiting:
            member._ready.set()
        for member in awaiting:
            wake_future(member._fut)


def shorter(a: float | None, b: float | None) -> float | None:
    """The shorter of two optional durations (None: unbounded)."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def wake_future(fut: asyncio.Future[None] | None) -> None:
    """Resolve ``fut`` from any thread (no-op for None or done)."""
    if fut is None or fut.done():
        return
    loop = fut.get_loop()
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fut.set_result(None)
        return
    try:
        loop.call_soon_threadsafe(resolve, fut)
    except RuntimeError:
        pass  # that loop is closed
