"""Subscriptions: a listener with a bounded buffer, read as an iterator.

``pubsub.subscribe(...)`` (and :meth:`Subscription.__init__` on any
target) registers a :class:`Sink` as the listener of one key; the sink
puts each event's detail into a bounded buffer and the
:class:`Subscription` hands the items out with ``for`` (blocking, any
thread) or ``async for`` (any event loop).

Overflow policies (``overflow=``) when ``max_buffered`` items wait unread:

``"drop_oldest"`` (default)
    The oldest buffered item is dropped (``dropped`` counts it).
``"drop_newest"``
    The new item is dropped (``dropped`` counts it).
``"raise"``
    The producer gets :class:`~alkdev_storage.errors.SubscriberOverflow`
    (for an in-process dispatch, after every other listener had the
    event); the item is not buffered.
``"block"``
    The producer waits for room (``block_timeout`` seconds at most, then
    ``SubscriberOverflow``). A producer on the thread that consumes the
    subscription (its event loop's thread, for ``async for``) cannot wait
    for itself: a blocking dispatch there raises ``SubscriberOverflow``;
    ``await pubsub.apublish(...)`` / ``await target.adispatch_event(...)``
    wait for room without blocking the loop. On a Honker target the
    waiting producer is the database's event thread: every target of that
    database waits with it (the notifications stay in the database; the
    event thread's own buffer then bounds memory, dropping its oldest).

Every policy keeps memory bounded. Counters: ``received`` (buffered),
``dropped``, ``overflows`` (times an item found the buffer full, whatever
the policy), ``buffered`` (waiting now).

A subscription ends (and unregisters its sink) when it is closed
(``close()``, ``with``/``async with``), when its target closes (after
the buffered items were read), when ``timeout`` idle seconds pass, and
when it is garbage collected (``break`` out of a ``for`` over
``pubsub.subscribe(...)`` drops the last reference: the listener goes at
once). One consumer at a time: do not iterate one subscription from two
threads or tasks together.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from alkdev_storage.errors import SubscriberOverflow
from alkdev_storage.primitives.validate import as_int, opt_seconds

if TYPE_CHECKING:
    from alkdev_storage.events.event import Event
    from alkdev_storage.events.target import EventTarget

__all__ = ["DEFAULT_MAX_BUFFERED", "OVERFLOW_POLICIES", "Overflow", "Sink", "Subscription"]

Overflow = Literal["drop_oldest", "drop_newest", "raise", "block"]
OVERFLOW_POLICIES: tuple[str, ...] = ("drop_oldest", "drop_newest", "raise", "block")
DEFAULT_MAX_BUFFERED = 10_000

_END: Any = object()
_IDLE: Any = object()
_SKIP: Any = object()
_MAIN_SLICE_S = 0.05  # main-thread waits in slices: Ctrl-C stays prompt
_get_ident = threading.get_ident


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _wake(fut: asyncio.Future[None], thread: int) -> None:
    """Resolve ``fut`` from any thread (``thread``: its loop's thread)."""
    if _get_ident() == thread:
        if not fut.done():
            fut.set_result(None)
        return
    try:
        fut.get_loop().call_soon_threadsafe(_resolve, fut)
    except RuntimeError:
        pass  # that loop is closed


class Sink:
    """The listener of a :class:`Subscription`: the bounded buffer."""

    __slots__ = (
        "__weakref__",
        "_block_timeout",
        "_blocked",
        "_buf",
        "_closed",
        "_consumer",
        "_convert",
        "_items",
        "_lock",
        "_max",
        "_policy",
        "_space",
        "_space_futs",
        "_sync_waiters",
        "_waiter",
        "_waiter_thread",
        "dropped",
        "invalid",
        "overflows",
        "received",
    )

    def __init__(
        self,
        max_buffered: int,
        overflow: str,
        block_timeout: float | None,
        convert: Callable[[Event], Any] | None,
    ) -> None:
        self._lock = threading.Lock()
        self._items = threading.Condition(self._lock)
        self._space = threading.Condition(self._lock)
        self._buf: deque[Any] = deque()
        self._max = max_buffered
        self._policy = overflow
        self._block_timeout = block_timeout
        self._convert = convert
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._waiter_thread = 0
        self._consumer: int | None = None
        self._sync_waiters = 0
        self._blocked = 0
        self._space_futs: deque[tuple[asyncio.Future[None], int]] = deque()
        self.received = 0
        self.dropped = 0
        self.overflows = 0
        self.invalid = 0

    @property
    def blocks(self) -> bool:
        """True for the ``"block"`` policy."""
        return self._policy == "block"

    # -- producer side -------------------------------------------------

    def _item(self, event: Event) -> Any:
        convert = self._convert
        if convert is None:
            return event.detail
        try:
            return convert(event)
        except ValueError:
            self.invalid += 1
            return _SKIP

    def __call__(self, event: Event) -> None:
        if self._convert is None:
            item = event.detail
        else:
            item = self._item(event)
            if item is _SKIP:
                return
        with self._lock:
            if self._closed:
                return
            buf = self._buf
            if len(buf) >= self._max:
                self.overflows += 1
                policy = self._policy
                if policy == "drop_oldest":
                    buf.popleft()
                    self.dropped += 1
                elif policy == "drop_newest":
                    self.dropped += 1
                    return
                elif policy == "raise":
                    raise SubscriberOverflow(
                        f"subscriber buffer full ({self._max} items) for {event.type!r}"
                    )
                elif not self._wait_room(event):
                    return
            # _append, inlined (the hot path)
            buf.append(item)
            self.received += 1
            fut = self._waiter
            if fut is not None:
                self._waiter = None
                if _get_ident() == self._waiter_thread:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    _wake(fut, self._waiter_thread)
            if self._sync_waiters:
                self._items.notify()

    def _append(self, item: Any) -> None:
        # Under the lock.
        self._buf.append(item)
        self.received += 1
        fut = self._waiter
        if fut is not None:
            self._waiter = None
            if _get_ident() == self._waiter_thread:
                if not fut.done():
                    fut.set_result(None)
            else:
                _wake(fut, self._waiter_thread)
        if self._sync_waiters:
            self._items.notify()

    def _wait_room(self, event: Event) -> bool:
        """Block policy, under the lock: wait until there is room; False
        if the sink closed meanwhile."""
        if self._consumer == _get_ident():
            raise SubscriberOverflow(
                f"subscriber buffer full ({self._max} items) for {event.type!r}, and this "
                "thread consumes it: it cannot wait for itself (use adispatch_event / apublish "
                "from async code)"
            )
        timeout = self._block_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        main = threading.current_thread() is threading.main_thread()
        self._blocked += 1
        try:
            while len(self._buf) >= self._max and not self._closed:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    raise SubscriberOverflow(
                        f"subscriber buffer full ({self._max} items) for {event.type!r}: "
                        f"no room within {timeout} s"
                    )
                if main:
                    wait = _MAIN_SLICE_S if wait is None else min(wait, _MAIN_SLICE_S)
                self._space.wait(wait)
        finally:
            self._blocked -= 1
        return not self._closed

    async def apush(self, event: Event) -> None:
        """Awaitable push: under the ``"block"`` policy waits for room
        without blocking the event loop; otherwise as a call."""
        if self._policy != "block":
            self(event)
            return
        item = self._item(event)
        if item is _SKIP:
            return
        timeout = self._block_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._closed:
                    return
                if len(self._buf) < self._max:
                    self._append(item)
                    return
                self.overflows += 1
                loop = asyncio.get_running_loop()
                fut: asyncio.Future[None] = loop.create_future()
                self._space_futs.append((fut, _get_ident()))
            wait = None if deadline is None else deadline - time.monotonic()
            try:
                if wait is not None:
                    if wait <= 0:
                        raise TimeoutError
                    await asyncio.wait_for(fut, wait)
                else:
                    await fut
            except TimeoutError:
                raise SubscriberOverflow(
                    f"subscriber buffer full ({self._max} items) for {event.type!r}: "
                    f"no room within {timeout} s"
                ) from None

    # -- consumer side -------------------------------------------------

    def _took(self) -> None:
        # Under the lock, after an item left the buffer.
        if self._blocked:
            self._space.notify()
        if self._space_futs:
            fut, thread = self._space_futs.popleft()
            _wake(fut, thread)

    def take_blocking(self, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        main = threading.current_thread() is threading.main_thread()
        with self._lock:
            self._consumer = _get_ident()
            buf = self._buf
            while not buf:
                if self._closed:
                    return _END
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return _IDLE
                if main:
                    wait = _MAIN_SLICE_S if wait is None else min(wait, _MAIN_SLICE_S)
                self._sync_waiters += 1
                try:
                    self._items.wait(wait)
                finally:
                    self._sync_waiters -= 1
            item = buf.popleft()
            self._took()
            return item

    async def take_async(self, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                me = _get_ident()
                self._consumer = me
                buf = self._buf
                if buf:
                    item = buf.popleft()
                    self._took()
                    return item
                if self._closed:
                    return _END
                loop = asyncio.get_running_loop()
                fut: asyncio.Future[None] = loop.create_future()
                self._waiter = fut
                self._waiter_thread = me
            handle = None
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    with self._lock:
                        if self._waiter is fut:
                            self._waiter = None
                    return _IDLE
                handle = loop.call_later(wait, _resolve, fut)
            try:
                await fut
            finally:
                if handle is not None:
                    handle.cancel()
                with self._lock:
                    if self._waiter is fut:
                        self._waiter = None

    # -- ending ----------------------------------------------------------

    def close(self, discard: bool = True) -> None:
        """Stop accepting items; wake every waiter. ``discard``: drop the
        buffered items too (else they can still be read)."""
        with self._lock:
            self._closed = True
            if discard:
                self._buf.clear()
            self._items.notify_all()
            self._space.notify_all()
            fut, self._waiter = self._waiter, None
            if fut is not None:
                _wake(fut, self._waiter_thread)
            while self._space_futs:
                f, thread = self._space_futs.popleft()
                _wake(f, thread)

    def target_closed(self) -> None:
        """The target closed: end after the buffered items."""
        self.close(discard=False)

    @property
    def closed(self) -> bool:
        """True once the sink accepts no more items."""
        return self._closed

    def __len__(self) -> int:
        return len(self._buf)


def _unsubscribe(target: EventTarget, key: str, sink: Sink) -> None:
    sink.close()
    try:
        target.remove_event_listener(key, sink)
    except Exception:  # the target may be closed or its Database gone
        pass


class Subscription:
    """Items published to one key, with a bounded buffer (see the module
    docstring): ``for item in sub``, ``async for item in sub``,
    ``sub.get(timeout)``, ``await sub.aget(timeout)``."""

    def __init__(
        self,
        target: EventTarget,
        key: str,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        overflow: Overflow = "drop_oldest",
        block_timeout: float | None = None,
        timeout: float | None = None,
        convert: Callable[[Event], Any] | None = None,
    ) -> None:
        n = as_int(max_buffered, "max_buffered")
        if n < 1:
            raise ValueError(f"max_buffered must be >= 1, got {n}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {overflow!r}"
            )
        self._timeout = opt_seconds(timeout, "timeout")
        self.key = key
        """The type or pattern subscribed to."""
        self._sink = sink = Sink(n, overflow, opt_seconds(block_timeout, "block_timeout"), convert)
        target.add_event_listener(key, sink)
        self._finalizer = weakref.finalize(self, _unsubscribe, target, key, sink)

    # -- counters ------------------------------------------------------

    @property
    def received(self) -> int:
        """Items put in the buffer so far."""
        return self._sink.received

    @property
    def dropped(self) -> int:
        """Items lost to ``drop_oldest`` / ``drop_newest``."""
        return self._sink.dropped

    @property
    def overflows(self) -> int:
        """Times an item found the buffer full (whatever the policy)."""
        return self._sink.overflows

    @property
    def invalid(self) -> int:
        """Events refused by the subscription's payload model."""
        return self._sink.invalid

    @property
    def buffered(self) -> int:
        """Items waiting to be read."""
        return len(self._sink)

    @property
    def closed(self) -> bool:
        """True once the subscription takes no more items."""
        return self._sink.closed

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.key!r} buffered={self.buffered} received={self.received} "
            f"dropped={self.dropped} overflows={self.overflows}>"
        )

    # -- reading -------------------------------------------------------

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> Any:
        item = self._sink.take_blocking(self._timeout)
        if item is _END or item is _IDLE:
            self.close()
            raise StopIteration
        return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if self._timeout is not None:
            item = await self._sink.take_async(self._timeout)
            if item is _END or item is _IDLE:
                self.close()
                raise StopAsyncIteration
            return item
        # No timeout: Sink.take_async inlined (the hot path of ``async for``).
        sink = self._sink
        lock = sink._lock
        while True:
            with lock:
                buf = sink._buf
                me = _get_ident()
                sink._consumer = me
                if buf:
                    item = buf.popleft()
                    if sink._blocked or sink._space_futs:
                        sink._took()
                    return item
                if sink._closed:
                    break
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                sink._waiter = fut
                sink._waiter_thread = me
            try:
                await fut
            finally:
                if sink._waiter is fut:
                    with lock:
                        if sink._waiter is fut:
                            sink._waiter = None
        self.close()
        raise StopAsyncIteration

    def get(self, timeout: float | None = None) -> Any:
        """The next item, waiting up to ``timeout`` seconds (None: no
        limit); None on timeout or once closed."""
        item = self._sink.take_blocking(opt_seconds(timeout, "timeout"))
        return None if item is _END or item is _IDLE else item

    async def aget(self, timeout: float | None = None) -> Any:
        """Async :meth:`get`."""
        item = await self._sink.take_async(opt_seconds(timeout, "timeout"))
        return None if item is _END or item is _IDLE else item

    # -- ending ----------------------------------------------------------

    def close(self) -> None:
        """Unsubscribe (idempotent); a waiting reader returns."""
        self._finalizer()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self.close()
        return False

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self.close()
        return False
