"""The tenant handle cache: one Database per tenant across threads, bounds
by count and file descriptors, idle close, and no handle closed under a
running transaction."""

from __future__ import annotations

import threading
import time

import pytest

from alkdev_storage.errors import InterfaceError, TenantBehind
from alkdev_storage.schema import revisions
from alkdev_storage.tenancy import Hub
from alkdev_storage.tenancy.handles import HandleCache


def make_orgs(hub: Hub, owner: str, n: int) -> list[str]:
    return [hub.create_organization(f"org-{i:03d}", "x", owner) for i in range(n)]


def test_threads_asking_for_one_tenant_get_one_database(hub: Hub, org: str) -> None:
    barrier = threading.Barrier(8)
    got: list[object] = []
    leases = []
    lock = threading.Lock()

    def ask() -> None:
        barrier.wait()
        lease = hub.tenant(org)
        with lock:
            got.append(lease.db)
            leases.append(lease)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(d) for d in got}) == 1
    assert hub.handles.stats()["opens"] == 1
    assert hub.handles.leases(org) == 8
    for lease in leases:
        lease.release()
    assert hub.handles.leases(org) == 0


def test_count_bound_evicts_least_recently_used_idle_handles(hub_root, owner_hub) -> None:  # type: ignore[no-untyped-def]
    hub, owner = owner_hub
    orgs = make_orgs(hub, owner, 5)
    dbs = []
    for org in orgs:
        with hub.tenant(org) as db:
            dbs.append(db)
    assert hub.handles.stats()["open"] == 3
    assert [d.closed for d in dbs] == [True, True, False, False, False]
    with hub.tenant(orgs[2]):
        pass  # most recently used now
    with hub.tenant(orgs[0]):
        pass
    assert dbs[2].closed is False and dbs[3].closed is True


@pytest.fixture
def owner_hub(hub_root):  # type: ignore[no-untyped-def]
    from tenancy_helpers import peppers

    h = Hub(hub_root, peppers=peppers(), max_open=3, idle_ttl=3600)
    try:
        yield h, h.create_account("o@example.com")
    finally:
        h.close()


def test_fd_budget_bounds_open_handles(hub_root) -> None:  # type: ignore[no-untyped-def]
    from tenancy_helpers import peppers

    with Hub(hub_root, peppers=peppers(), max_open=100, fd_budget=12) as hub:
        owner = hub.create_account("o@example.com")
        for org in make_orgs(hub, owner, 6):
            with hub.tenant(org):
                pass
        stats = hub.handles.stats()
        # 3 fds each (writer: db + wal; shm): 4 fit in 12; a reader would add 2
        assert stats["fds"] <= 12 and stats["open"] == 4


def test_a_leased_handle_is_not_closed_under_a_running_transaction(owner_hub) -> None:  # type: ignore[no-untyped-def]
    hub, owner = owner_hub
    orgs = make_orgs(hub, owner, 5)
    with hub.tenant(orgs[0]) as db:
        db.execute("CREATE TABLE t(v)")
    started, proceed = threading.Event(), threading.Event()

    def long_transaction() -> None:
        with hub.tenant(orgs[0]) as db, db.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (1)")
            started.set()
            proceed.wait(10)
            tx.execute("INSERT INTO t VALUES (2)")

    t = threading.Thread(target=long_transaction)
    t.start()
    started.wait(10)
    for org in orgs[1:]:  # push orgs[0] out of the LRU
        with hub.tenant(org):
            pass
    assert hub.handles.evict(orgs[0]) is False  # leased: closes later
    proceed.set()
    t.join()
    with hub.tenant(orgs[0]) as db:
        assert db.fetchall("SELECT v FROM t ORDER BY v") == [(1,), (2,)]


def test_idle_handles_close_after_the_ttl(hub_root) -> None:  # type: ignore[no-untyped-def]
    from tenancy_helpers import peppers

    with Hub(hub_root, peppers=peppers(), idle_ttl=0.2) as hub:
        owner = hub.create_account("o@example.com")
        org = hub.create_organization("acme", "Acme", owner)
        with hub.tenant(org) as db:
            pass
        lease = hub.tenant(org)  # a held lease is never swept
        time.sleep(0.5)
        assert not db.closed
        lease.release()
        deadline = time.monotonic() + 5
        while not db.closed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.closed
        assert hub.handles.stats()["open"] == 0


def test_cache_checks_its_options_and_refuses_after_close() -> None:
    with pytest.raises(ValueError, match="max_open"):
        HandleCache(lambda k: None, max_open=0)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="idle_ttl"):
        HandleCache(lambda k: None, idle_ttl=0)  # type: ignore[arg-type,return-value]
    cache = HandleCache(lambda k: None)  # type: ignore[arg-type,return-value]
    cache.close()
    with pytest.raises(InterfaceError, match="closed"):
        cache.lease("x")


def test_an_open_error_reaches_every_waiter_and_is_not_cached() -> None:
    calls = []

    def opener(key: str):  # type: ignore[no-untyped-def]
        calls.append(key)
        time.sleep(0.1)
        raise OSError("disk on fire")

    cache = HandleCache(opener)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            cache.lease("k")
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4 and calls == ["k"]
    with pytest.raises(OSError):
        cache.lease("k")
    assert calls == ["k", "k"]
    cache.close()


def test_a_tenant_behind_the_head_raises_unless_migrated_on_open(hub_root) -> None:  # type: ignore[no-untyped-def]
    from tenancy_helpers import peppers

    old = revisions("tenant")[-2]
    with Hub(hub_root, peppers=peppers(), tenant_revision=old) as hub:
        owner = hub.create_account("o@example.com")
        org = hub.create_organization("acme", "Acme", owner)
        assert hub.tenants()[0]["schema_revision"] == old
        with pytest.raises(TenantBehind, match=r"hub\.migrate"):
            hub.tenant(org)
    with Hub(hub_root, peppers=peppers(), migrate_on_open=True) as hub:
        with hub.tenant(org) as db:
            assert db.fetchone("SELECT version_num FROM alembic_version") == (hub.head,)
        assert hub.tenants()[0]["schema_revision"] == hub.head


def test_a_tenant_from_a_newer_package_is_refused_by_name(hub: Hub, org: str) -> None:
    from alkdev_storage.errors import TenantUnavailable

    with hub.privileged(org) as db:
        db.execute("UPDATE alembic_version SET version_num = 'tenant_9999'")
    hub.handles.evict(org)
    with pytest.raises(TenantUnavailable, match="unknown to this package"):
        hub.tenant(org)
