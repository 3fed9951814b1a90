"""Cron-style schedules on honker's ``_honker_scheduler_tasks`` table.

API-compatible with the honker binding's ``Scheduler``, ``CronSchedule``,
``crontab`` and ``every_s``; ``db.scheduler()`` returns a Scheduler (as in
honker's README).

Decisions
---------
* Registration, pause/resume/update/list and firing are honker-core's SQL
  functions (``honker_scheduler_register/.../tick/soonest``), so a schedule
  registered here fires from any honker runner and vice versa. The grammar
  is honker-core's: 5-field cron, 6-field cron (with seconds), and
  ``@every <n><s|m|h|d>``. An invalid expression raises ``ValueError``
  naming it, before anything is written.
* ``Scheduler.add`` takes ``name`` and ``queue`` positionally or by
  keyword, ``schedule`` as a :class:`CronSchedule` or a string, ``cron=`` as
  an alias of ``schedule`` (honker's README), and ``max_attempts`` for the
  fired jobs (honker-core's 7-argument register).
* The runner (``run()`` async, ``run_blocking()`` for code without an event
  loop) holds the leader lock ``honker-scheduler`` (honker's name, so it
  excludes honker's own runners too). Each firing is ONE write transaction
  that renews the leader lock (``honker_lock_renew``) and ticks; if the
  renewal fails the transaction is rolled back and the runner raises
  :class:`LeadershipLost`, so a runner that lost the lock (a long pause, a
  steal after TTL expiry) can never fire. The tick itself advances
  ``next_fire_at`` in the same transaction as the enqueues, so each
  boundary fires exactly once across any number of processes.
* Between firings the runner sleeps until the soonest ``next_fire_at``, the
  heartbeat (renewal) deadline, or a commit from any process; after a
  commit it re-reads the soonest deadline on a reader instead of ticking
  (no write transaction per unrelated commit).
* ``run(..., standby=True)`` waits for the lock instead of raising
  :class:`LockHeld` (hot standby: takes over when the leader releases it
  or its TTL lapses). ``LOCK_TTL`` and ``HEARTBEAT_INTERVAL`` can be set
  per instance. While it waits, the leader renews its lock every
  ``min(HEARTBEAT_INTERVAL, LOCK_TTL / 3)`` seconds (a renewing tick), so
  a long wait for a distant schedule never drops leadership.
* Each fire is logged at DEBUG on the ``alkdev_storage.scheduler`` logger
  (``name``, ``queue``, ``fire_at``, ``job_id``).
* ``CronSchedule`` validation and ``next_after`` run honker-core's cron
  code without a database (``_native.cron_next_after``).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
import time
from collections.abc import Generator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from alkdev_storage import _native
from alkdev_storage.errors import InterfaceError, LeadershipLost, LockHeld
from alkdev_storage.primitives.aio import off_loop
from alkdev_storage.primitives.payload import decode, encode
from alkdev_storage.primitives.validate import as_int, check_name, opt_int
from alkdev_storage.primitives.wake import resolve

if TYPE_CHECKING:
    from alkdev_storage._native import Row
    from alkdev_storage.primitives.contract import DatabaseContract
    from alkdev_storage.primitives.lock import Lock

__all__ = ["CronSchedule", "Scheduler", "cron_next_after", "crontab", "every_s"]

_log = logging.getLogger("alkdev_storage.scheduler")
_UNSET: Any = object()

SQL_REGISTER6 = "SELECT honker_scheduler_register(?1, ?2, ?3, ?4, ?5, ?6)"
SQL_REGISTER7 = "SELECT honker_scheduler_register(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
SQL_UNREGISTER = "SELECT honker_scheduler_unregister(?1)"
SQL_PAUSE = "SELECT honker_scheduler_pause(?1)"
SQL_RESUME = "SELECT honker_scheduler_resume(?1)"
SQL_LIST = "SELECT honker_scheduler_list()"
SQL_UPDATE6 = "SELECT honker_scheduler_update(?1, ?2, ?3, ?4, ?5, ?6)"
SQL_UPDATE8 = "SELECT honker_scheduler_update(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
SQL_TICK = "SELECT honker_scheduler_tick(?1)"
SQL_SOONEST = "SELECT honker_scheduler_soonest()"
SQL_RENEW = "SELECT honker_lock_renew(?1, ?2, ?3)"
SQL_LOCK_EXPIRES = "SELECT expires_at FROM _honker_locks WHERE name = ?1"
SQL_COUNT = "SELECT COUNT(*) FROM _honker_scheduler_tasks"

# ---------------------------------------------------------------------
# Cron expressions
# ---------------------------------------------------------------------

def cron_next_after(expr: str, from_unix: int) -> int:
    """Next unix time strictly after ``from_unix`` matching ``expr``
    (honker-core's cron; local time). ValueError naming a bad expression."""
    if not isinstance(expr, str):
        raise TypeError(f"schedule expression must be a str, not {type(expr).__name__}")
    return _native.cron_next_after(expr, int(from_unix))


class CronSchedule:
    """A validated schedule expression (5- or 6-field cron, or
    ``@every <n><unit>``)."""

    __slots__ = ("expr",)

    def __init__(self, expr: str) -> None:
        cron_next_after(expr, 0)
        self.expr = expr

    def __repr__(self) -> str:
        return f"crontab({self.expr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronSchedule) and other.expr == self.expr

    def __hash__(self) -> int:
        return hash(self.expr)

    def next_after(self, dt: datetime) -> datetime:
        """The next datetime strictly after ``dt`` matching the schedule."""
        return datetime.fromtimestamp(cron_next_after(self.expr, int(dt.timestamp())))


def crontab(expr: str) -> CronSchedule:
    """A 5- or 6-field cron expression (use :func:`every_s` for intervals)."""
    if isinstance(expr, str) and expr.strip().startswith("@every"):
        raise ValueError("use every_s(...) for interval schedules")
    return CronSchedule(expr)


def every_s(seconds: int) -> CronSchedule:
    """A fixed interval, stored as ``@every <n>s``."""
    seconds = as_int(seconds, "seconds")
    if seconds <= 0:
        raise ValueError("every_s(seconds) requires a positive integer")
    return CronSchedule(f"@every {seconds}s")


def _schedule_expr(schedule: Any) -> str:
    if isinstance(schedule, CronSchedule):
        return schedule.expr
    if isinstance(schedule, str):
        return CronSchedule(schedule).expr
    raise TypeError(f"schedule must be a CronSchedule or a str, not {type(schedule).__name__}")


# ---------------------------------------------------------------------
# Scheduler
# ---------------------------------------------------------------------


class _Waker:
    __slots__ = ("_fut",)

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None

    def kick(self) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            try:
                fut.get_loop().call_soon_threadsafe(resolve, fut)
            except RuntimeError:
                pass


class Scheduler:
    """Periodic enqueues. Any process may register; ``run()`` fires them
    under the leader lock (see the module docstring)."""

    LOCK_NAME = "honker-scheduler"
    LOCK_TTL = 60
    HEARTBEAT_INTERVAL = 30

    def __init__(self, db: DatabaseContract, lock_name: str | None = None) -> None:
        self.db = db
        self.lock_name = lock_name or self.LOCK_NAME
        check_name(self.lock_name, "lock_name")
        self._registered: set[str] = set()
        self._stop = threading.Event()
        self._subs: set[_native.UpdateSubscription] = set()
        self._wakers: set[_Waker] = set()

    def __repr__(self) -> str:
        return f"<Scheduler lock_name={self.lock_name!r}>"

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> Row:
        """Run a ``honker_scheduler_*`` write function in its own write
        transaction; its first row."""
        db = self.db
        return db.fetchone_on_writer(db.statement(sql), params)

    def _read_value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """First column of the first row of a read (None without a row)."""
        db = self.db
        row = db.fetchone(db.statement(sql), params)
        return row[0] if row else None

    # -- registration --------------------------------------------------

    def add(
        self,
        name: str,
        queue: str,
        schedule: CronSchedule | str | None = None,
        payload: Any = None,
        priority: int = 0,
        expires: float | None = None,
        *,
        cron: CronSchedule | str | None = None,
        max_attempts: int | None = None,
    ) -> None:
        """Register (or replace) schedule ``name``: on each boundary of
        ``schedule``, enqueue ``payload`` into ``queue``."""
        check_name(name, "schedule name")
        check_name(queue, "queue name")
        if schedule is None and cron is None:
            raise TypeError("add() needs a schedule (schedule= or cron=)")
        if schedule is not None and cron is not None:
            raise ValueError("pass either schedule= or cron=, not both")
        expr = _schedule_expr(schedule if schedule is not None else cron)
        params: tuple[Any, ...] = (
            name,
            queue,
            expr,
            encode(payload),
            as_int(priority, "priority"),
            opt_int(expires, "expires"),
        )
        if max_attempts is None:
            sql = SQL_REGISTER6
        else:
            ma = as_int(max_attempts, "max_attempts")
            if ma < 1:
                raise ValueError(f"max_attempts must be at least 1, got {ma}")
            sql = SQL_REGISTER7
            params = (*params, ma)
        self._write(sql, params)
        self._registered.add(name)

    def remove(self, name: str) -> bool:
        """Unregister; True iff a schedule was removed."""
        check_name(name, "schedule name")
        n = self._write(SQL_UNREGISTER, (name,))[0]
        self._registered.discard(name)
        return bool(n > 0)

    def pause(self, name: str) -> bool:
        """Stop firing ``name``; True iff it was enabled."""
        check_name(name, "schedule name")
        return bool(self._write(SQL_PAUSE, (name,))[0] > 0)

    def resume(self, name: str) -> bool:
        """Fire ``name`` again; True iff it was paused."""
        check_name(name, "schedule name")
        return bool(self._write(SQL_RESUME, (name,))[0] > 0)

    def list(self) -> list[dict[str, Any]]:
        """Every schedule: name, queue, cron_expr, payload (JSON text),
        priority, expires_s, next_fire_at, enabled, max_attempts."""
        raw = self._read_value(SQL_LIST)
        schedules: builtins.list[dict[str, Any]] = decode(raw) if raw else []
        return schedules

    def update(
        self,
        name: str,
        *,
        schedule: CronSchedule | str | None = None,
        payload: Any = _UNSET,
        priority: int | None = None,
        expires: Any = _UNSET,
        max_attempts: Any = _UNSET,
    ) -> bool:
        """Change some fields of an existing schedule (a new ``schedule``
        recomputes ``next_fire_at``). True iff it exists and changed."""
        check_name(name, "schedule name")
        expr = None if schedule is None else _schedule_expr(schedule)
        payload_arg = None if payload is _UNSET else encode(payload)
        priority_arg = opt_int(priority, "priority")
        expires_arg = None if expires is _UNSET else opt_int(expires, "expires")
        touch_expires = 0 if expires is _UNSET else 1
        params: tuple[Any, ...] = (
            name,
            expr,
            payload_arg,
            priority_arg,
            expires_arg,
            touch_expires,
        )
        if max_attempts is _UNSET:
            sql = SQL_UPDATE6
        else:
            sql = SQL_UPDATE8
            params = (*params, opt_int(max_attempts, "max_attempts"), 1)
        return bool(self._write(sql, params)[0] > 0)

    # -- firing --------------------------------------------------------

    def tick(self, now: int | None = None) -> builtins.list[dict[str, Any]]:
        """Fire every due schedule once, now (no leader lock needed: the
        tick is one transaction). Returns the fires (name, queue, fire_at,
        job_id)."""
        now_i = int(time.time()) if now is None else as_int(now, "now")
        fires: builtins.list[dict[str, Any]] = decode(self._write(SQL_TICK, (now_i,))[0])
        for f in fires:
            _log.debug("schedule fired: %s", f, extra={"fire": f})
        return fires

    def _leader_tick(self, lock: Lock) -> int:
        s = self.db.statement
        with self.db.transaction() as tx:
            renewed = tx.fetchone(s(SQL_RENEW), (lock.name, lock.owner, lock.ttl))
            if not (renewed and renewed[0]):
                lock.acquired = False
                raise LeadershipLost(
                    f"scheduler lock {lock.name!r} is no longer held by this runner"
                )
            ticked = tx.fetchone(s(SQL_TICK), (int(time.time()),))
            raw = ticked[0] if ticked else "[]"
            soonest_row = tx.fetchone(s(SQL_SOONEST))
            soonest = int(soonest_row[0]) if soonest_row else 0
        if raw != "[]":
            for f in decode(raw):
                _log.debug("schedule fired: %s", f, extra={"fire": f})
        return soonest

    def _steps(self, standby: bool) -> Generator[float, None, None]:
        """The runner as a generator of waits (seconds): the driver takes a
        wake token, resumes it, then sleeps for the yielded time or until a
        commit."""
        db = self.db
        ttl = as_int(self.LOCK_TTL, "LOCK_TTL")
        # Renew well within the TTL whatever HEARTBEAT_INTERVAL says, so a
        # leader waiting for a distant schedule never lets its lock lapse.
        heartbeat = min(float(self.HEARTBEAT_INTERVAL), ttl / 3.0)
        lock = db.lock(self.lock_name, ttl=ttl)
        while not lock.acquire():
            if not standby:
                raise LockHeld(f"lock {self.lock_name!r} is already held (another scheduler runs)")
            expires_at = self._read_value(SQL_LOCK_EXPIRES, (self.lock_name,))
            if expires_at is None:
                continue  # released in between: try again
            yield min(max(0.0, expires_at - time.time() + 0.01), float(ttl))
        try:
            while True:
                soonest = self._leader_tick(lock)
                renewed = time.monotonic()
                if soonest == 0:
                    return
                while True:
                    due_in = soonest - time.time() + 0.002
                    hb_in = heartbeat - (time.monotonic() - renewed)
                    wait_s = min(due_in, hb_in)
                    if wait_s > 0:
                        yield wait_s
                    soonest = int(self._read_value(SQL_SOONEST) or 0)
                    if soonest == 0:
                        return
                    if soonest <= time.time() or time.monotonic() - renewed >= heartbeat:
                        break
        finally:
            if lock.acquired and not db.closed:
                try:
                    lock.release()
                except Exception:
                    pass

    def _check_has_tasks(self) -> None:
        if self._registered:
            return
        if not self._read_value(SQL_COUNT):
            raise RuntimeError(
                "Scheduler.run() called with no registered tasks. Call scheduler.add(...) "
                "first, or ensure another process has populated _honker_scheduler_tasks."
            )

    async def run(self, stop_event: asyncio.Event | None = None, *, standby: bool = False) -> None:
        """Fire schedules as the leader until ``stop_event`` is set, the task
        is cancelled, ``stop()`` is called, or no enabled schedule is left.
        Raises :class:`LockHeld` if another runner leads (unless
        ``standby``), :class:`LeadershipLost` if the lock is lost."""
        self._check_has_tasks()
        self._stop.clear()
        stop_event = stop_event or asyncio.Event()
        hub = self.db.wake_hub()
        waker = _Waker()
        self._wakers.add(waker)
        stop_task = asyncio.ensure_future(stop_event.wait())
        stop_task.add_done_callback(lambda _t: waker.kick())
        steps = self._steps(standby)
        try:
            while not (stop_event.is_set() or self._stop.is_set()):
                token = hub.token()
                # A step writes (leadership lock, due jobs): off the loop.
                step: float | None = await off_loop(next, steps, None)
                if step is None:
                    return
                wait_s = step
                if stop_event.is_set() or self._stop.is_set():
                    return
                await hub.wait(token, wait_s, waker)
                if hub.ended:
                    hub.raise_if_failed()
                    return
        finally:
            try:
                steps.close()
            except ValueError:
                pass  # cancelled while a step runs on its thread: it ends there
            stop_task.cancel()
            self._wakers.discard(waker)

    def run_blocking(
        self, stop_event: threading.Event | None = None, *, standby: bool = False
    ) -> None:
        """:meth:`run` for code without an event loop (GIL released while
        waiting). Stops when ``stop_event`` is set (checked at least every
        0.25 s) or :meth:`stop` is called (at once)."""
        self._check_has_tasks()
        self._stop.clear()
        db = self.db
        sub = db.subscribe_updates()
        self._subs.add(sub)
        steps = self._steps(standby)

        def stopping() -> bool:
            return self._stop.is_set() or (stop_event is not None and stop_event.is_set())

        try:
            while not stopping():
                try:
                    wait_s = next(steps)
                except StopIteration:
                    return
                deadline = time.monotonic() + wait_s
                while not stopping():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    chunk = remaining if stop_event is None else min(remaining, 0.25)
                    try:
                        if sub.wait(chunk):
                            break
                    except InterfaceError:
                        if self._stop.is_set() or db.closed:
                            return
                        raise
        finally:
            steps.close()
            self._subs.discard(sub)
            sub.close()

    def stop(self) -> None:
        """Ask every runner of this Scheduler object to return (thread-safe)."""
        self._stop.set()
        for sub in list(self._subs):
            sub.close()
        for w in list(self._wakers):
            w.kick()
