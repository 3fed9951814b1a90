"""The event catalog on real files: valid payloads are delivered and parse
back; invalid ones raise ValidationFailed naming the field and write
nothing; rollbacks leave nothing; definitions are complete."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schema_check import check_schema, draft_2020_12_check
from sqlalchemy.orm import Session

import alkdev_storage
from alkdev_storage.domain.catalog import (
    ACCOUNT_CREATED,
    AUDIT_EVENTS,
    CALL_PROTOCOL,
    CATALOG,
    GRAPH_CREATED,
    KEY_MANAGEMENT,
    NODES_CREATED,
    SECRET_ROTATION,
    Channel,
    GraphCreated,
    QueueDef,
    SecretRotationJob,
    StreamDef,
    database_kind,
    definition,
    enqueue,
    notify,
    parse,
    publish,
)
from alkdev_storage.errors import ValidationFailed
from alkdev_storage.sqlalchemy import create_engine

# DESIGN.md's "Event catalog" table.
DESIGN = {
    "system": {
        Channel: {"account:created", "account:updated", "org:created", "org:member_added",
                  "auth:key_verified"},
        StreamDef: {"audit-events"},
        QueueDef: {"key-management", "account-maintenance"},
    },
    "tenant": {
        Channel: {"graph:created", "graph:updated", "nodes:created", "acl:delegation_changed"},
        StreamDef: {"call-protocol", "session-events"},
        QueueDef: {"acl-evaluation", "secret-rotation", "graph-maintenance", "schema-migration"},
    },
}

GRAPH = {"graph_id": "01HZX", "graph_type_id": "01HZT", "owner_id": "u1", "request_id": "r1"}


def count(db: alkdev_storage.Database, table: str) -> int:
    return int(db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"])


@pytest.fixture
def tenant(tmp_path: Path) -> Any:
    db = alkdev_storage.open(tmp_path / "tenant-org1.db")
    try:
        yield db
    finally:
        db.close()


# ---------------------------------------------------------------------
# The definitions
# ---------------------------------------------------------------------


def test_catalog_matches_the_design_table() -> None:
    for kind, by_type in DESIGN.items():
        got: dict[type, set[str]] = {}
        for d in CATALOG[kind]:  # type: ignore[index]
            assert d.database == kind
            got.setdefault(type(d), set()).add(d.name)
        assert got == by_type
    names = [d.name for ds in CATALOG.values() for d in ds]
    assert len(names) == len(set(names)) == 18
    assert definition("graph:created") is GRAPH_CREATED
    with pytest.raises(KeyError, match="nope"):
        definition("nope")


@pytest.mark.parametrize("defn", [d for ds in CATALOG.values() for d in ds], ids=lambda d: d.name)
def test_every_payload_model(defn: Any) -> None:
    model: type[BaseModel] = defn.payload
    assert model.model_config.get("extra") == "forbid"
    assert {"request_id", "occurred_at"} <= set(model.model_fields)
    assert model.__doc__
    for mode in ("validation", "serialization"):
        schema = model.model_json_schema(mode=mode)
        json.dumps(schema, allow_nan=False)
        check_schema(schema)
        draft_2020_12_check(schema)
        occurred = schema["properties"]["occurred_at"]
        assert (occurred["type"], occurred["format"]) == ("string", "date-time")
    with pytest.raises(ValidationFailed) as e:
        parse(defn, {"surprise": 1})
    assert e.value.errors


def test_definitions_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="database"):
        Channel("x:y", "other", GraphCreated)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        Channel("", "tenant", GraphCreated)
    with pytest.raises(TypeError, match="pydantic"):
        QueueDef("q", "tenant", dict)  # type: ignore[type-var]
    with pytest.raises(AttributeError):
        GRAPH_CREATED.name = "other"  # type: ignore[misc]


def test_database_kind_from_the_hubs_file_names() -> None:
    assert database_kind("/x/system.db") == "system"
    assert database_kind(Path("/x/tenant-01HZ.db")) == "tenant"
    assert database_kind("/x/app.db") is None


# ---------------------------------------------------------------------
# notify / listen
# ---------------------------------------------------------------------


def test_valid_notify_is_received_and_parses_back(tenant: Any) -> None:
    listener = tenant.listen(GRAPH_CREATED.name, timeout=5)
    with tenant.transaction() as tx:
        notify(tx, GRAPH_CREATED, GRAPH)
    received = next(iter(listener))
    got = parse(GRAPH_CREATED, received)
    assert isinstance(got, GraphCreated)
    assert got.model_dump(exclude={"occurred_at"}) == GRAPH
    assert got.occurred_at.tzinfo is not None
    assert abs(got.occurred_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    # On the wire: JSON types only.
    assert received.payload["occurred_at"].endswith("Z")


def test_a_model_instance_is_sent_as_is(tenant: Any) -> None:
    model = GraphCreated(graph_id="g", graph_type_id="t",
                         occurred_at=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC))
    listener = tenant.listen(GRAPH_CREATED.name, timeout=5)
    notify(tenant, GRAPH_CREATED, model)
    assert parse(GRAPH_CREATED, next(iter(listener))) == model
    with pytest.raises(TypeError, match="GraphCreated"):
        notify(tenant, GRAPH_CREATED, SecretRotationJob(key_version=1))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"graph_type_id": "t"}, "graph_id"),
        (GRAPH | {"graph_id": ""}, "graph_id"),
        (GRAPH | {"extra": 1}, "extra"),
        (GRAPH | {"occurred_at": "2024-01-01T00:00:00"}, "occurred_at"),
        (GRAPH | {"owner_id": 5}, "owner_id"),
    ],
)
def test_invalid_notify_names_the_field_and_writes_nothing(
    tenant: Any, payload: dict[str, Any], field: str
) -> None:
    with tenant.transaction() as tx, pytest.raises(ValidationFailed) as e:
        notify(tx, GRAPH_CREATED, payload)
    assert e.value.field == field
    assert field in str(e.value)
    assert count(tenant, "_honker_notifications") == 0


def test_rollback_leaves_no_notification(tenant: Any) -> None:
    with pytest.raises(RuntimeError), tenant.transaction() as tx:
        notify(tx, GRAPH_CREATED, GRAPH)
        raise RuntimeError("abort")
    assert count(tenant, "_honker_notifications") == 0


def test_parse_refuses_another_channel_and_reads_json_text(tenant: Any) -> None:
    listener = tenant.listen(NODES_CREATED.name, timeout=5)
    notify(tenant, NODES_CREATED, {"graph_id": "g", "keys": ["a", "b"]})
    n = next(iter(listener))
    with pytest.raises(ValidationFailed, match="graph:created"):
        parse(GRAPH_CREATED, n)
    text = json.dumps(n.payload)
    assert parse(NODES_CREATED, text) == parse(NODES_CREATED, n)
    with pytest.raises(ValidationFailed) as e:
        parse(NODES_CREATED, {"graph_id": "g", "keys": []})
    assert e.value.field == "keys"


# ---------------------------------------------------------------------
# publish / enqueue
# ---------------------------------------------------------------------

CALL = {"type": "call.requested", "call_id": "c1", "operation_id": "op-call",
        "data": {"args": [1, "x"]}}


def test_publish_valid_and_invalid(tenant: Any) -> None:
    with tenant.transaction() as tx:
        offset = publish(tenant, CALL_PROTOCOL, CALL, key="c1", tx=tx)
    events = tenant.stream(CALL_PROTOCOL.name).read()
    assert [e.offset for e in events] == [offset] and events[0].key == "c1"
    assert parse(CALL_PROTOCOL, events[0]).model_dump(include=set(CALL)) == CALL
    for bad, field in ((CALL | {"type": "call.lost"}, "type"),
                       (CALL | {"data": {"x": float("nan")}}, "data")):
        with tenant.transaction() as tx, pytest.raises(ValidationFailed) as e:
            publish(tenant, CALL_PROTOCOL, bad, tx=tx)
        assert e.value.field is not None and e.value.field.startswith(field)
    assert count(tenant, "_honker_stream") == 1
    with pytest.raises(RuntimeError), tenant.transaction() as tx:
        publish(tenant, CALL_PROTOCOL, CALL, tx=tx)
        raise RuntimeError("abort")
    assert count(tenant, "_honker_stream") == 1
    with pytest.raises(TypeError, match="Database"):
        publish(object(), CALL_PROTOCOL, CALL)


def test_enqueue_valid_and_invalid(tenant: Any) -> None:
    with tenant.transaction() as tx:
        enqueue(tenant, SECRET_ROTATION, {"key_version": 3, "batch_size": 50}, tx=tx, priority=5)
    with pytest.raises(ValidationFailed) as e:
        enqueue(tenant, SECRET_ROTATION, {"key_version": 0})
    assert e.value.field == "key_version"
    with pytest.raises(RuntimeError), tenant.transaction() as tx:
        enqueue(tenant, SECRET_ROTATION, {"key_version": 4}, tx=tx)
        raise RuntimeError("abort")
    assert count(tenant, "_honker_live") == 1
    job = tenant.queue(SECRET_ROTATION.name).claim_one("w1")
    got = parse(SECRET_ROTATION, job)
    assert (got.key_version, got.batch_size) == (3, 50)
    with pytest.raises(ValidationFailed, match="key-management"):
        parse(KEY_MANAGEMENT, job)


# ---------------------------------------------------------------------
# Database kinds, SQLAlchemy sessions
# ---------------------------------------------------------------------


def test_a_definition_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    system = alkdev_storage.open(tmp_path / "system.db")
    try:
        with pytest.raises(ValueError, match="tenant databases"):
            notify(system, GRAPH_CREATED, GRAPH)
        with pytest.raises(ValueError, match="tenant databases"):
            enqueue(system, SECRET_ROTATION, {"key_version": 1})
        publish(system, AUDIT_EVENTS, {"action": "account.create", "target_type": "account"})
        assert count(system, "_honker_notifications") == count(system, "_honker_live") == 0
        assert count(system, "_honker_stream") == 1
    finally:
        system.close()
    other = alkdev_storage.open(tmp_path / "app.db")  # a name that does not tell
    try:
        notify(other, ACCOUNT_CREATED,
               {"account_id": "a", "email": "a@b.c", "access_level": "user"})
        notify(other, GRAPH_CREATED, GRAPH)
        assert count(other, "_honker_notifications") == 2
    finally:
        other.close()


def test_session_writes_commit_together(tmp_path: Path) -> None:
    engine = create_engine(tmp_path / "tenant-org2.db")
    md = sa.MetaData()
    graphs = sa.Table("graphs", md, sa.Column("id", sa.String, primary_key=True))
    md.create_all(engine)
    try:
        with Session(engine) as session, session.begin():
            session.execute(graphs.insert().values(id="g1"))
            notify(session, GRAPH_CREATED, GRAPH | {"graph_id": "g1"})
            publish(session, CALL_PROTOCOL, CALL)
            enqueue(session, SECRET_ROTATION, {"key_version": 2})
        with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
            session.execute(graphs.insert().values(id="g2"))
            notify(session, GRAPH_CREATED, GRAPH | {"graph_id": "g2"})
            raise RuntimeError("abort")
        with pytest.raises(ValidationFailed), Session(engine) as session, session.begin():
            session.execute(graphs.insert().values(id="g3"))
            enqueue(session, SECRET_ROTATION, {"key_version": "two"})
        with engine.connect() as conn:
            assert conn.execute(sa.select(graphs.c.id)).scalars().all() == ["g1"]
            for table in ("_honker_notifications", "_honker_stream", "_honker_live"):
                n = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
                assert n == 1, table
    finally:
        engine.dispose()


# ---------------------------------------------------------------------
# Hypothesis: written iff valid, read back equal
# ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    graph_id=st.text(max_size=140),
    keys=st.lists(st.text(max_size=260), max_size=3),
    extra=st.booleans(),
)
def test_nodes_created_written_iff_valid(tenant: Any, graph_id: str, keys: list[str],
                                         extra: bool) -> None:
    payload: dict[str, Any] = {"graph_id": graph_id, "keys": keys}
    if extra:
        payload["surplus"] = True
    valid = (
        1 <= len(graph_id) <= 128
        and len(keys) >= 1
        and all(1 <= len(k) <= 255 for k in keys)
        and not extra
    )
    before = count(tenant, "_honker_notifications")
    listener = tenant.listen(NODES_CREATED.name, timeout=5)
    try:
        with tenant.transaction() as tx:
            notify(tx, NODES_CREATED, payload)
        assert valid
    except ValidationFailed as e:
        assert not valid
        assert e.field is not None
    assert count(tenant, "_honker_notifications") == before + valid
    if valid:
        got = parse(NODES_CREATED, next(iter(listener)))
        assert (got.graph_id, got.keys) == (graph_id, keys)
    listener.close()

