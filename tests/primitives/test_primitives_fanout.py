"""Listener fan-out (docs/0014): one read per commit for every listener of a
Database, demultiplexed by channel into bounded buffers."""

from __future__ import annotations

import asyncio
import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alkdev_storage
from alkdev_storage.primitives.fanout import fanout_of


def test_one_read_per_commit_for_many_channels(db) -> None:  # type: ignore[no-untyped-def]
    n = 300
    listeners = [db.listen(f"topic:{i}") for i in range(n)]
    fan = fanout_of(db)
    assert fan.listener_count() == n
    before = fan.queries
    nid = db.notify("topic:7", {"k": 7})
    got = listeners[7].get(5)
    assert got is not None and (got.id, got.payload) == (nid, {"k": 7})
    assert fan.queries - before == 1
    # Nobody else has anything, and asking costs no query.
    assert all(lst.get(0) is None for lst in listeners)
    assert fan.queries - before == 1
    # One commit to every channel: one read, every listener fed.
    before = fan.queries
    with db.transaction() as tx:
        for i in range(n):
            tx.notify(f"topic:{i}", i)
    assert [lst.get(5).payload for lst in listeners] == list(range(n))
    assert fan.queries - before == 1
    for lst in listeners:
        lst.close()
    assert fan.listener_count() == 0 and fan.floor() is None


def test_blocking_threads_share_reads(db) -> None:  # type: ignore[no-untyped-def]
    n = 40
    listeners = [db.listen(f"c{i}", timeout=10) for i in range(n)]
    fan = fanout_of(db)
    results: dict[int, list[object]] = {}

    def consume(i: int) -> None:
        results[i] = [listeners[i].get(10).payload for _ in range(3)]

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    before = fan.queries
    for k in range(3):
        with db.transaction() as tx:
            for i in range(n):
                tx.notify(f"c{i}", [i, k])
        time.sleep(0.05)
    for t in threads:
        t.join(20)
    assert results == {i: [[i, 0], [i, 1], [i, 2]] for i in range(n)}
    # One read (one query) per commit, not per listener.
    assert fan.queries - before <= 3 + 1


def test_async_listeners_share_reads(db) -> None:  # type: ignore[no-untyped-def]
    n = 200

    async def main() -> int:
        listeners = [db.listen(f"a:{i}") for i in range(n)]
        fan = fanout_of(db)

        async def first(i: int) -> object:
            return (await listeners[i].__anext__()).payload

        tasks = [asyncio.create_task(first(i)) for i in range(n)]
        await asyncio.sleep(0.1)
        before = fan.queries
        with db.transaction() as tx:
            for i in range(n):
                tx.notify(f"a:{i}", i)
        assert await asyncio.wait_for(asyncio.gather(*tasks), 10) == list(range(n))
        return fan.queries - before

    assert asyncio.run(main()) <= 2


def test_overflow_drops_oldest_and_counts(db) -> None:  # type: ignore[no-untyped-def]
    slow = db.listen("o", max_buffered=3)
    fast = db.listen("o")
    ids = [db.notify("o", i) for i in range(10)]
    assert [slow.get(5).payload for _ in range(3)] == [7, 8, 9]
    assert slow.get(0) is None
    assert slow.dropped == 7
    assert [fast.get(5).id for _ in range(10)] == ids
    assert fast.dropped == 0
    assert "dropped=7" in repr(slow)


def test_bad_max_buffered(db) -> None:  # type: ignore[no-untyped-def]
    import pytest

    with pytest.raises(ValueError, match="max_buffered"):
        db.listen("x", max_buffered=0)
    with pytest.raises(TypeError, match="max_buffered"):
        db.listen("x", max_buffered="3")
    assert fanout_of(db).listener_count() == 0


def test_closing_the_leader_hands_over(db) -> None:  # type: ignore[no-untyped-def]
    a = db.listen("lead")
    b = db.listen("lead")
    got: list[object] = []
    ta = threading.Thread(target=lambda: got.append(list(a)))
    ta.start()
    time.sleep(0.1)  # a leads (waits on the shared subscription)
    tb_got: list[object] = []
    tb = threading.Thread(target=lambda: tb_got.append(b.get(10)))
    tb.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    a.close()
    ta.join(5)
    assert not ta.is_alive() and got == [[]]
    assert time.monotonic() - t0 < 1.0
    nid = db.notify("lead", "after")
    tb.join(10)
    assert tb_got and tb_got[0] is not None and tb_got[0].id == nid


def test_dropped_listener_stops_receiving(db) -> None:  # type: ignore[no-untyped-def]
    import gc

    lst = db.listen("gc")
    del lst
    gc.collect()
    assert fanout_of(db).listener_count() == 0
    keep = db.listen("gc")
    db.notify("gc", 1)
    assert keep.get(5).payload == 1


def test_separate_databases_have_separate_fanouts(db, db_path) -> None:  # type: ignore[no-untyped-def]
    other = alkdev_storage.open(db_path)
    try:
        a = db.listen("s")
        b = other.listen("s")
        nid = db.notify("s", 1)
        assert a.get(5).id == nid and b.get(5).id == nid
        assert fanout_of(db) is not fanout_of(other)
    finally:
        other.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 99)), max_size=8),
        min_size=1,
        max_size=6,
    ),
    listened=st.sets(st.sampled_from("abcde"), min_size=1),
)
def test_delivery_matches_table(db, batches, listened) -> None:  # type: ignore[no-untyped-def]
    listeners = {c: db.listen(c) for c in sorted(listened)}
    try:
        for batch in batches:
            with db.transaction() as tx:
                for channel, value in batch:
                    tx.notify(channel, value)
        for c, lst in listeners.items():
            expected = db.fetchall(
                "SELECT id, payload FROM _honker_notifications WHERE channel = ? AND id > ? "
                "ORDER BY id",
                (c, lst.last_seen),
            )
            got = []
            while (n := lst.get(0.3 if len(got) < len(expected) else 0)) is not None:
                got.append((n.id, n.payload))
            assert got == [(i, int(p)) for i, p in expected]
    finally:
        for lst in listeners.values():
            lst.close()


def test_sync_and_async_listeners_on_two_loops(db) -> None:  # type: ignore[no-untyped-def]
    n = 3
    results: dict[str, list[object]] = {}

    def loop_thread(tag: str) -> None:
        async def main() -> None:
            listeners = [db.listen(f"{tag}:{i}") for i in range(4)]

            async def take(lst: object) -> list[object]:
                return [(await lst.aget(10)).payload for _ in range(n)]  # type: ignore[attr-defined]

            got = await asyncio.gather(*(take(lst) for lst in listeners))
            results[tag] = got

        asyncio.run(main())

    def sync_thread() -> None:
        lst = db.listen("s:0")
        results["sync"] = [lst.get(10).payload for _ in range(n)]

    threads = [
        threading.Thread(target=loop_thread, args=("x",)),
        threading.Thread(target=loop_thread, args=("y",)),
        threading.Thread(target=sync_thread),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while fanout_of(db).listener_count() < 9 and time.monotonic() < deadline:
        time.sleep(0.01)
    for k in range(n):
        with db.transaction() as tx:
            for tag in ("x", "y"):
                for i in range(4):
                    tx.notify(f"{tag}:{i}", k)
            tx.notify("s:0", k)
        time.sleep(0.02)
    for t in threads:
        t.join(20)
    assert results == {"x": [[0, 1, 2]] * 4, "y": [[0, 1, 2]] * 4, "sync": [0, 1, 2]}
