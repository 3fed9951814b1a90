"""The Redis Streams transport against a real redis-server (our own, on a
free port): the relay (deterministic message ids, resume, SIGKILL
mid-stream), the consumer-group target (dedupe, XAUTOCLAIM after a
SIGKILLed consumer), two hubs seeing each other's events."""

from __future__ import annotations

import time
from typing import Any

import pytest
from events_helpers import kill9, lines, read_line, spawn, wait_for

import alkdev_storage
from alkdev_storage.errors import ConsumerBusy
from alkdev_storage.events import (
    CompositeEventTarget,
    DurableEventTarget,
    Event,
    RedisEventTarget,
    RedisRelay,
    create_pubsub,
    message_id,
)


def fields(entry: tuple[Any, dict[bytes, bytes]]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in entry[1].items()}


def test_relay_forwards_with_deterministic_ids_and_resumes(db, redis_client) -> None:  # type: ignore[no-untyped-def]
    producer = DurableEventTarget(db, stream="events", prefix="app:")
    for i in range(5):
        producer.dispatch_event(Event("graph:1", {"i": i}))
    relay = RedisRelay(db, redis_client, source="hub-a", batch_size=2)
    assert relay.offset == 0
    relay.run(idle_timeout=0.05)
    entries = redis_client.xrange("alkdev:events")
    got = [fields(e) for e in entries]
    assert [g["mid"] for g in got] == [message_id("hub-a", "events", o) for o in range(1, 6)]
    assert {g["src"] for g in got} == {"hub-a"} and {g["key"] for g in got} == {"app:graph:1"}
    raw = [r[0] for r in db.fetchall("SELECT payload FROM _honker_stream ORDER BY offset")]
    assert [g["data"] for g in got] == raw  # the JSON text, unchanged
    assert relay.offset == 5 and relay.batches == 3
    producer.dispatch_event(Event("graph:1", {"i": 5}))
    RedisRelay(db, redis_client, source="hub-a").run(idle_timeout=0.05)  # a restart
    assert redis_client.xlen("alkdev:events") == 6  # resumed: nothing resent


def test_relay_lease_and_bad_arguments(db, redis_client) -> None:  # type: ignore[no-untyped-def]
    a = RedisRelay(db, redis_client, source="s")
    a.start()
    try:
        with pytest.raises(ConsumerBusy):
            RedisRelay(db, redis_client, source="s", on_busy="fail").run()
    finally:
        a.close()
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        RedisRelay(db, redis_client, source="s", batch_size=0)
    with pytest.raises(ValueError, match="must not be empty"):
        RedisRelay(db, redis_client, source="")


def consumer_target(client: Any, consumer: str = "c1", **kw: Any) -> RedisEventTarget:
    kw.setdefault("group", "hub-b")
    kw.setdefault("start_id", "0")
    kw.setdefault("block_ms", 50)
    return RedisEventTarget(client, consumer=consumer, **kw)


def test_target_consumes_acks_and_drops_replayed_message_ids(db, redis_client) -> None:  # type: ignore[no-untyped-def]
    producer = DurableEventTarget(db, stream="events")
    for i in range(10):
        producer.dispatch_event(Event("n", i))
    relay = RedisRelay(db, redis_client, source="hub-a")
    relay.run(idle_timeout=0.05)
    # A crash between XADD and the offset save, made deterministic: the
    # relay's offset goes back and the same events are sent again.
    db.stream("events").reset(relay.name, 4)
    RedisRelay(db, redis_client, source="hub-a").run(idle_timeout=0.05)
    assert redis_client.xlen("alkdev:events") == 16
    t = consumer_target(redis_client)
    got: list[tuple[Any, str]] = []
    t.add_event_listener("n", lambda e: got.append((e.detail, e.message_id)))
    wait_for(lambda: t.duplicates == 6 and len(got) == 10, what="10 events and 6 duplicates")
    assert [d for d, _ in got] == list(range(10))
    assert len({m for _, m in got}) == 10
    wait_for(
        lambda: redis_client.xpending("alkdev:events", "hub-b")["pending"] == 0,
        what="everything acknowledged",
    )
    t.close()


def test_two_hubs_see_each_others_events(tmp_path, redis_client) -> None:  # type: ignore[no-untyped-def]
    hubs: dict[str, Any] = {}
    for name in ("a", "b"):
        db = alkdev_storage.open(tmp_path / f"hub-{name}.db")
        remote = DurableEventTarget(db, stream="events", consumer=f"hub-{name}", lease_ttl=2)
        inbound = RedisEventTarget(
            redis_client,
            group=f"hub-{name}",
            consumer=f"hub-{name}-1",
            block_ms=50,
            ignore_sources={f"hub-{name}"},
            start_id="0",
        )
        hub = CompositeEventTarget(remote, inbound=[inbound])
        relay = RedisRelay(db, redis_client, source=f"hub-{name}").start()
        got: list[tuple[str, Any]] = []
        hub.add_event_listener("graph:*", lambda e, got=got: got.append((e.type, e.detail)))
        hubs[name] = (db, hub, relay, got, inbound)
    assert hubs["a"][4].wait_ready(5) and hubs["b"][4].wait_ready(5)
    hubs["a"][1].dispatch_event(Event("graph:1", "from a"))
    hubs["b"][1].dispatch_event(Event("graph:2", "from b"))
    for name in ("a", "b"):
        wait_for(lambda name=name: len(hubs[name][3]) == 2, what=f"hub {name} gets both")
    time.sleep(0.2)
    assert (
        sorted(hubs["a"][3])
        == sorted(hubs["b"][3])
        == [("graph:1", "from a"), ("graph:2", "from b")]
    )
    for db, hub, relay, _, _ in hubs.values():
        relay.close()
        hub.close()
        db.close()


def test_sigkilled_relay_restarts_without_loss(db, db_path, redis_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    n = 20_000
    producer = DurableEventTarget(db, stream="events")
    with db.transaction() as tx:
        for i in range(n):
            producer.dispatch_event(Event("n", i), tx=tx)
    relay = spawn("relay", db_path, redis_server.port, "hub-a", "events", 50)
    assert read_line(relay)["started"]
    wait_for(lambda: redis_client.xlen("alkdev:events") > n // 4, timeout=30, what="progress")
    kill9(relay)  # mid-stream
    at_kill = redis_client.xlen("alkdev:events")
    assert 0 < at_kill < n
    saved = db.stream("events").get_offset("redis-relay:alkdev:events")
    relay2 = spawn("relay", db_path, redis_server.port, "hub-a", "events", 50)
    assert read_line(relay2, timeout=15)["offset"] == saved  # resumes from its own offset
    wait_for(
        lambda: db.stream("events").get_offset("redis-relay:alkdev:events") == n,
        timeout=60,
        what="the restarted relay to finish",
    )
    kill9(relay2)
    total = redis_client.xlen("alkdev:events")
    resent = total - n
    assert resent == at_kill - saved  # exactly the unsaved tail was sent again
    t = consumer_target(redis_client, batch_size=1000)
    got: list[int] = []
    t.add_event_listener("n", lambda e: got.append(e.detail))
    wait_for(lambda: len(got) == n and t.duplicates == resent, timeout=60, what="all events")
    t.close()
    assert got == list(range(n))  # none lost, none twice, in order
    print(f"relay SIGKILL: {at_kill} entries at the kill, saved offset {saved}, {resent} resent")


def test_xautoclaim_reclaims_a_sigkilled_consumers_entries(
    db, redis_server, redis_client, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    producer = RedisEventTarget(redis_client, group="unused", consumer="p")
    for i in range(5):
        producer.dispatch_event(Event("job", i))
    out = tmp_path / "c1.txt"
    c1 = spawn("redis_consumer", redis_server.port, "workers", "c1", out)
    assert read_line(c1)["started"]
    wait_for(lambda: lines(out), what="c1 to take an entry")  # c1 hangs in its listener
    pend = redis_client.xpending("alkdev:events", "workers")
    assert pend["pending"] == 5 and {c["name"] for c in pend["consumers"]} == {b"c1"}
    kill9(c1)
    c2 = RedisEventTarget(
        redis_client,
        group="workers",
        consumer="c2",
        claim_idle_ms=100,
        claim_every_s=0.05,
        block_ms=50,
    )
    got: list[Any] = []
    c2.add_event_listener("job", lambda e: got.append(e.detail))
    wait_for(lambda: len(got) == 5, timeout=10, what="c2 reclaims the five entries")
    assert sorted(got) == list(range(5)) and c2.reclaimed == 5
    wait_for(
        lambda: redis_client.xpending("alkdev:events", "workers")["pending"] == 0,
        what="reclaimed entries acknowledged",
    )
    c2.close()


def test_a_restarted_consumer_rereads_its_own_pending_entries(redis_client) -> None:  # type: ignore[no-untyped-def]
    producer = RedisEventTarget(redis_client, group="g0", consumer="p")
    producer.dispatch_event(Event("x", "pending"))
    redis_client.xgroup_create("alkdev:events", "g", id="0")
    redis_client.xreadgroup("g", "me", {"alkdev:events": ">"}, count=10)  # read, never acked
    t = consumer_target(redis_client, consumer="me", group="g", claim_every_s=3600)
    got: list[Any] = []
    t.add_event_listener("x", lambda e: got.append(e.detail))
    wait_for(lambda: got == ["pending"], what="the pending entry")
    t.close()


def test_async_listener_is_awaited_before_the_ack(redis_client) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    t = consumer_target(redis_client, group="ga")

    async def main() -> list[Any]:
        got: list[Any] = []
        done = asyncio.Event()

        async def fn(e: Event) -> None:
            await asyncio.sleep(0.05)
            got.append(e.detail)
            done.set()

        t.add_event_listener("x", fn)
        assert await asyncio.to_thread(t.wait_ready, 5)
        await t.adispatch_event(Event("x", 1))
        await asyncio.wait_for(done.wait(), 5)
        return got

    assert asyncio.run(main()) == [1]
    wait_for(lambda: redis_client.xpending("alkdev:events", "ga")["pending"] == 0, what="ack")
    t.close()


def test_direct_dispatch_pubsub_and_refusals(redis_client) -> None:  # type: ignore[no-untyped-def]
    t = consumer_target(redis_client, group="gp")
    ps = create_pubsub(t)
    sub = ps.subscribe("graph", 7, timeout=5)
    assert t.wait_ready(5)
    ps.publish("graph", 7, {"x": 1})
    assert sub.get(5) == {"x": 1}
    with pytest.raises(TypeError, match="no commit-aware dispatch"):
        t.dispatch_event(Event("graph:7", 1), tx=object())
    with pytest.raises(TypeError):
        t.dispatch_event(Event("graph:7", {1}))  # not JSON
    before = redis_client.xlen("alkdev:events")
    assert before == 1
    with pytest.raises(ValueError, match="must not be empty"):
        RedisEventTarget(redis_client, group="", consumer="c")
    t.close()


def test_stop_interrupts_a_blocked_read(redis_client) -> None:  # type: ignore[no-untyped-def]
    t = consumer_target(redis_client, group="gs", block_ms=200)
    t.add_event_listener("x", print)
    assert t.wait_ready(5)
    thread = t._thread
    assert thread is not None and thread.is_alive()
    t.close()
    assert not thread.is_alive()  # joined: the blocked XREADGROUP returned
