"""``queue.claim(worker_id)``: the claim iterator.

Jobs are reserved in batches (one transaction claims the first job and
reserves up to ``batch_size - 1`` more without spending an attempt) and
handed out one per step; handing a reserved job out spends its attempt
(``Queue._spend``), and closing the iterator gives unhanded jobs back
(docs/0010-claims-at-any-backlog.md). Waits are woken by commits from any
process and by ``run_at`` / claim-expiry deadlines.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from alkdev_storage.primitives.validate import as_int, opt_seconds
from alkdev_storage.primitives.wake import NOTHING, WakeIterator

if TYPE_CHECKING:
    from alkdev_storage.primitives.queue import Job, Queue

__all__ = ["ClaimIterator"]


class ClaimIterator(WakeIterator):
    """``queue.claim(worker_id)``: batched claims, one job per step.
    Every step writes (a claim, or spending a reserved job's attempt), so
    ``async for`` runs it off the event loop (primitives.aio)."""

    _poll_writes = True

    def __init__(
        self,
        queue: Queue,
        worker_id: str,
        idle_poll_s: float | None,
        batch_size: int,
        timeout: float | None,
    ) -> None:
        batch_size = as_int(batch_size, "batch_size")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        super().__init__(queue.db, timeout)
        self.queue = queue
        self.worker_id = worker_id
        self.idle_poll_s = opt_seconds(idle_poll_s, "idle_poll_s")
        self._max = batch_size
        self._want = 1
        self._buf: deque[Job] = deque()
        self._batch_at = 0.0
        self._yielded_at = 0.0
        self._avg: float | None = None
        self._hold_s = queue.visibility_timeout_s / 2.0

    def _poll(self) -> Any:
        now_m = time.monotonic()
        if self._yielded_at:
            # Time the caller spent on the previous job: keep batches small
            # enough that buffered claims are handed out well within the
            # visibility timeout.
            dt = now_m - self._yielded_at
            self._yielded_at = 0.0
            self._avg = dt if self._avg is None else 0.7 * self._avg + 0.3 * dt
        buf = self._buf
        if buf:
            if now_m - self._batch_at < self._hold_s:
                spend = self.queue._spend
                while buf:
                    job = buf.popleft()
                    if spend(job):
                        self._yielded_at = time.monotonic()
                        return job
            else:
                self._give_back()
        cap = self._max
        if self._avg is not None and self._avg > 0:
            cap = max(1, min(cap, int(self._hold_s / (2 * self._avg))))
        want = min(self._want, cap)
        jobs = self.queue._claim_reserve(self.worker_id, want)
        n = len(jobs)
        if n == 0:
            self._want = 1
            return NOTHING
        self._want = min(want * 2, self._max) if n >= want else 1
        if n > 1:
            self._batch_at = time.monotonic()
            buf.extend(jobs[1:])
        self._yielded_at = time.monotonic()
        return jobs[0]

    def _discard(self, item: Any) -> None:
        job: Job = item
        try:
            self.queue.give_back(job.id, job.worker_id)
        except Exception:
            pass  # the claim expires and the job is reclaimed

    def _wait_hint(self) -> float | None:
        t = self.idle_poll_s
        nxt = self.queue._next_claim_at()
        if nxt > 0:
            until = max(0.0, nxt - time.time())
            t = until if t is None else min(t, until)
        return t

    def _give_back(self) -> None:
        buf = self._buf
        if not buf:
            return
        ids = [j.id for j in buf]
        buf.clear()
        self.queue._unclaim(self.worker_id, ids)

    @property
    def buffered(self) -> int:
        """Jobs reserved under the hood and not yet yielded."""
        return len(self._buf)

    def _on_close(self, exc: BaseException | None) -> None:
        if self._buf and not self._db.closed:
            try:
                self._give_back()
            except Exception:
                pass

    def __del__(self) -> None:
        buf = getattr(self, "_buf", None)
        if buf:
            self.queue._orphans.append((self.worker_id, [j.id for j in buf]))
            buf.clear()

    def __repr__(self) -> str:
        return f"<ClaimIterator queue={self.queue.name!r} worker_id={self.worker_id!r}>"
