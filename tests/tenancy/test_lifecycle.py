"""Organization lifecycle: creation with its system rows and events,
crash recovery (a child process SIGKILLed at several points), archive,
unarchive, destroy, online backup and restore."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tenancy_helpers import notifications

from alkdev_storage.domain import BUILTIN_MODULES
from alkdev_storage.errors import NotFound, ScopeViolation, TenantUnavailable, ValidationFailed
from alkdev_storage.schema import head_revision
from alkdev_storage.tenancy import Hub


def test_create_organization_writes_rows_events_and_a_ready_tenant(hub: Hub, owner: str) -> None:
    org = hub.create_organization("acme", "Acme", owner, request_id="req-1")
    assert hub.tenants() == [{"org_id": org, "slug": "acme", "status": "ready",
                              "schema_revision": head_revision("tenant")}]
    row = hub.system.fetchone("SELECT level FROM organization_memberships WHERE org_id = ?", (org,))
    assert row == ("owner",)
    created = notifications(hub.system, "org:created")
    assert [(e["org_id"], e["slug"], e["owner_id"], e["request_id"]) for e in created] == [
        (org, "acme", owner, "req-1")]
    added = notifications(hub.system, "org:member_added")
    assert [(e["org_id"], e["account_id"], e["membership_level"]) for e in added] == [
        (org, owner, "owner")]
    assert [e["account_id"] for e in notifications(hub.system, "account:created")] == [owner]
    with hub.tenant(org) as db:
        types = db.fetchall("SELECT name, scope FROM graph_types ORDER BY name")
        assert types == sorted((m.name, "system") for m in BUILTIN_MODULES)
        assert db.fetchone("SELECT version_num FROM alembic_version") == (head_revision("tenant"),)
    assert not [n for n in os.listdir(hub.root) if n.endswith(".creating")]


@pytest.mark.parametrize(("slug", "name", "field"), [
    ("Bad Slug", "x", "slug"), ("-x-", "x", "slug"), ("ok-slug", "", "name"),
    ("ok-slug", "x" * 201, "name")])
def test_bad_input_names_the_field_and_writes_nothing(hub: Hub, owner: str, slug: str,
                                                      name: str, field: str) -> None:
    before = hub.system.fetchone("SELECT count(*) FROM _honker_notifications")
    with pytest.raises(ValidationFailed) as info:
        hub.create_organization(slug, name, owner)
    assert info.value.field == field
    assert hub.tenants() == []
    assert hub.system.fetchone("SELECT count(*) FROM organizations") == (0,)
    assert hub.system.fetchone("SELECT count(*) FROM _honker_notifications") == before


def test_taken_slug_and_unknown_owner(hub: Hub, owner: str, org: str) -> None:
    with pytest.raises(ValidationFailed, match="taken"):
        hub.create_organization("acme", "Again", owner)
    with pytest.raises(NotFound):
        hub.create_organization("other", "Other", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(ValidationFailed) as info:
        hub.create_account("OWNER@example.com")
    assert info.value.field == "email"
    assert len(hub.tenants()) == 1


# -- crash recovery ------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {helpers!r})
    from tenancy_helpers import peppers
    import alkdev_storage.tenancy.hub as hubmod
    from alkdev_storage.tenancy import Hub
    point = {point!r}
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    if point == "after_rows":
        hubmod.Hub._finish_creating = lambda self, org_id: die()
    elif point == "after_copy":
        real_replace = os.replace
        def replace(src, dst):
            if src.endswith(".creating"):
                die()
            real_replace(src, dst)
        hubmod.os.replace = replace
    elif point == "after_rename":
        real = hubmod.Hub._set_status
        def set_status(self, org_id, status, **kw):
            if status == "ready":
                die()
            real(self, org_id, status, **kw)
        hubmod.Hub._set_status = set_status
    hub = Hub({root!r}, peppers=peppers())
    owner = hub.create_account(f"crash{{os.getpid()}}@example.com")
    print("READY", flush=True)
    for i in range({count}):
        hub.create_organization(f"org-{{os.getpid()}}-{{i:04d}}", "x", owner)
    hub.close()
""")


def run_child(root: Path, point: str, count: int = 1, kill_after: float | None = None) -> int:
    code = CHILD.format(helpers=str(Path(__file__).parent), point=point, root=str(root),
                        count=count)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    return proc.returncode


def check_recovered(root: Path) -> list[str]:
    """Reopen the hub (recovery runs) and check every organization has a
    ready, openable tenant and nothing half-made is left."""
    from tenancy_helpers import peppers

    with Hub(root, peppers=peppers()) as hub:
        orgs = [r[0] for r in hub.system.fetchall("SELECT id FROM organizations ORDER BY id")]
        tenants = hub.tenants()
        assert [t["org_id"] for t in tenants] == orgs
        assert {t["status"] for t in tenants} <= {"ready"}
        for org in orgs:
            with hub.tenant(org) as db:
                n = db.fetchone("SELECT count(*) FROM graph_types WHERE scope = 'system'")
                assert n == (len(BUILTIN_MODULES),)
        left = [n for n in os.listdir(root) if ".creating" in n or ".building" in n]
        assert left == []
        return orgs


@pytest.mark.parametrize("point", ["after_rows", "after_copy", "after_rename"])
def test_a_kill_during_creation_is_recovered_on_the_next_start(tmp_path: Path, point: str) -> None:
    root = tmp_path / "hub"
    assert run_child(root, point) == -signal.SIGKILL
    with Hub(root, recover=False) as hub:
        assert [t["status"] for t in hub.tenants()] == ["creating"]
        org = hub.tenants()[0]["org_id"]
        with pytest.raises(TenantUnavailable, match="creating"):
            hub.tenant(org)
    assert len(check_recovered(root)) == 1


def test_kills_at_random_moments_converge(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    rng = random.Random(1234)
    for _ in range(3):
        run_child(root, "none", count=10_000, kill_after=rng.uniform(0.05, 0.6))
        check_recovered(root)
    assert len(check_recovered(root)) >= 1


# -- archive, restore, destroy ------------------------------------------------------

def test_archive_is_read_only_and_unarchive_restores_writes(hub: Hub, org: str) -> None:
    with hub.tenant(org) as db:
        db.execute("CREATE TABLE t(v)")
        db.execute("INSERT INTO t VALUES (1)")
    hub.archive(org)
    assert hub.tenant_status(org) == "archived"
    with pytest.raises(TenantUnavailable, match="archived"):
        hub.tenant(org)
    ro = hub.open_archived(org)
    try:
        assert ro.fetchall("SELECT v FROM t") == [(1,)]
        for write in (lambda: ro.execute("INSERT INTO t VALUES (2)"),
                      lambda: ro.transaction(), lambda: ro.executescript("SELECT 1"),
                      lambda: ro.fetchall("INSERT INTO t VALUES (3) RETURNING v"),
                      lambda: ro.queue("q").enqueue({"a": 1})):
            with pytest.raises(ScopeViolation, match="read-only"):
                write()
    finally:
        ro.close()
    hub.unarchive(org)
    with hub.tenant(org) as db:
        db.execute("INSERT INTO t VALUES (2)")
        assert db.fetchall("SELECT v FROM t ORDER BY v") == [(1,), (2,)]


def test_destroy_removes_files_and_rows(hub: Hub, owner: str, org: str) -> None:
    hub.issue_key(owner, "k", org_id=org)
    path = hub.tenant_path(org)
    lease = hub.tenant(org)
    with pytest.raises(TenantUnavailable, match="in use"):
        hub.destroy(org)
    lease.release()
    hub.destroy(org)
    for suffix in ("", "-wal", "-shm"):
        assert not os.path.exists(path + suffix)
    assert hub.tenants() == []
    for table, col in (("organizations", "id"), ("organization_memberships", "org_id"),
                       ("api_keys", "org_id")):
        assert hub.system.fetchone(f"SELECT count(*) FROM {table} WHERE {col} = ?", (org,)) == (0,)
    with pytest.raises(NotFound):
        hub.tenant(org)


def test_online_backup_while_writers_continue_and_restore(hub: Hub, org: str,
                                                          tmp_path: Path) -> None:
    with hub.tenant(org) as db:
        db.execute("CREATE TABLE w(i INTEGER)")
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with hub.tenant(org) as db:
                i = 0
                while not stop.is_set():
                    with db.transaction() as tx:
                        tx.execute("INSERT INTO w VALUES (?)", (i,))
                    written.append(i)
                    i += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    backups = [hub.backup(org, tmp_path / f"b{i}.db") for i in range(3)]
    time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    counts = []
    import alkdev_storage

    for b in backups:
        with alkdev_storage.open(b) as bdb:
            assert bdb.fetchall("PRAGMA integrity_check") == [("ok",)]
            counts.append(bdb.fetchone("SELECT count(*) FROM w")[0])
    assert counts == sorted(counts) and 0 < counts[0] and counts[-1] < len(written)
    with pytest.raises(Exception, match="exists"):
        hub.backup(org, backups[0])
    hub.restore(org, backups[1])
    with hub.tenant(org) as db:
        assert db.fetchone("SELECT count(*) FROM w")[0] == counts[1]
