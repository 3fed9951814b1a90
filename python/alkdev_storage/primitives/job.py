"""``Job``: a claimed job (what ``claim()``, ``claim_one()`` and
``claim_batch()`` return), with honker's ``ack`` / ``retry`` / ``fail`` /
``heartbeat`` and their awaitable forms (``aack`` ...) for async code,
which run off the event loop (:mod:`alkdev_storage.primitives.aio`).

``give_back()`` returns a job this worker will not run (a worker shutting
down) to the queue as pending, claimable at once, with the attempt its
claim spent refunded: giving a job back never costs it an attempt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alkdev_storage.primitives.aio import off_loop, write
from alkdev_storage.primitives.payload import decode

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import TransactionContract
    from alkdev_storage.primitives.queue import Queue

__all__ = ["Job"]

_UNSET: Any = object()


class Job:
    """A claimed job (what ``claim()``, ``claim_one()`` and
    ``claim_batch()`` return). ``payload`` is decoded from JSON lazily."""

    __slots__ = (
        "_payload",
        "_payload_raw",
        "attempts",
        "claim_expires_at",
        "created_at",
        "id",
        "last_error",
        "max_attempts",
        "priority",
        "queue",
        "queue_name",
        "run_at",
        "state",
        "worker_id",
    )

    def __init__(self, queue: Queue, row: dict[str, Any]) -> None:
        self.queue = queue
        self.id: int = row["id"]
        self.queue_name: str = row["queue"]
        self._payload_raw: str | None = row["payload"]
        self._payload: Any = _UNSET
        self.worker_id: str = row["worker_id"]
        self.attempts: int = row["attempts"]
        self.claim_expires_at: int = row["claim_expires_at"]
        self.state: str = row.get("state", "processing")
        self.priority: int = row.get("priority", 0)
        self.run_at: int = row.get("run_at", 0)
        self.max_attempts: int = row.get("max_attempts", queue.max_attempts)
        self.last_error: str | None = row.get("last_error", None)
        self.created_at: int = row.get("created_at", 0)

    @classmethod
    def _claimed(cls, queue: Queue, row: tuple[Any, ...]) -> Job:
        """From a claim row (id, queue, payload, worker_id, attempts,
        claim_expires_at)."""
        j = cls.__new__(cls)
        j.queue = queue
        j.id, j.queue_name, j._payload_raw, j.worker_id, j.attempts, j.claim_expires_at = row
        j._payload = _UNSET
        j.state = "processing"
        j.priority = 0
        j.run_at = 0
        j.max_attempts = queue.max_attempts
        j.last_error = None
        j.created_at = 0
        return j

    @property
    def payload(self) -> Any:
        """The decoded JSON payload (decoded on first access)."""
        if self._payload is _UNSET:
            raw = self._payload_raw
            self._payload = decode(raw) if raw else None
        return self._payload

    def ack(self, *, tx: TransactionContract | None = None) -> bool:
        """Delete the job if our claim is still valid; True if it was.
        With ``tx`` the ack commits (or not) with the caller's writes."""
        return self.queue.ack(self.id, self.worker_id, tx=tx)

    def retry(self, delay_s: int = 60, error: str = "") -> bool:
        """Back to pending, claimable again after ``delay_s`` seconds (or to
        the dead table once its attempts are used up), recording
        ``error``. True iff our claim was still valid."""
        return self.queue.retry(self.id, self.worker_id, delay_s, error)

    def fail(self, error: str = "") -> bool:
        """Straight to the dead table with ``error``. True iff our claim was
        still valid."""
        return self.queue.fail(self.id, self.worker_id, error)

    def heartbeat(self, extend_s: int | None = None) -> bool:
        """Extend our claim to ``extend_s`` seconds from now (default: the
        queue's visibility timeout). False if the claim is no longer ours."""
        return self.queue.heartbeat(self.id, self.worker_id, extend_s)

    def give_back(self) -> bool:
        """Return the job to the queue unrun (a worker shutting down):
        pending, claimable at once, the attempt its claim spent refunded.
        True iff our claim was still valid."""
        return self.queue.give_back(self.id, self.worker_id)

    # -- awaitable forms: the same writes, waiting off the event loop --

    async def aack(self, *, tx: TransactionContract | None = None) -> bool:
        """Awaitable :meth:`ack` (with ``tx`` it joins that transaction)."""
        if tx is not None:
            return self.ack(tx=tx)
        q, i, w = self.queue, self.id, self.worker_id
        return await write(q.db, lambda t: q.ack(i, w, tx=t), lambda: q.ack(i, w))

    async def aretry(self, delay_s: int = 60, error: str = "") -> bool:
        """Awaitable :meth:`retry`."""
        q, i, w = self.queue, self.id, self.worker_id
        return await write(
            q.db,
            lambda t: q.retry(i, w, delay_s, error, tx=t),
            lambda: q.retry(i, w, delay_s, error),
        )

    async def afail(self, error: str = "") -> bool:
        """Awaitable :meth:`fail`."""
        q, i, w = self.queue, self.id, self.worker_id
        return await write(
            q.db, lambda t: q.fail(i, w, error, tx=t), lambda: q.fail(i, w, error)
        )

    async def aheartbeat(self, extend_s: int | None = None) -> bool:
        """Awaitable :meth:`heartbeat`."""
        return await off_loop(self.queue.heartbeat, self.id, self.worker_id, extend_s)

    async def agive_back(self) -> bool:
        """Awaitable :meth:`give_back`."""
        return await off_loop(self.give_back)

    def __repr__(self) -> str:
        return (
            f"Job(id={self.id}, queue={self.queue_name!r}, attempts={self.attempts}, "
            f"worker_id={self.worker_id!r})"
        )
