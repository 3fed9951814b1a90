"""Locks (LockHeld, renew returning False once stolen) and rate limits."""

from __future__ import annotations

import asyncio

import pytest

from alkdev_storage.primitives import Lock, LockHeld


def test_lock_context_manager_and_lock_held(db) -> None:  # type: ignore[no-untyped-def]
    with db.lock("nightly", ttl=30) as lk:
        assert isinstance(lk, Lock) and lk.acquired and lk.is_held()
        assert lk.ttl == 30 and len(lk.owner) == 32
        with pytest.raises(LockHeld, match="nightly"):
            with db.lock("nightly"):
                pass
        with db.lock("other"):
            pass
    assert not lk.acquired
    with db.lock("nightly", owner="me") as again:
        assert again.owner == "me"
    assert db.fetchone("SELECT COUNT(*) FROM _honker_locks")[0] == 0


def test_same_owner_reacquires(db) -> None:  # type: ignore[no-untyped-def]
    a = db.lock("x", owner="host-1")
    assert a.acquire()
    assert db.lock("x", owner="host-1").acquire()  # same owner
    assert not db.lock("x", owner="host-2").acquire()
    assert a.release() and not a.release()


def test_renew_and_leadership_lost(db) -> None:  # type: ignore[no-untyped-def]
    lk = db.lock("leader", ttl=5)
    with lk:
        assert lk.renew() is True
        assert lk.renew(ttl=120) is True
        exp = db.fetchone(
            "SELECT expires_at - unixepoch() FROM _honker_locks WHERE name = 'leader'"
        )[0]
        assert 118 <= exp <= 120
        # The lock expires and another owner takes it.
        db.execute("UPDATE _honker_locks SET expires_at = unixepoch() - 1 WHERE name = 'leader'")
        assert not lk.is_held()
        thief = db.lock("leader", ttl=60)
        assert thief.acquire()
        assert lk.renew() is False  # as honker: False once stolen
        assert not lk.acquired
    # leaving the block did not release the thief's lock
    assert thief.is_held()
    thief.release()
    assert db.lock("never-taken").renew() is False


def test_expired_lock_can_be_taken(db) -> None:  # type: ignore[no-untyped-def]
    a = db.lock("ttl", ttl=1, owner="a")
    assert a.acquire()
    db.execute("UPDATE _honker_locks SET expires_at = unixepoch() WHERE name = 'ttl'")
    assert db.lock("ttl", owner="b").acquire()


def test_async_with_lock(db) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with db.lock("alock") as lk:
            assert lk.is_held()
            with pytest.raises(LockHeld):
                async with db.lock("alock"):
                    pass
        assert not lk.is_held()

    asyncio.run(main())


def test_lock_validation(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        db.lock("")
    with pytest.raises(TypeError):
        db.lock(1)
    with pytest.raises(ValueError, match="ttl"):
        db.lock("x", ttl=0)
    with pytest.raises(ValueError):
        db.lock("x").renew(ttl=-1)


def test_rate_limit(db) -> None:  # type: ignore[no-untyped-def]
    results = [db.try_rate_limit("api", limit=3, per=3600) for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert db.try_rate_limit("other-api", 1, 3600) is True
    count = db.fetchone("SELECT count FROM _honker_rate_limits WHERE name = 'api'")[0]
    assert count == 3  # refused calls are not recorded
    with pytest.raises(ValueError, match="positive"):
        db.try_rate_limit("api", 0, 60)
    with pytest.raises(ValueError):
        db.try_rate_limit("api", 1, -1)
    with pytest.raises(ValueError):
        db.try_rate_limit("", 1, 1)
    assert db.sweep_rate_limits() == 0
    db.execute("UPDATE _honker_rate_limits SET window_start = window_start - 10000")
    assert db.sweep_rate_limits(older_than_s=3600) == 2
    assert db.try_rate_limit("api", 3, 3600) is True
