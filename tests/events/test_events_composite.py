"""The composite target (OQ-30): in-process listeners at once, other
processes through Honker, no listener gets an event twice."""

from __future__ import annotations

import time
from typing import Any

import pytest
from events_helpers import finish, read_line, spawn, wait_for

from alkdev_storage.errors import ValidationFailed
from alkdev_storage.events import (
    CompositeEventTarget,
    DurableEventTarget,
    EphemeralEventTarget,
    Event,
    create_pubsub,
    dispatcher_of,
)


def test_local_at_once_and_own_events_dropped_when_they_come_back(db) -> None:  # type: ignore[no-untyped-def]
    c = CompositeEventTarget(EphemeralEventTarget(db))
    got: list[Any] = []
    c.add_event_listener("x", lambda e: got.append(e.detail))
    for i in range(20):
        c.dispatch_event(Event("x", i))
        assert got[-1] == i  # delivered inside dispatch_event
    wait_for(lambda: c.dropped_own == 20, what="own events back through Honker")
    time.sleep(0.05)
    assert got == list(range(20))  # exactly once each
    assert c.received_remote == 0


def test_other_processes_events_arrive_once(db, db_path) -> None:  # type: ignore[no-untyped-def]
    c = CompositeEventTarget(EphemeralEventTarget(db))
    got: list[tuple[int, str | None]] = []
    c.add_event_listener("tick", lambda e: got.append((e.detail["i"], e.origin)))
    child = spawn("publish", db_path, "composite", "tick", 30)
    origin = read_line(child)["origin"]
    finish(child)
    wait_for(lambda: len(got) == 30, what="30 events from the other process")
    time.sleep(0.05)
    assert got == [(i, origin) for i in range(30)]
    assert c.received_remote == 30 and c.dropped_own == 0


def test_two_composites_in_one_process_see_each_other_once(db) -> None:  # type: ignore[no-untyped-def]
    a = CompositeEventTarget(EphemeralEventTarget(db))
    b = CompositeEventTarget(EphemeralEventTarget(db))
    a_got: list[Any] = []
    b_got: list[Any] = []
    a.add_event_listener("m", lambda e: a_got.append(e.detail))
    b.add_event_listener("m", lambda e: b_got.append(e.detail))
    a.dispatch_event(Event("m", "from a"))
    b.dispatch_event(Event("m", "from b"))
    wait_for(lambda: len(a_got) == 2 and len(b_got) == 2, what="both ways")
    time.sleep(0.05)
    assert a_got == ["from a", "from b"] and b_got == ["from b", "from a"]


def test_commit_aware_composite(db) -> None:  # type: ignore[no-untyped-def]
    c = CompositeEventTarget(EphemeralEventTarget(db))
    other = CompositeEventTarget(EphemeralEventTarget(db))
    mine: list[Any] = []
    theirs: list[Any] = []
    c.add_event_listener("x", lambda e: mine.append(e.detail))
    other.add_event_listener("x", lambda e: theirs.append(e.detail))
    with db.transaction() as tx:
        c.dispatch_event(Event("x", "committed"), tx=tx)
        time.sleep(0.05)
        assert mine == [] and theirs == []
    with pytest.raises(RuntimeError), db.transaction() as tx:
        c.dispatch_event(Event("x", "rolled back"), tx=tx)
        raise RuntimeError
    wait_for(lambda: mine and theirs, what="delivery after the commit")
    assert dispatcher_of(db).wait_idle(5)
    time.sleep(0.05)
    assert mine == ["committed"] and theirs == ["committed"]


def test_durable_remote(db) -> None:  # type: ignore[no-untyped-def]
    c = CompositeEventTarget(DurableEventTarget(db, stream="s", consumer="hub", lease_ttl=2))
    producer = DurableEventTarget(db, stream="s")  # another publisher (another origin)
    got: list[tuple[Any, bool]] = []
    c.add_event_listener("call:*", lambda e: got.append((e.detail, hasattr(e, "offset"))))
    c.dispatch_event(Event("call:1", "local"))
    assert got == [("local", False)]
    producer.dispatch_event(Event("call:2", "remote"))
    wait_for(lambda: len(got) == 2, what="the remote event")
    wait_for(lambda: c.dropped_own == 1, what="own event back from the stream")
    assert got == [("local", False), ("remote", True)]
    c.close()


def test_bad_payload_is_refused_before_any_delivery(db) -> None:  # type: ignore[no-untyped-def]
    from pydantic import BaseModel

    class P(BaseModel):
        n: int

    c = CompositeEventTarget(EphemeralEventTarget(db), types={"p": P})
    got: list[Any] = []
    c.add_event_listener("*", got.append)
    before = db.fetchone("SELECT COUNT(*) FROM _honker_notifications")[0]
    with pytest.raises(ValidationFailed):
        c.dispatch_event(Event("p", {"n": "x"}))
    with pytest.raises(TypeError):
        c.dispatch_event(Event("q", {1, 2}))
    assert got == []
    assert db.fetchone("SELECT COUNT(*) FROM _honker_notifications")[0] == before
    c.dispatch_event(Event("p", {"n": 1}))
    assert got[0].detail == P(n=1)


def test_listener_bookkeeping(db) -> None:  # type: ignore[no-untyped-def]
    remote = EphemeralEventTarget(db)
    c = CompositeEventTarget(remote)

    def f(e: Event) -> None:
        pass

    def g(e: Event) -> None:
        pass

    c.add_event_listener("x", f)
    c.add_event_listener("x", f)
    c.add_event_listener("x", g)
    assert c.listener_count("x") == 2 and remote.listener_count("x") == 1  # one bridge
    c.remove_event_listener("x", f)
    assert remote.listener_count("x") == 1
    c.remove_event_listener("x", g)
    assert remote.listener_count("x") == 0
    with pytest.raises(TypeError, match="must implement EventTarget"):
        CompositeEventTarget(object())  # type: ignore[arg-type]


def test_pubsub_over_a_composite(db) -> None:  # type: ignore[no-untyped-def]
    ps = create_pubsub(CompositeEventTarget(EphemeralEventTarget(db, prefix="hub:")))
    sub = ps.subscribe("graph", "g", timeout=0.3)
    ps.publish("graph", "g", 1)
    with db.transaction() as tx:
        ps.publish("graph", "g", 2, tx=tx)
    assert list(sub) == [1, 2]
