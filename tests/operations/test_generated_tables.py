"""Generated operations table by table: graph types, edges (triples),
composite keys, update vs patch, tenant registry."""

from __future__ import annotations

import pytest
from ops_helpers import SYSTEM, call_graph_type, counts, op_node

from alkdev_storage.domain import CALL_GRAPH, Principal
from alkdev_storage.errors import NotFound, ScopeViolation, ValidationFailed
from alkdev_storage.operations import CallContext

MEMBER = CallContext(Principal.user("acc1", "o1", "member"))
VIEWER = CallContext(Principal.user("acc3", "o1", "viewer"))
ADMIN = CallContext(Principal.user("acc9", "o1", "admin"))


def test_graph_types_create_from_a_registered_module_and_scope_rules(tenant_ops,
                                                                     tenant_db) -> None:
    mine = tenant_ops.call("graph_types.create", {"module": CALL_GRAPH.name, "name": "my-calls",
                                                  "scope": "user"}, MEMBER)
    assert (mine["scope"], mine["owner_id"], mine["version"]) == ("user", "acc1",
                                                                  CALL_GRAPH.version)
    assert mine["node_schema"]["$schema"].endswith("2020-12/schema")
    with pytest.raises(ScopeViolation, match="tenant-scope graph type"):
        tenant_ops.call("graph_types.create", {"module": CALL_GRAPH.name, "name": "team"},
                        MEMBER)
    team = tenant_ops.call("graph_types.create", {"module": CALL_GRAPH.name, "name": "team"},
                           ADMIN)
    assert team["owner_id"] is None
    with pytest.raises(ValidationFailed, match="module"):
        tenant_ops.call("graph_types.create", {"module": "no-such-module"}, ADMIN)
    with pytest.raises(ValidationFailed, match="already exists"):
        tenant_ops.call("graph_types.create", {"module": CALL_GRAPH.name, "name": "team"},
                        ADMIN)
    # another user neither sees nor deletes the user type
    other = CallContext(Principal.user("acc2", "o1", "owner"))
    with pytest.raises(NotFound):
        tenant_ops.call("graph_types.get", {"id": mine["id"]}, other)
    with pytest.raises(NotFound):
        tenant_ops.call("graph_types.delete", {"id": mine["id"]}, other)
    # system types: visible, not deletable but by the system principal (and the
    # triggers refuse that too)
    builtin = call_graph_type(tenant_ops)
    with pytest.raises(ScopeViolation, match="may not delete"):
        tenant_ops.call("graph_types.delete", {"id": builtin}, ADMIN)
    # a type in use cannot be deleted
    tenant_ops.call("graphs.create", {"graph_type_id": team["id"], "name": "g"}, MEMBER)
    before = counts(tenant_db)
    with pytest.raises(ValidationFailed, match="still referred"):
        tenant_ops.call("graph_types.delete", {"id": team["id"]}, ADMIN)
    assert counts(tenant_db) == before
    assert tenant_ops.call("graph_types.delete", {"id": mine["id"]}, MEMBER)["id"] == mine["id"]


def test_edges_validate_their_triple_and_ends(tenant_ops) -> None:
    g = tenant_ops.call("graphs.create", {"graph_type_id": call_graph_type(tenant_ops),
                                          "name": "g"}, MEMBER)
    a = tenant_ops.call("nodes.create", {**op_node("a"), "graph_id": g["id"]}, MEMBER)
    b = tenant_ops.call("nodes.create", {**op_node("b"), "graph_id": g["id"]}, MEMBER)
    triples = sorted(CALL_GRAPH.triples)
    ok = next(t for t in triples if t[0] == "operation" and t[2] == "operation")
    bad = next((e.name for e in CALL_GRAPH.edge_types
                if ("operation", e.name, "operation") not in CALL_GRAPH.triples), None)
    edge = tenant_ops.call("edges.create", {"graph_id": g["id"], "type": ok[1],
                                            "source_id": a["id"], "target_id": b["id"]}, MEMBER)
    assert (edge["source_id"], edge["target_id"]) == (a["id"], b["id"])
    listed = tenant_ops.call("edges.list", {"source_id": a["id"]}, MEMBER)["items"]
    assert [e["id"] for e in listed] == [edge["id"]]
    if bad is not None:
        with pytest.raises(ValidationFailed, match="not allowed") as info:
            tenant_ops.call("edges.create", {"graph_id": g["id"], "type": bad,
                                             "source_id": a["id"], "target_id": b["id"]},
                            MEMBER)
        assert info.value.field in ("source_type", "target_type")
    with pytest.raises(ValidationFailed, match="target_id: no node"):
        tenant_ops.call("edges.create", {"graph_id": g["id"], "type": ok[1],
                                         "source_id": a["id"], "target_id": "nope"}, MEMBER)
    with pytest.raises(ValidationFailed, match="source_id"):
        tenant_ops.call("edges.patch", {"id": edge["id"], "source_id": b["id"]}, MEMBER)
    with pytest.raises(NotFound):  # the graph is acc1's own: hidden from the viewer
        tenant_ops.call("edges.delete", {"id": edge["id"]}, VIEWER)
    assert tenant_ops.call("edges.delete", {"id": edge["id"]}, MEMBER)["id"] == edge["id"]


def test_viewers_read_but_never_write(tenant_ops, tenant_db) -> None:
    t = call_graph_type(tenant_ops)
    g = tenant_ops.call("graphs.create", {"graph_type_id": t, "name": "shared"}, ADMIN)
    assert tenant_ops.call("graphs.get", {"id": g["id"]}, VIEWER)["name"] == "shared"
    before = counts(tenant_db)
    with pytest.raises(ScopeViolation, match="may not change"):
        tenant_ops.call("graphs.patch", {"id": g["id"], "name": "x"}, VIEWER)
    with pytest.raises(ScopeViolation, match="may not create"):
        tenant_ops.call("graphs.create", {"graph_type_id": t, "name": "v"}, VIEWER)
    with pytest.raises(ScopeViolation):
        tenant_ops.call("nodes.create", {**op_node("k"), "graph_id": g["id"]}, VIEWER)
    assert counts(tenant_db) == before


def test_update_needs_the_required_columns_patch_does_not(tenant_ops) -> None:
    g = tenant_ops.call("graphs.create", {"graph_type_id": call_graph_type(tenant_ops),
                                          "name": "g", "attributes": {"a": 1}}, MEMBER)
    with pytest.raises(ValidationFailed, match="name"):
        tenant_ops.call("graphs.update", {"id": g["id"], "status": "archived"}, MEMBER)
    out = tenant_ops.call("graphs.update", {"id": g["id"], "name": "h", "status": "archived"},
                          MEMBER)
    assert (out["name"], out["status"], out["attributes"]) == ("h", "archived", {"a": 1})
    assert out["updated_at"] >= g["updated_at"]
    out = tenant_ops.call("graphs.patch", {"id": g["id"], "attributes": {"b": 2}}, MEMBER)
    assert (out["name"], out["attributes"]) == ("h", {"b": 2})


def test_memberships_have_a_composite_key(system_ops) -> None:
    a = system_ops.call("accounts.create", {"email": "a@x.io"}, SYSTEM)
    b = system_ops.call("accounts.create", {"email": "b@x.io"}, SYSTEM)
    owner = CallContext(Principal.user(a["id"], "none", "member"))
    org = system_ops.call("organizations.create", {"slug": "acme", "name": "Acme"}, owner)
    m = system_ops.call("memberships.create", {"org_id": org["id"], "account_id": b["id"],
                                               "level": "viewer"}, owner)
    key = {"org_id": org["id"], "account_id": b["id"]}
    assert system_ops.call("memberships.get", key, owner) == m
    assert system_ops.call("memberships.patch", {**key, "level": "admin"}, owner)[
        "level"] == "admin"
    with pytest.raises(ValidationFailed, match="account_id"):
        system_ops.call("memberships.get", {"org_id": org["id"]}, owner)
    member = CallContext(Principal.user(b["id"], "none", "member"))
    with pytest.raises(ScopeViolation, match="may not create"):  # admins cannot add owners
        system_ops.call("memberships.create", {"org_id": org["id"], "account_id": b["id"],
                                               "level": "owner"}, member)
    # one may leave
    assert system_ops.call("memberships.delete", key, member)["account_id"] == b["id"]
    with pytest.raises(NotFound):
        system_ops.call("memberships.get", key, owner)


def test_the_tenant_registry_is_for_the_system_and_administrators(system_ops) -> None:
    a = system_ops.call("accounts.create", {"email": "a@x.io"}, SYSTEM)
    me = CallContext(Principal.user(a["id"], "none", "member"))
    org = system_ops.call("organizations.create", {"slug": "acme", "name": "Acme"}, me)
    with pytest.raises(ScopeViolation, match="may not create"):
        system_ops.call("tenants.create", {"org_id": org["id"], "status": "creating"}, me)
    row = system_ops.call("tenants.create", {"org_id": org["id"], "status": "creating"},
                          SYSTEM)
    assert row["status"] == "creating"
    assert system_ops.call("tenants.list", {}, me)["items"] == []
    tenant = CallContext(Principal.tenant_admin(org["id"]))
    assert [t["org_id"] for t in system_ops.call("tenants.list", {}, tenant)["items"]] == [
        org["id"]]
