"""Writes from ``async`` code that never block the event loop.

A write waits for two things the event loop must not wait for: this
process's writer slot (held by another thread's transaction) and the
file's write lock (held by another process; the fair busy handler of
docs/0011 waits for it). Every awaitable write (``await db.anotify()``,
``await queue.aenqueue()``, ``await job.aack()``, ``await
stream.apublish()``, ``async with db.atransaction()``, ``await
db.arun(fn)``, the async claim iterator, the async workers, ``async with
db.lock()``) does its waiting on a thread of a small pool of this module
instead, while the loop runs other tasks.

Decisions (docs/0020-async-writes.md)
-------------------------------------
* Two process-wide pools with fixed sizes, created on first use:
  ``WAITERS`` (8 threads) runs whatever may wait for the writer slot or
  the lock: a whole one-off write, or the ``BEGIN IMMEDIATE`` of an async
  transaction. ``ENDERS`` (2 threads) runs only ``COMMIT`` / ``ROLLBACK``
  of async transactions, which never wait for the slot, so an async
  transaction can always end even when every ``WAITERS`` thread waits for
  the slot it holds (no deadlock). Neither grows with the number of
  databases or of tasks: a thousand coroutines writing at once queue for
  the eight threads.
* Inside ``async with db.atransaction() as tx`` the statements run on the
  loop's own thread (``tx`` is the ordinary native Transaction, so
  ``queue.enqueue(..., tx=tx)`` and every ``tx=`` argument work): the slot
  and the lock are already held, so a statement only costs its own SQLite
  work. Do not call a *blocking* write of the same Database (``db.notify``,
  ``queue.enqueue`` without ``tx=``) inside it from the loop: it would wait
  for the slot this transaction holds, which only the loop can give back.
* Cancellation: a task cancelled while its write waits on a thread stops
  awaiting at once; the write itself still completes (or fails) on the
  thread, since SQLite work cannot be abandoned half way. A transaction
  whose ``BEGIN`` completes after its task was cancelled is rolled back at
  once.
* A thread hop costs tens of microseconds (measured in
  benches/bench_primitives.py's async rows); code that writes in bulk
  from async code should batch inside one ``atransaction``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from alkdev_storage._native import Transaction
    from alkdev_storage.primitives.contract import DatabaseContract

__all__ = ["ENDERS_MAX", "WAITERS_MAX", "AsyncTransaction", "off_loop"]

P = ParamSpec("P")
T = TypeVar("T")

WAITERS_MAX = 8
"""Threads that may wait for a writer slot or a write lock, process-wide."""
ENDERS_MAX = 2
"""Threads that commit or roll back async transactions, process-wide."""

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def _pool(kind: str) -> ThreadPoolExecutor:
    pool = _pools.get(kind)
    if pool is None:
        with _lock:
            pool = _pools.get(kind)
            if pool is None:
                size = WAITERS_MAX if kind == "waiters" else ENDERS_MAX
                pool = ThreadPoolExecutor(size, thread_name_prefix=f"alkdev-aio-{kind}")
                _pools[kind] = pool
    return pool


async def off_loop(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn(*args, **kwargs)`` on a ``WAITERS`` thread and await its
    result (exceptions propagate). Context variables are carried over, as
    ``asyncio.to_thread`` does."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool("waiters"), call)


async def _end(fn: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(_pool("enders"), fn)


def _rollback_quietly(tx: Transaction) -> None:
    try:
        if tx.active:
            tx.rollback()
    except Exception:
        pass


class AsyncTransaction:
    """``async with db.atransaction() as tx:`` — a write transaction begun
    and ended off the event loop (see the module docstring). ``tx`` is the
    native Transaction: commit on success, roll back on an exception or a
    cancellation, exactly like ``with db.transaction()``."""

    __slots__ = ("_began", "_db")

    def __init__(self, db: DatabaseContract) -> None:
        self._db = db
        self._began: Transaction | None = None

    async def __aenter__(self) -> Transaction:
        if self._began is not None:
            raise RuntimeError("an AsyncTransaction can be entered once")
        tx = self._db.transaction()
        begun = _pool("waiters").submit(tx.__enter__)
        try:
            await asyncio.shield(asyncio.wrap_future(begun))
        except asyncio.CancelledError:
            # BEGIN may still complete on its thread (even after this loop
            # is gone): roll it back there, from the thread's own callback.
            def undo(f: concurrent.futures.Future[Any]) -> None:
                if not f.cancelled() and f.exception() is None:
                    _rollback_quietly(tx)

            begun.add_done_callback(undo)
            raise
        self._began = tx
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        tx = self._began
        if tx is None or not tx.active:
            return False
        if exc_type is None:
            await asyncio.shield(_end(tx.commit))
        else:
            await asyncio.shield(_end(functools.partial(_rollback_quietly, tx)))
        return False
