"""The task worker loops: ``run_workers`` (asyncio) and
``run_workers_blocking`` (one thread, no event loop), honker-compatible
and signal-aware.

Shutdown (docs/0020-async-writes.md)
------------------------------------
A worker stops *gracefully*: it takes no new job, lets the job it is
running finish, and gives back every job it holds but will not run.

* ``stop_event`` set, or — when the loop runs in the main thread and
  ``handle_signals`` is true (the default) — SIGTERM or SIGINT received:
  idle workers stop at once; a worker running a job lets it finish (ack,
  retry or dead-letter as usual) for up to ``grace_s`` seconds (default
  30). Jobs reserved by a claim batch and never handed out are given back
  with their attempts intact.
* A job still running when ``grace_s`` has passed, or when a second
  signal arrives, or when ``run_workers`` itself is cancelled, is
  cancelled and *given back* (``Job.give_back``: pending, due now, the
  attempt its claim spent refunded), so a shutdown never costs a job an
  attempt. A sync handler runs in a thread that cannot be interrupted:
  it finishes in the background and its job, already given back, may run
  again (at-least-once, as after a crash).
* The previous signal handlers are restored when the loop returns.
* ``run_workers_blocking`` finishes its current job (a sync handler
  cannot be interrupted) and returns; SIGTERM is handled when it runs in
  the main thread (SIGINT keeps Python's KeyboardInterrupt, which the
  waits honour within 50 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from alkdev_storage.primitives.aio import off_loop
from alkdev_storage.primitives.tasks import TaskRegistry, registry, resolve_job

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import DatabaseContract
    from alkdev_storage.primitives.queue import Job, Queue

__all__ = ["DEFAULT_GRACE_S", "run_workers", "run_workers_blocking"]

DEFAULT_GRACE_S = 30.0
"""How long a shutdown waits for running jobs before giving them back."""

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def _drain_loop(
    queue: Queue, worker_id: str, reg: TaskRegistry, stopping: asyncio.Event
) -> None:
    """Claim and run jobs until ``stopping`` is set; then finish the job in
    hand (or, if cancelled, give it back) and return."""
    it = queue.claim(worker_id)
    stop_wait = asyncio.ensure_future(stopping.wait())
    try:
        while not stopping.is_set():
            nxt = asyncio.ensure_future(it.__anext__())
            await asyncio.wait({nxt, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                it.close()  # the pending step ends (a job it claims is given back)
            try:
                job: Job = await nxt
            except StopAsyncIteration:
                return
            if stopping.is_set():
                await job.agive_back()
                return
            await _run_one(job, reg)
    finally:
        stop_wait.cancel()
        it.close()


async def _run_one(job: Job, reg: TaskRegistry) -> None:
    found = await off_loop(resolve_job, job, reg)
    if found is None:
        return
    spec, env = found
    run = asyncio.ensure_future(
        spec.policy().run(job, spec.fn, env.get("args", []), env.get("kwargs", {}))
    )
    try:
        await asyncio.shield(run)
    except asyncio.CancelledError:
        run.cancel()
        with contextlib.suppress(BaseException):
            await run
        # Not settled (a settled job is no longer ours: give_back is False).
        with contextlib.suppress(Exception):
            await asyncio.shield(job.agive_back())
        raise


@contextlib.contextmanager
def _signals_set(loop: asyncio.AbstractEventLoop, on_signal: Any, enabled: bool) -> Iterator[None]:
    """Route SIGTERM/SIGINT to ``on_signal`` while inside (main thread only)."""
    installed: list[signal.Signals] = []
    if enabled and threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:
            try:
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_workers(
    db: DatabaseContract,
    queue: str | None = None,
    concurrency: int | None = None,
    registry_: TaskRegistry | None = None,
    stop_event: asyncio.Event | None = None,
    *,
    handle_signals: bool = True,
    grace_s: float = DEFAULT_GRACE_S,
) -> None:
    """Run ``concurrency`` workers per queue (every queue with registered
    tasks, or just ``queue``) until ``stop_event`` is set, a SIGTERM or
    SIGINT arrives (main thread, ``handle_signals``) or the task is
    cancelled; then shut down gracefully (see the module docstring)."""
    reg = registry_ or registry()
    n = concurrency if concurrency is not None else (os.cpu_count() or 1)
    if not float(grace_s) >= 0:
        raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
    names = {queue} if queue else reg.queues()
    if not names:
        raise RuntimeError(
            "run_workers() called with no tasks registered. Import the module that "
            "defines your @q.task() functions before calling run_workers()."
        )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    hard = asyncio.Event()

    def on_signal(_sig: signal.Signals) -> None:
        if stopping.is_set():
            hard.set()  # a second signal: give running jobs back now
        stopping.set()

    prefix = f"honker-worker-{os.getpid()}"
    tasks = [
        asyncio.ensure_future(_drain_loop(db.queue(q), f"{prefix}-{q}-{i}", reg, stopping))
        for q in sorted(names)
        for i in range(n)
    ]
    external = asyncio.ensure_future(stop_event.wait()) if stop_event is not None else None
    with _signals_set(loop, on_signal, handle_signals):
        try:
            waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(stopping.wait())}
            if external is not None:
                waits.add(external)
            await asyncio.wait(waits | set(tasks), return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            stopping.set()
            hard_wait: asyncio.Future[Any] = asyncio.ensure_future(hard.wait())
            drained: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
            try:
                await asyncio.wait(
                    [drained, hard_wait], timeout=grace_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                hard_wait.cancel()
        finally:
            stopping.set()
            if external is not None:
                external.cancel()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t


def run_workers_blocking(
    db: DatabaseContract,
    queue: str | None = None,
    registry_: TaskRegistry | None = None,
    stop_event: threading.Event | None = None,
    timeout: float | None = None,
    worker_id: str | None = None,
    *,
    handle_signals: bool = True,
) -> int:
    """One worker in the calling thread, no event loop: runs jobs of
    ``queue`` (or of every queue with registered tasks, in turn) until
    ``stop_event`` is set, SIGTERM arrives (main thread,
    ``handle_signals``) or no job arrived for ``timeout`` seconds; the job
    in hand is finished first. Returns the number of jobs handled."""
    reg = registry_ or registry()
    names = sorted({queue} if queue else reg.queues())
    if not names:
        raise RuntimeError("run_workers_blocking() called with no tasks registered")
    wid = worker_id or f"honker-worker-{os.getpid()}-{threading.get_ident()}"
    stop = stop_event if stop_event is not None else threading.Event()
    iters = [db.queue(q).claim(wid, timeout=0) for q in names]
    handled = 0
    sub = db.subscribe_updates()
    previous: Any = None
    installed = False
    in_main = threading.current_thread() is threading.main_thread()
    if handle_signals and in_main:

        def on_term(_signum: int, _frame: Any) -> None:
            stop.set()
            sub.close()  # wakes the wait below at once

        previous = signal.signal(signal.SIGTERM, on_term)
        installed = True
    try:
        idle_since = time.monotonic()
        while not stop.is_set():
            got = False
            for it in iters:
                if stop.is_set():
                    break
                job = it.get(0)
                if job is None:
                    continue
                got = True
                found = resolve_job(job, reg)
                if found is not None:
                    spec, env = found
                    spec.policy().run_blocking(
                        job, spec.fn, env.get("args", []), env.get("kwargs", {})
                    )
                handled += 1
            if got:
                idle_since = time.monotonic()
                continue
            wait_s: float | None = 0.25 if stop_event is not None else None
            if timeout is not None:
                remaining = timeout - (time.monotonic() - idle_since)
                if remaining <= 0:
                    break
                wait_s = remaining if wait_s is None else min(wait_s, remaining)
            for it in iters:
                hint = it._wait_hint()
                if hint is not None:
                    wait_s = hint if wait_s is None else min(wait_s, hint)
            if stop.is_set():
                break
            try:
                sub.wait(wait_s)
            except Exception:
                if stop.is_set():
                    break
                raise
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        sub.close()
        for it in iters:
            it.close()
    return handled
