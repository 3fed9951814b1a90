"""Operation specs and registries: ids, JSON export validated against JSON
Schema's 2020-12 meta-schema, generation options, custom operations."""

from __future__ import annotations

import json

import jsonschema
import pytest
from ops_helpers import SYSTEM
from pydantic import BaseModel

from alkdev_storage.domain import Principal
from alkdev_storage.errors import NotFound
from alkdev_storage.operations import (
    VERBS,
    CallContext,
    Dispatcher,
    OperationSpec,
    Registry,
    custom,
    generate,
    registry_for,
    system_configs,
    tenant_configs,
)


@pytest.mark.parametrize("kind", ["system", "tenant"])
def test_export_is_json_and_every_schema_is_valid_2020_12(kind) -> None:
    reg = registry_for(kind)
    exported = json.loads(reg.export_json())
    assert exported["kind"] == kind
    assert exported["jsonSchemaDialect"] == "https://json-schema.org/draft/2020-12/schema"
    ops = exported["operations"]
    assert [o["id"] for o in ops] == reg.ids() and len(ops) >= 20
    for op in ops:
        assert set(op) == {"id", "kind", "description", "table", "scope", "access", "events",
                           "statements", "input", "output"}
        assert "handler" not in json.dumps(op)
        for schema in (op["input"], op["output"]):
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            jsonschema.Draft202012Validator.check_schema(schema)
        assert op["kind"] == ("query" if op["id"].split(".")[1] in ("get", "list") else "mutation")


def test_a_broken_schema_fails_the_meta_schema_check() -> None:
    # The check above could fail: a schema with a bad keyword value does.
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema({"type": "nonsense"})


def test_exported_input_schema_accepts_and_refuses_like_the_dispatcher() -> None:
    spec = registry_for("tenant").get("nodes.list")
    validator = jsonschema.Draft202012Validator(spec.input_schema)
    assert validator.is_valid({"graph_id": "g", "limit": 10})
    assert not validator.is_valid({"limit": 501})
    assert not validator.is_valid({"bogus": 1})


def test_api_keys_never_expose_key_hash() -> None:
    reg = registry_for("system")
    for spec in reg.list():
        if spec.table != "api_keys":
            continue
        assert "key_hash" not in json.dumps(spec.output_schema)
        if spec.id != "api_keys.create":
            assert "key_hash" not in json.dumps(spec.input_schema)
    assert "key_hash" in registry_for("system").get("api_keys.create").input_schema["properties"]


def test_unknown_operation_names_it_and_suggests() -> None:
    with pytest.raises(NotFound, match=r"unknown operation 'graphs.lst'.*graphs.list"):
        registry_for("tenant").get("graphs.lst")



def test_registry_refuses_duplicates_and_other_kinds(tenant_db) -> None:
    reg = registry_for("tenant")
    with pytest.raises(ValueError, match="already registered"):
        reg.add(reg.get("nodes.get"))
    with pytest.raises(ValueError, match="kind"):
        Registry("both")
    with pytest.raises(ValueError, match="registry of kind tenant"):
        Dispatcher(tenant_db, "system", registry=reg)


def test_generate_include_exclude_rename_add() -> None:
    cfg = tenant_configs()["graphs"]
    specs = generate(cfg, include=["get", "list", "create"], exclude=["create"],
                     rename={"get": "graphs.fetch"})
    assert [s.id for s in specs] == ["graphs.fetch", "graphs.list"]
    assert [s.scope for s in specs] == ["graphs:read", "graphs:read"]
    with pytest.raises(ValueError, match="unknown verb 'upsert'"):
        generate(cfg, include=["upsert"])

    class Echo(BaseModel):
        text: str

    echo = custom("graphs.echo", "query", lambda inv, data: {"text": data.text}, input=Echo,
                  output=Echo, scope="graphs:read", description="echo")
    specs = generate(cfg, add=[echo])
    assert [s.id.split(".")[1] for s in specs] == [*VERBS, "echo"]
    assert echo.to_json()["input"]["properties"]["text"]["type"] == "string"


def test_custom_operation_runs_through_the_dispatcher(tenant_db) -> None:
    class Echo(BaseModel):
        text: str

    seen = []
    ops = Dispatcher(tenant_db, "tenant")
    ops.registry.add(custom("graphs.echo", "query",
                            lambda inv, data: seen.append(inv.ctx) or {"text": data.text * 2},
                            input=Echo, output=Echo, scope="graphs:read"))
    assert ops.call("graphs.echo", {"text": "ab"}, SYSTEM) == {"text": "abab"}
    assert seen == [SYSTEM]
    # another dispatcher's registry is not changed
    assert "graphs.echo" not in registry_for("tenant")


def test_spec_is_frozen_and_replace_copies() -> None:
    spec = registry_for("tenant").get("graphs.get")
    with pytest.raises(AttributeError):
        spec.id = "x.y"  # type: ignore[misc]
    other = spec.replace(id="graphs.read")
    assert other.id == "graphs.read" and spec.id == "graphs.get"
    with pytest.raises(ValueError, match="kind"):
        spec.replace(kind="command")
    assert isinstance(other, OperationSpec)


def test_call_context_contract() -> None:
    p = Principal.user("a1", "o1", "member")
    ctx = CallContext(p, request_id="r", memberships={"o1": "member"},
                      key_scopes={"graphs:read"}, agent_id="ag", delegated_scopes={"*"})
    assert ctx.key_scopes == frozenset({"graphs:read"})
    assert ctx.allows("graphs:read") and not ctx.allows("graphs:write")
    # an agent gets the intersection of the key's and the delegation's scopes
    agent = CallContext(p, key_scopes={"graphs:*"}, agent_id="ag",
                        delegated_scopes={"graphs:read", "nodes:read"})
    assert agent.allows("graphs:read")
    assert not agent.allows("graphs:write") and not agent.allows("nodes:read")
    assert not CallContext(p, agent_id="ag").allows("graphs:read")  # no delegation: nothing
    assert CallContext(p).allows("anything:write")
    assert CallContext(p, key_scopes={"project:x", "*"}).projects() is None
    assert CallContext(p, key_scopes={"project:x", "graphs:*"}).projects() == {"x"}
    with pytest.raises(TypeError):
        CallContext("me")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request_id"):
        CallContext(p, request_id="")
    with pytest.raises(ValueError, match="key_scopes"):
        CallContext(p, key_scopes="graphs:read")  # type: ignore[arg-type]


def test_table_configs_cover_every_table() -> None:
    assert set(system_configs()) == {"accounts", "organizations", "organization_memberships",
                                     "api_keys", "tenants"}
    assert set(tenant_configs()) == {"graph_types", "graphs", "nodes", "edges"}
