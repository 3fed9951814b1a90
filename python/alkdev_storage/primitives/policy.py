"""The job-execution policy: how a claimed job's handler runs and what
then happens to the job. One implementation, used by ``run_task`` /
``run_task_blocking`` (worker.py), the task workers (tasks.py) and the
outbox (outbox.py).

Decisions
---------
* Success: the result is saved first when asked (``save_result``; a save
  that fails is logged on the ``alkdev_storage.worker`` logger and the job
  is still acked, as honker's task worker does: the handler's side effects
  already happened), then the job is acked.
* Failure (an exception, or the timeout): the job is retried after
  ``retry_delay_s * backoff ** (attempts - 1)`` seconds, recording
  ``"<ExceptionType>: <message>"`` and the traceback (``"timeout after
  <n>s"`` for a timeout) as its last error.
* :class:`~alkdev_storage.errors.Retryable`: retried after its own
  ``delay_s`` instead, recording its message.
* The attempt budget applies to every failure, ``Retryable`` included (as
  in the honker binding's ``run_task`` and task worker, so a handler that
  keeps raising ``Retryable`` cannot loop forever): once the job has used
  ``retries`` attempts it goes to the dead table (``fail``). With
  ``retries=None`` only the queue's ``max_attempts`` bounds it (``retry``
  dead-letters an exhausted job).
* ``asyncio.CancelledError`` (and any other ``BaseException``) propagates
  untouched: the claim expires and the job is claimed again.
* Timeouts: an async handler runs under ``asyncio.wait_for``. A sync
  handler with a timeout runs in a worker thread (``asyncio.to_thread``,
  or a daemon thread for the blocking runners); a thread cannot be
  interrupted, so on timeout the job is retried and the thread finishes in
  the background. Without a timeout a sync handler runs inline, unless
  ``offload_sync`` (the task workers: never block the event loop).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alkdev_storage.errors import Retryable
from alkdev_storage.primitives.aio import write

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import TransactionContract
    from alkdev_storage.primitives.job import Job

__all__ = ["JobPolicy"]

_log = logging.getLogger("alkdev_storage.worker")
_NO_KWARGS: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class JobPolicy:
    """How to run a job's handler and settle the job (see the module
    docstring)."""

    retries: int | None = None
    """Attempt budget: a job that fails after this many attempts goes to
    the dead table. None: only the queue's ``max_attempts``."""
    retry_delay_s: float = 60.0
    """Delay before the first retry."""
    backoff: float = 1.0
    """Multiplier of the delay per further attempt."""
    timeout_s: float | None = None
    """Bound on the handler's run time (None: unbounded)."""
    save_result: bool = False
    """Save the handler's return value as the job's result."""
    result_ttl_s: float | None = 3600.0
    """How long a saved result is kept (None: until swept)."""
    offload_sync: bool = False
    """Async runners: run a sync handler in a thread even without a timeout."""

    def delay_for(self, attempts: int) -> int:
        """Retry delay (whole seconds) after attempt number ``attempts``."""
        return int(self.retry_delay_s * (self.backoff ** max(0, int(attempts) - 1)))

    # -- settling the job ------------------------------------------------

    def succeeded(self, job: Job, result: Any, tx: TransactionContract | None = None) -> None:
        """Save the result (if asked), then ack (in ``tx`` when given)."""
        if self.save_result:
            try:
                ttl = self.result_ttl_s
                job.queue.save_result(job.id, result, ttl=None if ttl is None else int(ttl), tx=tx)
            except Exception:
                _log.exception("could not save the result of job %s on %r", job.id, job.queue_name)
        job.ack(tx=tx)

    def failed(self, job: Job, exc: Exception, tx: TransactionContract | None = None) -> None:
        """Retry or dead-letter ``job`` after ``exc`` (see the module docstring)."""
        if isinstance(exc, Retryable):
            delay, error = exc.delay_s, str(exc)
        elif isinstance(exc, TimeoutError):
            delay, error = self.delay_for(job.attempts), f"timeout after {self.timeout_s}s"
        else:
            delay = self.delay_for(job.attempts)
            error = f"{type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc))}"
        q = job.queue
        if self.retries is not None and job.attempts >= self.retries:
            q.fail(job.id, job.worker_id, error, tx=tx)
        else:
            q.retry(job.id, job.worker_id, delay, error, tx=tx)

    # -- running the handler ---------------------------------------------

    async def run(
        self,
        job: Job,
        fn: Callable[..., Any],
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> bool:
        """Run ``fn(*args, **kwargs)`` (``args`` None: ``fn(job.payload)``)
        on the event loop (or in a thread, see the module docstring) and
        settle ``job`` (the ack / retry / fail waits off the event loop).
        True if the handler succeeded."""
        try:
            if args is None:
                args = (job.payload,)
            timeout = self.timeout_s
            if inspect.iscoroutinefunction(fn):
                aw = fn(*args, **kwargs)
            elif timeout is not None or self.offload_sync:
                aw = asyncio.to_thread(fn, *args, **kwargs)
            else:
                aw = None
                result = fn(*args, **kwargs)
            if aw is not None:
                result = await (aw if timeout is None else asyncio.wait_for(aw, timeout))
        except Exception as e:
            err = e
            await write(
                job.queue.db,
                lambda t: self.failed(job, err, tx=t),
                lambda: self.failed(job, err),
            )
            return False
        await write(
            job.queue.db,
            lambda t: self.succeeded(job, result, tx=t),
            lambda: self.succeeded(job, result),
        )
        return True

    def run_blocking(
        self,
        job: Job,
        fn: Callable[..., Any],
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> bool:
        """:meth:`run` in the calling thread, without an event loop (an
        async handler runs in its own ``asyncio.run``)."""
        try:
            if args is None:
                args = (job.payload,)
            result = self._call_blocking(job, fn, args, kwargs)
        except Exception as e:
            self.failed(job, e)
            return False
        self.succeeded(job, result)
        return True

    def _call_blocking(
        self, job: Job, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        timeout = self.timeout_s
        if inspect.iscoroutinefunction(fn):
            coro = fn(*args, **kwargs)
            return asyncio.run(coro if timeout is None else asyncio.wait_for(coro, timeout))
        if timeout is None:
            return fn(*args, **kwargs)
        box: list[tuple[bool, Any]] = []

        def call() -> None:
            try:
                box.append((True, fn(*args, **kwargs)))
            except BaseException as exc:
                box.append((False, exc))

        t = threading.Thread(target=call, daemon=True, name=f"job:{job.queue_name}:{job.id}")
        t.start()
        t.join(timeout)
        if not box:
            raise TimeoutError(f"job {job.id} timed out after {timeout}s")
        ok, value = box[0]
        if not ok:
            raise value
        return value
