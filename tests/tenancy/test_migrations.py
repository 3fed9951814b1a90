"""Migrations across tenants (OQ-27): dry run first, durable status,
canary, progress, parallel worker processes, resume after a kill."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tenancy_helpers import peppers

from alkdev_storage.errors import MigrationError
from alkdev_storage.schema import current_revision, head_revision, revisions
from alkdev_storage.tenancy import Hub
from alkdev_storage.tenancy.migrations import Progress

OLD = revisions("tenant")[-2]
HEAD = head_revision("tenant")


def old_hub(root: Path, n: int) -> list[str]:
    with Hub(root, peppers=peppers(), tenant_revision=OLD) as hub:
        owner = hub.create_account("o@example.com")
        return [hub.create_organization(f"org-{i:03d}", "x", owner) for i in range(n)]


def file_revisions(hub: Hub, orgs: list[str]) -> set[str | None]:
    return {current_revision(hub.tenant_path(o), "tenant") for o in orgs}


def sabotage(hub: Hub, org: str) -> None:
    """Make the next revision fail on this tenant (its table already exists)."""
    with hub.privileged(org) as db:
        db.execute("CREATE TABLE relay_receipts (squatter)")


def test_migrate_brings_every_tenant_to_head(hub_root: Path) -> None:
    orgs = old_hub(hub_root, 5)
    seen: list[Progress] = []
    with Hub(hub_root, peppers=peppers()) as hub:
        assert hub.behind() == orgs
        report = hub.migrate(progress=seen.append)
        assert sorted(report.migrated) == orgs and not report.failed
        assert hub.behind() == [] and file_revisions(hub, orgs) == {HEAD}
        assert {t["schema_revision"] for t in hub.tenants()} == {HEAD}
        assert hub.migration_status() == {"done": 5}
        rows = hub.system.fetchall("SELECT attempts FROM tenant_migrations")
        assert {r[0] for r in rows} == {1}
        assert [p.phase for p in seen][-1] == "apply"
        assert seen[-1].done == 5 and seen[-1].eta_s == 0
        assert "5/5" in seen[-1].line()
        with hub.tenant(orgs[0]) as db:
            assert db.fetchone("SELECT count(*) FROM relay_receipts") == (0,)
        again = hub.migrate()
        assert again.planned == [] and again.skipped == 5


def test_a_failing_dry_run_changes_nothing(hub_root: Path) -> None:
    orgs = old_hub(hub_root, 4)
    with Hub(hub_root, peppers=peppers()) as hub:
        sabotage(hub, orgs[2])
        with pytest.raises(MigrationError, match=f"1 of 4 tenants.*{orgs[2]}"):
            hub.migrate()
        assert file_revisions(hub, orgs) == {OLD}
        assert hub.behind() == orgs
        assert hub.migration_status() == {}
        assert not [n for n in os.listdir(hub.root) if n.startswith("migrate-dry-run")]


def test_a_failing_canary_stops_the_run(hub_root: Path) -> None:
    orgs = old_hub(hub_root, 5)
    with Hub(hub_root, peppers=peppers()) as hub:
        sabotage(hub, orgs[1])
        report = hub.migrate(dry_run=False, canary=[orgs[0], orgs[1]])
        assert report.stopped == "a canary tenant failed"
        assert list(report.failed) == [orgs[1]] and report.migrated == [orgs[0]]
        assert hub.behind() == [o for o in orgs if o != orgs[0]]
        assert hub.migration_status() == {"done": 1, "failed": 1, "pending": 3}
        err = hub.system.fetchone("SELECT error FROM tenant_migrations WHERE org_id = ?",
                                  (orgs[1],))[0]
        assert "relay_receipts" in err


def test_dry_run_only_and_dry_run_of_a_live_tenant(hub_root: Path) -> None:
    orgs = old_hub(hub_root, 3)
    with Hub(hub_root, peppers=peppers(), migrate_on_open=False) as hub:
        report = hub.migrate(apply=False)
        assert report.migrated == [] and report.dry_run_s > 0
        assert hub.behind() == orgs and file_revisions(hub, orgs) == {OLD}


def test_one_run_at_a_time(hub_root: Path) -> None:
    old_hub(hub_root, 1)
    with Hub(hub_root, peppers=peppers()) as hub:
        fd = os.open(os.path.join(hub.root, ".migrate.lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with pytest.raises(MigrationError, match="another tenant migration"):
                hub.migrate()
        finally:
            os.close(fd)


def test_worker_processes(hub_root: Path) -> None:
    orgs = old_hub(hub_root, 12)
    with Hub(hub_root, peppers=peppers()) as hub:
        sabotage(hub, orgs[5])
        report = hub.migrate(dry_run=False, processes=2)
        assert list(report.failed) == [orgs[5]]
        assert hub.behind() == [orgs[5]]
        workers = {r[0] for r in hub.system.fetchall(
            "SELECT worker FROM tenant_migrations WHERE status = 'done'")}
        assert str(os.getpid()) not in workers and len(workers) >= 1


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {helpers!r})
    from tenancy_helpers import peppers
    import alkdev_storage.tenancy.migrations as m
    from alkdev_storage.tenancy import Hub
    real = m.migrate
    def slow(*a, **k):
        time.sleep(0.05)
        return real(*a, **k)
    m.migrate = slow
    hub = Hub({root!r}, peppers=peppers())
    print("READY", flush=True)
    hub.migrate(dry_run=False)
""")


def test_a_killed_run_resumes_without_redoing_finished_tenants(hub_root: Path) -> None:
    orgs = old_hub(hub_root, 30)
    code = CHILD.format(helpers=str(Path(__file__).parent), root=str(hub_root))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    time.sleep(0.6)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with Hub(hub_root, peppers=peppers()) as hub:
        status = hub.migration_status()
        done_before = status.get("done", 0)
        assert 0 < done_before < 30, status
        report = hub.migrate(dry_run=False)
        assert len(report.planned) == 30 - done_before
        assert hub.behind() == [] and file_revisions(hub, orgs) == {HEAD}
        attempts = [r[0] for r in hub.system.fetchall("SELECT attempts FROM tenant_migrations")]
        assert attempts.count(1) >= 29 and max(attempts) <= 2
