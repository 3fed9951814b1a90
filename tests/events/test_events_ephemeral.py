"""The Honker ephemeral target: notify to dispatch, the Database's one
dispatcher to receive (prefix, patterns, many topic:id listeners on one
read per commit), across processes, in transactions, typed payloads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from events_helpers import finish, spawn, wait_for
from pydantic import BaseModel

import alkdev_storage
from alkdev_storage.errors import InterfaceError, ValidationFailed
from alkdev_storage.events import (
    EphemeralEventTarget,
    Event,
    create_honker_event_target,
    create_pubsub,
    dispatcher_of,
)
from alkdev_storage.primitives.fanout import fanout_of


class Updated(BaseModel):
    graph_id: str


def notification_count(db: Any) -> int:
    return int(db.fetchone("SELECT COUNT(*) FROM _honker_notifications")[0])


def test_same_process_publish_and_subscribe(db) -> None:  # type: ignore[no-untyped-def]
    ps = create_pubsub(create_honker_event_target(db, "ephemeral", prefix="app:"))
    sub = ps.subscribe("graph", "g1", timeout=5)
    ps.publish("graph", "g1", {"op": "update"})
    assert sub.get(5) == {"op": "update"}
    row = db.fetchone("SELECT channel, payload FROM _honker_notifications ORDER BY id DESC")
    assert row[0] == "app:graph:g1"  # the prefix namespaces the channel


def test_prefix_isolates_targets_on_one_database(db) -> None:  # type: ignore[no-untyped-def]
    a = EphemeralEventTarget(db, prefix="a:")
    b = EphemeralEventTarget(db, prefix="b:")
    got_a: list[Any] = []
    got_b: list[Any] = []
    a.add_event_listener("x", lambda e: got_a.append(e.detail))
    b.add_event_listener("x", lambda e: got_b.append(e.detail))
    a.dispatch_event(Event("x", "for a"))
    b.dispatch_event(Event("x", "for b"))
    wait_for(lambda: got_a and got_b, what="both targets")
    time.sleep(0.05)
    assert (got_a, got_b) == (["for a"], ["for b"])


def test_patterns_and_plain_notifications_from_elsewhere(db) -> None:  # type: ignore[no-untyped-def]
    t = EphemeralEventTarget(db)
    got: list[tuple[str, Any, Any]] = []
    t.add_event_listener("graph:*", lambda e: got.append((e.type, e.detail, e.origin)))
    db.notify("graph:1", {"raw": True})  # another binding's plain notify
    t.dispatch_event(Event("graph:2", 2))
    db.notify("org:1", "not wanted")
    wait_for(lambda: len(got) == 2, what="two events")
    time.sleep(0.05)
    assert got == [("graph:1", {"raw": True}, None), ("graph:2", 2, t.origin)]


def test_ten_thousand_topic_id_listeners_share_one_read(db) -> None:  # type: ignore[no-untyped-def]
    ps = create_pubsub(EphemeralEventTarget(db))
    subs = [ps.subscribe("graph", i) for i in range(10_000)]
    d = dispatcher_of(db)
    fan = fanout_of(db)
    assert fan.listener_count() == 1  # one match listener, not 10,000
    ps.publish("graph", 123, "a")
    assert subs[123].get(5) == "a"
    q0, r0 = fan.queries, fan.reads
    with db.transaction() as tx:
        for i in range(0, 10_000, 100):
            ps.publish("graph", i, i, tx=tx)
    for i in range(0, 10_000, 100):
        assert subs[i].get(5) == i
    assert fan.reads - r0 <= 2 and fan.queries - q0 <= 3  # one read for the commit
    assert sum(s.buffered for s in subs) == 0
    assert d.running
    for s in subs:
        s.close()
    assert ps.target.listener_count() == 0


def test_delivery_to_and_from_another_process(db, db_path) -> None:  # type: ignore[no-untyped-def]
    t = EphemeralEventTarget(db, prefix="p:")
    got: list[Any] = []
    t.add_event_listener("tick", lambda e: got.append(e.detail["i"]))
    child = spawn("publish", db_path, "ephemeral", "tick", 50, "p:")
    finish(child)
    wait_for(lambda: len(got) == 50, what="50 events from the child")
    assert got == list(range(50))


def test_commit_aware_dispatch(db) -> None:  # type: ignore[no-untyped-def]
    t = EphemeralEventTarget(db)
    got: list[Any] = []
    t.add_event_listener("x", lambda e: got.append(e.detail))
    with db.transaction() as tx:
        t.dispatch_event(Event("x", "committed"), tx=tx)
        time.sleep(0.05)
        assert got == []  # not before the commit
    with pytest.raises(RuntimeError), db.transaction() as tx:
        t.dispatch_event(Event("x", "rolled back"), tx=tx)
        raise RuntimeError
    t.dispatch_event(Event("x", "after"))
    wait_for(lambda: len(got) == 2, what="two events")
    time.sleep(0.05)
    assert got == ["committed", "after"]


def test_typed_payload_refused_before_anything_is_written(db) -> None:  # type: ignore[no-untyped-def]
    t = EphemeralEventTarget(db, types={"graph:updated": Updated})
    got: list[Any] = []
    t.add_event_listener("graph:updated", lambda e: got.append(e.detail))
    before = notification_count(db)
    with pytest.raises(ValidationFailed, match="graph_id"):
        t.dispatch_event(Event("graph:updated", {"graph_id": 1}))
    with pytest.raises(TypeError, match="set"):
        t.dispatch_event(Event("other", {1, 2}))  # not JSON
    assert notification_count(db) == before
    t.dispatch_event(Event("graph:updated", {"graph_id": "g"}))
    db.notify("graph:updated", {"wrong": True})  # a foreign mismatching payload: dropped
    t.dispatch_event(Event("graph:updated", Updated(graph_id="h")))
    wait_for(lambda: len(got) == 2, what="two typed events")
    time.sleep(0.05)
    assert got == [Updated(graph_id="g"), Updated(graph_id="h")]
    assert t.types.invalid == 1


def test_async_listener_and_adispatch(db) -> None:  # type: ignore[no-untyped-def]
    t = EphemeralEventTarget(db)

    async def main() -> list[Any]:
        got: list[Any] = []
        done = asyncio.Event()

        async def fn(e: Event) -> None:
            got.append(e.detail)
            if len(got) == 3:
                done.set()

        t.add_event_listener("a", fn)
        for i in range(2):
            await t.adispatch_event(Event("a", i))
        async with db.atransaction() as tx:
            await t.adispatch_event(Event("a", 2), tx=tx)
        await asyncio.wait_for(done.wait(), 5)
        return got

    assert asyncio.run(main()) == [0, 1, 2]


def test_close_and_bad_arguments(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="must not contain"):
        EphemeralEventTarget(db, prefix="a*")
    with pytest.raises(TypeError, match="prefix must be a str"):
        EphemeralEventTarget(db, prefix=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be"):
        create_honker_event_target(db, "fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode='durable'"):
        create_honker_event_target(db, "ephemeral", consumer="c")
    t = EphemeralEventTarget(db)
    sub = create_pubsub(t).subscribe("x")
    t.dispatch_event(Event("x", 1))
    assert sub.get(5) == 1
    t.close()
    assert sub.get(0.1) is None and sub.closed
    with pytest.raises(InterfaceError, match="closed"):
        t.dispatch_event(Event("x", 2))


def test_the_dispatcher_thread_stops_when_nothing_listens(db_path) -> None:  # type: ignore[no-untyped-def]
    import alkdev_storage.events.dispatcher as dmod

    db = alkdev_storage.open(db_path)
    old = dmod.IDLE_CHECK_S
    dmod.IDLE_CHECK_S = 0.05
    try:
        t = EphemeralEventTarget(db)
        fn = print
        t.add_event_listener("x", fn)
        d = dispatcher_of(db)
        assert d.running
        t.remove_event_listener("x", fn)
        wait_for(lambda: not d.running, what="the dispatcher to stop")
        assert fanout_of(db).listener_count() == 0
        got: list[Any] = []
        t.add_event_listener("x", lambda e: got.append(e.detail))  # starts again
        t.dispatch_event(Event("x", 1))
        wait_for(lambda: got == [1], what="delivery after restart")
    finally:
        dmod.IDLE_CHECK_S = old
        db.close()


def test_closing_the_database_stops_the_dispatcher(db_path) -> None:  # type: ignore[no-untyped-def]
    db = alkdev_storage.open(db_path)
    t = EphemeralEventTarget(db)
    t.add_event_listener("x", print)
    d = dispatcher_of(db)
    assert d.running
    db.close()
    wait_for(lambda: not d.running, what="the dispatcher to end")


def test_a_dispatcher_does_not_keep_its_database_alive(db_path) -> None:  # type: ignore[no-untyped-def]
    import gc
    import weakref

    db = alkdev_storage.open(db_path)
    t = EphemeralEventTarget(db)
    t.add_event_listener("x", print)
    d = dispatcher_of(db)
    with db.transaction() as tx:
        from alkdev_storage.events import after_commit

        after_commit(db, tx, lambda: None)
    assert d.wait_idle(5)
    t.close()
    db.close()
    wait_for(lambda: not d.running, what="the dispatcher to end")
    ref = weakref.ref(db)
    del db, t
    gc.collect()
    assert ref() is None
