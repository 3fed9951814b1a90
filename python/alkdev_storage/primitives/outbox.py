"""Transactional outbox: side effects enqueued in the same transaction as
the business write, delivered by a worker with exponential backoff
(the honker binding's ``Outbox``, same API).

Decisions
---------
* The outbox is a queue named ``_outbox:<name>`` (honker's name, so a
  honker process can deliver ours and the reverse).
* Delivery follows the shared job policy
  (:mod:`alkdev_storage.primitives.policy`): a failed delivery is retried
  after ``base_backoff_s * 2 ** (attempts - 1)`` seconds;
  :class:`~alkdev_storage.errors.Retryable` retries after its own
  ``delay_s``; after ``max_attempts`` the job moves to the dead table.
* ``run_worker`` (async, forever) as in honker; ``run_worker_blocking``
  delivers in the calling thread until ``stop_event`` or an idle
  ``timeout``, and returns how many deliveries succeeded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from alkdev_storage.primitives.policy import JobPolicy
from alkdev_storage.primitives.validate import as_int, check_name

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import DatabaseContract, TransactionContract
    from alkdev_storage.primitives.queue import Queue

__all__ = ["Outbox"]


class Outbox:
    """A named transactional outbox (``db.outbox(name, delivery)``)."""

    def __init__(
        self,
        db: DatabaseContract,
        name: str,
        delivery: Callable[[Any], Any],
        max_attempts: int = 5,
        base_backoff_s: int = 5,
        visibility_timeout_s: int = 60,
    ) -> None:
        if not callable(delivery):
            raise TypeError("delivery must be callable")
        check_name(name, "outbox name")
        self.db = db
        self.name = name
        self.delivery = delivery
        self.max_attempts = as_int(max_attempts, "max_attempts")
        self.base_backoff_s = as_int(base_backoff_s, "base_backoff_s")
        self._queue: Queue = db.queue(
            f"_outbox:{name}",
            visibility_timeout_s=visibility_timeout_s,
            max_attempts=self.max_attempts,
        )
        self._policy = JobPolicy(retry_delay_s=self.base_backoff_s, backoff=2.0)

    @property
    def queue(self) -> Queue:
        """The queue holding the pending deliveries (``_outbox:<name>``)."""
        return self._queue

    def __repr__(self) -> str:
        return f"<Outbox {self.name!r}>"

    def enqueue(
        self,
        payload: Any,
        tx: TransactionContract | None = None,
        priority: int = 0,
        delay: float | None = None,
        run_at: int | None = None,
        expires: float | None = None,
    ) -> None:
        """Add a delivery of ``payload``; with ``tx`` it exists only if that
        transaction commits (the point of an outbox)."""
        self._queue.enqueue(
            payload, tx=tx, priority=priority, delay=delay, run_at=run_at, expires=expires
        )

    async def run_worker(self, worker_id: str) -> None:
        """Deliver forever (cancel the task to stop)."""
        it = self._queue.claim(worker_id)
        run = self._policy.run
        try:
            async for job in it:
                await run(job, self.delivery)
        finally:
            it.close()

    def run_worker_blocking(
        self,
        worker_id: str,
        stop_event: threading.Event | None = None,
        timeout: float | None = None,
    ) -> int:
        """Deliver in this thread until ``stop_event`` is set (checked every
        0.25 s) or nothing arrived for ``timeout`` seconds. Returns how many
        deliveries succeeded."""
        delivered = 0
        wait = timeout if stop_event is None else (0.25 if timeout is None else min(0.25, timeout))
        it = self._queue.claim(worker_id)
        run = self._policy.run_blocking
        idle = 0.0
        try:
            while not (stop_event is not None and stop_event.is_set()):
                job = it.get(wait)
                if job is None:
                    if it.closed:
                        break
                    idle += wait if wait is not None else 0.0
                    if timeout is not None and idle >= timeout:
                        break
                    continue
                idle = 0.0
                if run(job, self.delivery):
                    delivered += 1
        finally:
            it.close()
        return delivered
