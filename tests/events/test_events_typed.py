"""Typed events with the real event catalog (alkdev_storage.domain.catalog):
a mismatching payload is refused before anything is written, listeners
get the catalogued payload models, in process, through Honker and
through a durable stream."""

from __future__ import annotations

import time
from typing import Any

import pytest
from events_helpers import wait_for

from alkdev_storage.domain.catalog import (
    CALL_PROTOCOL,
    GRAPH_CREATED,
    GRAPH_UPDATED,
    CallProtocolEvent,
    GraphCreated,
    GraphUpdated,
)
from alkdev_storage.errors import ValidationFailed
from alkdev_storage.events import (
    DurableEventTarget,
    EphemeralEventTarget,
    Event,
    InProcessEventTarget,
    TypeRegistry,
    catalog_types,
    create_pubsub,
)


def counts(db: Any) -> tuple[int, int]:
    return (
        db.fetchone("SELECT COUNT(*) FROM _honker_notifications")[0],
        db.fetchone("SELECT COUNT(*) FROM _honker_stream")[0],
    )


def test_catalog_types_lists_definitions() -> None:
    tenant = catalog_types("tenant")
    assert GRAPH_CREATED in tenant and CALL_PROTOCOL in tenant
    assert set(catalog_types()) >= set(tenant) | set(catalog_types("system"))
    with pytest.raises(ValueError, match="kind must be one of"):
        catalog_types("hub")
    reg = TypeRegistry(tenant)
    assert reg.model_for("graph:created") is GraphCreated
    assert reg.model_for("graph:created:g1") is GraphCreated  # topic:id takes the key's model
    assert reg.model_for("graph:deleted") is None


def test_ephemeral_target_with_the_catalog(db) -> None:  # type: ignore[no-untyped-def]
    target = EphemeralEventTarget(db, types=catalog_types("tenant"))
    ps = create_pubsub(target)
    sub = ps.subscribe(GRAPH_CREATED, timeout=5)
    before = counts(db)
    with pytest.raises(ValidationFailed) as info:
        ps.publish(GRAPH_CREATED, {"graph_id": "g1"})  # graph_type_id missing
    assert info.value.field == "graph_type_id"
    with pytest.raises(ValidationFailed):
        ps.publish("graph:updated", {"graph_id": "g1", "changes": []})  # min_length 1
    with pytest.raises(ValidationFailed):
        target.dispatch_event(Event("graph:created", GraphUpdated(graph_id="g", changes=["x"])))
    assert counts(db) == before  # nothing written
    sent = GraphCreated(graph_id="g1", graph_type_id="t1")
    ps.publish(GRAPH_CREATED, sent)
    got = sub.get(5)
    assert got == sent and isinstance(got, GraphCreated)  # occurred_at survives the wire
    row = db.fetchone("SELECT payload FROM _honker_notifications ORDER BY id DESC")[0]
    assert '"graph_id":"g1"' in row


def test_plain_target_refuses_a_foreign_mismatch_on_receipt(db) -> None:  # type: ignore[no-untyped-def]
    target = EphemeralEventTarget(db, types=[GRAPH_UPDATED])
    got: list[Any] = []
    target.add_event_listener("graph:updated", lambda e: got.append(e.detail))
    db.notify("graph:updated", {"graph_id": "g", "changes": ["name"]})  # another binding, valid
    db.notify("graph:updated", {"graph_id": "g"})  # invalid: dropped, counted
    target.dispatch_event(Event("graph:updated", {"graph_id": "h", "changes": ["status"]}))
    wait_for(lambda: len(got) == 2, what="two valid events")
    time.sleep(0.05)
    assert [type(d) for d in got] == [GraphUpdated, GraphUpdated]
    assert [d.graph_id for d in got] == ["g", "h"]
    assert target.types.invalid == 1


def test_durable_stream_with_a_catalog_stream_definition(db) -> None:  # type: ignore[no-untyped-def]
    producer = DurableEventTarget(db, stream=CALL_PROTOCOL.name, types=[CALL_PROTOCOL])
    consumer = DurableEventTarget(
        db, stream=CALL_PROTOCOL.name, consumer="projector", types=[CALL_PROTOCOL], lease_ttl=2
    )
    ps = create_pubsub(producer)
    before = counts(db)
    with pytest.raises(ValidationFailed, match="type"):
        ps.publish(
            CALL_PROTOCOL, "c1", {"type": "call.nope", "call_id": "c1", "operation_id": "op"}
        )
    assert counts(db) == before
    got: list[Any] = []
    consumer.add_event_listener("call-protocol:*", lambda e: got.append((e.type, e.detail)))
    ps.publish(
        CALL_PROTOCOL, "c1", {"type": "call.requested", "call_id": "c1", "operation_id": "op"}
    )
    wait_for(lambda: got, what="the call event")
    t, detail = got[0]
    assert t == "call-protocol:c1" and isinstance(detail, CallProtocolEvent)
    assert detail.type == "call.requested"
    consumer.close()


def test_in_process_target_with_catalog_and_subscription_models() -> None:
    t = InProcessEventTarget(types=catalog_types("tenant"))
    ps = create_pubsub(t)
    sub = ps.subscribe(GRAPH_CREATED, "g1", timeout=0.05)
    ps.publish(GRAPH_CREATED, "g1", {"graph_id": "g1", "graph_type_id": "t"})
    ps.publish(GRAPH_CREATED, "g2", {"graph_id": "g2", "graph_type_id": "t"})
    [only] = list(sub)
    assert isinstance(only, GraphCreated) and only.graph_id == "g1"


def test_with_detail_keeps_every_field_of_the_delivery() -> None:
    """Typed validation replaces an event's detail with the parsed model:
    the copy keeps the type, origin, id and the subclass's position."""
    from alkdev_storage.events import Event
    from alkdev_storage.events.redis_target import RedisEvent

    e = RedisEvent("a:b", {"x": 1}, origin="o", id="i", message_id="m", entry_id="1-0",
                   source="s")
    f = e.with_detail({"y": 2})
    assert type(f) is RedisEvent
    assert (f.type, f.origin, f.id, f.message_id, f.entry_id, f.source) == (
        "a:b", "o", "i", "m", "1-0", "s")
    assert f.detail == {"y": 2} and e.detail == {"x": 1}
    g = Event("t", 1, origin="o", id="x").with_detail(2)
    assert type(g) is Event and (g.type, g.detail, g.origin, g.id) == ("t", 2, "o", "x")
