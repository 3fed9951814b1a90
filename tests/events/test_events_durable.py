"""The Honker durable target: named consumers whose offsets survive
restarts, client-side filtering, exactly-once effects with the offset in
the listener's transaction, and one live consumer per name (lease,
standby, fail, SIGKILL take-over)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from events_helpers import kill9, lines, read_line, spawn, wait_for

import alkdev_storage
from alkdev_storage.errors import ConsumerBusy, InterfaceError, LeaseLost, LockHeld
from alkdev_storage.events import (
    DurableEvent,
    DurableEventTarget,
    Event,
    create_honker_event_target,
    create_pubsub,
)


def durable(db: Any, consumer: str | None = "c", **kw: Any) -> DurableEventTarget:
    kw.setdefault("lease_ttl", 2)
    kw.setdefault("stream", "s")
    return DurableEventTarget(db, consumer=consumer, **kw)


def test_dispatch_publishes_and_the_consumer_filters_by_type(db) -> None:  # type: ignore[no-untyped-def]
    t = durable(db)
    got: list[tuple[str, Any, int]] = []
    t.dispatch_event(Event("a", 1))  # before any listener: still in the stream
    t.dispatch_event(Event("b", 2))
    t.add_event_listener("a", lambda e: got.append((e.type, e.detail, e.offset)))
    t.dispatch_event(Event("a", 3))
    wait_for(lambda: len(got) == 2, what="two 'a' events")
    assert [(ty, d) for ty, d, _ in got] == [("a", 1), ("a", 3)]
    rows = db.fetchall("SELECT key FROM _honker_stream WHERE topic = 's' ORDER BY offset")
    assert [r[0] for r in rows] == ["a", "b", "a"]
    wait_for(lambda: t.saved_offset() == 3, what="the offset saved past 'b'")
    t.close()


def test_offsets_survive_a_restart(db_path) -> None:  # type: ignore[no-untyped-def]
    db = alkdev_storage.open(db_path)
    t = durable(db)
    got: list[int] = []
    t.add_event_listener("e", lambda e: got.append(e.detail))
    for i in range(10):
        t.dispatch_event(Event("e", i))
    wait_for(lambda: len(got) == 10, what="10 events")
    t.close()
    db.close()
    db = alkdev_storage.open(db_path)
    producer = durable(db, consumer=None)
    for i in range(10, 15):
        producer.dispatch_event(Event("e", i))
    t2 = durable(db)
    got2: list[int] = []
    t2.add_event_listener("e", lambda e: got2.append(e.detail))
    wait_for(lambda: len(got2) == 5, what="the 5 new events")
    time.sleep(0.05)
    assert got2 == list(range(10, 15))  # nothing lost, nothing repeated
    t2.close()
    db.close()


def test_exactly_once_effects_with_commit_in_the_listeners_transaction(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE effects (n INTEGER PRIMARY KEY)")
    # No periodic auto-save: only the handler's own commits move the offset.
    t = durable(db, save_every_n=1000, save_every_s=3600, retry_delay_s=0.01)
    fail_once = {3}
    seen: list[int] = []

    def handler(e: DurableEvent) -> None:
        seen.append(e.detail)
        with db.transaction() as tx:
            tx.execute("INSERT INTO effects VALUES (?)", (e.detail,))
            if e.detail in fail_once:
                fail_once.discard(e.detail)
                raise RuntimeError("crash before commit")  # effect and offset roll back
            e.commit(tx)

    for i in range(6):
        t.dispatch_event(Event("job", i))
    t.add_event_listener("job", handler)
    wait_for(lambda: t.saved_offset() == 6, what="offset 6 committed by the handler")
    assert seen == [0, 1, 2, 3, 3, 4, 5]  # 3 failed, was redelivered, then committed
    assert t.retries == 1
    t.close()
    t2 = durable(db)  # a restart: nothing is delivered again
    again: list[int] = []
    t2.add_event_listener("job", lambda e: again.append(e.detail))
    assert t2.wait_active(5)
    time.sleep(0.2)
    t2.close()
    assert again == []
    rows = [r[0] for r in db.fetchall("SELECT n FROM effects ORDER BY n")]
    assert rows == [0, 1, 2, 3, 4, 5]  # every effect exactly once


def test_on_error_skip_passes_a_failing_event(db) -> None:  # type: ignore[no-untyped-def]
    t = durable(db, on_error="skip")
    seen: list[int] = []

    def handler(e: DurableEvent) -> None:
        seen.append(e.detail)
        if e.detail == 1:
            raise RuntimeError("poison")

    t.add_event_listener("x", handler)
    for i in range(3):
        t.dispatch_event(Event("x", i))
    wait_for(lambda: t.saved_offset() == 3, what="all three passed")
    assert seen == [0, 1, 2] and t.retries == 0
    t.close()


def test_commit_refused_once_the_lease_is_gone(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE effects (n INTEGER)")
    t = durable(db, save_every_n=1000, save_every_s=3600)
    box: list[BaseException] = []
    calls: list[int] = []
    release = threading.Event()
    lock_name = t.lease.lock_name  # type: ignore[union-attr]

    def handler(e: DurableEvent) -> None:
        calls.append(e.detail)
        if len(calls) > 1:
            with db.transaction() as tx:
                e.commit(tx)
            return
        # Another process takes the lease (as if ours had expired) for a minute.
        db.execute(
            "UPDATE _honker_locks SET owner = 'thief', expires_at = unixepoch() + 60 "
            "WHERE name = ?",
            (lock_name,),
        )
        try:
            with db.transaction() as tx:
                tx.execute("INSERT INTO effects VALUES (1)")
                e.commit(tx)
        except LeaseLost as err:
            box.append(err)
        release.set()

    t.add_event_listener("x", handler)
    t.dispatch_event(Event("x", 1))
    assert release.wait(5)
    assert isinstance(box[0], LeaseLost)
    assert db.fetchone("SELECT COUNT(*) FROM effects")[0] == 0  # rolled back with the offset
    wait_for(lambda: not t.active, what="the consumer to stop delivering")
    t.dispatch_event(Event("x", 2))
    time.sleep(0.5)
    assert calls == [1]  # a standby now: nothing delivered while the thief holds it
    assert t.saved_offset() == 0
    db.execute("DELETE FROM _honker_locks WHERE name = ?", (lock_name,))
    # Taken back: event 1 (never committed) is delivered again, then 2.
    wait_for(lambda: calls == [1, 1, 2], what="delivery after the take-back")
    t.close()


def test_fail_mode_raises_consumer_busy(db) -> None:  # type: ignore[no-untyped-def]
    first = durable(db)
    first.add_event_listener("x", print)
    assert first.wait_active(5)
    second = durable(db, on_busy="fail")
    with pytest.raises(ConsumerBusy, match="held by another live process") as info:
        second.add_event_listener("x", print)
    assert isinstance(info.value, LockHeld)
    assert second.listener_count() == 0
    first.close()
    second.add_event_listener("x", print)  # free now
    assert second.wait_active(5)
    second.close()


def test_standby_takes_over_when_the_first_stops(db) -> None:  # type: ignore[no-untyped-def]
    a_got: list[int] = []
    b_got: list[int] = []
    a = durable(db)
    b = durable(db)
    a.add_event_listener("n", lambda e: a_got.append(e.detail))
    assert a.wait_active(5)
    b.add_event_listener("n", lambda e: b_got.append(e.detail))
    assert not b.wait_active(0.3)  # standby
    a.dispatch_event(Event("n", 1))
    wait_for(lambda: a_got == [1], what="a gets it")
    a.close()  # releases the lease
    assert b.wait_active(5)
    b.dispatch_event(Event("n", 2))
    wait_for(lambda: b_got == [2], what="b continues after a's offset")
    assert a_got == [1]
    b.close()


def test_sigkilled_consumer_is_replaced_without_losing_events(db, db_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out_a = tmp_path / "a.txt"
    out_b = tmp_path / "b.txt"
    producer = durable(db, consumer=None)
    a = spawn("durable", db_path, "s", "shared", 2, out_a, "standby")
    assert read_line(a) == {"started": True}
    assert read_line(a) == {"active": True}
    b = spawn("durable", db_path, "s", "shared", 2, out_b, "standby")
    assert read_line(b) == {"started": True}
    for i in range(200):
        producer.dispatch_event(Event("e", i))
    wait_for(lambda: len(lines(out_a)) >= 50, what="a consumes")
    kill9(a)
    assert read_line(b, timeout=10) == {"active": True}  # within the 2 s lease
    for i in range(200, 300):
        producer.dispatch_event(Event("e", i))
    wait_for(lambda: (lines(out_b) or ["0"])[-1] == "300", timeout=15, what="b reaches 300")
    kill9(b)
    handled = [int(x) for x in lines(out_a) + lines(out_b)]
    assert set(handled) == set(range(1, 301))  # no event lost
    # Duplicates only from the at-least-once window (a's unsaved tail).
    dup = len(handled) - 300
    assert dup <= len(lines(out_a))
    print(
        f"durable SIGKILL: a handled {len(lines(out_a))}, b {len(lines(out_b))}, {dup} redelivered"
    )


def test_fail_mode_against_a_live_process(db, db_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = spawn("durable", db_path, "s", "one", 5, tmp_path / "a.txt", "standby")
    assert read_line(a)["started"]
    assert read_line(a) == {"active": True}
    try:
        b = spawn("durable", db_path, "s", "one", 5, tmp_path / "b.txt", "fail")
        msg = read_line(b)
        assert "held by another live process" in msg["busy"]
        b.wait(10)
    finally:
        kill9(a)


def test_start_latest_and_async_listeners(db) -> None:  # type: ignore[no-untyped-def]
    t = durable(db, consumer=None)
    t.dispatch_event(Event("x", "old"))
    late = durable(db, consumer="late", start="latest")

    async def main() -> list[Any]:
        got: list[Any] = []
        done = asyncio.Event()

        async def fn(e: Event) -> None:
            await asyncio.sleep(0.001)
            got.append(e.detail)
            if len(got) == 2:
                done.set()

        late.add_event_listener("x", fn)  # "latest" = now: no waiting needed
        await t.adispatch_event(Event("x", "new1"))
        async with db.atransaction() as tx:
            await t.adispatch_event(Event("x", "new2"), tx=tx)
        await asyncio.wait_for(done.wait(), 5)
        return got

    assert asyncio.run(main()) == ["new1", "new2"]
    late.close()


def test_removing_the_last_listener_stops_and_saves(db) -> None:  # type: ignore[no-untyped-def]
    t = durable(db, save_every_n=1000, save_every_s=3600)
    got: list[int] = []

    def fn(e: Event) -> None:
        got.append(e.detail)

    t.add_event_listener("x", fn)
    for i in range(3):
        t.dispatch_event(Event("x", i))
    wait_for(lambda: len(got) == 3, what="3 events")
    t.remove_event_listener("x", fn)
    wait_for(lambda: not t.active and t.lease is not None and not t.lease.held, what="stop")
    assert t.saved_offset() == 3
    t.dispatch_event(Event("x", 3))
    t.add_event_listener("x", fn)
    wait_for(lambda: got == [0, 1, 2, 3], what="resume after re-adding")
    t.close()


def test_pubsub_over_a_durable_target(db) -> None:  # type: ignore[no-untyped-def]
    ps = create_pubsub(create_honker_event_target(db, "durable", stream="calls", consumer="hub"))
    sub = ps.subscribe("call", "r1", timeout=5)
    ps.publish("call", "r1", {"status": "requested"})
    ps.publish("call", "r2", {"status": "other"})
    ps.publish("call", "r1", {"status": "responded"})
    assert [sub.get(5), sub.get(5)] == [{"status": "requested"}, {"status": "responded"}]
    ps.close()


def test_bad_arguments(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="consumer="):
        durable(db, consumer=None).add_event_listener("x", print)
    with pytest.raises(ValueError, match="on_busy"):
        durable(db, on_busy="wait")
    with pytest.raises(ValueError, match="start must be"):
        durable(db, start="middle")
    with pytest.raises(ValueError, match="on_error must be"):
        durable(db, on_error="ignore")
    with pytest.raises(ValueError, match="ttl must be at least 1"):
        durable(db, lease_ttl=0)
    with pytest.raises(ValueError, match="at least 2 seconds"):
        durable(db, lease_ttl=1)
    with pytest.raises(ValueError, match="must not be empty"):
        durable(db, consumer="")
    t = durable(db)
    t.close()
    with pytest.raises(InterfaceError, match="closed"):
        t.dispatch_event(Event("x"))
    n = db.fetchone("SELECT COUNT(*) FROM _honker_stream")[0]
    assert n == 0
