"""Stream fan-out (docs/0028): caught-up stream subscriptions of one
Database share one read of ``_honker_stream`` per commit, demultiplexed by
topic into bounded buffers; behind subscriptions read on their own; an
overflow sends a subscription back to its own reads without losing an
event."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alkdev_storage.primitives.stream_fanout import stream_fanout_of


def _join_all(subs: list[Any]) -> None:
    """Each subscription reads its (empty) backlog and joins the feed."""
    for s in subs:
        assert s.get(0) is None
    assert all(s.shared for s in subs)


def test_thousand_topics_one_publish_one_query(db) -> None:  # type: ignore[no-untyped-def]
    n = 1000
    subs = [db.stream(f"topic:{i}").subscribe() for i in range(n)]
    _join_all(subs)
    fan = stream_fanout_of(db)
    assert fan.member_count() == n
    before = fan.queries
    off = db.stream("topic:7").publish({"k": 7})
    got = subs[7].get(5)
    assert got is not None and (got.offset, got.topic, got.payload) == (off, "topic:7", {"k": 7})
    assert fan.queries - before == 1  # one read for a thousand subscribers
    assert all(s.buffered == 0 for s in subs)  # nobody else was fed anything
    # One commit to half the topics: still one read, every one of them fed.
    before = fan.queries
    with db.transaction() as tx:
        offs = [db.stream(f"topic:{i}").publish(i, tx=tx) for i in range(0, n, 2)]
    assert subs[0].get(5).payload == 0
    assert fan.queries - before == 1
    assert [subs[i].buffered for i in range(6)] == [0, 0, 1, 0, 1, 0]
    assert [(e.offset, e.payload) for e in (subs[i].get(5) for i in range(2, n, 2))] == list(
        zip(offs[1:], range(2, n, 2), strict=True)
    )
    # Others got nothing (asking, now, runs a read of its own: that is fine).
    assert all(subs[i].get(0) is None for i in range(1, n, 2))
    for s in subs:
        s.close()
    assert fan.member_count() == 0


def test_blocking_threads_share_reads(db) -> None:  # type: ignore[no-untyped-def]
    n = 40
    subs = [db.stream(f"b{i}").subscribe(timeout=10) for i in range(n)]
    _join_all(subs)
    fan = stream_fanout_of(db)
    results: dict[int, list[Any]] = {}

    def consume(i: int) -> None:
        results[i] = [subs[i].get(10).payload for _ in range(3)]

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    before = fan.queries
    for k in range(3):
        with db.transaction() as tx:
            for i in range(n):
                db.stream(f"b{i}").publish([i, k], tx=tx)
        time.sleep(0.05)
    for t in threads:
        t.join(20)
    assert results == {i: [[i, 0], [i, 1], [i, 2]] for i in range(n)}
    # One read per commit, not one per subscriber (+1: a coalesced tick).
    assert fan.queries - before <= 3 + 1


def test_async_subscribers_share_reads(db) -> None:  # type: ignore[no-untyped-def]
    n = 200

    async def main() -> int:
        subs = [db.stream(f"a:{i}").subscribe() for i in range(n)]
        _join_all(subs)
        fan = stream_fanout_of(db)

        async def first(i: int) -> Any:
            return (await subs[i].__anext__()).payload

        tasks = [asyncio.create_task(first(i)) for i in range(n)]
        await asyncio.sleep(0.1)
        before = fan.queries
        with db.transaction() as tx:
            for i in range(n):
                db.stream(f"a:{i}").publish(i, tx=tx)
        assert await asyncio.wait_for(asyncio.gather(*tasks), 10) == list(range(n))
        for s in subs:
            s.close()
        return fan.queries - before

    assert asyncio.run(main()) <= 2


def test_behind_subscriber_replays_alone_then_joins(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("h")
    with db.transaction() as tx:
        offs = [s.publish(i, tx=tx) for i in range(2500)]
    tail = s.subscribe(from_offset=offs[-1])
    assert tail.get(0) is None and tail.shared
    fan = stream_fanout_of(db)
    reads = fan.reads
    old = s.subscribe(from_offset=0)
    got = []
    for _ in range(2500):
        e = old.get(0)
        got.append(e.offset)
        if len(got) < 2001:
            assert not old.shared  # replaying: its own reads, the shared feed untouched
    assert got == offs and fan.reads == reads
    assert old.get(0) is None and old.shared
    new = s.publish("live")
    assert old.get(5).offset == new and tail.get(5).offset == new


def test_overflow_falls_back_without_loss(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("o")
    other = db.stream("p")
    slow = s.subscribe("slow", max_buffered=3, save_every_n=0, save_every_s=0)
    fast = s.subscribe()
    lead = other.subscribe()
    _join_all([slow, fast, lead])
    fan = stream_fanout_of(db)
    with db.transaction() as tx:
        offs = [s.publish(i, tx=tx) for i in range(10)]
    assert lead.get(0) is None  # runs the shared read: slow's buffer overflows
    assert slow.overflows == 1 and fan.overflows == 1 and not slow.shared
    assert fast.shared and fast.buffered == 10
    assert slow.buffered == 3  # kept, nothing dropped
    assert "overflows=1" in repr(slow)
    assert [slow.get(0).offset for _ in range(10)] == offs  # the rest read on its own
    assert slow.get(0) is None and slow.shared  # caught up: joined again
    assert [fast.get(0).offset for _ in range(10)] == offs
    more = s.publish("after")
    assert slow.get(5).offset == more and fast.get(5).offset == more
    slow.flush()
    assert s.get_offset("slow") == more


def test_durable_consumer_overflowing_while_blocked(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("d")
    sub = s.subscribe("worker", max_buffered=2, save_every_n=1, timeout=10)
    assert sub.get(0) is None and sub.shared
    got: list[int] = []
    done = threading.Event()

    def consume() -> None:
        for e in sub:
            got.append(e.payload)
            if len(got) == 50:
                break
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    for k in range(5):
        with db.transaction() as tx:
            for i in range(10):
                s.publish(k * 10 + i, tx=tx)
    t.join(20)
    assert done.is_set() and got == list(range(50))
    assert sub.overflows >= 1
    sub.close()
    assert s.get_offset("worker") == s.read()[-1].offset


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("pub"), st.integers(0, 2), st.integers(1, 6)),
            st.tuples(
                st.just("sub"),
                st.integers(0, 2),
                st.sampled_from(["end", "zero", "mid"]),
                st.sampled_from([1, 2, 4, 10_000]),
            ),
            st.tuples(st.just("read"), st.integers(0, 20), st.integers(1, 5)),
            st.tuples(st.just("close"), st.integers(0, 20)),
        ),
        max_size=30,
    )
)
def test_interleavings_deliver_every_event_once_in_order(db, ops) -> None:  # type: ignore[no-untyped-def]
    topics = ["t0", "t1", "t2"]
    table: dict[str, list[tuple[int, int]]] = {t: [] for t in topics}  # the oracle
    last = [max((o for t in topics for o, _ in table[t]), default=0)]
    subs: list[dict[str, Any]] = []
    counter = [0]
    # The file is shared between examples: start from what is there.
    for t in topics:
        for e in db.stream(t).read(0, 100_000):
            table[t].append((e.offset, e.payload))
    last[0] = max((o for t in topics for o, _ in table[t]), default=0)

    def check_next(rec: dict[str, Any]) -> None:
        e = rec["sub"].get(0)
        expected = [x for x in table[rec["topic"]] if x[0] > rec["start"]]
        pos = rec["got"]
        if pos < len(expected):
            assert e is not None, (rec, expected[pos])
            assert (e.offset, e.payload) == expected[pos]
            rec["got"] = pos + 1
        else:
            assert e is None

    try:
        for op in ops:
            if op[0] == "pub":
                _, ti, k = op
                with db.transaction() as tx:
                    for _ in range(k):
                        counter[0] += 1
                        off = db.stream(topics[ti]).publish(counter[0], tx=tx)
                        table[topics[ti]].append((off, counter[0]))
                        last[0] = off
            elif op[0] == "sub":
                _, ti, mode, cap = op
                rows = table[topics[ti]]
                start = {"end": last[0], "zero": 0, "mid": rows[len(rows) // 2][0] if rows else 0}[
                    mode
                ]
                sub = db.stream(topics[ti]).subscribe(from_offset=start, max_buffered=cap)
                subs.append({"sub": sub, "topic": topics[ti], "start": start, "got": 0})
            elif op[0] == "read" and subs:
                rec = subs[op[1] % len(subs)]
                if not rec["sub"].closed:
                    for _ in range(op[2]):
                        check_next(rec)
            elif op[0] == "close" and subs:
                subs[op[1] % len(subs)]["sub"].close()
        for rec in subs:
            if rec["sub"].closed:
                continue
            expected = [x for x in table[rec["topic"]] if x[0] > rec["start"]]
            while rec["got"] < len(expected):
                check_next(rec)
            check_next(rec)  # and nothing more
    finally:
        for rec in subs:
            rec["sub"].close()
    assert stream_fanout_of(db).member_count() == 0


_CHILD = textwrap.dedent(
    """
    import sys, time
    import alkdev_storage
    db = alkdev_storage.open(sys.argv[1])
    time.sleep(0.3)
    for k in range(int(sys.argv[2])):
        with db.transaction() as tx:
            for t in ("s0", "s1", "a0", "a1"):
                db.stream(t).publish(k, tx=tx)
        time.sleep(0.01)
    db.close()
    """
)


def test_cross_process_publishes_wake_blocking_and_async(db, db_path) -> None:  # type: ignore[no-untyped-def]
    k = 20
    results: dict[str, list[Any]] = {}
    blocking = {t: db.stream(t).subscribe(timeout=15) for t in ("s0", "s1")}
    _join_all(list(blocking.values()))

    def consume(t: str) -> None:
        results[t] = [blocking[t].get(15).payload for _ in range(k)]

    def loop_thread() -> None:
        async def main() -> None:
            subs = {t: db.stream(t).subscribe() for t in ("a0", "a1")}

            async def take(t: str) -> None:
                results[t] = [(await subs[t].aget(15)).payload for _ in range(k)]

            await asyncio.gather(*(take(t) for t in subs))

        asyncio.run(main())

    threads = [threading.Thread(target=consume, args=(t,)) for t in blocking]
    threads.append(threading.Thread(target=loop_thread))
    for t in threads:
        t.start()
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(db_path), str(k)], capture_output=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    for t in threads:
        t.join(30)
    assert results == {t: list(range(k)) for t in ("s0", "s1", "a0", "a1")}
    assert stream_fanout_of(db).reads >= 1


def test_close_from_another_thread_wakes_leader_and_follower(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("c")
    a, b = s.subscribe(), s.subscribe()
    _join_all([a, b])
    out: dict[str, Any] = {}
    ta = threading.Thread(target=lambda: out.setdefault("a", list(a)))
    ta.start()
    time.sleep(0.1)  # a leads
    tb = threading.Thread(target=lambda: out.setdefault("b", b.get(10)))
    tb.start()
    time.sleep(0.1)
    a.close()
    ta.join(5)
    assert not ta.is_alive() and out["a"] == []
    off = s.publish("x")  # b took over the lead
    tb.join(10)
    assert out["b"] is not None and out["b"].offset == off
    b.close()


def test_closing_the_database_ends_blocking_and_async(db_path) -> None:  # type: ignore[no-untyped-def]
    import alkdev_storage

    db = alkdev_storage.open(db_path)
    subs = [db.stream(f"z{i}").subscribe() for i in range(3)]
    _join_all(subs)
    out: dict[int, Any] = {}

    def blocking(i: int) -> None:
        out[i] = list(subs[i])

    def async_one() -> None:
        async def main() -> list[Any]:
            return [e async for e in subs[2]]

        out[2] = asyncio.run(main())

    threads = [threading.Thread(target=blocking, args=(i,)) for i in (0, 1)]
    threads.append(threading.Thread(target=async_one))
    for t in threads:
        t.start()
    time.sleep(0.2)
    db.close()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert out == {0: [], 1: [], 2: []}
    assert all(s.closed for s in subs)


def test_dropped_subscription_stops_receiving(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("g")
    sub = s.subscribe()
    assert sub.get(0) is None
    fan = stream_fanout_of(db)
    assert fan.member_count() == 1
    del sub
    gc.collect()
    assert fan.member_count() == 0
    assert not fan.watching  # the file is no longer watched for nobody
    assert [e.offset for e in s.subscribe(timeout=0)] == []  # a replay joins at its end...
    assert fan.member_count() == 0 and not fan.watching  # ...and leaves when dropped
    keep = s.subscribe()
    assert keep.get(0) is None
    off = s.publish(1)
    assert keep.get(5).offset == off


def test_exception_redelivers_for_a_tailing_consumer(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("x")
    sub = s.subscribe("c", timeout=5)
    assert sub.get(0) is None and sub.shared
    offs = [s.publish(i) for i in range(3)]
    with pytest.raises(RuntimeError):
        with sub:
            for e in sub:
                if e.payload == 1:
                    raise RuntimeError("handler failed")
    assert s.get_offset("c") == offs[0]
    assert [e.payload for e in s.subscribe("c", timeout=0)] == [1, 2]


def test_async_tailing_consumer_saves_off_loop(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("as")

    saved_on: list[threading.Thread] = []

    async def main() -> list[Any]:
        got = []
        sub = s.subscribe("ac", save_every_n=2)
        real_save = sub._save

        def save(offset: int) -> None:
            saved_on.append(threading.current_thread())
            real_save(offset)

        sub._save = save  # type: ignore[method-assign]
        assert await sub.aget(0) is None and sub.shared
        offs = [s.publish(i) for i in range(5)]
        async for e in sub:
            got.append(e.payload)
            if len(got) == 5:
                break
        assert len(saved_on) >= 2  # after events 2 and 4
        assert threading.current_thread() not in saved_on  # never on the event loop
        assert s.get_offset("ac") == offs[3]
        await sub.aclose()
        return got

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    assert s.get_offset("ac") == s.read()[-1].offset


def test_unshared_subscription_reads_per_wake(db) -> None:  # type: ignore[no-untyped-def]
    from alkdev_storage.primitives.stream import StreamSubscription

    s = db.stream("u")
    subs = [StreamSubscription(s, 0, shared=False) for _ in range(5)]
    fan = stream_fanout_of(db)
    assert all(x.get(0) is None and not x.shared for x in subs)
    before = fan.queries
    off = s.publish("e")
    assert all(x.get(5).offset == off for x in subs)
    assert fan.queries - before == 5 and fan.member_count() == 0


def test_bad_max_buffered_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("bad")
    with pytest.raises(ValueError, match="max_buffered must be >= 1"):
        s.subscribe("c", max_buffered=0)
    with pytest.raises(TypeError, match="max_buffered must be an int"):
        s.subscribe("c", max_buffered=2.5)  # type: ignore[arg-type]
    assert s.consumers() == {}
    assert stream_fanout_of(db).member_count() == 0


def test_joining_past_the_shared_position_is_not_fed_twice(db) -> None:  # type: ignore[no-untyped-def]
    s, other = db.stream("j"), db.stream("k")
    lead = other.subscribe()
    assert lead.get(0) is None  # the feed runs; its position is now the end
    offs = [s.publish(i) for i in range(3)]  # not read by the feed yet
    late = s.subscribe(from_offset=0)
    assert late.get(0).offset == offs[0] and late.shared  # own read got all 3, then joined
    assert lead.get(0) is None  # a shared read: rows the late one already has
    assert [late.get(0).offset for _ in range(2)] == offs[1:]
    assert late.get(0) is None


def test_joining_while_commits_and_shared_reads_race(db) -> None:  # type: ignore[no-untyped-def]
    """Subscribers join (and overflow, and rejoin) while another thread
    publishes and the shared feed reads: each gets its topic's events
    exactly once, in order."""
    topics, per_topic = ("r0", "r1", "r2"), 1000
    got: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    publishing = threading.Event()

    def publish() -> None:
        publishing.set()
        for k in range(per_topic):
            with db.transaction() as tx:
                for t in topics:
                    db.stream(t).publish(k, tx=tx)
            if k % 5 == 0:
                time.sleep(0.001)

    def consume(i: int) -> None:
        try:
            cap = (3, 50, 10_000)[i % 3]
            sub = db.stream(topics[i % 3]).subscribe(from_offset=0, max_buffered=cap)
            out = got.setdefault(i, [])
            while len(out) < per_topic:
                e = sub.get(10)
                assert e is not None, f"subscriber {i} starved after {len(out)}"
                out.append(e.payload)
            assert sub.get(0) is None
            sub.close()
        except BaseException as e:  # reported below
            errors.append(e)

    pub = threading.Thread(target=publish)
    pub.start()
    publishing.wait(5)
    threads = []
    for i in range(12):
        threads.append(threading.Thread(target=consume, args=(i,)))
        threads[-1].start()
        time.sleep(0.02)
    pub.join(60)
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert got == {i: list(range(per_topic)) for i in range(12)}


def test_subscription_on_a_closed_database_just_ends(db_path) -> None:  # type: ignore[no-untyped-def]
    import alkdev_storage

    db = alkdev_storage.open(db_path)
    s = db.stream("closed")
    db.close()
    sub = s.subscribe()
    assert list(sub) == [] and sub.closed
    sub2 = s.subscribe()

    async def main() -> list[Any]:
        return [e async for e in sub2]

    assert asyncio.run(main()) == [] and sub2.closed


def test_feed_restarts_at_the_end_after_every_member_left(db) -> None:  # type: ignore[no-untyped-def]
    s, other = db.stream("f"), db.stream("g")
    a = s.subscribe(max_buffered=1)
    assert a.get(0) is None and a.shared
    with db.transaction() as tx:
        for i in range(5):
            other.publish(i, tx=tx)
        first = s.publish("a0", tx=tx)
        s.publish("a1", tx=tx)
    assert a.get(0).offset == first  # the refresh read overflowed a: it left
    assert stream_fanout_of(db).member_count() == 0
    with db.transaction() as tx:
        for i in range(50):
            other.publish(i, tx=tx)
    assert a.get(0).payload == "a1" and a.get(0) is None and a.shared  # rejoined
    fan = stream_fanout_of(db)
    assert fan.last_offset == other.read(0, 10_000)[-1].offset  # not the stale position


def test_sync_and_async_subscribers_on_two_loops(db) -> None:  # type: ignore[no-untyped-def]
    n = 3
    results: dict[str, Any] = {}
    ready = threading.Barrier(4)

    def loop_thread(tag: str) -> None:
        async def main() -> None:
            subs = [db.stream(f"{tag}:{i}").subscribe() for i in range(4)]
            for s in subs:
                assert await s.aget(0) is None
            ready.wait(10)

            async def take(s: Any) -> list[Any]:
                return [(await s.aget(10)).payload for _ in range(n)]

            results[tag] = await asyncio.gather(*(take(s) for s in subs))

        asyncio.run(main())

    def sync_thread() -> None:
        s = db.stream("s:0").subscribe()
        assert s.get(0) is None
        ready.wait(10)
        results["sync"] = [s.get(10).payload for _ in range(n)]

    threads = [
        threading.Thread(target=loop_thread, args=("x",)),
        threading.Thread(target=loop_thread, args=("y",)),
        threading.Thread(target=sync_thread),
    ]
    for t in threads:
        t.start()
    ready.wait(10)
    assert stream_fanout_of(db).member_count() == 9
    for k in range(n):
        with db.transaction() as tx:
            for topic in [f"{tag}:{i}" for tag in "xy" for i in range(4)] + ["s:0"]:
                db.stream(topic).publish(k, tx=tx)
        time.sleep(0.02)
    for t in threads:
        t.join(20)
    assert results == {"x": [[0, 1, 2]] * 4, "y": [[0, 1, 2]] * 4, "sync": [0, 1, 2]}
