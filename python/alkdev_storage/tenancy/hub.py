"""The hub: ``system.db`` plus one tenant file per organization
(docs/0025-hub-and-tenants.md).

``Hub(root)`` opens (creating) ``<root>/system.db``, migrates it to the
head, and finishes or cleans up whatever a crash left half done (tenants
the registry says are ``creating`` or ``destroying``). Tenant files are
``<root>/tenant-<org id>.db``, named only from validated ULIDs
(:mod:`alkdev_storage.tenancy.paths`); the list of tenants is the
``tenants`` registry table, never a directory listing.

Creating an organization is three steps, each durable before the next:

1. one system transaction: the ``organizations`` row, the owner's
   membership, the registry row (status ``creating``) and the
   ``org:created`` / ``org:member_added`` notifications;
2. the tenant file: a copy of the hub's *template* (a file brought to the
   tenant schema head by :func:`alkdev_storage.domain.init_tenant`, with
   the built-in system-scope graph types; built once per revision and
   module set), written to ``tenant-<id>.db.creating``, fsynced, then
   renamed into place (atomic: the final name only ever holds a whole
   file);
3. the registry row becomes ``ready`` with its schema revision.

A crash after 1 leaves a ``creating`` row: the next ``Hub`` start redoes
2 and 3. After 2 it only redoes 3. A tenant that is not ``ready`` is never
handed out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import sqlalchemy as sa

import alkdev_storage
from alkdev_storage import _native
from alkdev_storage.database import Database
from alkdev_storage.domain import BUILTIN_MODULES, Principal, catalog, init_tenant
from alkdev_storage.domain.modules import module_to_db_schema
from alkdev_storage.domain.principal import Level
from alkdev_storage.domain.secrets import KeyProvider
from alkdev_storage.errors import (
    NotFound,
    ScopeViolation,
    StorageError,
    TenantBehind,
    TenantUnavailable,
    ValidationFailed,
)
from alkdev_storage.operations import CallContext
from alkdev_storage.schema import (
    Account,
    ApiKey,
    Organization,
    OrganizationMembership,
    TenantRecord,
    current_revision,
    head_revision,
    migrate,
    new_id,
    normalize_email,
    revisions,
    utcnow,
    validate_slug,
)
from alkdev_storage.sqlalchemy import create_engine
from alkdev_storage.tenancy import ops
from alkdev_storage.tenancy.auth import Authenticator
from alkdev_storage.tenancy.guard import TenantDatabase
from alkdev_storage.tenancy.handles import HandleCache, Lease
from alkdev_storage.tenancy.keys import PepperProvider
from alkdev_storage.tenancy.migrations import MigrationReport, Progress, behind, migrate_all
from alkdev_storage.tenancy.paths import SYSTEM_FILE, check_id, tenant_path
from alkdev_storage.tenancy.relay import Relay
from alkdev_storage.tenancy.session import Identity, TenantSession

__all__ = ["Hub"]

A: sa.Table = cast(sa.Table, Account.__table__)
O: sa.Table = cast(sa.Table, Organization.__table__)  # noqa: E741
M: sa.Table = cast(sa.Table, OrganizationMembership.__table__)
K: sa.Table = cast(sa.Table, ApiKey.__table__)
T: sa.Table = cast(sa.Table, TenantRecord.__table__)

_SIDE_FILES = ("-wal", "-shm", "-journal")
_LEVEL = Literal["owner", "admin", "member", "viewer"]


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_db_files(path: str) -> None:
    for suffix in ("", *_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def _template_digest(revision: str) -> str:
    parts: list[Any] = [revision]
    for m in BUILTIN_MODULES:
        parts.append([m.name, m.version, module_to_db_schema(m)])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class Hub:
    """A hub rooted at ``root`` (created if needed). See the module
    docstring, docs/0025 and docs/0026.

    Options: ``peppers`` (a :class:`~alkdev_storage.tenancy.keys.PepperProvider`,
    needed for API keys; default: from the environment when set),
    ``max_open``/``fd_budget``/``idle_ttl`` (the tenant handle cache),
    ``tenant_max_readers`` (reader pool of each tenant handle, default 2),
    ``tenant_watcher_poll_ms`` (update-watcher period of tenant files,
    default 10 ms: cross-process wake-ups of tenant listeners within ~10-30
    ms, and 1,000 idle tenants with listeners cost a few % of a core
    instead of ~25% at the engine default of 1 ms; None: the engine default),
    ``last_used_flush_s`` (how often last-used times and
    ``auth:key_verified`` events are written), ``migrate_on_open`` (bring
    a tenant that is behind to the head when it is opened, instead of
    raising :class:`~alkdev_storage.errors.TenantBehind`),
    ``tenant_revision`` (the revision new tenants are created at; default
    the head), ``recover`` (finish interrupted work now; default True),
    ``secret_keys`` (the secrets' key provider: the ``secret-rotation``
    worker of :meth:`work_once` runs only with one).

    Thread-safe. ``close()`` (or ``with Hub(...) as hub:``) flushes
    pending last-used times and closes every handle."""

    def __init__(self, root: str | os.PathLike[str], *, peppers: PepperProvider | None = None,
                 max_open: int = 256, fd_budget: int = 4096, idle_ttl: float = 300.0,
                 tenant_max_readers: int = 2, tenant_watcher_poll_ms: float | None = 10.0,
                 last_used_flush_s: float = 5.0, migrate_on_open: bool = False,
                 tenant_revision: str | None = None, recover: bool = True,
                 secret_keys: KeyProvider | None = None) -> None:
        self.root = os.path.abspath(os.fspath(root))
        os.makedirs(self.root, exist_ok=True)
        self.system: Database = alkdev_storage.open(os.path.join(self.root, SYSTEM_FILE))
        try:
            migrate(self.system, "system")
            self._engine = create_engine(self.system)
            self._wengine = self._engine.execution_options(honker_begin_write=True)
        except BaseException:
            self.system.close()
            raise
        self.migrate_on_open = migrate_on_open
        self.secret_keys = secret_keys
        self._tenant_options: dict[str, Any] = {"max_readers": tenant_max_readers}
        if tenant_watcher_poll_ms is not None:
            self._tenant_options["watcher_poll_interval_ms"] = tenant_watcher_poll_ms
        self.head = head_revision("tenant")
        self.tenant_revision = tenant_revision or self.head
        self._template_lock = threading.Lock()
        self._template: str | None = None
        self._status_q = self.system.prepare("SELECT status FROM tenants WHERE org_id = ?")
        self._revision_sql = "SELECT version_num FROM alembic_version"
        self._handles = HandleCache(self._open_tenant, max_open=max_open,
                                    fd_budget=fd_budget, idle_ttl=idle_ttl)
        self.auth = Authenticator(self, peppers, flush_every_s=last_used_flush_s)
        self.relay = Relay(self)
        self._maintenance: list[ops.Maintenance] = []
        self._closed = False
        if recover:
            self.recover()

    # -- system writes --------------------------------------------------------

    @contextlib.contextmanager
    def system_transaction(self) -> Iterator[sa.Connection]:
        """A SQLAlchemy connection in one write transaction on
        ``system.db`` (commits on success, rolls back on an exception);
        ``catalog.notify(conn, ...)`` commits with it."""
        with self._wengine.begin() as conn:
            yield conn

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine on ``system.db`` (reads; writes go through
        :meth:`system_transaction`)."""
        return self._engine

    def _set_status(self, org_id: str, status: str, **extra: Any) -> None:
        with self.system_transaction() as conn:
            conn.execute(sa.update(T).where(T.c.org_id == org_id)
                         .values(status=status, updated_at=utcnow(), **extra))

    # -- accounts and organizations ---------------------------------------------

    def create_account(self, email: str, display_name: str | None = None, *,
                       access_level: Literal["user", "admin"] = "user",
                       request_id: str | None = None) -> str:
        """Create an account (``account:created`` emitted in the same
        transaction); returns its id. ``ValidationFailed`` naming the field
        for a bad e-mail address or level, ``StorageError`` if the address
        is taken; nothing written then."""
        address = normalize_email(email)
        if access_level not in ("user", "admin"):
            raise ValidationFailed(
                f"access_level: must be 'user' or 'admin' (got {access_level!r})",
                errors=[{"loc": ("access_level",), "msg": "unknown level", "type": "value_error"}],
                field="access_level")
        account_id = new_id()
        with self.system_transaction() as conn:
            if conn.execute(sa.select(A.c.id).where(A.c.email == address)).first():
                raise ValidationFailed(
                    "email: an account with this address exists",
                    errors=[{"loc": ("email",), "msg": "taken", "type": "value_error"}],
                    field="email")
            conn.execute(sa.insert(A).values(id=account_id, email=address,
                                             display_name=display_name,
                                             access_level=access_level))
            catalog.notify(conn, catalog.ACCOUNT_CREATED, {
                "account_id": account_id, "email": address, "access_level": access_level,
                "request_id": request_id})
        return account_id

    def add_member(self, org_id: str, account_id: str, level: _LEVEL = "member", *,
                   request_id: str | None = None) -> None:
        """Add (or change the level of) an account's membership;
        ``org:member_added`` is emitted with the row."""
        check_id(org_id)
        check_id(account_id, "account_id")
        if level not in ("owner", "admin", "member", "viewer"):
            raise ValidationFailed(
                f"level: must be owner, admin, member or viewer (got {level!r})",
                errors=[{"loc": ("level",), "msg": "unknown level", "type": "value_error"}],
                field="level")
        with self.system_transaction() as conn:
            if not conn.execute(sa.select(O.c.id).where(O.c.id == org_id)).first():
                raise NotFound(f"organization {org_id} does not exist")
            if not conn.execute(sa.select(A.c.id).where(A.c.id == account_id)).first():
                raise NotFound(f"account {account_id} does not exist")
            conn.execute(sa.delete(M).where(M.c.org_id == org_id, M.c.account_id == account_id))
            conn.execute(sa.insert(M).values(org_id=org_id, account_id=account_id, level=level))
            catalog.notify(conn, catalog.ORG_MEMBER_ADDED, {
                "org_id": org_id, "account_id": account_id, "membership_level": level,
                "request_id": request_id})

    def create_organization(self, slug: str, name: str, owner_account_id: str, *,
                            request_id: str | None = None) -> str:
        """Create an organization owned by ``owner_account_id`` and its
        tenant file (see the module docstring); returns the org id.
        ``ValidationFailed`` for a bad slug or name or a taken slug,
        ``NotFound`` for an unknown owner; nothing written then."""
        validate_slug(slug)
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ValidationFailed(
                f"name: must be 1 to 200 characters (got {name!r})",
                errors=[{"loc": ("name",), "msg": "bad name", "type": "value_error"}],
                field="name")
        check_id(owner_account_id, "owner_account_id")
        org_id = new_id()
        with self.system_transaction() as conn:
            if not conn.execute(sa.select(A.c.id).where(A.c.id == owner_account_id)).first():
                raise NotFound(f"account {owner_account_id} does not exist")
            if conn.execute(sa.select(O.c.id).where(O.c.slug == slug)).first():
                raise ValidationFailed(
                    f"slug: {slug!r} is taken",
                    errors=[{"loc": ("slug",), "msg": "taken", "type": "value_error"}],
                    field="slug")
            conn.execute(sa.insert(O).values(id=org_id, slug=slug, name=name,
                                             owner_id=owner_account_id))
            conn.execute(sa.insert(M).values(org_id=org_id, account_id=owner_account_id,
                                             level="owner"))
            conn.execute(sa.insert(T).values(org_id=org_id, status="creating",
                                             schema_revision=None))
            catalog.notify(conn, catalog.ORG_CREATED, {
                "org_id": org_id, "slug": slug, "owner_id": owner_account_id,
                "request_id": request_id})
            catalog.notify(conn, catalog.ORG_MEMBER_ADDED, {
                "org_id": org_id, "account_id": owner_account_id, "membership_level": "owner",
                "request_id": request_id})
        self._finish_creating(org_id)
        return org_id

    # -- the template and tenant files -----------------------------------------

    def tenant_path(self, org_id: str) -> str:
        """Path of ``org_id``'s tenant file (the id is validated)."""
        return tenant_path(self.root, org_id)

    def template_path(self) -> str:
        """The template tenant file new tenants are copied from (built on
        first use; one per tenant revision and set of built-in modules)."""
        with self._template_lock:
            if self._template is not None and os.path.exists(self._template):
                return self._template
            digest = _template_digest(self.tenant_revision)
            path = os.path.join(self.root, f"template-{digest}.db")
            if not os.path.exists(path):
                self._build_template(path)
            self._template = path
            return path

    def _build_template(self, path: str) -> None:
        work = f"{path}.building-{os.getpid()}"
        out = f"{path}.out-{os.getpid()}"
        _remove_db_files(work)
        _remove_db_files(out)
        db = alkdev_storage.open(work)
        try:
            init_tenant(db, new_id())
            if self.tenant_revision != self.head:
                migrate(db, "tenant", self.tenant_revision)
            db.execute("VACUUM INTO ?", (out,))
        finally:
            db.close()
            _remove_db_files(work)
        # VACUUM INTO writes a rollback-journal file: put it in WAL mode once
        # here rather than in every tenant's first open.
        copy = alkdev_storage.open(out)
        try:
            copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            copy.close()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(out + suffix)
        with open(out, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(out, path)
        _fsync_dir(self.root)

    def _finish_creating(self, org_id: str) -> None:
        """Steps 2 and 3 of creation (idempotent: recovery calls it too)."""
        final = self.tenant_path(org_id)
        if not os.path.exists(final):
            tmp = final + ".creating"
            _remove_db_files(tmp)
            shutil.copyfile(self.template_path(), tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            for suffix in _SIDE_FILES:  # a stale -wal/-shm must not meet the new file
                with contextlib.suppress(FileNotFoundError):
                    os.remove(final + suffix)
            os.replace(tmp, final)
            _fsync_dir(self.root)
        self._set_status(org_id, "ready", schema_revision=self.tenant_revision)

    # -- recovery ------------------------------------------------------------------

    def recover(self) -> dict[str, list[str]]:
        """Finish interrupted work: tenants ``creating`` are completed,
        ``destroying`` are removed, ``migrating`` go back to ``ready`` (the
        migration itself is resumed by :meth:`migrate`). Returns
        ``{"created": [...], "destroyed": [...], "reset": [...]}``."""
        rows = self.system.fetchall(
            "SELECT org_id, status FROM tenants WHERE status IN "
            "('creating', 'destroying', 'migrating') ORDER BY org_id")
        done: dict[str, list[str]] = {"created": [], "destroyed": [], "reset": []}
        for org_id, status in rows:
            check_id(org_id)
            if status == "creating":
                self._finish_creating(org_id)
                done["created"].append(org_id)
            elif status == "destroying":
                self._finish_destroying(org_id)
                done["destroyed"].append(org_id)
            else:
                self._set_status(org_id, "ready")
                done["reset"].append(org_id)
        return done

    # -- registry --------------------------------------------------------------------

    def tenants(self, status: str | None = None) -> list[dict[str, Any]]:
        """The registry: ``{"org_id", "slug", "status", "schema_revision"}``
        per tenant (optionally only those of ``status``), by org id."""
        q = (sa.select(T.c.org_id, O.c.slug, T.c.status, T.c.schema_revision)
             .join(O, O.c.id == T.c.org_id).order_by(T.c.org_id))
        if status is not None:
            q = q.where(T.c.status == status)
        with self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def tenant_status(self, org_id: str) -> str | None:
        """The registry status of ``org_id`` (None: no such tenant)."""
        row = self.system.fetchone(self._status_q, (check_id(org_id),))
        return None if row is None else str(row[0])

    # -- tenant handles ----------------------------------------------------------------

    def _open_tenant(self, org_id: str) -> TenantDatabase:
        status = self.tenant_status(org_id)
        if status is None:
            raise NotFound(f"no tenant for organization {org_id}")
        if status != "ready":
            raise TenantUnavailable(f"tenant {org_id} is {status}")
        return self._open_file(org_id, read_only=False)

    def _open_file(self, org_id: str, *, read_only: bool) -> TenantDatabase:
        path = self.tenant_path(org_id)
        if not os.path.exists(path):
            raise TenantUnavailable(f"tenant {org_id}: its file is missing")
        db = TenantDatabase(path, **self._tenant_options)
        try:
            db._guard_setup(org_id, read_only)
            # on the writer (already open): the first read would open a reader
            with _native.Database.begin(db) as tx:
                row = tx.fetchone(self._revision_sql)
            rev = None if row is None else row[0]
            if rev != self.head and rev not in revisions("tenant"):
                raise TenantUnavailable(
                    f"tenant {org_id} is at schema revision {rev}, unknown to this package "
                    f"(head {self.head}): a newer package wrote it")
            if rev != self.head:
                if not self.migrate_on_open or read_only:
                    raise TenantBehind(
                        f"tenant {org_id} is at schema revision {rev}, the head is "
                        f"{self.head}: run hub.migrate() or open with migrate_on_open=True")
                self.migrate_tenant(org_id)
        except BaseException:
            db.close()
            raise
        return db

    def tenant(self, org_id: str) -> Lease:
        """A lease on ``org_id``'s tenant handle: ``with hub.tenant(org) as
        db:``. The handle is cached (bounded, idle-closed) and shared by
        every caller; it is never closed while a lease is held.
        ``NotFound`` (no such tenant), ``TenantUnavailable`` (not ready:
        creating, archived, destroying, failed), ``TenantBehind`` (older
        schema; see ``migrate_on_open``)."""
        return self._handles.lease(check_id(org_id))

    def open_archived(self, org_id: str) -> TenantDatabase:
        """A read-only handle on an archived tenant (not cached; close it)."""
        status = self.tenant_status(org_id)
        if status != "archived":
            raise TenantUnavailable(f"tenant {org_id} is {status}, not archived")
        return self._open_file(org_id, read_only=True)

    @property
    def handles(self) -> HandleCache:
        """The tenant handle cache (stats, sweep)."""
        return self._handles

    # -- archive, restore, destroy, backup -----------------------------------------

    def _checkpoint(self, org_id: str) -> None:
        with self.privileged(org_id) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def archive(self, org_id: str) -> None:
        """Make a ready tenant read-only: the registry and organization say
        ``archived``, the cached handle is evicted (closed when its leases
        end) and the file checkpointed. Open it with :meth:`open_archived`."""
        self._require(org_id, "ready")
        with self.system_transaction() as conn:
            conn.execute(sa.update(T).where(T.c.org_id == org_id)
                         .values(status="archived", updated_at=utcnow()))
            conn.execute(sa.update(O).where(O.c.id == org_id)
                         .values(status="archived", updated_at=utcnow()))
        self._handles.evict(org_id)
        self._checkpoint(org_id)

    def unarchive(self, org_id: str) -> None:
        """Restore an archived tenant to ``ready`` (writable again)."""
        self._require(org_id, "archived")
        with self.system_transaction() as conn:
            conn.execute(sa.update(T).where(T.c.org_id == org_id)
                         .values(status="ready", updated_at=utcnow()))
            conn.execute(sa.update(O).where(O.c.id == org_id)
                         .values(status="active", updated_at=utcnow()))

    def _require(self, org_id: str, *statuses: str) -> str:
        status = self.tenant_status(org_id)
        if status is None:
            raise NotFound(f"no tenant for organization {org_id}")
        if status not in statuses:
            raise TenantUnavailable(f"tenant {org_id} is {status}, not {' or '.join(statuses)}")
        return status

    def destroy(self, org_id: str) -> None:
        """Delete an organization and its tenant: the file with its
        ``-wal``/``-shm``, the registry row, memberships, the org's API keys
        and the organization row. Refused (``TenantUnavailable``) while a
        lease on its handle is held. Crash-safe: the registry says
        ``destroying`` first, and recovery finishes the job."""
        self._require(org_id, "ready", "archived", "failed", "destroying")
        if not self._handles.evict(org_id):  # closes when its last lease ends
            raise TenantUnavailable(f"tenant {org_id} is in use")
        self._set_status(org_id, "destroying")
        self._finish_destroying(org_id)

    def _finish_destroying(self, org_id: str) -> None:
        _remove_db_files(self.tenant_path(org_id))
        _remove_db_files(self.tenant_path(org_id) + ".creating")
        _fsync_dir(self.root)
        with self.system_transaction() as conn:
            conn.execute(sa.delete(T).where(T.c.org_id == org_id))
            conn.execute(sa.delete(K).where(K.c.org_id == org_id))
            conn.execute(sa.delete(M).where(M.c.org_id == org_id))
            conn.execute(sa.delete(O).where(O.c.id == org_id))
        self.auth.forget_org(org_id)

    def backup(self, org_id: str, dest: str | os.PathLike[str]) -> str:
        """An online backup of a live tenant into ``dest`` (a new file;
        ``VACUUM INTO``: one consistent snapshot, compacted). Writers in
        other processes continue; in this process they wait for the
        writer slot while the copy is written. Returns the path."""
        out = os.path.abspath(os.fspath(dest))
        if os.path.exists(out):
            raise StorageError(f"backup destination {out} exists")
        self._require(org_id, "ready", "archived")
        with self.privileged(org_id) as db:
            db.execute("VACUUM INTO ?", (out,))
        return out

    def restore(self, org_id: str, source: str | os.PathLike[str]) -> None:
        """Replace ``org_id``'s tenant file with the backup ``source``
        (checked first: a readable tenant file at a known revision).
        Refused while a lease on the handle is held; no other process may
        have the file open."""
        src = os.path.abspath(os.fspath(source))
        self._require(org_id, "ready", "archived", "failed")
        rev = current_revision(src, "tenant")
        if rev is None:
            raise StorageError(f"{src} is not a tenant file (no schema revision)")
        if not self._handles.evict(org_id):  # closes when its last lease ends
            raise TenantUnavailable(f"tenant {org_id} is in use")
        final = self.tenant_path(org_id)
        tmp = final + ".restoring"
        _remove_db_files(tmp)
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        for suffix in _SIDE_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.remove(final + suffix)
        os.replace(tmp, final)
        _fsync_dir(self.root)
        with self.system_transaction() as conn:
            conn.execute(sa.update(T).where(T.c.org_id == org_id)
                         .values(schema_revision=rev, updated_at=utcnow()))

    # -- migrations -------------------------------------------------------------------

    @property
    def tenant_options(self) -> dict[str, Any]:
        """The options tenant files are opened with (``max_readers``...)."""
        return dict(self._tenant_options)

    def migrate(self, *, revision: str = "head", dry_run: bool = True, apply: bool = True,
                processes: int = 1, canary: int | Sequence[str] | None = None,
                progress: bool | Callable[[Progress], None] = False) -> MigrationReport:
        """Migrate every tenant (see
        :mod:`alkdev_storage.tenancy.migrations` and docs/0027): dry run on
        copies first (``MigrationError`` and nothing changed if any would
        fail), durable per-tenant status, ``processes`` worker processes,
        an optional ``canary`` subset first, ``progress`` (True: a bar on
        stderr, or a callback). Resumes a killed run. Returns a
        :class:`~alkdev_storage.tenancy.migrations.MigrationReport`."""
        return migrate_all(self, revision=revision, dry_run=dry_run, apply=apply,
                           processes=processes, canary=canary, progress=progress)

    def behind(self, revision: str = "head") -> list[str]:
        """Org ids of the tenants not at ``revision`` (by the registry)."""
        return behind(self, revision)

    def migration_status(self) -> dict[str, int]:
        """Counts of ``tenant_migrations`` rows by status."""
        rows = self.system.fetchall(
            "SELECT status, count(*) FROM tenant_migrations GROUP BY status")
        return {str(s): int(n) for s, n in rows}

    def privileged(self, org_id: str) -> Database:
        """An unguarded Database on ``org_id``'s tenant file, for the hub's
        own maintenance (migrations, checkpoints, backups). It shares the
        file's engine with the cached handle. Close it when done. Never
        hand it to request code."""
        return Database(self.tenant_path(org_id), **self._tenant_options)

    def migrate_tenant(self, org_id: str, *, revision: str = "head") -> str:
        """Bring one tenant file to ``revision`` and record it in the
        registry; returns the revision now current."""
        with self.privileged(org_id) as db:
            rev = migrate(db, "tenant", revision)
        with self.system_transaction() as conn:
            conn.execute(sa.update(T).where(T.c.org_id == org_id)
                         .values(schema_revision=rev, updated_at=utcnow()))
        return rev

    # -- authentication and sessions --------------------------------------------------

    def issue_key(self, account_id: str, name: str, *, org_id: str | None = None,
                  scopes: list[str] | tuple[str, ...] = (),
                  expires_at: datetime | None = None) -> tuple[str, str]:
        """Issue an API key for ``account_id`` (limited to ``org_id`` if
        given; ``scopes``; optional expiry). Returns ``(key_id, key)``: the
        key text is shown once and never stored."""
        return self.auth.issue(account_id, name, org_id=org_id, scopes=scopes,
                               expires_at=expires_at)

    def revoke_key(self, key_id: str) -> None:
        """Revoke a key now (``NotFound`` if there is no such key)."""
        self.auth.revoke(key_id)

    def reroll_key(self, key_id: str, *, grace: timedelta = timedelta(hours=24)) -> tuple[str, str]:
        """A new key with the same account, org, name and scopes; the old
        one keeps working for ``grace`` (its expiry is moved to now +
        grace if that is sooner). Returns ``(new key id, new key)``."""
        return self.auth.reroll(key_id, grace=grace)

    def authenticate(self, key: str) -> Identity:
        """The :class:`~alkdev_storage.tenancy.session.Identity` of an API
        key; :class:`~alkdev_storage.errors.AuthenticationFailed` with one
        message for every failure (docs/0026)."""
        return self.auth.authenticate(key)

    def session(self, who: Identity | Principal, org_id: str, *, agent_id: str | None = None,
                request_id: str | None = None) -> TenantSession:
        """An authorised session in ``org_id``: ``who`` must be a member (an
        :class:`Identity` from :meth:`authenticate`, or a domain
        ``Principal``: system, the org's tenant principal, or a user whose
        membership is checked again here). With ``agent_id`` the tenant's
        ACL graph must hold a live ``delegates_to`` edge from the account's
        principal node to that agent; its scopes become the context's
        ``delegated_scopes``. ``ScopeViolation`` otherwise (the same
        message whether or not the org exists)."""
        check_id(org_id)
        denied = ScopeViolation(f"not authorised for organization {org_id}")
        identity: Identity | None = None
        if isinstance(who, Identity):
            identity = who
            level = who.memberships.get(org_id)
            if (who.issuer is not self.auth.token or level is None
                    or (who.key_org_id is not None and who.key_org_id != org_id)):
                raise denied
            principal = Principal.user(who.account_id, org_id, cast(Level, level),
                                       scopes=who.scopes or (), agent_id=agent_id)
            memberships: Mapping[str, str] = who.memberships
            key_scopes = who.scopes
        elif isinstance(who, Principal):
            principal = who
            if who.kind != "system" and who.org_id != org_id:
                raise denied
            if who.kind == "user":
                assert who.account_id is not None
                lvl = self.auth.membership_level(who.account_id, org_id)
                if lvl is None:
                    raise denied
            memberships = {}
            key_scopes = frozenset(who.scopes) if who.scopes else None
        else:
            raise TypeError(f"session() takes an Identity or a Principal, not {type(who).__name__}")
        lease = self.tenant(org_id)
        try:
            delegated: frozenset[str] | None = None
            if agent_id is not None:
                if principal.account_id is None:
                    raise denied
                delegated = self.auth.delegated_scopes(lease.db, principal.account_id, agent_id)
                if not delegated:
                    raise denied
            ctx = CallContext(principal=principal, request_id=request_id,
                               memberships=memberships, key_scopes=key_scopes,
                               agent_id=agent_id, delegated_scopes=delegated)
        except BaseException:
            lease.release()
            raise
        return TenantSession(lease, org_id, principal, ctx, identity)

    # -- cross-tenant delegation (OQ-28) ---------------------------------------------

    def delegate_across(self, from_account: str, source_org: str, to_account: str,
                        target_org: str, scopes: Sequence[str], *,
                        expires_at: datetime | None = None) -> str:
        """A delegation from an account of ``source_org`` to one of
        ``target_org``: written in the source tenant with its outbox job,
        relayed to the target idempotently (see
        :mod:`alkdev_storage.tenancy.relay`). Returns its key."""
        return self.relay.delegate(from_account, source_org, to_account, target_org, scopes,
                                   expires_at=expires_at)

    def revoke_across(self, source_org: str, key: str) -> None:
        """Revoke a cross-tenant delegation (relayed like the grant)."""
        self.relay.revoke(source_org, key)

    # -- operations -----------------------------------------------------------------

    def stats(self, org_id: str) -> dict[str, Any]:
        """Per-tenant stats: file and WAL bytes, queue depths, dead letters,
        stream consumer lag (:func:`alkdev_storage.tenancy.ops.tenant_stats`)."""
        return ops.tenant_stats(self, check_id(org_id))

    def maintain(self, org_id: str, **options: Any) -> dict[str, Any]:
        """Checkpoint (and VACUUM when worth it) one tenant
        (:func:`alkdev_storage.tenancy.ops.maintain`)."""
        return ops.maintain(self, check_id(org_id), **options)

    def start_maintenance(self, every_s: float = 60.0, per_tick: int = 50) -> ops.Maintenance:
        """Start background checkpoint/vacuum scheduling over the registry
        (stopped by :meth:`close`)."""
        m = ops.Maintenance(self, every_s, per_tick).start()
        self._maintenance.append(m)
        return m

    def work_once(self, **options: Any) -> dict[str, int]:
        """One pass of the system and tenant queue workers
        (:func:`alkdev_storage.tenancy.ops.work_once`)."""
        return ops.work_once(self, **options)

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self) -> int:
        """Write pending last-used times and ``auth:key_verified`` events
        now; returns how many keys were written."""
        return self.auth.flush()

    def close(self) -> None:
        """Flush, close every tenant handle (leased ones when released) and
        ``system.db`` (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for m in self._maintenance:
            m.stop()
        try:
            self.auth.flush()
        finally:
            self._handles.close()
            self._engine.dispose()
            self.system.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<alkdev_storage.tenancy.Hub {self.root!r}>"
