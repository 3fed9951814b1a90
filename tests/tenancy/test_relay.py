"""Cross-tenant delegation (OQ-28): outbox in A's transaction, idempotent
relay into B, reconciliation, convergence after kills at random points."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tenancy_helpers import peppers

from alkdev_storage.errors import ScopeViolation, ValidationFailed
from alkdev_storage.tenancy import Hub
from alkdev_storage.tenancy.relay import RELAY_QUEUE


@pytest.fixture
def world(hub: Hub) -> tuple[Hub, str, str, str, str]:
    ada = hub.create_account("ada@example.com")
    bob = hub.create_account("bob@example.com")
    a = hub.create_organization("org-a", "A", ada)
    b = hub.create_organization("org-b", "B", bob)
    return hub, ada, bob, a, b


def expected_vs_mirrors(hub: Hub) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    want: dict[str, tuple[str, ...]] = {}
    have: dict[str, tuple[str, ...]] = {}
    for t in hub.tenants("ready"):
        for d in hub.relay.cross_delegations(t["org_id"]):
            want[f"{d.target_org}|{d.source_org}:{d.key}"] = d.scopes
        for ref, (scopes, _) in hub.relay.mirrors(t["org_id"]).items():
            have[f"{t['org_id']}|{ref}"] = scopes
    return want, have


def test_grant_and_revoke_are_relayed(world) -> None:  # type: ignore[no-untyped-def]
    hub, ada, bob, a, b = world
    key = hub.delegate_across(ada, a, bob, b, ["graphs:read", "graphs:write"])
    want, have = expected_vs_mirrors(hub)
    assert want == have == {f"{b}|{a}:{key}": ("graphs:read", "graphs:write")}
    with hub.tenant(a) as db:
        assert db.fetchone("SELECT count(*) FROM _honker_live WHERE queue = ?",
                           (RELAY_QUEUE,)) == (0,)
    with hub.tenant(b) as db:
        assert db.fetchall("SELECT dedupe_key FROM relay_receipts") == [(f"grant:{key}",)]
    hub.revoke_across(a, key)
    assert expected_vs_mirrors(hub) == ({}, {})


def test_the_outbox_commits_with_the_edge(world) -> None:  # type: ignore[no-untyped-def]
    hub, ada, bob, a, b = world
    key = hub.relay.delegate(ada, a, bob, b, ["x:y"], deliver=False)
    assert hub.relay.mirrors(b) == {}
    with hub.tenant(a) as db:
        jobs = db.fetchall("SELECT payload FROM _honker_live WHERE queue = ?", (RELAY_QUEUE,))
        assert len(jobs) == 1 and key in jobs[0][0]
    assert hub.relay.run_once([a]) == 1
    assert set(hub.relay.mirrors(b)) == {f"{a}:{key}"}


def test_delivering_twice_applies_once(world) -> None:  # type: ignore[no-untyped-def]
    hub, ada, bob, a, b = world
    key = hub.relay.delegate(ada, a, bob, b, ["x:y"], deliver=False)
    job = {"op": "grant", "key": key, "source_org": a, "target_org": b, "from_account": ada,
           "to_account": bob, "scopes": ["x:y"], "expires_at": None}
    assert hub.relay.apply(job) == "applied"
    assert hub.relay.apply(job) == "duplicate"
    assert hub.relay.run_once([a]) == 1  # the queued copy: deduped
    with hub.tenant(b) as db:
        assert db.fetchone("SELECT count(*) FROM edges WHERE type = 'delegates_to'") == (1,)


def test_reconcile_repairs_missing_changed_and_stale_mirrors(world) -> None:  # type: ignore[no-untyped-def]
    hub, ada, bob, a, b = world
    k1 = hub.relay.delegate(ada, a, bob, b, ["one"], deliver=False)
    with hub.tenant(a) as db:  # k1's job is lost (e.g. held by a dead relay's claim)
        db.execute("DELETE FROM _honker_live WHERE queue = ?", (RELAY_QUEUE,))
    k2 = hub.delegate_across(ada, a, bob, b, ["two"])
    hub.relay.apply({"op": "grant", "key": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "source_org": a,
                     "target_org": b, "from_account": ada, "to_account": bob,
                     "scopes": ["stale"], "expires_at": None})
    want, have = expected_vs_mirrors(hub)
    assert want != have
    counts = hub.relay.reconcile()
    assert counts == {"added": 1, "updated": 0, "removed": 1}
    want, have = expected_vs_mirrors(hub)
    assert want == have and set(want) == {f"{b}|{a}:{k1}", f"{b}|{a}:{k2}"}
    assert hub.relay.reconcile() == {"added": 0, "updated": 0, "removed": 0}


def test_refusals(world) -> None:  # type: ignore[no-untyped-def]
    hub, ada, _bob, a, b = world
    with pytest.raises(ScopeViolation):
        hub.delegate_across(ada, a, ada, b, ["x"])  # ada is not in b
    with pytest.raises(ValidationFailed, match="target_org"):
        hub.delegate_across(ada, a, ada, a, ["x"])
    assert expected_vs_mirrors(hub) == ({}, {})


CHILD = textwrap.dedent("""
    import random, sys
    sys.path.insert(0, {helpers!r})
    from tenancy_helpers import peppers
    from alkdev_storage.tenancy import Hub
    hub = Hub({root!r}, peppers=peppers())
    accounts = dict(hub.system.fetchall(
        "SELECT org_id, account_id FROM organization_memberships"))
    orgs = sorted(accounts)
    rng = random.Random({seed})
    print("READY", flush=True)
    keys = []
    while True:
        a, b = rng.sample(orgs, 2)
        if keys and rng.random() < 0.3:
            src, key = keys.pop(rng.randrange(len(keys)))
            try:
                hub.revoke_across(src, key)
            except Exception:
                pass
        else:
            keys.append((a, hub.delegate_across(accounts[a], a, accounts[b], b,
                                                [rng.choice(["r", "w", "x"])])))
""")


def test_kills_at_random_points_converge(hub_root: Path) -> None:
    with Hub(hub_root, peppers=peppers()) as hub:
        for i in range(3):
            acc = hub.create_account(f"u{i}@example.com")
            hub.create_organization(f"org-{i}", "x", acc)
    rng = random.Random(7)
    for round_ in range(3):
        code = CHILD.format(helpers=str(Path(__file__).parent), root=str(hub_root), seed=round_)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.2, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    with Hub(hub_root, peppers=peppers()) as hub:
        hub.relay.run_once()
        hub.relay.reconcile()
        want, have = expected_vs_mirrors(hub)
        assert want == have
        assert len(want) > 0
        assert hub.relay.reconcile() == {"added": 0, "updated": 0, "removed": 0}
