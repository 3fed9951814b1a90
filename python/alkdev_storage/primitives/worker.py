"""``run_task``: run one claimed job under a retry policy (the honker
binding's ``honker._worker.run_task``, for framework integrations).

``handler(job.payload)``; then ack, retry or dead-letter as
:mod:`alkdev_storage.primitives.policy` decides (the same policy as the
task workers and the outbox): on success an optional ``save_result`` then
``ack``; on an exception or timeout ``retry`` after ``retry_delay *
backoff ** (attempts - 1)`` seconds, or ``fail`` once ``retries``
attempts are used; :class:`~alkdev_storage.errors.Retryable` retries with
its own delay, within the same budget; ``CancelledError`` propagates
untouched (the claim expires and the job is reclaimed).

Differences from honker: a sync handler with a ``timeout`` runs in a
worker thread, so the timeout bounds it too (honker leaves sync handlers
unbounded); ``run_task_blocking`` is the same for code without an event
loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from alkdev_storage.primitives.policy import JobPolicy

if TYPE_CHECKING:
    from alkdev_storage.primitives.queue import Job

__all__ = ["run_task", "run_task_blocking"]


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
    policy = JobPolicy(
        retries=retries,
        retry_delay_s=retry_delay,
        backoff=backoff,
        timeout_s=timeout,
        save_result=save_result,
        result_ttl_s=result_ttl,
    )
    await policy.run(job, handler)


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
    policy = JobPolicy(
        retries=retries,
        retry_delay_s=retry_delay,
        backoff=backoff,
        timeout_s=timeout,
        save_result=save_result,
        result_ttl_s=result_ttl,
    )
    policy.run_blocking(job, handler)
