"""Graph-type modules: construction checks, validation against a plain
Python oracle of a module's rules, error messages naming the field, schema
determinism, the registry, secret fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Annotated, Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, create_model
from pydantic_core import core_schema

from alkdev_storage.domain import builtin
from alkdev_storage.domain.builtin import ACL_GRAPH, BUILTIN_MODULES, CALL_GRAPH
from alkdev_storage.domain.modules import (
    Attributes,
    EdgeType,
    GraphTypeModule,
    NodeType,
    canonical_json,
    encrypted_fields,
    get_module,
    module_to_db_schema,
    modules,
    register_module,
    schema_fingerprint,
    unregister_module,
    validate_edge,
    validate_node,
    validate_node_attributes,
)
from alkdev_storage.errors import NotFound, ValidationFailed

# ---------------------------------------------------------------------------
# Random modules and their oracle
# ---------------------------------------------------------------------------

KINDS: dict[str, Any] = {
    "int": int,
    "str": str,
    "bool": bool,
    "opt_int": Optional[int],  # noqa: UP045 - the Optional spelling is what we test
    "opt_str": str | None,
}
TYPE_NAMES = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
FIELD_NAMES = ["a", "b", "count", "label", "flag", "timeout_ms"]


def _ok(kind: str, value: object) -> bool:
    """The oracle for one strict field value."""
    if value is None:
        return kind.startswith("opt_")
    base = kind.removeprefix("opt_")
    return type(value) is {"int": int, "str": str, "bool": bool}[base]


def _model(name: str, fields: dict[str, tuple[str, bool]]) -> type[BaseModel]:
    """fields: name -> (kind, required)."""
    spec: dict[str, Any] = {}
    for f, (kind, required) in fields.items():
        default: Any = ... if required else (None if kind.startswith("opt_") else {
            "int": 7, "str": "d", "bool": False}[kind])
        spec[f] = (KINDS[kind], default)
    return create_model(name, __config__=ConfigDict(strict=True, extra="forbid"), **spec)


@st.composite
def module_specs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(TYPE_NAMES), min_size=2, max_size=6, unique=True))
    n_nodes = draw(st.integers(1, len(names) - 1))
    field_spec = st.dictionaries(
        st.sampled_from(FIELD_NAMES),
        st.tuples(st.sampled_from(sorted(KINDS)), st.booleans()),
        max_size=4,
    )
    types = {n: draw(field_spec) for n in names}
    node_names, edge_names = names[:n_nodes], names[n_nodes:]
    possible = [(s, e, t) for s in node_names for e in edge_names for t in node_names]
    triples = draw(st.sets(st.sampled_from(possible), max_size=len(possible)))
    return {"nodes": node_names, "edges": edge_names, "types": types, "triples": triples}


def _build(spec: dict[str, Any], version: str = "1.0.0") -> GraphTypeModule:
    models = {n: _model(f"M_{n}", f) for n, f in spec["types"].items()}
    return GraphTypeModule(
        name="random-module",
        version=version,
        node_types=[NodeType(n, models[n]) for n in spec["nodes"]],
        edge_types=[EdgeType(n, models[n]) for n in spec["edges"]],
        triples=set(spec["triples"]),
    )


values = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.text(max_size=5), st.booleans(),
                   st.lists(st.integers(), max_size=2))


@st.composite
def attr_dicts(draw: st.DrawFn, spec: dict[str, Any], type_name: str) -> dict[str, Any]:
    """Attribute dicts near the type's model: some fields right, some wrong,
    some missing, sometimes an unknown one."""
    fields = spec["types"].get(type_name, {})
    out: dict[str, Any] = {}
    for f, (kind, _required) in fields.items():
        choice = draw(st.sampled_from(["right", "any", "missing"]))
        if choice == "missing":
            continue
        if choice == "right":
            base = kind.removeprefix("opt_")
            out[f] = draw({"int": st.integers(), "str": st.text(max_size=5),
                           "bool": st.booleans()}[base])
        else:
            out[f] = draw(values)
    if draw(st.integers(0, 5)) == 0:
        out[draw(st.sampled_from(["unknown", "zz"]))] = 1
    return out


def oracle_attributes(spec: dict[str, Any], type_name: str,
                      attrs: dict[str, Any]) -> tuple[set[str], dict[str, Any]]:
    """(failing fields, stored dict if none fail)."""
    fields = spec["types"][type_name]
    bad = {f"attributes.{k}" for k in attrs if k not in fields}
    stored: dict[str, Any] = {}
    for f, (kind, required) in fields.items():
        if f not in attrs:
            if required:
                bad.add(f"attributes.{f}")
            else:
                stored[f] = None if kind.startswith("opt_") else {
                    "int": 7, "str": "d", "bool": False}[kind]
        elif not _ok(kind, attrs[f]):
            bad.add(f"attributes.{f}")
        else:
            stored[f] = attrs[f]
    return bad, stored


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_validate_node_matches_oracle(data: st.DataObject) -> None:
    spec = data.draw(module_specs())
    m = _build(spec)
    type_name = data.draw(st.sampled_from([*spec["nodes"], *spec["edges"], "nope"]))
    attrs = data.draw(attr_dicts(spec, type_name))
    if type_name not in spec["nodes"]:
        with pytest.raises(ValidationFailed) as info:
            validate_node(m, type_name, attrs)
        assert info.value.field == "type"
        assert repr(type_name) in str(info.value)
        return
    bad, stored = oracle_attributes(spec, type_name, attrs)
    if bad:
        with pytest.raises(ValidationFailed) as info:
            validate_node(m, type_name, attrs)
        assert info.value.field in bad
        assert str(info.value).startswith(f"{info.value.field}: ")
        assert {".".join(map(str, e["loc"])) for e in info.value.errors} == bad  # type: ignore[arg-type]
    else:
        assert validate_node(m, type_name, attrs) == stored


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_validate_edge_matches_oracle(data: st.DataObject) -> None:
    spec = data.draw(module_specs())
    m = _build(spec)
    edge = data.draw(st.sampled_from([*spec["edges"], *spec["nodes"], "nope"]))
    source = data.draw(st.sampled_from([*spec["nodes"], "nope"]))
    target = data.draw(st.sampled_from([*spec["nodes"], "nope"]))
    attrs = data.draw(attr_dicts(spec, edge))
    if edge not in spec["edges"]:
        with pytest.raises(ValidationFailed) as info:
            validate_edge(m, edge, source, target, attrs)
        assert info.value.field == "type"
        return
    if (source, edge, target) not in spec["triples"]:
        with pytest.raises(ValidationFailed) as info:
            validate_edge(m, edge, source, target, attrs)
        starts = any(s == source and e == edge for s, e, _ in spec["triples"])
        assert info.value.field == ("target_type" if starts else "source_type")
        assert "not allowed" in str(info.value)
        return
    bad, stored = oracle_attributes(spec, edge, attrs)
    if bad:
        with pytest.raises(ValidationFailed) as info:
            validate_edge(m, edge, source, target, attrs)
        assert info.value.field in bad
    else:
        assert validate_edge(m, edge, source, target, attrs) == stored


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(module_specs(), st.randoms(use_true_random=False))
def test_schema_is_deterministic(spec: dict[str, Any], rnd: Any) -> None:
    """The same module declared with its types and triples in any order
    gives the same schemas, keys sorted; every type and triple is in it."""
    m1 = _build(spec)
    shuffled = dict(spec, nodes=list(spec["nodes"]), edges=list(spec["edges"]))
    rnd.shuffle(shuffled["nodes"])
    rnd.shuffle(shuffled["edges"])
    m2 = _build(shuffled)
    s1, s2 = module_to_db_schema(m1), module_to_db_schema(m2)
    assert canonical_json(s1) == canonical_json(s2)
    assert json.dumps(s1[0]) == json.dumps(s1[0], sort_keys=True)
    assert schema_fingerprint(m1) == schema_fingerprint(m2)
    node_schema, edge_schema = s1
    assert [b["properties"]["type"]["const"] for b in node_schema["oneOf"]] == sorted(spec["nodes"])
    assert [b["properties"]["type"]["const"] for b in edge_schema["oneOf"]] == sorted(spec["edges"])
    assert edge_schema["x-triples"] == sorted(list(t) for t in spec["triples"])
    for schema in s1:
        for branch in schema["oneOf"]:
            ref = branch["properties"]["attributes"]["$ref"]
            assert ref.removeprefix("#/$defs/") in schema["$defs"]


def test_schema_is_the_same_in_another_process() -> None:
    """Hash randomization or import order do not change a schema."""
    code = ("from alkdev_storage.domain.builtin import BUILTIN_MODULES as B;"
            "from alkdev_storage.domain.modules import schema_fingerprint as f;"
            "print(' '.join(f(m) for m in B))")
    here = " ".join(schema_fingerprint(m) for m in BUILTIN_MODULES)
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        assert out == here


def test_schema_shape_of_the_call_graph() -> None:
    node_schema, edge_schema = module_to_db_schema(CALL_GRAPH)
    assert node_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert node_schema["x-module"] == "call-graph"
    assert node_schema["x-version"] == CALL_GRAPH.version
    assert node_schema["properties"]["type"]["enum"] == ["call", "operation", "service"]
    call = next(b for b in node_schema["oneOf"] if b["properties"]["type"]["const"] == "call")
    ref = call["properties"]["attributes"]["$ref"].removeprefix("#/$defs/")
    attrs = node_schema["$defs"][ref]
    assert attrs["additionalProperties"] is False
    assert "operation_id" in attrs["required"]
    assert ["call", "calls", "call"] in edge_schema["x-triples"]
    # docstrings do not leak into the stored schema (editing docs must not
    # need a new version); field constraints do.
    assert all("description" not in d for d in node_schema["$defs"].values())


def test_module_without_edges_has_an_unsatisfiable_edge_schema() -> None:
    m = GraphTypeModule("nodes-only", "1", node_types=[NodeType("n")])
    _, edge_schema = module_to_db_schema(m)
    assert edge_schema["not"] == {}
    assert "oneOf" not in edge_schema
    with pytest.raises(ValidationFailed) as info:
        validate_edge(m, "e", "n", "n", {})
    assert info.value.field == "type"


# ---------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------


class A(Attributes):
    x: int = 0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "Bad Name"}, "module name 'Bad Name'"),
        ({"name": "x" * 65}, "module name"),
        ({"version": ""}, "version ''"),
        ({"version": "1..0"}, "version '1..0'"),
        ({"node_types": []}, "at least one node type"),
        ({"node_types": [NodeType("n"), NodeType("n")]}, "'n' is defined twice"),
        ({"edge_types": [EdgeType("n")]}, "'n' is defined twice (already a node type)"),
        ({"triples": {("n", "e", "missing")}}, "unknown node type 'missing' as its target"),
        ({"triples": {("missing", "e", "n")}}, "unknown node type 'missing' as its source"),
        ({"triples": {("n", "n", "n")}}, "unknown edge type 'n' as its edge"),
        ({"triples": {("n", "e")}}, "is not a (source node type"),
        ({"node_types": ["n"]}, "expected a NodeType"),
    ],
)
def test_construction_refuses(kwargs: dict[str, Any], needle: str) -> None:
    base: dict[str, Any] = {"name": "ok-module", "version": "1.0", "node_types": [NodeType("n")],
                            "edge_types": [EdgeType("e")], "triples": {("n", "e", "n")}}
    with pytest.raises(ValueError) as info:
        GraphTypeModule(**{**base, **kwargs})
    assert needle in str(info.value)


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "x" * 65])
def test_type_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError, match="node type name"):
        NodeType(name)
    with pytest.raises(ValueError, match="edge type name"):
        EdgeType(name)


def test_attributes_must_be_a_model() -> None:
    with pytest.raises(ValueError, match="pydantic BaseModel subclass"):
        NodeType("n", dict)  # type: ignore[arg-type]  # the wrong type is the point


def test_triples_and_types_are_stored_immutably() -> None:
    m = GraphTypeModule("m", "1", node_types=[NodeType("n")], edge_types=[EdgeType("e")],
                        triples=[("n", "e", "n")])  # type: ignore[arg-type]  # any iterable
    assert m.triples == frozenset({("n", "e", "n")})
    assert isinstance(m.node_types, tuple)
    assert m.node_type("n").name == "n"
    with pytest.raises(KeyError):
        m.node_type("e")
    with pytest.raises(KeyError):
        m.edge_type("n")


# ---------------------------------------------------------------------------
# Validation details
# ---------------------------------------------------------------------------


def test_error_names_the_field_and_not_the_value() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_node(CALL_GRAPH, "call", {"operation_id": "op", "timeout_ms": "hunter2"})
    err = info.value
    assert err.field == "attributes.timeout_ms"
    assert str(err).startswith("attributes.timeout_ms: Input should be a valid integer")
    assert "call-graph" in str(err) and "'call'" in str(err)
    assert "hunter2" not in str(err) and "hunter2" not in repr(err.errors)
    assert err.errors == [{"loc": ("attributes", "timeout_ms"),
                           "msg": err.errors[0]["msg"], "type": "int_parsing"}]


def test_nested_field_path() -> None:
    class Inner(BaseModel):
        port: int

    class Outer(Attributes):
        hosts: list[Inner]

    m = GraphTypeModule("nested", "1", node_types=[NodeType("n", Outer)])
    with pytest.raises(ValidationFailed) as info:
        validate_node(m, "n", {"hosts": [{"port": 1}, {"port": "x"}]})
    assert info.value.field == "attributes.hosts.1.port"


def test_attributes_must_be_a_mapping() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_node(CALL_GRAPH, "operation", ["operation_id"])
    assert info.value.field == "attributes"
    assert "list" in str(info.value)


def test_none_and_model_instances_are_accepted() -> None:
    assert validate_edge(CALL_GRAPH, "invokes", "call", "operation", None) == {}
    inst = CALL_GRAPH.node_type("operation").attributes(operation_id="graphs.create")
    assert validate_node(CALL_GRAPH, "operation", inst)["operation_id"] == "graphs.create"


def test_stored_form_is_json() -> None:
    stored = validate_node(CALL_GRAPH, "call", {
        "operation_id": "op", "status": "succeeded", "input": {"n": [1, 2]},
        "started_at": "2024-05-01T10:00:00+02:00", "duration_ms": 12,
    })
    assert stored["started_at"] == "2024-05-01T10:00:00+02:00"
    assert json.loads(json.dumps(stored)) == stored
    assert validate_node(CALL_GRAPH, "call", stored) == stored  # stored form re-validates


def test_builtin_acl_rules() -> None:
    ok = validate_edge(ACL_GRAPH, "delegates_to", "principal", "agent",
                       {"scopes": ["graphs:write", "graphs:read"],
                        "expires_at": "2030-01-01T00:00:00Z"})
    assert ok["scopes"] == ["graphs:read", "graphs:write"]
    for attrs, where in [
        ({"scopes": []}, "attributes.scopes"),
        ({"scopes": ["a", "a"]}, "attributes.scopes"),
        ({"scopes": ["Bad Scope"]}, "attributes.scopes.0"),
        ({"scopes": ["a"], "expires_at": "2030-01-01T00:00:00"}, "attributes.expires_at"),
    ]:
        with pytest.raises(ValidationFailed) as info:
            validate_edge(ACL_GRAPH, "delegates_to", "principal", "agent", attrs)
        assert info.value.field == where, attrs
    with pytest.raises(ValidationFailed) as info:
        validate_edge(ACL_GRAPH, "grants", "resource", "resource", {"permission": "x"})
    assert info.value.field == "source_type"


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_registry_conflicts_and_lookup() -> None:
    def make(version: str, attrs: type[BaseModel] = A) -> GraphTypeModule:
        return GraphTypeModule("reg-test", version, node_types=[NodeType("n", attrs)])

    class B(Attributes):
        x: str = ""

    try:
        first = register_module(make("1.9.0"))
        # the same definition again (another object): the registered one back
        assert register_module(make("1.9.0")) is first
        with pytest.raises(ValueError, match=r"reg-test 1\.9\.0 is already registered"):
            register_module(make("1.9.0", B))
        register_module(make("1.10.0", B))
        assert get_module("reg-test").version == "1.10.0"  # natural order
        assert get_module("reg-test", "1.9.0") is first
        names = [(m.name, m.version) for m in modules() if m.name == "reg-test"]
        assert names == [("reg-test", "1.9.0"), ("reg-test", "1.10.0")]
        with pytest.raises(NotFound, match=r"reg-test 2\.0"):
            get_module("reg-test", "2.0")
        with pytest.raises(NotFound, match="no-such-module"):
            get_module("no-such-module")
    finally:
        unregister_module("reg-test", "1.9.0")
        unregister_module("reg-test", "1.10.0")
    assert not [m for m in modules() if m.name == "reg-test"]


def test_builtins_are_registered() -> None:
    assert builtin.BUILTIN_MODULES == (CALL_GRAPH, ACL_GRAPH, builtin.SECRET_GRAPH)
    for m in BUILTIN_MODULES:
        assert get_module(m.name, m.version) is m


# ---------------------------------------------------------------------------
# Secret fields
# ---------------------------------------------------------------------------


class FakeSecret(str):
    """Stands in for domain.secrets.EncryptedData: marked by the class
    attribute, validated as a string."""

    __alkdev_encrypted__ = True

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(cls, core_schema.str_schema())


class NotSecret(FakeSecret):
    __alkdev_encrypted__ = False


class WithSecrets(Attributes):
    value: FakeSecret
    maybe: FakeSecret | None = None
    old_style: Optional[FakeSecret] = None  # noqa: UP045 - both spellings are detected
    annotated: Annotated[FakeSecret, Field(min_length=1)] | None = None
    aliased: FakeSecret | None = Field(default=None, alias="other")
    plain: str = ""
    not_secret: NotSecret | None = None


def test_encrypted_fields_detected_by_marker() -> None:
    m = GraphTypeModule("secret-test", "1", node_types=[NodeType("s", WithSecrets)],
                        edge_types=[EdgeType("e")], triples={("s", "e", "s")})
    assert encrypted_fields(m, "s") == ["annotated", "maybe", "old_style", "other", "value"]
    assert encrypted_fields(m, m.node_type("s")) == encrypted_fields(m, "s")
    assert encrypted_fields(m, "e") == []
    assert encrypted_fields(CALL_GRAPH, "call") == []
    with pytest.raises(KeyError):
        encrypted_fields(m, "missing")
    inst = validate_node_attributes(m, "s", {"value": "env1"})
    assert isinstance(inst.value, FakeSecret)  # type: ignore[attr-defined]  # WithSecrets
    node_schema, _ = module_to_db_schema(m)
    assert node_schema["oneOf"][0]["x-encrypted"] == encrypted_fields(m, "s")


@pytest.mark.parametrize("annotation", [list[FakeSecret], dict[str, FakeSecret],
                                        FakeSecret | int, tuple[FakeSecret, ...]])
def test_nested_secret_is_refused(annotation: Any) -> None:
    model = create_model("Nested", secret=(annotation, ...))
    with pytest.raises(ValueError, match="nests an encrypted type"):
        GraphTypeModule("nested-secret", "1", node_types=[NodeType("n", model)])


def test_secret_inside_nested_model_is_refused() -> None:
    class Inner(BaseModel):
        key: FakeSecret

    class Outer(Attributes):
        inner: Inner | None = None

    with pytest.raises(ValueError, match="'inner' nests an encrypted type"):
        GraphTypeModule("nested-secret", "1", node_types=[NodeType("n", Outer)])
