"""Migrations across every tenant (OQ-27; docs/0027-migrations-across-tenants.md).

``hub.migrate()`` brings every tenant file (registry status ``ready`` or
``archived``) to the target revision:

1. **Plan**: the tenants whose registry revision is not the target
   (:func:`behind`).
2. **Dry run** (default on): each behind tenant is copied with
   ``VACUUM INTO`` (a consistent snapshot of the live file) into a scratch
   directory and the copy is migrated. If any copy fails, nothing is
   changed and :class:`~alkdev_storage.errors.MigrationError` lists the
   failing tenants.
3. **Record**: one ``tenant_migrations`` row per behind tenant, status
   ``pending`` (a ``running`` row left by a killed run goes back to
   ``pending``; ``failed`` rows are retried).
4. **Canary** (optional): those tenants first; a failure stops the run.
5. **Apply**: worker processes (``processes``; in this process when 1)
   claim a tenant atomically (``pending`` -> ``running``, attempts + 1),
   migrate its file (one Alembic transaction: all or nothing), then mark it
   ``done`` and update the registry's revision in one system transaction,
   or ``failed`` with the error. A killed run resumes: ``done`` tenants are
   never touched again, a tenant that was ``running`` is redone (its file
   is either at the old or the new revision).

Progress (counts, rate, ETA) goes to a callback or, with
``progress=True``, to stderr. One run at a time per hub root (an
``flock`` on ``<root>/.migrate.lock``; a second run raises
``MigrationError``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

from alkdev_storage.database import Database
from alkdev_storage.errors import MigrationError
from alkdev_storage.schema import head_revision, migrate, revisions, utcnow
from alkdev_storage.schema.types import format_utc
from alkdev_storage.tenancy.paths import SYSTEM_FILE, tenant_path

if TYPE_CHECKING:
    from alkdev_storage.tenancy.hub import Hub

__all__ = ["MigrationReport", "Progress", "behind", "migrate_all"]

_MIGRATABLE = ("ready", "archived", "migrating")
_BATCH = 8


@dataclass(frozen=True)
class Progress:
    """A progress report: ``phase`` (``"dry-run"``, ``"canary"``,
    ``"apply"``), tenants ``done`` and ``failed`` of ``total``,
    ``rate`` (tenants/s) and ``eta_s`` (seconds left, None until known)."""

    phase: str
    done: int
    failed: int
    total: int
    rate: float
    eta_s: float | None

    def line(self) -> str:
        """One line: ``apply  512/1000 (0 failed) 51.2/s ETA 9.5s``."""
        eta = "?" if self.eta_s is None else f"{self.eta_s:.1f}s"
        width = 24
        filled = 0 if not self.total else int(width * (self.done + self.failed) / self.total)
        bar = "#" * filled + "." * (width - filled)
        return (f"{self.phase:8} [{bar}] {self.done + self.failed}/{self.total} "
                f"({self.failed} failed) {self.rate:.1f}/s ETA {eta}")


@dataclass
class MigrationReport:
    """What a run did: ``target``; ``planned`` (tenants behind at the
    start), ``migrated``, ``failed`` ({org id: error}), ``skipped``
    (already at the target), ``dry_run_s``/``apply_s`` (seconds),
    ``stopped`` (why the run stopped early, or None)."""

    target: str
    planned: list[str] = field(default_factory=list)
    migrated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    dry_run_s: float = 0.0
    apply_s: float = 0.0
    stopped: str | None = None


def _target(revision: str) -> str:
    if revision == "head":
        return head_revision("tenant")
    if revision not in revisions("tenant"):
        raise MigrationError(f"unknown tenant revision {revision!r}")
    return revision


def behind(hub: Hub, revision: str = "head") -> list[str]:
    """Org ids of the tenants whose registry revision is not ``revision``
    (ready, archived or interrupted ones), by org id."""
    target = _target(revision)
    rows = hub.system.fetchall(
        "SELECT org_id FROM tenants WHERE status IN ('ready', 'archived', 'migrating') "
        "AND (schema_revision IS NULL OR schema_revision != ?) ORDER BY org_id", (target,))
    return [r[0] for r in rows]


# -- work done per tenant (in this process or a worker process) ---------------------

_SYSTEMS: dict[str, Database] = {}


def _system(root: str) -> Database:
    db = _SYSTEMS.get(root)
    if db is None or db.closed:
        db = _SYSTEMS[root] = Database(os.path.join(root, SYSTEM_FILE))
    return db


def _now() -> str:
    return format_utc(utcnow())


def _dry_one(root: str, org_id: str, target: str, scratch: str,
             opts: dict[str, Any]) -> str | None:
    copy = os.path.join(scratch, f"{org_id}.db")
    try:
        with Database(tenant_path(root, org_id), **opts) as db:
            db.execute("VACUUM INTO ?", (copy,))
        migrate(copy, "tenant", target)
        return None
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(copy + suffix)


def _apply_one(root: str, org_id: str, target: str, opts: dict[str, Any]) -> str | None:
    """Claim, migrate and record one tenant. Returns the error text, or
    None (done, or claimed by someone else meanwhile)."""
    sysdb = _system(root)
    now = _now()
    claimed = sysdb.fetchone(
        "UPDATE tenant_migrations SET status = 'running', attempts = attempts + 1, "
        "worker = ?, started_at = ?, updated_at = ? "
        "WHERE org_id = ? AND status = 'pending' AND target_revision = ? RETURNING org_id",
        (str(os.getpid()), now, now, org_id, target))
    if claimed is None:
        return None
    try:
        with Database(tenant_path(root, org_id), **opts) as db:
            rev = migrate(db, "tenant", target)
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        sysdb.execute(
            "UPDATE tenant_migrations SET status = 'failed', error = ?, updated_at = ? "
            "WHERE org_id = ?", (error[:2000], _now(), org_id))
        return error
    now = _now()
    with sysdb.transaction() as tx:
        tx.execute("UPDATE tenant_migrations SET status = 'done', error = NULL, "
                   "finished_at = ?, updated_at = ? WHERE org_id = ?", (now, now, org_id))
        tx.execute("UPDATE tenants SET schema_revision = ?, updated_at = ? WHERE org_id = ?",
                   (rev, now, org_id))
    return None


def _batch(kind: str, root: str, orgs: Sequence[str], target: str, scratch: str,
           opts: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Run one batch (the unit sent to a worker process)."""
    if kind == "dry":
        return [(o, _dry_one(root, o, target, scratch, opts)) for o in orgs]
    return [(o, _apply_one(root, o, target, opts)) for o in orgs]


# -- the coordinator ----------------------------------------------------------------


class _Runner:
    def __init__(self, hub: Hub, target: str, processes: int,
                 progress: Callable[[Progress], None] | None) -> None:
        self.hub = hub
        self.root = hub.root
        self.target = target
        self.processes = max(1, processes)
        self.progress = progress
        self.opts = hub.tenant_options
        self._pool: ProcessPoolExecutor | None = None

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, phase: str, kind: str, orgs: list[str], scratch: str = "",
            stop_on_failure: bool = False) -> dict[str, str | None]:
        results: dict[str, str | None] = {}
        total, start = len(orgs), time.monotonic()
        failed = 0

        def report() -> None:
            if self.progress is None:
                return
            done = len(results) - failed
            elapsed = time.monotonic() - start
            rate = len(results) / elapsed if elapsed > 0 else 0.0
            eta = (total - len(results)) / rate if rate > 0 else None
            self.progress(Progress(phase, done, failed, total, rate, eta))

        batches = [orgs[i:i + _BATCH] for i in range(0, len(orgs), _BATCH)]
        if self.processes == 1 or len(batches) <= 1:
            for b in batches:
                for org, err in _batch(kind, self.root, b, self.target, scratch, self.opts):
                    results[org] = err
                    failed += err is not None
                report()
                if stop_on_failure and failed:
                    break
            return results
        pool = self.pool()
        pending: set[Future[list[tuple[str, str | None]]]] = set()
        it = iter(batches)
        for b in it:
            pending.add(pool.submit(_batch, kind, self.root, b, self.target, scratch, self.opts))
            if len(pending) >= self.processes * 2:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                for org, err in f.result():
                    results[org] = err
                    failed += err is not None
            report()
            if stop_on_failure and failed:
                for f in pending:
                    f.cancel()
                wait(pending)
                break
            for b in it:
                pending.add(pool.submit(_batch, kind, self.root, b, self.target, scratch,
                                        self.opts))
                if len(pending) >= self.processes * 2:
                    break
        return results


def _stderr_progress(p: Progress) -> None:
    sys.stderr.write("\r" + p.line())
    if p.done + p.failed >= p.total:
        sys.stderr.write("\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _exclusive(root: str) -> Any:
    fd = os.open(os.path.join(root, ".migrate.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MigrationError(f"another tenant migration is running on {root}") from None
        yield
    finally:
        os.close(fd)


def _record(hub: Hub, orgs: Iterable[str], target: str) -> None:
    now = _now()
    with hub.system.transaction() as tx:
        for org in orgs:
            tx.execute(
                "INSERT INTO tenant_migrations (org_id, target_revision, status, updated_at) "
                "VALUES (?, ?, 'pending', ?) ON CONFLICT (org_id) DO UPDATE SET "
                "status = 'pending', error = NULL, "
                "attempts = CASE WHEN target_revision = excluded.target_revision "
                "THEN attempts ELSE 0 END, "
                "target_revision = excluded.target_revision, updated_at = excluded.updated_at",
                (org, target, now))


def migrate_all(hub: Hub, *, revision: str = "head", dry_run: bool = True,
                apply: bool = True, processes: int = 1,
                canary: int | Sequence[str] | None = None,
                progress: bool | Callable[[Progress], None] = False) -> MigrationReport:
    """See the module docstring (``hub.migrate(...)`` calls this).
    ``dry_run``: check every tenant on a copy first; ``apply``: False runs
    only the dry run; ``processes``: worker processes (1: this process);
    ``canary``: a number of tenants (the first by id) or a list of org ids
    migrated first; ``progress``: True for a bar on stderr, or a callback
    taking :class:`Progress`."""
    target = _target(revision)
    cb: Callable[[Progress], None] | None
    cb = _stderr_progress if progress is True else (progress or None)
    report = MigrationReport(target=target)
    with _exclusive(hub.root):
        planned = behind(hub, target)
        row = hub.system.fetchone("SELECT count(*) FROM tenants WHERE status IN "
                                  "('ready', 'archived', 'migrating')")
        total = int(row[0]) if row else 0
        report.planned = planned
        report.skipped = total - len(planned)
        runner = _Runner(hub, target, processes, cb)
        try:
            if dry_run and planned:
                t0 = time.monotonic()
                scratch = tempfile.mkdtemp(prefix="migrate-dry-run-", dir=hub.root)
                try:
                    res = runner.run("dry-run", "dry", planned, scratch)
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
                report.dry_run_s = time.monotonic() - t0
                bad = {o: e for o, e in res.items() if e is not None}
                if bad:
                    report.failed = bad
                    shown = "; ".join(f"{o}: {e}" for o, e in sorted(bad.items())[:5])
                    raise MigrationError(
                        f"dry run: {len(bad)} of {len(planned)} tenants would fail to migrate to "
                        f"{target}; nothing was changed ({shown})")
            if not apply or not planned:
                return report
            _record(hub, planned, target)
            t0 = time.monotonic()
            first: list[str] = []
            if canary:
                first = planned[:canary] if isinstance(canary, int) else [
                    o for o in planned if o in set(canary)]
                res = runner.run("canary", "apply", first, stop_on_failure=True)
                report.failed.update({o: e for o, e in res.items() if e is not None})
                report.migrated += [o for o, e in res.items() if e is None]
                if report.failed:
                    report.stopped = "a canary tenant failed"
                    report.apply_s = time.monotonic() - t0
                    return report
            rest = [o for o in planned if o not in set(first)]
            res = runner.run("apply", "apply", rest)
            report.failed.update({o: e for o, e in res.items() if e is not None})
            report.migrated += [o for o, e in res.items() if e is None]
            report.apply_s = time.monotonic() - t0
        finally:
            runner.close()
    return report
