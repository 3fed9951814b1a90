"""Listeners by event type and by pattern, and how one is called.

Shared by every target. DOM rules: adding the same listener (``==``) for
the same key twice keeps one registration; removing an unknown one is a
no-op. A listener registered under several keys that match one event
(``graph:1`` and ``graph:*``) is called once for it.

Sync and async listeners
------------------------
* A plain callable is called where the event is delivered: in
  :meth:`~alkdev_storage.events.target.InProcessEventTarget.dispatch_event`'s
  thread for the in-process target, on the database's event thread for
  the Honker targets (:mod:`alkdev_storage.events.dispatcher`), on the
  consumer thread for the durable and Redis targets.
* A coroutine function (``async def``, or an object whose ``__call__`` is
  one) must be added while an event loop runs: it is bound to that loop,
  and each call becomes a task there (``call_soon_threadsafe`` from other
  threads). A plain callable that returns a coroutine gets the same
  treatment on the running loop, if there is one.
* Errors: :meth:`ListenerRegistry.call` calls every listener, logs each
  exception on the ``alkdev_storage.events`` logger and returns the
  first one; targets decide (the in-process target raises it to the
  dispatcher once every listener has run). Errors of async listeners are
  logged when their task ends.

Reads are lock-free: the lookup tables are immutable snapshots replaced
under a lock on every change.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from alkdev_storage.errors import SubscriberOverflow
from alkdev_storage.events.event import Event, check_key, is_pattern, pattern_matcher

__all__ = ["AsyncCall", "Listener", "ListenerRegistry", "call_and_wait", "call_result", "log"]

log = logging.getLogger("alkdev_storage.events")

Listener = Callable[[Event], Any]
"""A listener: called with the :class:`~alkdev_storage.events.event.Event`."""

_MAX_CACHE = 65536


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )


class AsyncCall:
    """An async listener bound to the event loop it was added from."""

    __slots__ = ("fn", "loop", "tasks")

    def __init__(self, fn: Callable[[Event], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.loop = loop
        self.tasks: set[asyncio.Task[Any]] = set()

    def __call__(self, event: Event) -> None:
        self.submit(event)

    def submit(self, event: Event) -> concurrent.futures.Future[Any] | asyncio.Task[Any]:
        """Start the listener for ``event`` on its loop; the task (same
        thread) or a concurrent future (another thread) of its run."""
        loop = self.loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(self.fn(event))
            self.tasks.add(task)
            task.add_done_callback(self._done)
            return task
        fut = asyncio.run_coroutine_threadsafe(_run(self.fn, event), loop)
        fut.add_done_callback(_log_future)
        return fut

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async event listener %r failed", self.fn, exc_info=task.exception())


async def _run(fn: Callable[[Event], Any], event: Event) -> Any:
    return await fn(event)


def _log_future(fut: concurrent.futures.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("async event listener failed", exc_info=fut.exception())


def call_result(result: Any, listener: Any) -> None:
    """A plain listener returned ``result``: schedule it if it is a
    coroutine (on the running loop; closed and logged if there is none)."""
    if inspect.iscoroutine(result):
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            result.close()
            log.error("event listener %r returned a coroutine outside an event loop", listener)
            return
        task = loop.create_task(result)
        _loose_tasks.add(task)
        task.add_done_callback(_orphan_done)


_loose_tasks: set[asyncio.Task[Any]] = set()


def _orphan_done(task: asyncio.Task[Any]) -> None:
    _loose_tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("event listener coroutine failed", exc_info=task.exception())


class ListenerRegistry:
    """Listeners by key (type or pattern), see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._exact: dict[str, dict[Any, Callable[[Event], Any]]] = {}
        self._patterns: dict[
            str, tuple[Callable[[str], bool], dict[Any, Callable[[Event], Any]]]
        ] = {}
        # Snapshots (replaced, never mutated).
        self._exact_snap: dict[str, tuple[Callable[[Event], Any], ...]] = {}
        self._exact_items: dict[str, tuple[tuple[Any, Callable[[Event], Any]], ...]] = {}
        self._pattern_snap: tuple[
            tuple[Callable[[str], bool], tuple[tuple[Any, Callable[[Event], Any]], ...]], ...
        ] = ()
        self._cache: dict[str, tuple[Callable[[Event], Any], ...]] = {}
        self._count = 0

    # -- changes -------------------------------------------------------

    def add(self, key: str, listener: Listener) -> bool:
        """Register ``listener`` under ``key``; False if it already was."""
        check_key(key)
        if not callable(listener):
            raise TypeError(f"an event listener must be callable, not {type(listener).__name__}")
        stored: Callable[[Event], Any] = listener
        if _is_async(listener):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise TypeError(
                    f"the async listener {listener!r} must be added from a running event loop "
                    "(it runs on that loop)"
                ) from None
            stored = AsyncCall(listener, loop)
        with self._lock:
            if is_pattern(key):
                entry = self._patterns.get(key)
                if entry is None:
                    entry = self._patterns[key] = (pattern_matcher(key), {})
                table = entry[1]
            else:
                table = self._exact.setdefault(key, {})
            if listener in table:
                return False
            table[listener] = stored
            self._count += 1
            self._rebuild(key)
            return True

    def remove(self, key: str, listener: Listener) -> bool:
        """Unregister ``listener`` from ``key``; False if it was not there."""
        with self._lock:
            if is_pattern(key):
                entry = self._patterns.get(key)
                table = entry[1] if entry is not None else None
            else:
                table = self._exact.get(key)
            if table is None or listener not in table:
                return False
            del table[listener]
            if not table:
                if is_pattern(key):
                    del self._patterns[key]
                else:
                    del self._exact[key]
            self._count -= 1
            self._rebuild(key)
            return True

    def _rebuild(self, key: str) -> None:
        if is_pattern(key):
            self._pattern_snap = tuple(
                (m, tuple(table.items())) for m, table in self._patterns.values()
            )
        else:
            snap = dict(self._exact_snap)
            items = dict(self._exact_items)
            table = self._exact.get(key)
            if table:
                snap[key] = tuple(table.values())
                items[key] = tuple(table.items())
            else:
                snap.pop(key, None)
                items.pop(key, None)
            self._exact_snap = snap
            self._exact_items = items
        self._cache = {}

    def clear(self) -> list[Callable[[Event], Any]]:
        """Remove every listener; returns the stored callables."""
        with self._lock:
            gone = [fn for t in self._exact.values() for fn in t.values()]
            gone += [fn for _, t in self._patterns.values() for fn in t.values()]
            self._exact.clear()
            self._patterns.clear()
            self._exact_snap = {}
            self._exact_items = {}
            self._pattern_snap = ()
            self._cache = {}
            self._count = 0
            return gone

    # -- lookups -------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def keys(self) -> list[str]:
        """Every key with a listener (types and patterns)."""
        with self._lock:
            return list(self._exact) + list(self._patterns)

    def count(self, key: str) -> int:
        """Listeners registered under exactly ``key``."""
        with self._lock:
            if is_pattern(key):
                entry = self._patterns.get(key)
                return len(entry[1]) if entry is not None else 0
            return len(self._exact.get(key, ()))

    def has_patterns(self) -> bool:
        """True when some key is a pattern."""
        return bool(self._pattern_snap)

    def wants(self, type_: str) -> bool:
        """True when some listener would receive an event of ``type_``."""
        if type_ in self._exact_snap:
            return True
        return bool(self._pattern_snap) and bool(self.lookup(type_))

    def lookup(self, type_: str) -> tuple[Callable[[Event], Any], ...]:
        """The listeners of an event of ``type_``, each once, exact
        registrations first then patterns in the order they were added."""
        exact = self._exact_snap.get(type_, ())
        patterns = self._pattern_snap
        if not patterns:
            return exact
        cache = self._cache
        hit = cache.get(type_)
        if hit is not None:
            return hit
        seen: dict[Any, Callable[[Event], Any]] = dict(self._exact_items.get(type_, ()))
        for match, items in patterns:
            if match(type_):
                for user, stored in items:
                    seen.setdefault(user, stored)
        found = tuple(seen.values())
        if len(cache) >= _MAX_CACHE:
            cache.clear()
        cache[type_] = found
        return found

    # -- calling -------------------------------------------------------

    def call(self, event: Event) -> tuple[int, BaseException | None]:
        """Call every listener of ``event.type``: ``(how many, the first
        exception or None)``. Each exception is logged."""
        fns = self.lookup(event.type)
        first: BaseException | None = None
        for fn in fns:
            try:
                result = fn(event)
                if result is not None:
                    call_result(result, fn)
            except Exception as e:
                if not isinstance(e, SubscriberOverflow):
                    log.error("event listener %r failed on %r", fn, event.type, exc_info=e)
                if first is None:
                    first = e
        return len(fns), first


def call_and_wait(
    fns: tuple[Callable[[Event], Any], ...], event: Event, stop: threading.Event
) -> BaseException | None:
    """Call each listener of ``fns`` with ``event`` on this (consumer)
    thread, waiting for async ones to finish on their loop (while ``stop``
    is not set and the loop is open): at-least-once consumers acknowledge
    only what was handled. Exceptions are logged; the first is returned."""
    first: BaseException | None = None
    for fn in fns:
        try:
            if isinstance(fn, AsyncCall):
                _wait(fn.submit(event), stop, fn.loop)
            else:
                result = fn(event)
                if result is not None:
                    call_result(result, fn)
        except Exception as e:
            log.error("event listener %r failed on %r", fn, event.type, exc_info=e)
            if first is None:
                first = e
    return first


def _wait(fut: Any, stop: threading.Event, loop: asyncio.AbstractEventLoop) -> None:
    if not isinstance(fut, concurrent.futures.Future):
        return
    while True:
        try:
            fut.result(timeout=0.5)
            return
        except concurrent.futures.TimeoutError:
            if stop.is_set() or loop.is_closed():
                fut.cancel()
                raise InterruptedError("the consumer stopped while an async listener ran") from None
