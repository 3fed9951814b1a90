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
* Fast path, no thread hop: a write first tries ``db.try_begin()``, which
  begins only if that needs no wait (this process's writer slot is free
  and no other process holds the file's write lock) and returns None at
  once otherwise. Then the write and its COMMIT run on the loop, as fast
  as the blocking call (the COMMIT's own work, rarely a WAL checkpoint,
  is bounded; it never waits for a lock).
* Otherwise the whole write (or the ``BEGIN IMMEDIATE`` of an async
  transaction) runs on a thread of one process-wide pool of
  ``WAITERS_MAX`` (8) threads, created on first use, that does the
  waiting. The pool does not grow with the number of databases or tasks:
  a thousand coroutines writing at once queue for the eight threads.
* Inside ``async with db.atransaction() as tx`` the statements, the
  COMMIT and the ROLLBACK run on the loop's thread (``tx`` is the ordinary
  native Transaction, so ``queue.enqueue(..., tx=tx)`` and every ``tx=``
  argument work): the slot and the lock are already held, so they only
  cost their own SQLite work. Do not call a *blocking* write of the same
  Database (``db.notify``, ``queue.enqueue`` without ``tx=``) inside it
  from the loop: it would wait for the slot this transaction holds.
* Cancellation: a task cancelled while its write waits on a thread stops
  awaiting at once; the write itself still completes (or fails) on the
  thread, since SQLite work cannot be abandoned half way. A transaction
  whose ``BEGIN`` completes after its task was cancelled is rolled back
  there at once (even if the event loop is gone by then).
* Measured in benches/bench_async.py (the closing figures are in
  docs/0020).
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

__all__ = ["WAITERS_MAX", "AsyncTransaction", "off_loop", "write"]

P = ParamSpec("P")
T = TypeVar("T")

WAITERS_MAX = 8
"""Threads that may wait for a writer slot or a write lock, process-wide."""

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def _pool(kind: str) -> ThreadPoolExecutor:
    pool = _pools.get(kind)
    if pool is None:
        with _lock:
            pool = _pools.get(kind)
            if pool is None:
                pool = ThreadPoolExecutor(WAITERS_MAX, thread_name_prefix=f"alkdev-aio-{kind}")
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


async def write(
    db: DatabaseContract,
    in_tx: Callable[[Transaction], T],
    alone: Callable[[], T],
) -> T:
    """One write from async code: ``in_tx(tx)`` in a transaction begun on
    the loop when that needs no wait (``db.try_begin()``: the writer slot
    and the file's write lock are free), committed there; otherwise
    ``alone()`` (the same write in its own transaction) on a ``WAITERS``
    thread. The fast path costs no thread hop."""
    tx = db.try_begin()
    if tx is None:
        return await off_loop(alone)
    try:
        result = in_tx(tx)
    except BaseException:
        tx.rollback()
        raise
    tx.commit()
    return result


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
        now = self._db.try_begin()
        if now is not None:  # no wait needed: begun on the loop
            self._began = now
            return now
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
        # COMMIT and ROLLBACK never wait for the writer slot or the lock
        # (this transaction holds both): they run on the loop.
        if exc_type is None:
            tx.commit()
        else:
            _rollback_quietly(tx)
        return False
