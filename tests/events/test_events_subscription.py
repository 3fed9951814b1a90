"""Bounded subscriber buffers: the four overflow policies, their counters,
and memory that stays bounded under a slow subscriber."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alkdev_storage.errors import SubscriberOverflow
from alkdev_storage.events import OVERFLOW_POLICIES, InProcessEventTarget, create_pubsub


@given(
    ops=st.lists(st.one_of(st.just("take"), st.integers(0, 99)), max_size=60),
    size=st.integers(1, 5),
    policy=st.sampled_from(["drop_oldest", "drop_newest", "raise"]),
)
def test_policies_match_an_oracle(ops: list[Any], size: int, policy: str) -> None:
    ps = create_pubsub()
    sub = ps.subscribe("k", max_buffered=size, overflow=policy)  # type: ignore[arg-type]
    model: deque[int] = deque()
    dropped = overflows = received = 0
    for op in ops:
        if op == "take":
            assert sub.get(0) == (model.popleft() if model else None)
            continue
        full = len(model) >= size
        if full:
            overflows += 1
        if full and policy == "raise":
            with pytest.raises(SubscriberOverflow, match="buffer full"):
                ps.publish("k", op)
            continue
        ps.publish("k", op)
        if full and policy == "drop_newest":
            dropped += 1
            continue
        if full:
            model.popleft()
            dropped += 1
        model.append(op)
        received += 1
    assert (sub.dropped, sub.overflows, sub.received, sub.buffered) == (
        dropped,
        overflows,
        received,
        len(model),
    )
    assert sub.buffered <= size


def test_raise_reaches_the_producer_after_the_other_listeners() -> None:
    t = InProcessEventTarget()
    ps = create_pubsub(t)
    small = ps.subscribe("k", max_buffered=1, overflow="raise")
    big = ps.subscribe("k")
    ps.publish("k", 1)
    with pytest.raises(SubscriberOverflow):
        ps.publish("k", 2)
    assert big.buffered == 2 and small.buffered == 1
    assert small.get(0) == 1


def test_block_waits_for_the_consumer() -> None:
    ps = create_pubsub()
    sub = ps.subscribe("k", max_buffered=2, overflow="block")
    got: list[int] = []

    def produce() -> None:
        for i in range(50):
            ps.publish("k", i)

    th = threading.Thread(target=produce)
    th.start()
    while len(got) < 50:
        time.sleep(0.001)  # a slow consumer
        got.append(sub.get(5))
        assert sub.buffered <= 2
    th.join(5)
    assert got == list(range(50))
    assert sub.dropped == 0 and sub.overflows > 0


def test_block_times_out_and_refuses_to_wait_for_itself() -> None:
    ps = create_pubsub()
    sub = ps.subscribe("k", max_buffered=1, overflow="block", block_timeout=0.05)
    ps.publish("k", 1)
    assert sub.get(0) == 1  # this thread consumes it now
    ps.publish("k", 2)
    with pytest.raises(SubscriberOverflow, match="cannot wait for itself"):
        ps.publish("k", 3)
    box: list[BaseException] = []

    def other() -> None:
        try:
            ps.publish("k", 4)
        except SubscriberOverflow as e:
            box.append(e)

    th = threading.Thread(target=other)
    th.start()
    th.join(5)
    assert len(box) == 1 and "no room within 0.05 s" in str(box[0])
    assert list(sub.get(0) for _ in range(2)) == [2, None]


def test_block_with_apublish_awaits_room_on_the_loop() -> None:
    async def main() -> list[int]:
        ps = create_pubsub()
        sub = ps.subscribe("k", max_buffered=1, overflow="block")

        async def produce() -> None:
            for i in range(20):
                await ps.apublish("k", i)

        task = asyncio.create_task(produce())
        got = []
        async for x in sub:
            got.append(x)
            assert sub.buffered <= 1
            if len(got) == 20:
                break
        await task
        return got

    assert asyncio.run(main()) == list(range(20))


def test_closing_releases_a_blocked_producer() -> None:
    ps = create_pubsub()
    sub = ps.subscribe("k", max_buffered=1, overflow="block")
    ps.publish("k", 1)
    th = threading.Thread(target=lambda: ps.publish("k", 2))
    th.start()
    time.sleep(0.05)
    assert th.is_alive()
    sub.close()
    th.join(5)
    assert not th.is_alive()


def test_a_slow_subscriber_keeps_memory_bounded() -> None:
    ps = create_pubsub()
    slow = ps.subscribe("k", max_buffered=100)
    fast = ps.subscribe("k", max_buffered=100_000)
    for i in range(20_000):
        ps.publish("k", i)
    assert slow.buffered == 100 and slow.dropped == 19_900
    assert slow.get(0) == 19_900  # the newest kept
    assert fast.buffered == 20_000 and fast.dropped == 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "text"),
    [
        ({"max_buffered": 0}, ValueError, "max_buffered must be >= 1"),
        ({"max_buffered": 1.5}, TypeError, "max_buffered must be an int"),
        ({"overflow": "grow"}, ValueError, "overflow must be one of"),
        ({"timeout": -1}, ValueError, "timeout must be >= 0"),
        ({"block_timeout": "x"}, TypeError, "block_timeout must be a number"),
    ],
)
def test_bad_options_are_refused_and_nothing_registered(
    kwargs: dict[str, Any], exc: type[Exception], text: str
) -> None:
    ps = create_pubsub()
    with pytest.raises(exc, match=text):
        ps.subscribe("k", **kwargs)
    assert ps.target.listener_count() == 0


def test_policy_names() -> None:
    assert OVERFLOW_POLICIES == ("drop_oldest", "drop_newest", "raise", "block")
