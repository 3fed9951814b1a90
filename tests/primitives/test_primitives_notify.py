"""notify / listen / update_events / prune_notifications, sync and async."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from primitives_helpers import finish, spawn

import alkdev_storage
from alkdev_storage.primitives import Listener, Notification


def count_notifications(db, channel):  # type: ignore[no-untyped-def]
    sql = "SELECT COUNT(*) FROM _honker_notifications WHERE channel = ?"
    return db.fetchone(sql, (channel,))[0]


def test_notify_returns_id_and_listener_sees_only_new(db) -> None:  # type: ignore[no-untyped-def]
    first = db.notify("orders", {"id": 1})
    assert isinstance(first, int) and first > 0
    listener = db.listen("orders")
    assert isinstance(listener, Listener)
    assert listener.get(0) is None  # history is not replayed
    second = db.notify("orders", {"id": 2})
    db.notify("other", "x")
    n = listener.get(1)
    assert isinstance(n, Notification)
    assert (n.id, n.channel, n.payload) == (second, "orders", {"id": 2})
    assert isinstance(n.created_at, int) and n.created_at > 0
    assert listener.get(0) is None
    assert "orders" in repr(n)


def test_payload_decoding(db) -> None:  # type: ignore[no-untyped-def]
    listener = db.listen("p")
    for payload in [None, "text", 0, [1, "a"], {"nested": {"x": 1.5}}, True]:
        db.notify("p", payload)
    got = [listener.get(1).payload for _ in range(6)]
    assert got == [None, "text", 0, [1, "a"], {"nested": {"x": 1.5}}, True]
    # A raw non-JSON payload written by plain SQL comes back as the string.
    with db.transaction() as tx:
        tx.execute("SELECT notify('p', 'not json')")
    assert listener.get(1).payload == "not json"


def test_tx_notify_only_on_commit(db) -> None:  # type: ignore[no-untyped-def]
    listener = db.listen("tx")
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.notify("tx", {"rolled": "back"})
            raise RuntimeError("boom")
    assert listener.get(0.05) is None
    assert count_notifications(db, "tx") == 0
    with db.transaction() as tx:
        tx.notify("tx", {"kept": 1})
        assert listener.get(0) is None  # not visible before commit
    assert listener.get(1).payload == {"kept": 1}


def test_validation_writes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="JSON"):
        db.notify("v", object())
    with pytest.raises(TypeError):
        db.notify("v", {"nan": float("nan")})
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(TypeError):
        db.notify("v", circular)
    with pytest.raises(ValueError, match="channel"):
        db.notify("", 1)
    with pytest.raises(TypeError, match="channel"):
        db.notify(5, 1)
    with pytest.raises(ValueError):
        db.listen("")
    with pytest.raises(TypeError):
        db.listen(None)
    assert count_notifications(db, "v") == 0


def test_blocking_iteration_with_timeout_and_thread(db) -> None:  # type: ignore[no-untyped-def]
    listener = db.listen("b", timeout=2)

    def publish() -> None:
        for i in range(3):
            time.sleep(0.02)
            db.notify("b", i)

    t = threading.Thread(target=publish)
    t.start()
    got = []
    for n in listener:
        got.append(n.payload)
        if len(got) == 3:
            break
    t.join()
    assert got == [0, 1, 2]
    # Idle timeout ends the iteration.
    assert list(db.listen("b", timeout=0.1)) == []


def test_async_listen(db) -> None:  # type: ignore[no-untyped-def]
    async def main() -> list[object]:
        listener = db.listen("a")

        async def publish() -> None:
            for i in range(5):
                await asyncio.sleep(0.01)
                db.notify("a", {"i": i})

        task = asyncio.create_task(publish())
        got = []
        async for n in listener:
            got.append(n.payload["i"])
            if len(got) == 5:
                break
        await task
        assert await listener.aget(0.05) is None
        return got

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_many_async_listeners_share_one_bridge_thread(db) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        listeners = [db.listen("many") for _ in range(50)]

        async def first(lst: Listener) -> object:
            return (await lst.__anext__()).payload

        tasks = [asyncio.create_task(first(lst)) for lst in listeners]
        await asyncio.sleep(0.05)
        db.notify("many", "go")
        assert await asyncio.wait_for(asyncio.gather(*tasks), 5) == ["go"] * 50

    before = threading.active_count()
    asyncio.run(main())
    # one bridge thread for the Database, however many listeners
    assert threading.active_count() - before <= 1
    assert db.wake_hub().running


def test_async_listener_close_from_other_task(db) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        listener = db.listen("c")

        async def consume() -> list[object]:
            return [n async for n in listener]

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        listener.close()
        assert await asyncio.wait_for(task, 5) == []
        assert listener.closed

    asyncio.run(main())


def test_close_database_ends_iterators(db_path) -> None:  # type: ignore[no-untyped-def]
    db = alkdev_storage.open(db_path)
    sync_listener = db.listen("z")
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(list(sync_listener)))
    t.start()

    async def main() -> None:
        async_listener = db.listen("z")
        updates = db.update_events()

        async def consume() -> list[object]:
            return [n async for n in async_listener]

        async def ticks() -> list[object]:
            return [u async for u in updates]

        tasks = [asyncio.create_task(consume()), asyncio.create_task(ticks())]
        await asyncio.sleep(0.1)
        db.close()
        done = await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert done[0] == []

    asyncio.run(main())
    t.join(5)
    assert not t.is_alive()
    assert result == [[]]
    assert not db.wake_hub().running
    assert sync_listener.get(0) is None


def test_update_events_sync_and_async(db) -> None:  # type: ignore[no-untyped-def]
    ev = db.update_events()
    db.notify("u", 1)  # a commit before the first wait is not lost
    assert next(ev) is None
    assert ev.wait(0.05) is False

    async def main() -> None:
        ev2 = db.update_events()
        db.notify("u", 2)
        assert await asyncio.wait_for(ev2.__anext__(), 2) is None

        async def later() -> None:
            await asyncio.sleep(0.02)
            db.notify("u", 3)

        t = asyncio.create_task(later())
        assert await asyncio.wait_for(ev2.__anext__(), 2) is None
        await t
        ev2.close()
        with pytest.raises(StopAsyncIteration):
            await ev2.__anext__()

    asyncio.run(main())
    ev.close()
    assert list(ev) == []


def test_prune_notifications(db) -> None:  # type: ignore[no-untyped-def]
    ids = [db.notify("prune", i) for i in range(10)]
    assert db.prune_notifications() == 0
    assert db.prune_notifications(max_keep=3) == 7
    left = [r[0] for r in db.fetchall("SELECT id FROM _honker_notifications ORDER BY id")]
    assert left == ids[-3:]
    assert db.prune_notifications(max_keep=100) == 0
    assert db.prune_notifications(older_than_s=3600) == 0
    db.execute(
        "UPDATE _honker_notifications SET created_at = created_at - 7200 WHERE id = ?", (ids[-3],)
    )
    assert db.prune_notifications(older_than_s=3600) == 1
    assert db.prune_notifications(older_than_s=0, max_keep=0) == 2


def test_cross_process_listener_wakes(db, db_path) -> None:  # type: ignore[no-untyped-def]
    listener = db.listen("xp")

    async def main() -> list[object]:
        child = spawn("notify", db_path, "xp", 3, 0.2)
        got = []
        async for n in listener:
            got.append(n.payload["i"])
            if len(got) == 3:
                break
        finish(child)
        return got

    assert asyncio.run(asyncio.wait_for(main(), 30)) == [0, 1, 2]
    blocking = db.listen("xp")
    child = spawn("notify", db_path, "xp", 2, 0.2)
    got = [blocking.get(20).payload["i"], blocking.get(20).payload["i"]]
    finish(child)
    assert got == [0, 1]
