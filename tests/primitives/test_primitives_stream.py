"""Streams: publish (offsets, keys, transactions), replay, live delivery,
consumer offsets (resume, periodic save, save on close), sync and async."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from alkdev_storage.primitives import Event, Stream, StreamSubscription


def test_publish_returns_offsets_and_replay(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("events")
    assert isinstance(s, Stream) and db.stream("events") is s
    offsets = [s.publish({"i": i}, key=f"k{i % 2}") for i in range(5)]
    assert offsets == sorted(offsets) and len(set(offsets)) == 5
    db.stream("other").publish("noise")
    events = list(s.subscribe(timeout=0))
    assert all(isinstance(e, Event) for e in events)
    assert [e.offset for e in events] == offsets
    assert [e.payload for e in events] == [{"i": i} for i in range(5)]
    assert [e.key for e in events] == ["k0", "k1", "k0", "k1", "k0"]
    assert {e.topic for e in events} == {"events"}
    assert all(e.created_at > 0 for e in events)
    assert "offset=" in repr(events[0])
    # from_offset skips what came before
    assert [e.offset for e in s.subscribe(from_offset=offsets[2], timeout=0)] == offsets[3:]
    # honker-compatible helpers
    assert [r["offset"] for r in s._read_since(offsets[0])] == offsets[1:]
    assert [e.offset for e in s.read(offsets[3])] == offsets[4:]


def test_publish_in_transaction_rolls_back(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("txs")
    with pytest.raises(ZeroDivisionError):
        with db.transaction() as tx:
            s.publish({"a": 1}, tx=tx)
            1 / 0  # noqa: B018
    assert s.read() == []
    with db.transaction() as tx:
        off = s.publish({"b": 2}, tx=tx)
        s.save_offset("c", off, tx=tx)
    assert [e.offset for e in s.read()] == [off]
    assert s.get_offset("c") == off


def test_validation(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        db.stream("")
    with pytest.raises(TypeError):
        db.stream(b"bytes")
    s = db.stream("v")
    with pytest.raises(TypeError):
        s.publish({1, 2})
    with pytest.raises(TypeError):
        s.publish(1, key=5)
    with pytest.raises(ValueError):
        s.subscribe("")
    with pytest.raises(TypeError):
        s.save_offset(None, 1)
    assert s.read() == []


def test_offsets_are_monotonic(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("mono")
    for i in range(10):
        s.publish(i)
    assert s.get_offset("c") == 0
    s.save_offset("c", 10)
    s.save_offset("c", 5)  # never rewinds
    assert s.get_offset("c") == 10
    assert s.get_offset("other") == 0


def test_subscribe_resumes_from_saved_offset(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("resume")
    offs = [s.publish(i) for i in range(6)]
    sub = s.subscribe("worker")
    assert isinstance(sub, StreamSubscription)
    assert [next(sub).payload for _ in range(3)] == [0, 1, 2]
    sub.close()  # saves the last event handed out
    assert s.get_offset("worker") == offs[2]
    assert [e.payload for e in s.subscribe("worker", timeout=0)] == [3, 4, 5]
    # the idle end of the iteration saved everything handed out
    assert s.get_offset("worker") == offs[5]


def test_periodic_saves(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("periodic")
    offs = [s.publish(i) for i in range(10)]
    sub = s.subscribe("c", save_every_n=3, save_every_s=0)
    got = [next(sub) for _ in range(4)]
    # saved before the 4th event was handed out: events 1..3 are done
    assert s.get_offset("c") == offs[2]
    assert got[-1].offset == offs[3]
    sub2 = s.subscribe("t", save_every_n=0, save_every_s=0.05)
    next(sub2)
    assert s.get_offset("t") == 0
    time.sleep(0.06)
    next(sub2)
    assert s.get_offset("t") == offs[0]
    # while idle, the time-based save still happens
    for _ in range(8):
        next(sub2)
    assert sub2.get(0.3) is None
    assert s.get_offset("t") == offs[9]


def test_exception_in_with_block_redelivers_current_event(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("exc")
    offs = [s.publish(i) for i in range(3)]
    with pytest.raises(RuntimeError):
        with s.subscribe("c") as sub:
            for e in sub:
                if e.payload == 1:
                    raise RuntimeError("handler failed")
    assert s.get_offset("c") == offs[0]
    assert [e.payload for e in s.subscribe("c", timeout=0)] == [1, 2]


def test_live_delivery_blocking(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("live")
    s.publish("old")
    sub = s.subscribe(from_offset=s.read()[-1].offset, timeout=2)

    def publish() -> None:
        for i in range(3):
            time.sleep(0.02)
            s.publish(i)

    t = threading.Thread(target=publish)
    t.start()
    got = []
    for e in sub:
        got.append(e.payload)
        if len(got) == 3:
            break
    t.join()
    assert got == [0, 1, 2]


def test_async_subscribe_replay_then_live(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("async")
    for i in range(3):
        s.publish(i)

    async def main() -> list[object]:
        async def later() -> None:
            await asyncio.sleep(0.02)
            with db.transaction() as tx:
                s.publish(3, tx=tx)
                s.publish(4, tx=tx)

        task = asyncio.create_task(later())
        got = []
        async with s.subscribe("ac") as sub:
            async for e in sub:
                got.append(e.payload)
                if len(got) == 5:
                    break
        await task
        return got

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    assert s.get_offset("ac") == s.read()[-1].offset


def test_large_replay_in_batches(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("big")
    with db.transaction() as tx:
        for i in range(2500):
            s.publish(i, tx=tx)
    assert [e.payload for e in s.subscribe(timeout=0)] == list(range(2500))
