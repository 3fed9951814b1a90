"""The Database handle returned by :func:`alkdev_storage.open`.

:class:`Database` is the native session (``_native.Database``) plus the
honker primitives, with the honker Python binding's method names,
arguments, defaults, return shapes and exceptions: ``notify``, ``listen``,
``update_events``, ``queue``, ``stream``, ``outbox``, ``lock``,
``try_rate_limit``, ``sweep_rate_limits``, ``prune_notifications``,
``scheduler``, ``task``, ``periodic_task``, ``run_workers``.

Decisions
---------
* Opening bootstraps honker's schema (honker-core's
  ``bootstrap_honker_schema``, idempotent) and honker's ``_honker_jobs``
  inspection view, in one write transaction, as the honker binding does
  when it opens a file. The view is created only if missing (the honker
  binding drops and recreates it; we never drop anything).
* ``Database`` implements the primitives' typed contract
  (:class:`~alkdev_storage.primitives.contract.DatabaseContract`): SQL used
  by the primitives is prepared once per Database (``statement(sql)``) and
  reused, so it is compiled once per connection; ``fetchone_on_writer`` is
  the one helper that runs a statement in its own writer transaction;
  ``wake_hub()`` is the asyncio wake bridge.
* ``queue(name)`` / ``stream(name)`` / ``outbox(name)`` return the same
  object for the same name (honker's cache). Re-declaring a queue with an
  option that differs from the cached queue's (``visibility_timeout_s``,
  ``max_attempts``, an explicit default against a custom value included)
  raises ``ValueError`` naming the option; options left out accept the
  cached queue's.
* A file written by an early honker, with the legacy ``_honker_pending``
  / ``_honker_processing`` tables, is migrated when opened, in the
  bootstrap transaction: its rows move into ``_honker_live`` (pending as
  ``'pending'``, processing as ``'processing'`` with their claim) and the
  legacy tables and indexes are dropped (docs/0013-honker-parity.md).
* ``open(..., watcher_backend=)`` accepts honker's values (None,
  ``"polling"``, ``"kernel"``, ``"shm"``) so honker code runs unchanged;
  this package has one update watcher for every value (see :func:`open`).
* ``close()`` closes the native session (which stops the shared update
  watcher) and joins the asyncio wake bridge; open iterators end cleanly.
  ``with open(...) as db`` does the same. A Database that is garbage
  collected stops its wake bridge (the native side closes when its last
  handle goes).
* ``db.notify`` encodes its payload with the one payload codec
  (:mod:`alkdev_storage.primitives.payload`) and inserts the row honker's
  ``notify()`` inserts, through a prepared statement; ``tx.notify`` is the
  native Transaction's method (honker's ``notify()`` SQL function, same
  encoding rules).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack

from alkdev_storage import _native
from alkdev_storage.errors import InterfaceError
from alkdev_storage.primitives.aio import AsyncTransaction, off_loop, write
from alkdev_storage.primitives.lock import Lock
from alkdev_storage.primitives.notify import (
    DEFAULT_MAX_BUFFERED,
    SQL_NOTIFY,
    Listener,
    UpdateEvents,
)
from alkdev_storage.primitives.outbox import Outbox
from alkdev_storage.primitives.payload import encode
from alkdev_storage.primitives.queue import CLAIM_INDEXES, Queue
from alkdev_storage.primitives.retention import Retention, check_rules, prune
from alkdev_storage.primitives.scheduler import Scheduler
from alkdev_storage.primitives.stream import Stream
from alkdev_storage.primitives.validate import as_int, check_name
from alkdev_storage.primitives.wake import WakeHub
from alkdev_storage.primitives.worker_loop import (
    DEFAULT_GRACE_S,
    run_workers,
    run_workers_blocking,
)

if TYPE_CHECKING:
    import asyncio

    from alkdev_storage._native import Params, Row
    from alkdev_storage.primitives.contract import DatabaseContract
    from alkdev_storage.primitives.scheduler import CronSchedule
    from alkdev_storage.primitives.tasks import PeriodicTaskOptions, TaskOptions, TaskWrapper

__all__ = ["WATCHER_BACKENDS", "Database", "open"]

T = TypeVar("T")

WATCHER_BACKENDS: tuple[str | None, ...] = (None, "polling", "kernel", "shm")
"""The ``watcher_backend`` values honker accepts (all served by the one
update watcher of this package)."""

# Legacy (pre-0.1 honker) job tables: moved into _honker_live on open.
_LEGACY_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN " \
    "('_honker_pending', '_honker_processing')"
_LIVE_COLUMNS = (
    "id", "queue", "payload", "priority", "run_at", "worker_id", "claim_expires_at",
    "attempts", "max_attempts", "created_at", "expires_at",
)
_LEGACY_INDEX = {
    "_honker_pending": "_honker_pending_claim",
    "_honker_processing": "_honker_processing_reclaim",
}


def _migrate_legacy(tx: _native.Transaction) -> None:
    """Move the rows of honker's legacy ``_honker_pending`` /
    ``_honker_processing`` tables into ``_honker_live`` and drop them (one
    transaction: the bootstrap's). Columns are matched by name; a row
    whose id is already taken in ``_honker_live`` or ``_honker_dead``
    gets a new id."""
    tables = {r[0] for r in tx.fetchall(_LEGACY_TABLES)}
    for table, state in (("_honker_pending", "pending"), ("_honker_processing", "processing")):
        if table not in tables:
            continue
        have = {r[1] for r in tx.fetchall(f"PRAGMA table_info({table})")}
        cols = [c for c in _LIVE_COLUMNS if c in have]
        if "queue" not in cols or "payload" not in cols:
            continue  # not a job table we know: leave it alone
        names = ", ".join(cols)
        order = " ORDER BY id" if "id" in cols else ""
        rows = tx.fetchall(f"SELECT {names} FROM {table}{order}")
        keep: list[Any] = []
        renew: list[Any] = []
        rest = names
        if "id" in cols:
            taken = {
                r[0]
                for r in tx.fetchall(
                    f"SELECT id FROM _honker_live WHERE id IN (SELECT id FROM {table}) UNION "
                    f"SELECT id FROM _honker_dead WHERE id IN (SELECT id FROM {table})"
                )
            }
            keep = [r for r in rows if r[0] not in taken]
            renew = [r[1:] for r in rows if r[0] in taken]
            rest = ", ".join(cols[1:])
        else:
            renew = list(rows)
        if keep:
            marks = ", ".join("?" * len(cols))
            tx.executemany(
                f"INSERT INTO _honker_live (state, {names}) VALUES ('{state}', {marks})", keep
            )
        if renew:
            marks = ", ".join("?" * len(renew[0]))
            tx.executemany(
                f"INSERT INTO _honker_live (state, {rest}) VALUES ('{state}', {marks})", renew
            )
        tx.execute(f"DROP INDEX IF EXISTS {_LEGACY_INDEX[table]}")
        tx.execute(f"DROP TABLE {table}")

# honker's inspection view (live + dead jobs), created if missing.
_JOBS_VIEW = """
CREATE VIEW IF NOT EXISTS _honker_jobs AS
  SELECT id, queue, payload, state, priority, run_at,
         worker_id, claim_expires_at,
         attempts, max_attempts, NULL AS last_error, created_at
    FROM _honker_live
  UNION ALL
  SELECT id, queue, payload, 'dead' AS state, priority,
         run_at, NULL, NULL,
         attempts, max_attempts, last_error, created_at
    FROM _honker_dead
"""


class Database(_native.Database):
    """An open honker database file.

    One writer slot (``BEGIN IMMEDIATE`` transactions, threads queue for it
    with the GIL released) and a bounded pool of reader connections that
    open lazily. Safe to share between threads.

    * ``prepare(sql)`` compiles a reusable :class:`Statement`.
    * ``execute / executemany / fetchone / fetchall / iterate / query`` run
      outside a transaction: reads on a reader, writes on the writer in their
      own short transaction.
    * ``transaction()`` (write), ``read()`` (consistent snapshot).
    * ``notify()`` and the ``honker_*`` SQL functions are available on the
      writer, so code written for the honker binding runs unchanged.
    * honker's primitives: ``listen``, ``queue``, ``stream``, ``lock``,
      ``try_rate_limit``, ``scheduler``, ... (see the module docstring).
    * ``statement``, ``fetchone_on_writer``, ``wake_hub``: the contract the
      primitives build on (documented, stable, rarely needed directly).
    """

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        *,
        max_readers: int | None = None,
        watcher_poll_interval_ms: float | None = None,
        timeout: float | None = None,
    ) -> None:
        # The native __new__ opened the file with these arguments; there is
        # no native __init__ to call. (open() validated watcher_backend.)
        self._stmts: dict[str, _native.Statement] = {}
        self._queues: dict[str, Queue] = {}
        self._streams: dict[str, Stream] = {}
        self._outboxes: dict[str, Outbox] = {}
        self._hub: WakeHub | None = None
        self._hub_lock = threading.Lock()
        # helper "fanout": automatic notification retention (opt-in).
        self._retention: Retention | None = None
        try:
            with self.transaction() as tx:
                tx.bootstrap_honker_schema()
                _migrate_legacy(tx)
                tx.execute(_JOBS_VIEW)
                tx.executescript(CLAIM_INDEXES)  # claims in O(log n), docs/0010
        except BaseException:
            _native.Database.close(self)
            raise

    # -- the primitives' contract (primitives/contract.py) --------------

    def statement(self, sql: str) -> _native.Statement:
        """The Statement for ``sql``, prepared once per Database and cached
        (for a small fixed set of SQL texts, such as the primitives')."""
        st = self._stmts.get(sql)
        if st is None:
            st = self._stmts[sql] = self.prepare(sql)
        return st

    def fetchone_on_writer(self, stmt: _native.Statement, params: Params = None) -> Row:
        """Run ``stmt`` (a ``SELECT`` of a ``honker_*`` SQL function that
        writes) and return its first row.

        Such a statement is classified ``"read_writes"`` when it is prepared
        (``stmt.kind``), so the native layer runs it on the writer inside its
        own ``BEGIN IMMEDIATE`` transaction; this only adds the "no row"
        check the callers rely on."""
        row = self.fetchone(stmt, params)
        if row is None:
            raise InterfaceError(f"{stmt.sql!r} returned no row")
        return row

    def wake_hub(self) -> WakeHub:
        """The asyncio wake bridge of this Database (started on first use)."""
        hub = self._hub
        if hub is None:
            with self._hub_lock:
                hub = self._hub
                if hub is None:
                    hub = self._hub = WakeHub(self)
        return hub

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<alkdev_storage.Database {self.path!r} {state}>"

    def close(self) -> None:
        """Close every connection and the update watcher (idempotent). Open
        listeners, claim iterators and subscriptions end."""
        _native.Database.close(self)
        hub = self._hub
        if hub is not None:
            hub.stop(join=True)

    def __exit__(self, *args: object) -> Literal[False]:
        """``with open(...) as db``: close on the way out."""
        self.close()
        return False

    def __del__(self) -> None:
        hub = getattr(self, "_hub", None)
        if hub is not None:
            hub.stop(join=False)

    # -- async writes (off the event loop; docs/0020) ------------------

    def atransaction(self) -> AsyncTransaction:
        """``async with db.atransaction() as tx:`` — a write transaction
        for async code: it waits for the writer slot and the file's write
        lock on a worker thread, never on the event loop, and commits (or
        rolls back on an exception) the same way. ``tx`` is the native
        Transaction, so every ``tx=`` argument takes it."""
        return AsyncTransaction(self)

    async def arun(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` run on a write-waiting thread: any
        blocking write (``queue.enqueue_batch``, ``lock.acquire``...) from
        async code without blocking the event loop."""
        return await off_loop(fn, *args, **kwargs)

    async def anotify(self, channel: str, payload: Any) -> int:
        """Awaitable :meth:`notify` (waits off the event loop)."""
        check_name(channel, "channel")
        return await write(
            self, lambda tx: tx.notify(channel, payload), lambda: self.notify(channel, payload)
        )

    # -- notify / listen -----------------------------------------------

    def notify(self, channel: str, payload: Any) -> int:
        """Insert a notification on ``channel`` in its own transaction
        (use ``tx.notify`` inside a transaction). Returns its id."""
        check_name(channel, "channel")
        row = self.fetchone(self.statement(SQL_NOTIFY), (channel, encode(payload)))
        assert row is not None  # INSERT ... RETURNING id
        return int(row[0])

    def listen(
        self,
        channel: str,
        fallback_poll_s: float | None = 15.0,
        *,
        timeout: float | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> Listener:
        """Notifications on ``channel`` from now on (``async for`` or
        ``for``; ``timeout`` ends iteration after that many idle seconds).
        Every listener of this Database is fed by one read per commit; at
        most ``max_buffered`` wait unread (then the oldest is dropped and
        ``listener.dropped`` counts it; docs/0014)."""
        return Listener(
            self,
            channel,
            fallback_poll_s=fallback_poll_s,
            timeout=timeout,
            max_buffered=max_buffered,
        )

    def update_events(self, *, timeout: float | None = None) -> UpdateEvents:
        """Yields ``None`` on every commit to this file (any process)."""
        return UpdateEvents(self, timeout=timeout)

    def prune_notifications(
        self, older_than_s: int | None = None, max_keep: int | None = None
    ) -> int:
        """Delete notifications older than ``older_than_s`` seconds and/or
        not among the newest ``max_keep`` of their channel (a row matching
        either goes; honker's rules), in one write transaction. Returns the
        number deleted."""
        older, keep = check_rules(older_than_s, max_keep)
        return prune(self, older, keep)

    def set_notification_retention(
        self,
        older_than_s: int | None = None,
        max_keep: int | None = None,
        *,
        every_s: float = 60.0,
    ) -> None:
        """Opt-in automatic :meth:`prune_notifications` every ``every_s``
        seconds (one daemon thread), never deleting a notification a live
        listener of this Database has not received yet. Both rules None
        turns it off."""
        older, keep = check_rules(older_than_s, max_keep)
        if not (isinstance(every_s, (int, float)) and every_s > 0):
            raise ValueError(f"every_s must be a positive number, got {every_s!r}")
        old, self._retention = self._retention, None
        if old is not None:
            old.stop()
        if older is not None or keep is not None:
            self._retention = Retention(self, older, keep, float(every_s))

    # -- rate limits ---------------------------------------------------

    def try_rate_limit(self, name: str, limit: int, per: int) -> bool:
        """Fixed-window limiter: True (and counted) if fewer than ``limit``
        calls happened in the current ``per``-second window."""
        check_name(name, "rate limit name")
        limit = as_int(limit, "limit")
        per = as_int(per, "per")
        if limit <= 0 or per <= 0:
            raise ValueError("limit and per must be positive")
        row = self.fetchone_on_writer(
            self.statement("SELECT honker_rate_limit_try(?1, ?2, ?3)"), (name, limit, per)
        )
        return bool(row[0])

    def sweep_rate_limits(self, older_than_s: int = 3600) -> int:
        """Delete rate-limit windows older than ``older_than_s`` seconds."""
        row = self.fetchone_on_writer(
            self.statement("SELECT honker_rate_limit_sweep(?1)"),
            (as_int(older_than_s, "older_than_s"),),
        )
        return int(row[0])

    # -- locks ---------------------------------------------------------

    def lock(self, name: str, ttl: int = 60, owner: str | None = None) -> Lock:
        """A named lock (context manager raising ``LockHeld`` if taken)."""
        return Lock(self, name, ttl=ttl, owner=owner or uuid.uuid4().hex)

    # -- queues, streams, outboxes, scheduler --------------------------

    def queue(
        self,
        name: str,
        visibility_timeout_s: int | None = None,
        max_attempts: int | None = None,
    ) -> Queue:
        """The work queue ``name`` (the same object for the same name).
        ``visibility_timeout_s`` (default 300) is how long a claim lasts,
        ``max_attempts`` (default 3) how many claims a job gets before it
        goes to the dead table. Declaring an existing queue again with a
        different value of either raises ``ValueError`` naming it (an
        explicit default against a custom value too); leaving them out
        takes the existing queue as it is."""
        q = self._queues.get(name)
        if q is None:
            q = Queue(
                self,
                name,
                visibility_timeout_s=300 if visibility_timeout_s is None else visibility_timeout_s,
                max_attempts=3 if max_attempts is None else max_attempts,
            )
            q = self._queues.setdefault(name, q)
        if visibility_timeout_s is not None or max_attempts is not None:
            for what, given, have in (
                ("visibility_timeout_s", visibility_timeout_s, q.visibility_timeout_s),
                ("max_attempts", max_attempts, q.max_attempts),
            ):
                if given is not None and as_int(given, what) != have:
                    raise ValueError(
                        f"queue {name!r} is already declared with {what}={have}, "
                        f"not {what}={given!r}"
                    )
        return q

    def stream(self, name: str) -> Stream:
        """The durable stream ``name`` (the same object for the same name)."""
        s = self._streams.get(name)
        if s is None:
            s = self._streams.setdefault(name, Stream(self, name))
        return s

    def outbox(
        self,
        name: str,
        delivery: Callable[[Any], Any],
        max_attempts: int = 5,
        base_backoff_s: int = 5,
        visibility_timeout_s: int = 60,
    ) -> Outbox:
        """The transactional outbox ``name``, delivering each payload with
        ``delivery`` (the same object for the same name: the arguments of
        the first call win, as in honker)."""
        o = self._outboxes.get(name)
        if o is None:
            o = Outbox(
                self,
                name,
                delivery=delivery,
                max_attempts=max_attempts,
                base_backoff_s=base_backoff_s,
                visibility_timeout_s=visibility_timeout_s,
            )
            o = self._outboxes.setdefault(name, o)
        return o

    def scheduler(self, lock_name: str | None = None) -> Scheduler:
        """A :class:`Scheduler` on this database."""
        return Scheduler(self, lock_name=lock_name)

    # -- tasks ---------------------------------------------------------

    def task(
        self, queue: str = "default", name: str | None = None, **options: Unpack[TaskOptions]
    ) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """``@db.task(queue="emails", ...)`` is ``@db.queue("emails").task(...)``:
        calling the decorated function enqueues a run (options:
        :class:`~alkdev_storage.primitives.tasks.TaskOptions`)."""
        return self.queue(queue).task(name, **options)

    def periodic_task(
        self,
        schedule: CronSchedule | str,
        queue: str = "default",
        name: str | None = None,
        **options: Unpack[PeriodicTaskOptions],
    ) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """``@db.periodic_task(schedule, queue="q", ...)`` is
        ``@db.queue("q").periodic_task(schedule, ...)``: a task the
        scheduler enqueues on ``schedule``."""
        return self.queue(queue).periodic_task(schedule, name, **options)

    async def run_workers(
        self,
        queue: str | None = None,
        concurrency: int | None = None,
        stop_event: asyncio.Event | None = None,
        *,
        handle_signals: bool = True,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        """Run task workers until ``stop_event`` is set, SIGTERM/SIGINT
        arrives or the task is cancelled, then stop gracefully (running
        jobs finish within ``grace_s`` or are given back; see
        :mod:`alkdev_storage.primitives.worker_loop`)."""
        await run_workers(
            self,
            queue=queue,
            concurrency=concurrency,
            stop_event=stop_event,
            handle_signals=handle_signals,
            grace_s=grace_s,
        )

    def run_workers_blocking(
        self,
        queue: str | None = None,
        stop_event: threading.Event | None = None,
        timeout: float | None = None,
        *,
        handle_signals: bool = True,
    ) -> int:
        """Run task jobs in this thread (no event loop) until ``stop_event``
        is set, SIGTERM arrives (the job in hand finishes first) or nothing
        arrived for ``timeout`` seconds."""
        return run_workers_blocking(
            self,
            queue=queue,
            stop_event=stop_event,
            timeout=timeout,
            handle_signals=handle_signals,
        )


def open(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    *,
    max_readers: int | None = None,
    watcher_poll_interval_ms: float | None = None,
    timeout: float | None = None,
    watcher_backend: str | None = None,
) -> Database:
    """Open (creating if needed) the database file at ``path``.

    Every Database opened on the same file in this process is a handle on
    one shared engine (one writer slot, one reader pool, one update
    watcher), whichever entry point opened it (``open()``, the DB-API
    driver, a ``sqlite+honker`` engine): their statements and transactions
    work together. ``close()`` closes this handle; the files close with the
    last handle.

    Options (applied when the file's engine is created; leave them out to
    use the engine already open, a different explicit value raises
    ``ValueError``):

    * ``max_readers`` bounds the reader pool (default 8, at least 1).
    * ``watcher_poll_interval_ms``: poll period of the update watcher that
      wakes listeners (default 1 ms).
    * ``timeout``: seconds any wait for the writer slot, a reader or another
      process's lock may last (default 5.0); ``OperationalError`` naming
      the holder when it expires. Ctrl-C interrupts every wait.
    * ``watcher_backend``: accepted for compatibility with honker's
      ``open()`` (None, ``"polling"``, ``"kernel"``, ``"shm"``; anything
      else is a ``ValueError``). It changes nothing: this package has one
      update watcher, shared by every Database on the file, whatever the
      value (docs/0013-honker-parity.md).

    ``":memory:"`` and empty paths are rejected with ``ValueError``: every
    reader connection would see a different in-memory database.
    """
    if watcher_backend not in WATCHER_BACKENDS:
        raise ValueError(
            f"watcher_backend must be one of None, 'polling', 'kernel', 'shm', "
            f"got {watcher_backend!r}"
        )
    return Database(
        path,
        max_readers=max_readers,
        watcher_poll_interval_ms=watcher_poll_interval_ms,
        timeout=timeout,
    )


if TYPE_CHECKING:
    # Database implements the primitives' contract (checked by mypy).
    _contract_check: type[DatabaseContract] = Database
