"""create_pubsub: topics formed as the original pubsub forms them,
publish/subscribe in both iteration styles, unsubscribing when the
iteration stops, typed routing keys."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from alkdev_storage.errors import ValidationFailed
from alkdev_storage.events import Event, InProcessEventTarget, create_pubsub, topic


class Created(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    graph_id: str
    n: int = 0


class Defn:
    """A catalog definition (duck-typed: name + payload model)."""

    def __init__(self, name: str, payload: type[BaseModel]) -> None:
        self.name = name
        self.payload = payload


GRAPH_CREATED = Defn("graph:created", Created)

keys = st.text(alphabet="abc:-_.", min_size=1, max_size=8)
ids = st.text(alphabet="xyz019", min_size=1, max_size=6) | st.integers(-(10**6), 10**6)


@given(routing_key=keys, id=ids)
def test_topics_are_formed_as_the_original(routing_key: str, id: str | int) -> None:
    # graphql-yoga / @alkdev/pubsub: `${routingKey}:${id}`; JS prints ints as Python does.
    assert topic(routing_key) == routing_key
    assert topic(routing_key, id) == routing_key + ":" + str(id)
    t = InProcessEventTarget()
    seen: list[Event] = []
    t.add_event_listener(topic(routing_key, id), seen.append)
    ps = create_pubsub(t)
    ps.publish(routing_key, id, {"p": 1})
    ps.publish(routing_key, {"p": 2})
    assert [(e.type, e.detail) for e in seen] == [(f"{routing_key}:{id}", {"p": 1})]


def test_publish_and_subscribe_blocking() -> None:
    ps = create_pubsub()
    one = ps.subscribe("graph", 1, timeout=0.05)
    all_ = ps.subscribe("graph", timeout=0.05)
    ps.publish("graph", 1, {"a": 1})
    ps.publish("graph", 2, {"a": 2})
    ps.publish("graph", {"a": 3})
    ps.publish("graph", 1, None)  # a None payload stays None (not the id)
    assert list(one) == [{"a": 1}, None]
    assert list(all_) == [{"a": 3}]
    assert one.closed and all_.closed
    assert ps.target.listener_count() == 0  # iteration ended: unsubscribed


def test_subscribe_async_from_another_thread() -> None:
    ps = create_pubsub()

    async def main() -> list[Any]:
        sub = ps.subscribe("k", "id", timeout=1)
        th = threading.Thread(target=lambda: [ps.publish("k", "id", i) for i in range(100)])
        th.start()
        got = []
        async for x in sub:
            got.append(x)
            if len(got) == 100:
                break
        th.join()
        return got

    assert asyncio.run(main()) == list(range(100))


def test_breaking_out_of_a_for_unsubscribes() -> None:
    ps2 = create_pubsub()

    def consume() -> None:
        for item in ps2.subscribe("k"):
            assert item == "x"
            break

    th = threading.Thread(target=consume)
    th.start()
    import time

    while ps2.target.listener_count("k") == 0:
        time.sleep(0.001)
    ps2.publish("k", "x")
    th.join(5)
    gc.collect()
    assert ps2.target.listener_count("k") == 0


def test_async_break_unsubscribes() -> None:
    ps = create_pubsub()

    async def main() -> None:
        async def later() -> None:
            await asyncio.sleep(0.01)
            ps.publish("k", 1)

        task = asyncio.create_task(later())
        async for x in ps.subscribe("k"):
            assert x == 1
            break
        await task

    asyncio.run(main())
    gc.collect()
    assert ps.target.listener_count("k") == 0


def test_close_and_context_manager_unsubscribe() -> None:
    ps = create_pubsub()
    with ps.subscribe("k") as sub:
        assert ps.target.listener_count("k") == 1
        ps.publish("k", 1)
        assert sub.get(1) == 1
    assert ps.target.listener_count("k") == 0
    assert sub.get(0) is None
    sub.close()  # idempotent


def test_closing_the_target_ends_subscriptions_after_their_items() -> None:
    ps = create_pubsub()
    sub = ps.subscribe("k")
    ps.publish("k", 1)
    ps.publish("k", 2)
    ps.close()
    assert list(sub) == [1, 2]


def test_close_from_another_thread_wakes_a_blocked_reader() -> None:
    ps = create_pubsub()
    sub = ps.subscribe("k")
    box: list[Any] = []
    th = threading.Thread(target=lambda: box.append(list(sub)))
    th.start()
    import time

    time.sleep(0.05)
    sub.close()
    th.join(5)
    assert box == [[]]


@pytest.mark.parametrize(
    ("args", "exc", "text"),
    [
        (("k",), TypeError, "publish takes"),
        (("k", 1, 2, 3), TypeError, "publish takes"),
        (("k", None, {"a": 1}), TypeError, "id must not be None"),
        (("k", True, 1), TypeError, "str or an int"),
        (("k", 1.5, 1), TypeError, "str or an int"),
        (("k", "", 1), ValueError, "must not be empty"),
        (("", 1), ValueError, "must not be empty"),
        (("k*", 1), ValueError, "patterns are for listening"),
        ((3, 1), TypeError, "routing_key must be a str"),
    ],
)
def test_bad_publish_is_refused_and_nothing_dispatched(
    args: tuple[Any, ...], exc: type[Exception], text: str
) -> None:
    t = InProcessEventTarget()
    got: list[Event] = []
    t.add_event_listener("*", got.append)
    with pytest.raises(exc, match=text):
        create_pubsub(t).publish(*args)
    assert got == []


def test_event_target_must_implement_the_protocol() -> None:
    with pytest.raises(TypeError, match="must implement EventTarget"):
        create_pubsub(object())  # type: ignore[arg-type]


def test_typed_routing_key_validates_first_and_yields_models() -> None:
    t = InProcessEventTarget()
    raw: list[Event] = []
    t.add_event_listener("*", raw.append)
    ps = create_pubsub(t)
    sub = ps.subscribe(GRAPH_CREATED, timeout=0.05)
    by_id = ps.subscribe(GRAPH_CREATED, "g1", timeout=0.05)
    ps.publish(GRAPH_CREATED, {"graph_id": "g1"})
    ps.publish(GRAPH_CREATED, "g1", Created(graph_id="g1", n=2))
    with pytest.raises(ValidationFailed) as info:
        ps.publish(GRAPH_CREATED, {"graph_id": 5})
    assert info.value.field == "graph_id"
    with pytest.raises(ValidationFailed):
        ps.publish(GRAPH_CREATED, {"graph_id": "g", "extra": 1})
    assert len(raw) == 2  # the refused ones were never dispatched
    assert list(sub) == [Created(graph_id="g1")]
    assert list(by_id) == [Created(graph_id="g1", n=2)]
    # A plain publish on the typed topic with a bad payload: the typed
    # subscription refuses it (counted), the untyped listener still gets it.
    sub2 = ps.subscribe(GRAPH_CREATED, timeout=0.05)
    ps.publish("graph:created", {"nope": 1})
    assert list(sub2) == [] and sub2.invalid == 1


def test_target_types_refuse_before_delivery() -> None:
    t = InProcessEventTarget(types={"graph:created": Created})
    got: list[Event] = []
    t.add_event_listener("graph:*", got.append)
    ps = create_pubsub(t)
    ps.publish("graph:created", "abc", {"graph_id": "g"})  # graph:created:abc takes the model
    with pytest.raises(ValidationFailed, match="graph_id"):
        ps.publish("graph:created", {"graph_id": None})
    ps.publish("graph:other", {"anything": True})
    assert [type(e.detail) for e in got] == [Created, dict]
