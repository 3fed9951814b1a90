"""Hub operations: per-tenant stats, checkpoint/vacuum scheduling and the
catalogued queues wired to workers (docs/0025-hub-and-tenants.md).

* :func:`tenant_stats`: file and WAL size, every tenant queue's depths
  and dead letters, every tenant stream's head offset and consumer lag.
* :func:`maintain`: a ``PASSIVE`` checkpoint, a ``TRUNCATE`` one when the
  WAL grew past ``wal_limit`` bytes, and ``VACUUM`` when more than
  ``vacuum_free_ratio`` of the pages are free; :class:`Maintenance` runs
  it over the registry in a background thread, a slice of tenants per
  tick (``hub.start_maintenance()``).
* :func:`work_once`: one pass of the workers the seeds give a job to.
  System queues: ``key-management`` (``cleanup_expired``: delete keys
  expired or revoked more than ``key_retention`` ago; ``revoke``;
  ``rotate`` is refused to the dead letters: a new secret must reach its
  owner, so rotation is ``hub.reroll_key``), ``account-maintenance``
  (``deactivate``: the account suspended and its keys revoked;
  ``transfer_orgs``: its organizations to another account, made owner).
  Tenant queues: ``graph-maintenance`` (``archive`` a graph;
  ``retention_cleanup``: delete archived graphs not updated for
  ``older_than_days``), ``schema-migration`` (re-register the built-in
  graph types at their current versions: ``init_tenant``),
  ``secret-rotation`` (the domain's :func:`~alkdev_storage.domain.rotation.run_rotation`
  with the hub's ``secret_keys`` provider, when it has one), the hub's own
  ``hub-relay``. ``acl-evaluation`` is left to the ACL evaluator (no
  scope cache to recompute yet): counted in the stats, not consumed.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from alkdev_storage.domain import GraphStore, Principal, catalog, init_tenant
from alkdev_storage.domain.rotation import run_rotation
from alkdev_storage.schema import utcnow
from alkdev_storage.schema.types import format_utc

if TYPE_CHECKING:
    from alkdev_storage.domain.secrets import KeyProvider
    from alkdev_storage.primitives import Job
    from alkdev_storage.tenancy.hub import Hub

__all__ = ["SYSTEM_QUEUES", "TENANT_QUEUES", "Maintenance", "maintain", "tenant_stats",
           "work_once"]

SYSTEM_QUEUES = ("key-management", "account-maintenance")
TENANT_QUEUES = ("acl-evaluation", "secret-rotation", "graph-maintenance", "schema-migration",
                 "hub-relay")
TENANT_STREAMS = ("call-protocol", "session-events")


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def tenant_stats(hub: Hub, org_id: str) -> dict[str, Any]:
    """Stats of one tenant: ``file_bytes``, ``wal_bytes``, ``queues``
    (name -> ``Queue.stats()``), ``dead`` (total dead letters),
    ``streams`` (name -> ``{"head": offset, "consumers": {name: lag}}``)."""
    path = hub.tenant_path(org_id)
    out: dict[str, Any] = {"org_id": org_id, "file_bytes": _size(path),
                           "wal_bytes": _size(path + "-wal")}
    with hub.tenant(org_id) as db:
        queues = {q: db.queue(q).stats() for q in TENANT_QUEUES}
        out["queues"] = queues
        out["dead"] = sum(int(s["dead"]) for s in queues.values())
        streams: dict[str, Any] = {}
        for name in TENANT_STREAMS:
            row = db.fetchone("SELECT max(offset) FROM _honker_stream WHERE topic = ?", (name,))
            head = int(row[0]) if row and row[0] is not None else 0
            consumers = db.stream(name).consumers()
            streams[name] = {"head": head,
                             "consumers": {c: max(0, head - off) for c, off in consumers.items()}}
        out["streams"] = streams
    return out


def maintain(hub: Hub, org_id: str, *, wal_limit: int = 64 << 20,
             vacuum_free_ratio: float = 0.25) -> dict[str, Any]:
    """Checkpoint (and VACUUM when worth it) one tenant file through a
    privileged handle. Returns what was done."""
    done: dict[str, Any] = {"org_id": org_id, "truncated": False, "vacuumed": False}
    with hub.privileged(org_id) as db:
        pages = db.fetchone("PRAGMA page_count")
        free = db.fetchone("PRAGMA freelist_count")
        if pages and free and pages[0] and free[0] / pages[0] > vacuum_free_ratio:
            db.execute("VACUUM")
            done["vacuumed"] = True
        wal = _size(hub.tenant_path(org_id) + "-wal")
        mode = "TRUNCATE" if wal > wal_limit else "PASSIVE"
        db.execute(f"PRAGMA wal_checkpoint({mode})")
        done["truncated"] = mode == "TRUNCATE"
    return done


class Maintenance:
    """Background maintenance over the registry: every ``every_s`` seconds
    :func:`maintain` runs on the next ``per_tick`` ready tenants (round
    robin), so the cost per tick is bounded whatever the tenant count."""

    def __init__(self, hub: Hub, every_s: float = 60.0, per_tick: int = 50) -> None:
        self._hub = hub
        self.every_s = every_s
        self.per_tick = per_tick
        self._stop = threading.Event()
        self._cursor = ""
        self.runs = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, name="alkdev-hub-maintenance",
                                        daemon=True)

    def start(self) -> Maintenance:
        """Start the thread (returns self)."""
        self._thread.start()
        return self

    def tick(self) -> int:
        """Maintain the next slice of tenants; returns how many."""
        rows = self._hub.system.fetchall(
            "SELECT org_id FROM tenants WHERE status = 'ready' AND org_id > ? "
            "ORDER BY org_id LIMIT ?", (self._cursor, self.per_tick))
        if not rows:
            self._cursor = ""
            return 0
        for (org_id,) in rows:
            try:
                maintain(self._hub, org_id)
            except Exception as e:  # keep going; reported in .errors
                self.errors.append(f"{org_id}: {type(e).__name__}: {e}")
                del self.errors[:-100]
        self._cursor = rows[-1][0]
        self.runs += len(rows)
        return len(rows)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.tick()

    def stop(self) -> None:
        """Stop the thread (waits for the tick in progress)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


# -- workers -----------------------------------------------------------------------


def _key_management(hub: Hub, job: Job, key_retention: timedelta) -> None:
    task = catalog.parse(catalog.KEY_MANAGEMENT, job)
    if task.task == "cleanup_expired":
        cutoff = format_utc(utcnow() - key_retention)
        hub.system.execute(
            "DELETE FROM api_keys WHERE (expires_at IS NOT NULL AND expires_at < ?) "
            "OR (revoked_at IS NOT NULL AND revoked_at < ?)", (cutoff, cutoff))
    elif task.task == "revoke":
        if task.key_id is None:
            raise ValueError("key_id: required for revoke")
        hub.revoke_key(task.key_id)
    else:
        raise ValueError("rotate: a new secret must reach its owner; use hub.reroll_key()")


def _account_maintenance(hub: Hub, job: Job) -> None:
    task = catalog.parse(catalog.ACCOUNT_MAINTENANCE, job)
    now = format_utc(utcnow())
    with hub.system.transaction() as tx:
        if task.task == "deactivate":
            tx.execute("UPDATE accounts SET status = 'suspended', updated_at = ? WHERE id = ?",
                       (now, task.account_id))
            tx.execute("UPDATE api_keys SET revoked_at = ? WHERE account_id = ? "
                       "AND revoked_at IS NULL", (now, task.account_id))
        else:
            target = task.target_account_id
            if target is None:
                raise ValueError("target_account_id: required for transfer_orgs")
            for (org_id,) in tx.fetchall("SELECT id FROM organizations WHERE owner_id = ?",
                                         (task.account_id,)):
                tx.execute("UPDATE organizations SET owner_id = ?, updated_at = ? WHERE id = ?",
                           (target, now, org_id))
                tx.execute(
                    "INSERT INTO organization_memberships (org_id, account_id, level) "
                    "VALUES (?, ?, 'owner') ON CONFLICT (org_id, account_id) "
                    "DO UPDATE SET level = 'owner'", (org_id, target))


def _graph_maintenance(hub: Hub, org_id: str, job: Job) -> None:
    task = catalog.parse(catalog.GRAPH_MAINTENANCE, job)
    with hub.tenant(org_id) as db, GraphStore(db, org_id, Principal.system()) as store:
        if task.task == "archive":
            if task.graph_id is None:
                raise ValueError("graph_id: required for archive")
            store.update_graph(task.graph_id, status="archived")
        else:
            days = task.older_than_days or 90
            cutoff = utcnow() - timedelta(days=days)
            for g in store.list_graphs(status="archived"):
                if g.updated_at < cutoff:
                    store.delete_graph(g.id)


def _schema_migration(hub: Hub, org_id: str, job: Job) -> None:
    catalog.parse(catalog.SCHEMA_MIGRATION, job)
    with hub.privileged(org_id) as db:
        init_tenant(db, org_id)


def _rotate(hub: Hub, org_id: str, provider: KeyProvider) -> tuple[int, int]:
    ok = failed = 0
    with hub.privileged(org_id) as db:
        while True:
            try:
                progress = run_rotation(db, provider, org_id=org_id,
                                        worker_id=f"hub-worker-{os.getpid()}")
            except Exception:  # retried or dead-lettered by run_rotation
                failed += 1
                break
            if progress is None:
                break
            ok += 1
    return ok, failed


def _drain(queue: Any, worker: str, handle: Any, limit: int) -> tuple[int, int]:
    ok = failed = 0
    while ok + failed < limit:
        jobs = queue.claim_batch(worker, min(32, limit - ok - failed))
        if not jobs:
            break
        for job in jobs:
            try:
                handle(job)
            except Exception as e:
                job.fail(f"{type(e).__name__}: {e}"[:1000])
                failed += 1
            else:
                job.ack()
                ok += 1
    return ok, failed


def work_once(hub: Hub, *, tenants: list[str] | None = None, limit: int = 1000,
              key_retention: timedelta = timedelta(days=30)) -> dict[str, int]:
    """One pass of the hub's workers over the system queues and the
    tenant queues of ``tenants`` (default: every ready tenant). A job
    that raises goes to the dead letters with the error. Returns
    ``{"done": n, "failed": n}``."""
    worker = f"hub-worker-{os.getpid()}"
    done = failed = 0
    for name, handle in (("key-management", lambda j: _key_management(hub, j, key_retention)),
                         ("account-maintenance", lambda j: _account_maintenance(hub, j))):
        ok, bad = _drain(hub.system.queue(name), worker, handle, limit)
        done, failed = done + ok, failed + bad
    if tenants is None:
        tenants = [t["org_id"] for t in hub.tenants("ready")]
    for org in tenants:
        with hub.tenant(org) as db:
            for name, fn in (("graph-maintenance", _graph_maintenance),
                             ("schema-migration", _schema_migration)):
                ok, bad = _drain(db.queue(name), worker,
                                 lambda j, fn=fn, org=org: fn(hub, org, j), limit)
                done, failed = done + ok, failed + bad
        if hub.secret_keys is not None:
            ok, bad = _rotate(hub, org, hub.secret_keys)
            done, failed = done + ok, failed + bad
        done += hub.relay.run_once([org])
    return {"done": done, "failed": failed}
