"""Per-tenant stats, checkpoint/vacuum maintenance, and the system and
tenant queue workers."""

from __future__ import annotations

import time
from datetime import timedelta

from alkdev_storage.domain import GraphStore, Principal, catalog
from alkdev_storage.errors import AuthenticationFailed
from alkdev_storage.schema import utcnow
from alkdev_storage.tenancy import Hub


def test_stats_report_sizes_queues_dead_letters_and_lag(hub: Hub, org: str) -> None:
    with hub.tenant(org) as db:
        catalog.enqueue(db, catalog.ACL_EVALUATION, {"principal_id": "p1"})
        catalog.enqueue(db, catalog.GRAPH_MAINTENANCE, {"task": "archive"})  # no graph_id
        s = db.stream("call-protocol")
        for i in range(5):
            catalog.publish(db, catalog.CALL_PROTOCOL, {
                "type": "call.requested", "call_id": f"c{i}", "operation_id": "op"})
        s.save_offset("projector", 2)
    st = hub.stats(org)
    assert st["file_bytes"] > 0
    assert st["queues"]["acl-evaluation"]["pending"] == 1
    assert st["streams"]["call-protocol"]["head"] >= 5
    assert st["streams"]["call-protocol"]["consumers"] == {
        "projector": st["streams"]["call-protocol"]["head"] - 2}
    assert hub.work_once() == {"done": 0, "failed": 1}  # archive without graph_id
    st = hub.stats(org)
    assert st["dead"] == 1 and st["queues"]["graph-maintenance"]["dead"] == 1
    assert st["queues"]["acl-evaluation"]["pending"] == 1  # left to the ACL evaluator


def test_maintain_checkpoints_and_vacuums_when_worth_it(hub: Hub, org: str) -> None:
    with hub.tenant(org) as db:
        db.execute("CREATE TABLE junk(b BLOB)")
        db.executemany("INSERT INTO junk VALUES (?)", [(b"x" * 4000,)] * 300)
        db.execute("DELETE FROM junk")
    st = hub.stats(org)
    before = st["file_bytes"] + st["wal_bytes"]
    done = hub.maintain(org, wal_limit=0)
    assert done["truncated"] and done["vacuumed"]
    st = hub.stats(org)
    assert st["wal_bytes"] == 0
    assert st["file_bytes"] < before
    again = hub.maintain(org)
    assert not again["vacuumed"]


def test_background_maintenance_walks_the_registry(hub: Hub, owner: str) -> None:
    orgs = [hub.create_organization(f"org-{i}", "x", owner) for i in range(5)]
    m = hub.start_maintenance(every_s=0.05, per_tick=2)
    deadline = time.monotonic() + 10
    while m.runs < len(orgs) and time.monotonic() < deadline:
        time.sleep(0.02)
    m.stop()
    assert m.runs >= len(orgs) and m.errors == []


def test_key_management_and_account_maintenance_workers(hub: Hub, owner: str, org: str) -> None:
    other = hub.create_account("other@example.com")
    hub.issue_key(owner, "old", expires_at=utcnow() - timedelta(days=40))
    live_id, live = hub.issue_key(owner, "live")
    catalog.enqueue(hub.system, catalog.KEY_MANAGEMENT, {"task": "cleanup_expired"})
    catalog.enqueue(hub.system, catalog.KEY_MANAGEMENT, {"task": "rotate", "key_id": live_id})
    assert hub.work_once() == {"done": 1, "failed": 1}
    ids = {r[0] for r in hub.system.fetchall("SELECT id FROM api_keys")}
    assert ids == {live_id}
    dead = hub.system.queue("key-management").dead()
    assert len(dead) == 1 and "reroll_key" in str(dead[0])
    catalog.enqueue(hub.system, catalog.ACCOUNT_MAINTENANCE,
                    {"task": "transfer_orgs", "account_id": owner, "target_account_id": other})
    catalog.enqueue(hub.system, catalog.ACCOUNT_MAINTENANCE,
                    {"task": "deactivate", "account_id": owner})
    assert hub.work_once()["done"] == 2
    assert hub.system.fetchone("SELECT owner_id FROM organizations WHERE id = ?",
                               (org,)) == (other,)
    assert hub.system.fetchone("SELECT status FROM accounts WHERE id = ?",
                               (owner,)) == ("suspended",)
    try:
        hub.authenticate(live)
        raise AssertionError("a deactivated account's key still works")
    except AuthenticationFailed:
        pass


def test_graph_maintenance_worker_archives_and_cleans_up(hub: Hub, org: str) -> None:
    with hub.tenant(org) as db, GraphStore(db, org, Principal.system()) as store:
        g = store.create_graph("call-graph", "old")
        keep = store.create_graph("call-graph", "keep")
        catalog.enqueue(db, catalog.GRAPH_MAINTENANCE, {"task": "archive", "graph_id": g.id})
    assert hub.work_once()["done"] == 1
    with hub.tenant(org) as db:
        assert db.fetchone("SELECT status FROM graphs WHERE id = ?", (g.id,)) == ("archived",)
        db.execute("UPDATE graphs SET updated_at = '2000-01-01T00:00:00.000Z' WHERE id = ?",
                   (g.id,))
        catalog.enqueue(db, catalog.GRAPH_MAINTENANCE,
                        {"task": "retention_cleanup", "older_than_days": 30})
        catalog.enqueue(db, catalog.SCHEMA_MIGRATION,
                        {"graph_type": "call-graph", "from_version": "1.0.0",
                         "to_version": "1.0.0"})
    assert hub.work_once()["done"] == 2
    with hub.tenant(org) as db:
        assert [r[0] for r in db.fetchall("SELECT id FROM graphs")] == [keep.id]


def test_secret_rotation_jobs_run_with_the_hubs_key_provider(hub_root) -> None:  # type: ignore[no-untyped-def]
    from tenancy_helpers import peppers

    from alkdev_storage.domain.rotation import start_rotation
    from alkdev_storage.domain.secrets import StaticKeyProvider

    keys = StaticKeyProvider({1: b"k" * 32, 2: b"K" * 32})
    with Hub(hub_root, peppers=peppers(), secret_keys=keys) as hub:
        owner = hub.create_account("o@example.com")
        org = hub.create_organization("acme", "Acme", owner)
        with hub.privileged(org) as db:
            start_rotation(db, org, keys)
        assert hub.stats(org)["queues"]["secret-rotation"]["pending"] == 1
        assert hub.work_once() == {"done": 1, "failed": 0}
        assert hub.stats(org)["queues"]["secret-rotation"]["pending"] == 0
