"""``run_task``: run one claimed job with a retry policy (the honker
binding's ``honker._worker.run_task``, for framework integrations).

Decisions
---------
* Same semantics as honker: ``handler(job.payload)``; on success an
  optional ``save_result`` then ``ack``; on an exception or timeout
  ``retry`` with ``retry_delay * backoff ** (attempts - 1)`` seconds, or
  ``fail`` once ``retries`` attempts are used; :class:`Retryable` retries
  with its own delay; ``CancelledError`` propagates untouched (the claim
  expires and the job is reclaimed).
* A sync handler runs in a worker thread when ``timeout`` is given, so the
  timeout is enforced for it too (honker leaves sync handlers unbounded);
  without ``timeout`` it runs inline, as in honker.
* ``run_task_blocking`` is the same for code without an event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import traceback
from collections.abc import Callable
from typing import Any

from alkdev_storage.primitives.queue import Job, Retryable

__all__ = ["run_task", "run_task_blocking"]


def _compute_delay(retry_delay: float, backoff: float, attempts: int) -> int:
    n = max(0, int(attempts) - 1)
    return int(retry_delay * (backoff**n))


def _retry_or_fail(job: Job, retries: int | None, delay_s: int, error: str) -> None:
    if retries is not None and job.attempts >= retries:
        job.fail(error=error)
    else:
        job.retry(delay_s=delay_s, error=error)


def _on_error(
    job: Job, e: BaseException, retries: int | None, retry_delay: float, backoff: float
) -> None:
    if isinstance(e, Retryable):
        job.retry(delay_s=e.delay_s, error=str(e))
        return
    delay = _compute_delay(retry_delay, backoff, job.attempts)
    if isinstance(e, TimeoutError):
        _retry_or_fail(job, retries, delay, "handler timeout")
    else:
        _retry_or_fail(job, retries, delay, f"{e}\n{''.join(traceback.format_exception(e))}")


async def run_task(
    job: Job,
    handler: Callable[[Any], Any],
    *,
    timeout: float | None = None,
    retries: int | None = None,
    retry_delay: float = 60.0,
    backoff: float = 1.0,
    save_result: bool = False,
    result_ttl: float | None = 3600.0,
) -> None:
    """Run ``handler(job.payload)`` and ack, retry or fail the job."""
    try:
        if inspect.iscoroutinefunction(handler):
            aw = handler(job.payload)
        elif timeout is not None:
            aw = asyncio.to_thread(handler, job.payload)
        else:
            aw = None
            result = handler(job.payload)
        if aw is not None:
            result = await (asyncio.wait_for(aw, timeout) if timeout is not None else aw)
        if save_result:
            job.queue.save_result(job.id, result, ttl=result_ttl)
        job.ack()
    except asyncio.CancelledError:
        raise
    except Exception as e:
        _on_error(job, e, retries, retry_delay, backoff)


def run_task_blocking(
    job: Job,
    handler: Callable[[Any], Any],
    *,
    timeout: float | None = None,
    retries: int | None = None,
    retry_delay: float = 60.0,
    backoff: float = 1.0,
    save_result: bool = False,
    result_ttl: float | None = 3600.0,
) -> None:
    """:func:`run_task` without an event loop."""
    try:
        if inspect.iscoroutinefunction(handler):
            coro = handler(job.payload)
            result = asyncio.run(asyncio.wait_for(coro, timeout) if timeout is not None else coro)
        elif timeout is not None:
            box: list[tuple[bool, Any]] = []

            def call() -> None:
                try:
                    box.append((True, handler(job.payload)))
                except BaseException as exc:
                    box.append((False, exc))

            t = threading.Thread(target=call, daemon=True, name=f"run_task:{job.id}")
            t.start()
            t.join(timeout)
            if not box:
                raise TimeoutError(f"handler timed out after {timeout}s")
            ok, value = box[0]
            if not ok:
                raise value
            result = value
        else:
            result = handler(job.payload)
        if save_result:
            job.queue.save_result(job.id, result, ttl=result_ttl)
        job.ack()
    except Exception as e:
        _on_error(job, e, retries, retry_delay, backoff)
