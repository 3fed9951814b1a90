"""At-least-once work queues on honker's ``_honker_live`` / ``_honker_dead``.

API-compatible with the honker Python binding's ``Queue`` and ``Job``.

Decisions
---------
* Claims, retries, dead-lettering and expiry behave exactly as honker-core's
  SQL functions. The per-job operations (enqueue, claim, ack, ack_batch,
  retry, fail, heartbeat, next-claim deadline) run prepared statements that
  reproduce those functions step by step (see
  :mod:`alkdev_storage.primitives._sql` for why, and the differential
  tests); the others (cancel, get_job, sweep_expired, results) call the
  ``honker_*`` functions. Without ``tx=`` each call is one short write
  transaction on the writer; with ``tx=`` (enqueue, ack, ack_batch,
  save_result) it joins the caller's transaction and exists only if that
  commits: ack in the transaction of the job's own writes for
  exactly-once effects.
* Pure reads (``get_result``, the next-claim deadline) run on reader
  connections.
* ``claim()`` claims in batches under the hood: it starts with one job and
  doubles the batch (up to ``batch_size``, default 32) while the queue
  keeps a backlog, falling back to one when it drains, and never more than
  the caller can handle in half the visibility timeout at its observed pace
  (slow handlers get batches of one). Jobs are yielded one at a time.
  Only the first job of a batch is claimed with honker's semantics; the
  others are *reserved* (``state='processing'``, ours for the visibility
  timeout, no attempt spent) and their attempt is spent — with a fresh
  visibility timeout — in a short write when each is handed out, so a
  worker killed (even by SIGKILL) while holding a batch costs the jobs it
  never handed out nothing: they are reclaimed after the timeout with
  their attempts intact (docs/0010). Buffered (reserved, not yet yielded)
  jobs are given back (``state='pending'``, only while still ours) when the
  iterator is closed, when the batch has been held for half the visibility
  timeout, or — for an iterator dropped without ``close()`` — inside the
  next claim transaction of the same queue. A buffered job whose
  reservation was lost is never yielded. So batching never costs a job an
  attempt and never hands out an expired claim.
* ``claim()`` also iterates with a plain ``for`` (blocking, GIL released)
  and has ``get(timeout)``; ``claim(..., timeout=s)`` stops after ``s``
  seconds without a job. ``wait_result_blocking`` is the blocking
  ``wait_result``.
* ``visibility_timeout_s`` must be >= 1 and ``max_attempts`` >= 1
  (ValueError), since honker's deadlines are whole seconds. Whole-second
  and count arguments (``delay``, ``run_at``, ``priority``, ``expires``,
  ``delay_s``, ``ttl``, ids) must be ints: a float or a bool is a
  ``TypeError`` naming the argument, never truncated.
* Dead letters and statistics are public (docs/0013-honker-parity.md):
  ``dead()`` lists the queue's dead jobs, ``requeue_dead()`` moves them
  back to ``_honker_live`` as fresh pending jobs (attempts 0, same id),
  ``purge_dead()`` deletes them, ``stats()`` counts jobs by state. A result
  waiter whose job is in the dead table raises
  :class:`~alkdev_storage.errors.TaskFailed` with its last error instead of
  waiting for its timeout.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from alkdev_storage import _native
from alkdev_storage.errors import InterfaceError, TaskFailed
from alkdev_storage.primitives import _sql
from alkdev_storage.primitives.aio import write
from alkdev_storage.primitives.claim_iterator import ClaimIterator
from alkdev_storage.primitives.contract import executor
from alkdev_storage.primitives.job import Job
from alkdev_storage.primitives.payload import decode, encode
from alkdev_storage.primitives.tasks import periodic_task_decorator, task_decorator
from alkdev_storage.primitives.validate import (
    I64_MAX,
    I64_MIN,
    as_int,
    as_seconds,
    check_name,
    opt_seconds,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from alkdev_storage.primitives.contract import DatabaseContract, TransactionContract

__all__ = ["ClaimIterator", "Job", "Queue"]


# The indexes of ours on honker's tables that keep claims O(log n) of the
# backlog (docs/0010); database.py creates them when a Database opens.
CLAIM_INDEXES = _sql.EXHAUSTED_INDEXES

_EXHAUSTED = "max attempts exceeded"  # honker-core's last_error for these

SQL_CANCEL = "SELECT honker_cancel(?1)"
SQL_GET_JOB = "SELECT honker_get_job(?1)"
SQL_SWEEP_EXPIRED = "SELECT honker_sweep_expired(?1)"
SQL_RESULT_SAVE = "SELECT honker_result_save(?1, ?2, ?3)"
SQL_RESULT_GET = "SELECT honker_result_get(?1)"
SQL_RESULT_SWEEP = "SELECT honker_result_sweep()"

# Dead letters and statistics (not hot paths; not honker functions).
_DEAD_COLUMNS = (
    "id, queue, payload, priority, run_at, attempts, max_attempts, last_error, "
    "created_at, died_at"
)
SQL_DEAD_LIST = (
    f"SELECT {_DEAD_COLUMNS} FROM _honker_dead WHERE queue = ?1 ORDER BY id LIMIT ?2 OFFSET ?3"
)
SQL_DEAD_ERROR = "SELECT last_error FROM _honker_dead WHERE id = ?1"
# ?1 queue ?2 JSON array of ids, or NULL for every dead job of the queue
_DEAD_SELECTED = "queue = ?1 AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))"
SQL_REQUEUE_DEAD_INSERT = (
    "INSERT INTO _honker_live (id, queue, payload, state, priority, run_at, attempts, "
    "max_attempts, created_at) SELECT id, queue, payload, 'pending', priority, unixepoch(), "
    "0, max_attempts, created_at FROM _honker_dead WHERE " + _DEAD_SELECTED + " RETURNING id"
)
SQL_DELETE_DEAD_IDS = "DELETE FROM _honker_dead WHERE id IN (SELECT value FROM json_each(?1))"
SQL_PURGE_DEAD = (
    "DELETE FROM _honker_dead WHERE "
    + _DEAD_SELECTED
    + " AND (?3 IS NULL OR died_at < unixepoch() - ?3)"
)
SQL_STATS = (
    "SELECT "
    "count(*) FILTER (WHERE state = 'pending' AND run_at <= t.now), "
    "count(*) FILTER (WHERE state = 'pending' AND run_at > t.now), "
    "count(*) FILTER (WHERE state = 'processing'), "
    "min(run_at) FILTER (WHERE state = 'pending' AND run_at <= t.now), "
    "(SELECT count(*) FROM _honker_dead WHERE queue = ?1), t.now "
    "FROM (SELECT unixepoch() AS now) AS t LEFT JOIN _honker_live AS l ON l.queue = ?1"
)


def _dead_row(row: tuple[Any, ...]) -> dict[str, Any]:
    raw = row[2]
    return {
        "id": row[0],
        "queue": row[1],
        "payload": decode(raw) if raw else None,
        "priority": row[3],
        "run_at": row[4],
        "attempts": row[5],
        "max_attempts": row[6],
        "last_error": row[7],
        "created_at": row[8],
        "died_at": row[9],
    }


def _ids_arg(job_ids: int | Iterable[int] | None, all_: bool, what: str) -> str | None:
    """The ``?2`` of the dead-letter statements: a JSON array of ids, or
    None for every dead job (``all=True``)."""
    if all_:
        if job_ids is not None:
            raise ValueError(f"{what}: pass job ids or all=True, not both")
        return None
    if job_ids is None:
        raise ValueError(f"{what}: pass job ids or all=True")
    if isinstance(job_ids, (str, bytes)):
        kind = type(job_ids).__name__
        raise TypeError(f"job_ids must be an int or an iterable of ints, not {kind}")
    if isinstance(job_ids, int) or hasattr(type(job_ids), "__index__"):
        return encode([as_int(job_ids, "job_id")])
    return encode([as_int(i, "job id") for i in job_ids])


def _first(row: tuple[Any, ...] | None) -> Any:
    return row[0] if row else None


class Queue:
    """A named work queue (``db.queue(name)``; see the module docstring)."""

    def __init__(
        self,
        db: DatabaseContract,
        name: str,
        visibility_timeout_s: int = 300,
        max_attempts: int = 3,
    ) -> None:
        check_name(name, "queue name")
        vt = as_int(visibility_timeout_s, "visibility_timeout_s")
        ma = as_int(max_attempts, "max_attempts")
        if vt < 1:
            raise ValueError(f"visibility_timeout_s must be at least 1 second, got {vt}")
        if ma < 1:
            raise ValueError(f"max_attempts must be at least 1, got {ma}")
        self.db = db
        self.name = name
        self.visibility_timeout_s = vt
        self.max_attempts = ma
        # Claims of claim() iterators dropped without close(): given back in
        # the next claim transaction. List of (worker_id, [job ids]).
        self._orphans: list[tuple[str, list[int]]] = []
        s = db.statement
        self._s_enqueue = s(_sql.ENQUEUE)
        self._s_dead_scan = s(_sql.DEAD_LETTER_EXHAUSTED)
        self._s_insert_dead = s(_sql.INSERT_DEAD)
        self._s_claim = s(_sql.CLAIM)
        self._claim_stmts: dict[int, _native.Statement] = {}
        self._reserve_stmts: dict[int, _native.Statement] = {}
        self._s_spend = s(_sql.SPEND)
        self._s_ack = s(_sql.ACK)
        self._s_ack_many = s(_sql.ACK_MANY)
        self._s_unclaim = s(_sql.UNCLAIM)
        self._s_retry_find = s(_sql.RETRY_FIND)
        self._s_delete = s(_sql.DELETE_JOB)
        self._s_to_pending = s(_sql.RETRY_TO_PENDING)
        self._s_fail_take = s(_sql.FAIL_TAKE)
        self._s_heartbeat = s(_sql.HEARTBEAT)
        self._s_next = s(_sql.NEXT_CLAIM_AT)

    def __repr__(self) -> str:
        return (
            f"<Queue {self.name!r} visibility_timeout_s={self.visibility_timeout_s} "
            f"max_attempts={self.max_attempts}>"
        )

    # -- producing -----------------------------------------------------

    def enqueue(
        self,
        payload: Any,
        tx: TransactionContract | None = None,
        run_at: int | None = None,
        delay: float | None = None,
        priority: int = 0,
        expires: float | None = None,
    ) -> int:
        """Insert one job; returns its id. ``delay`` (seconds from now) wins
        over ``run_at`` (unix time); ``expires`` is seconds from now after
        which the job is no longer claimable. With ``tx`` the job exists
        only if that transaction commits."""
        # Hot path: the optional numbers are converted only when given.
        params = (
            self.name,
            encode(payload),
            None if run_at is None else as_int(run_at, "run_at"),
            None if delay is None else as_int(delay, "delay"),
            priority
            if type(priority) is int and I64_MIN <= priority <= I64_MAX
            else as_int(priority, "priority"),
            self.max_attempts,
            None if expires is None else as_int(expires, "expires"),
        )
        ex = self.db if tx is None else executor(self.db, tx)
        row = ex.fetchone(self._s_enqueue, params)
        assert row is not None  # INSERT ... RETURNING id
        job_id: int = row[0]
        return job_id

    async def aenqueue(
        self,
        payload: Any,
        tx: TransactionContract | None = None,
        run_at: int | None = None,
        delay: float | None = None,
        priority: int = 0,
        expires: float | None = None,
    ) -> int:
        """Awaitable :meth:`enqueue`: waits for the writer off the event
        loop (with ``tx`` it joins that transaction, which already holds
        the writer)."""
        if tx is not None:
            return self.enqueue(payload, tx, run_at, delay, priority, expires)
        return await write(
            self.db,
            lambda t: self.enqueue(payload, t, run_at, delay, priority, expires),
            lambda: self.enqueue(payload, None, run_at, delay, priority, expires),
        )

    # -- claiming ------------------------------------------------------

    def claim_one(self, worker_id: str) -> Job | None:
        """Claim one job now, or None if none is claimable."""
        jobs = self.claim_batch(worker_id, 1)
        return jobs[0] if jobs else None

    def claim_batch(self, worker_id: str, n: int) -> list[Job]:
        """Atomically claim up to ``n`` jobs (one write transaction)."""
        n = as_int(n, "n")
        check_name(worker_id, "worker_id")
        if n <= 0:
            return []
        with self.db.transaction() as tx:
            if self._orphans:
                self._unclaim_orphans_in(tx)
            jobs = self._claim_in(tx, worker_id, n)
        return jobs

    def _claim_in(self, tx: TransactionContract, worker_id: str, n: int) -> list[Job]:
        """honker_claim_batch, step by step, inside ``tx``."""
        dead = tx.fetchall(self._s_dead_scan, (self.name,))
        if dead:
            tx.executemany(self._s_insert_dead, [(*r, _EXHAUSTED) for r in dead])
        stmt = self._claim_stmts.get(n)
        if stmt is None:
            if n > _sql.CLAIM_LITERAL_MAX:
                stmt = self._s_claim
            else:
                stmt = self._claim_stmts[n] = self.db.statement(_sql.claim_sql(n))
        rows = tx.fetchall(stmt, (self.name, worker_id, n, self.visibility_timeout_s))
        claimed = Job._claimed
        return [claimed(self, r) for r in rows]

    def _claim_reserve(self, worker_id: str, n: int) -> list[Job]:
        """One transaction: claim one job (honker's claim, attempt spent)
        and reserve up to ``n - 1`` more (no attempt spent; see
        :meth:`_spend`). For ``claim()``'s batches."""
        with self.db.transaction() as tx:
            if self._orphans:
                self._unclaim_orphans_in(tx)
            jobs = self._claim_in(tx, worker_id, 1)
            if jobs and n > 1:
                jobs += self._reserve_in(tx, worker_id, n - 1)
        return jobs

    def _reserve_in(self, tx: TransactionContract, worker_id: str, n: int) -> list[Job]:
        """Reserve up to ``n`` claimable jobs inside ``tx`` (run right after
        :meth:`_claim_in`, whose dead-letter sweep it relies on)."""
        stmt = self._reserve_stmts.get(n)
        if stmt is None:
            stmt = self._reserve_stmts[n] = self.db.statement(_sql.reserve_sql(n))
        rows = tx.fetchall(stmt, (self.name, worker_id, n, self.visibility_timeout_s))
        claimed = Job._claimed
        return [claimed(self, r) for r in rows]

    def _spend(self, job: Job) -> bool:
        """Hand out a reserved job: spend its attempt and restart its claim
        (one short write). False if the reservation is no longer ours."""
        params = (job.id, job.worker_id, self.visibility_timeout_s, job.attempts)
        row = self.db.fetchone(self._s_spend, params)
        if row is None:
            return False
        job.attempts, job.claim_expires_at = row
        return True

    def _unclaim_orphans_in(self, tx: TransactionContract) -> None:
        orphans, self._orphans = self._orphans, []
        for worker_id, ids in orphans:
            tx.execute(self._s_unclaim, (encode(ids), worker_id))

    def _unclaim(self, worker_id: str, ids: list[int]) -> int:
        """Give back reserved, never handed-out jobs (pending again)."""
        if not ids:
            return 0
        return self.db.execute(self._s_unclaim, (encode(ids), worker_id)).changes

    def _next_claim_at(self) -> int:
        """Next future unix time at which a job could become claimable, or 0."""
        row = self.db.fetchone(self._s_next, (self.name,))
        return int(row[0]) if row else 0

    def claim(
        self,
        worker_id: str,
        idle_poll_s: float | None = 5.0,
        *,
        batch_size: int = 32,
        timeout: float | None = None,
    ) -> ClaimIterator:
        """Iterate over claimed jobs (``async for`` or ``for``), waking on
        commits from any process and on ``run_at`` / claim-expiry deadlines.
        ``idle_poll_s`` is honker's fallback re-check period; ``timeout``
        ends the iteration after that many seconds without a job."""
        check_name(worker_id, "worker_id")
        if self.db.closed:
            raise InterfaceError("Database is closed")  # as claim_one()
        return ClaimIterator(
            self, worker_id, idle_poll_s, batch_size, opt_seconds(timeout, "timeout")
        )

    def ack(self, job_id: int, worker_id: str, *, tx: TransactionContract | None = None) -> bool:
        """Delete the job if ``worker_id``'s claim is still valid (True)."""
        if type(worker_id) is not str:
            check_name(worker_id, "worker_id")
        params = (job_id if type(job_id) is int else as_int(job_id, "job_id"), worker_id)
        ex = self.db if tx is None else executor(self.db, tx)
        return ex.execute(self._s_ack, params).changes > 0

    def ack_batch(
        self, job_ids: Iterable[int], worker_id: str, *, tx: TransactionContract | None = None
    ) -> int:
        """Ack several jobs in one transaction; returns how many claims were
        still valid."""
        if type(worker_id) is not str:
            check_name(worker_id, "worker_id")
        ids = [i if type(i) is int else as_int(i, "job id") for i in job_ids]
        if not ids:
            return 0
        ex = self.db if tx is None else executor(self.db, tx)
        return ex.execute(self._s_ack_many, (encode(ids), worker_id)).changes

    def retry(
        self,
        job_id: int,
        worker_id: str,
        delay_s: int,
        error: str,
        *,
        tx: TransactionContract | None = None,
    ) -> bool:
        """Back to pending after ``delay_s`` (or to the dead table once
        attempts are exhausted). True iff our claim was still valid. With
        ``tx`` it joins that transaction."""
        job_id = as_int(job_id, "job_id")
        delay_s = as_int(delay_s, "delay_s")
        check_name(worker_id, "worker_id")
        if tx is not None:
            return self._retry_in(executor(self.db, tx), job_id, worker_id, delay_s, str(error))
        with self.db.transaction() as own:
            done = self._retry_in(own, job_id, worker_id, delay_s, str(error))
        return done

    def _retry_in(
        self, tx: TransactionContract, job_id: int, worker_id: str, delay_s: int, error: str
    ) -> bool:
        row = tx.fetchone(self._s_retry_find, (job_id, worker_id))
        if row is None:
            return False
        if row[6] >= row[5]:  # attempts >= max_attempts: dead
            tx.execute(self._s_delete, (row[0],))
            tx.execute(self._s_insert_dead, (*row, error))
        else:
            tx.execute(self._s_to_pending, (row[0], delay_s))
        return True

    def fail(
        self, job_id: int, worker_id: str, error: str, *, tx: TransactionContract | None = None
    ) -> bool:
        """Straight to the dead table. True iff our claim was still valid.
        With ``tx`` it joins that transaction."""
        job_id = as_int(job_id, "job_id")
        check_name(worker_id, "worker_id")
        if tx is not None:
            return self._fail_in(executor(self.db, tx), job_id, worker_id, str(error))
        with self.db.transaction() as own:
            done = self._fail_in(own, job_id, worker_id, str(error))
        return done

    def _fail_in(self, tx: TransactionContract, job_id: int, worker_id: str, error: str) -> bool:
        row = tx.fetchone(self._s_fail_take, (job_id, worker_id))
        if row is None:
            return False
        tx.execute(self._s_insert_dead, (*row, error))
        return True

    def give_back(self, job_id: int, worker_id: str) -> bool:
        """Return a claimed job unrun: pending, due now, the attempt its
        claim spent refunded. True iff ``worker_id``'s claim was still
        valid."""
        check_name(worker_id, "worker_id")
        params = (as_int(job_id, "job_id"), worker_id)
        return self.db.execute(self.db.statement(_sql.GIVE_BACK), params).changes > 0

    def heartbeat(self, job_id: int, worker_id: str, extend_s: int | None = None) -> bool:
        """Extend our claim to ``extend_s`` (default: the visibility timeout)
        seconds from now; False if the claim is no longer ours."""
        extend = self.visibility_timeout_s if extend_s is None else as_int(extend_s, "extend_s")
        check_name(worker_id, "worker_id")
        params = (as_int(job_id, "job_id"), worker_id, extend)
        return self.db.execute(self._s_heartbeat, params).changes > 0

    def cancel(self, job_id: int) -> bool:
        """Delete a pending or processing job. A worker running it is not
        interrupted; its next ack/heartbeat returns False."""
        db = self.db
        return bool(
            db.fetchone_on_writer(db.statement(SQL_CANCEL), (as_int(job_id, "job_id"),))[0]
        )

    def get_job(self, job_id: int) -> dict[str, Any] | None:
        """The live row of a job as a dict (``payload`` as JSON text), or
        None once it was acked, failed, cancelled or never existed."""
        db = self.db
        raw = _first(db.fetchone(db.statement(SQL_GET_JOB), (as_int(job_id, "job_id"),)))
        if not raw:
            return None
        job: dict[str, Any] = decode(raw)
        return job

    def sweep_expired(self) -> int:
        """Move pending jobs past their ``expires`` into the dead table;
        returns how many moved."""
        db = self.db
        return int(db.fetchone_on_writer(db.statement(SQL_SWEEP_EXPIRED), (self.name,))[0])

    # -- results -------------------------------------------------------

    def save_result(
        self,
        job_id: int,
        value: Any,
        ttl: float | None = None,
        tx: TransactionContract | None = None,
    ) -> None:
        """Store ``value`` (JSON) as the result of ``job_id``, kept for
        ``ttl`` seconds (None: until swept). With ``tx`` it commits with
        the caller's writes."""
        params = (
            as_int(job_id, "job_id"),
            encode(value),
            0 if ttl is None else as_int(ttl, "ttl"),
        )
        stmt = self.db.statement(SQL_RESULT_SAVE)
        if tx is None:
            self.db.fetchone_on_writer(stmt, params)
        else:
            executor(self.db, tx).fetchone(stmt, params)

    def get_result(self, job_id: int) -> tuple[bool, Any]:
        """``(found, value)``; ``(False, None)`` if absent or expired."""
        db = self.db
        raw = _first(db.fetchone(db.statement(SQL_RESULT_GET), (as_int(job_id, "job_id"),)))
        if raw is None:
            return (False, None)
        return (True, decode(raw))

    async def wait_result(self, job_id: int, timeout: float | None = None) -> Any:
        """Wait (woken by commits from any process) for a saved result.
        Raises ``TimeoutError`` (``asyncio.TimeoutError``) after ``timeout``,
        :class:`~alkdev_storage.errors.TaskFailed` (with the job's last error)
        once the job is in the dead table: it will never produce a result."""
        deadline = None if timeout is None else time.monotonic() + as_seconds(timeout, "timeout")
        hub = self.db.wake_hub()
        while True:
            token = hub.token()
            found, value = self.get_result(job_id)
            if found:
                return value
            self._raise_if_dead(job_id)
            if hub.ended:
                hub.raise_if_failed()
                raise InterfaceError("the database was closed")
            wait_s = 15.0
            if deadline is not None:
                wait_s = deadline - time.monotonic()
                if wait_s <= 0:
                    raise TimeoutError(f"wait_result({job_id}) timed out")
            await hub.wait(token, wait_s)

    def wait_result_blocking(self, job_id: int, timeout: float | None = None) -> Any:
        """Blocking :meth:`wait_result` (GIL released while waiting)."""
        deadline = None if timeout is None else time.monotonic() + as_seconds(timeout, "timeout")
        sub = self.db.subscribe_updates()
        try:
            while True:
                found, value = self.get_result(job_id)
                if found:
                    return value
                self._raise_if_dead(job_id)
                wait_s = 15.0
                if deadline is not None:
                    wait_s = deadline - time.monotonic()
                    if wait_s <= 0:
                        raise TimeoutError(f"wait_result({job_id}) timed out")
                sub.wait(wait_s)
        finally:
            sub.close()

    def _raise_if_dead(self, job_id: int) -> None:
        db = self.db
        row = db.fetchone(db.statement(SQL_DEAD_ERROR), (job_id,))
        if row is not None:
            raise TaskFailed(job_id, row[0])

    def sweep_results(self) -> int:
        """Delete expired results; returns how many were deleted."""
        db = self.db
        return int(db.fetchone_on_writer(db.statement(SQL_RESULT_SWEEP))[0])

    # -- dead letters and statistics -----------------------------------

    def dead(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """This queue's dead jobs, oldest id first: dicts with ``id``,
        ``queue``, ``payload`` (decoded), ``priority``, ``run_at``,
        ``attempts``, ``max_attempts``, ``last_error``, ``created_at``,
        ``died_at`` (unix seconds). ``limit`` / ``offset`` page through them."""
        lim = as_int(limit, "limit")
        off = as_int(offset, "offset")
        if lim < 0 or off < 0:
            raise ValueError(f"limit and offset must be >= 0, got limit={lim}, offset={off}")
        db = self.db
        rows = db.fetchall(db.statement(SQL_DEAD_LIST), (self.name, lim, off))
        return [_dead_row(r) for r in rows]

    def requeue_dead(
        self, job_ids: int | Iterable[int] | None = None, *, all: bool = False
    ) -> list[int]:
        """Move dead jobs of this queue (one id, several, or ``all=True``)
        back to the live table as pending jobs due now, with their id,
        payload, priority and ``max_attempts`` and ``attempts`` reset to 0,
        in one transaction (workers are woken by its commit). Returns the
        ids moved (ids not dead in this queue are ignored)."""
        ids = _ids_arg(job_ids, all, "requeue_dead")
        s = self.db.statement
        with self.db.transaction() as tx:
            moved = [r[0] for r in tx.fetchall(s(SQL_REQUEUE_DEAD_INSERT), (self.name, ids))]
            if moved:
                tx.execute(s(SQL_DELETE_DEAD_IDS), (encode(moved),))
        return moved

    def purge_dead(
        self,
        job_ids: int | Iterable[int] | None = None,
        *,
        all: bool = False,
        older_than_s: int | None = None,
    ) -> int:
        """Delete dead jobs of this queue (one id, several, or
        ``all=True``), only those that died more than ``older_than_s``
        seconds ago if given. Returns how many were deleted."""
        ids = _ids_arg(job_ids, all, "purge_dead")
        older = None if older_than_s is None else as_int(older_than_s, "older_than_s")
        if older is not None and older < 0:
            raise ValueError(f"older_than_s must be >= 0, got {older}")
        return self.db.execute(self.db.statement(SQL_PURGE_DEAD), (self.name, ids, older)).changes

    def stats(self) -> dict[str, Any]:
        """Counts of this queue's jobs (one consistent read):
        ``pending`` (due now), ``scheduled`` (pending, due later),
        ``processing`` (claimed, including claims that expired and will
        be reclaimed), ``dead``, and ``oldest_due_age_s``: seconds since
        the oldest due pending job became due (None when nothing is due)."""
        db = self.db
        row = db.fetchone(db.statement(SQL_STATS), (self.name,))
        assert row is not None  # an aggregate always returns a row
        pending, scheduled, processing, oldest, dead, now = row
        return {
            "pending": pending,
            "scheduled": scheduled,
            "processing": processing,
            "dead": dead,
            "oldest_due_age_s": None if oldest is None else max(0, now - oldest),
        }

    # -- task decorators (defined once, in tasks.py) --------------------

    task = task_decorator
    periodic_task = periodic_task_decorator
