"""The graph store on real tenant files: scope protection from every kind
of principal (through the store, the ORM and raw SQL), validation of every
write with nothing written on refusal, batches all or nothing, the ORM
validation events, the sealer and change hooks, init_tenant."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field, GetCoreSchemaHandler
from pydantic_core import core_schema
from sqlalchemy.orm import Session

import alkdev_storage
from alkdev_storage.domain import (
    ACL_GRAPH,
    CALL_GRAPH,
    Attributes,
    Change,
    EdgeType,
    GraphStore,
    GraphTypeModule,
    NodeType,
    Principal,
    init_tenant,
)
from alkdev_storage.domain.modules import module_to_db_schema, unregister_module
from alkdev_storage.errors import (
    IntegrityError,
    MigrationError,
    NotFound,
    ScopeViolation,
    ValidationFailed,
)
from alkdev_storage.schema.tenant import Edge, Graph, GraphType, Node
from alkdev_storage.sqlalchemy import create_engine

ORG = "org-1"


class ThingAttrs(Attributes):
    size: int
    label: str | None = None


class HoldsAttrs(Attributes):
    count: int = Field(default=1, ge=1)


def make_module(name: str = "things", version: str = "1.0.0", *,
                with_near: bool = True) -> GraphTypeModule:
    triples = {("box", "holds", "thing")}
    edge_types = [EdgeType("holds", HoldsAttrs)]
    if with_near:
        triples.add(("thing", "near", "thing"))
        edge_types.append(EdgeType("near"))
    return GraphTypeModule(name, version, node_types=[NodeType("thing", ThingAttrs),
                                                      NodeType("box")],
                           edge_types=edge_types, triples=triples)


THINGS = make_module()

SYSTEM = Principal.system()
TENANT = Principal.tenant_admin(ORG, "acct-admin")
OWNER = Principal.user("u-owner", ORG, "owner")
ADMIN = Principal.user("u-admin", ORG, "admin")
MEMBER = Principal.user("u1", ORG, "member")
OTHER = Principal.user("u2", ORG, "member")
VIEWER = Principal.user("u3", ORG, "viewer")
EVERYONE = [SYSTEM, TENANT, OWNER, ADMIN, MEMBER, OTHER, VIEWER]


@pytest.fixture
def tenant(db: alkdev_storage.Database) -> alkdev_storage.Database:
    init_tenant(db, ORG)
    return db


def store(db: alkdev_storage.Database, p: Principal, **kw: Any) -> GraphStore:
    return GraphStore(db, ORG, p, **kw)


def rows(db: alkdev_storage.Database, table: str) -> list[dict[str, Any]]:
    return db.query(f"SELECT * FROM {table} ORDER BY id")


def counts(db: alkdev_storage.Database) -> tuple[int, ...]:
    return tuple(db.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]
                 for t in ("graph_types", "graphs", "nodes", "edges"))


# ---------------------------------------------------------------------------
# init_tenant
# ---------------------------------------------------------------------------


def test_init_tenant_is_idempotent(db: alkdev_storage.Database) -> None:
    first = init_tenant(db, ORG)
    assert first == {"call-graph": "created", "acl-graph": "created", "secret-graph": "created"}
    before = rows(db, "graph_types")
    assert {(r["name"], r["scope"], r["owner_id"]) for r in before} == {
        ("call-graph", "system", None), ("acl-graph", "system", None),
        ("secret-graph", "system", None)}
    assert init_tenant(db, ORG) == {"call-graph": "unchanged", "acl-graph": "unchanged",
                                    "secret-graph": "unchanged"}
    assert rows(db, "graph_types") == before
    triggers = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert {"graph_types_protect_insert", "graph_types_protect_update",
            "graph_types_protect_delete"} <= triggers


def test_init_tenant_upgrades_a_changed_builtin(db: alkdev_storage.Database) -> None:
    v1 = make_module("builtin-x", "1.0.0", with_near=False)
    v2 = make_module("builtin-x", "1.1.0")
    try:
        assert init_tenant(db, ORG, [v1]) == {"builtin-x": "created"}
        s = store(db, SYSTEM)
        (gt,) = s.graph_types(name="builtin-x")
        g = s.create_graph(gt, "kept")
        assert init_tenant(db, ORG, [v2]) == {"builtin-x": "upgraded"}
        (after,) = s.graph_types(name="builtin-x")
        assert (after.id, after.version, after.scope) == (gt.id, "1.1.0", "system")
        assert after.edge_schema == module_to_db_schema(v2)[1]
        assert s.get_graph(g.id).graph_type_id == gt.id
        # an older package meeting a newer file leaves it alone
        assert init_tenant(db, ORG, [v1]) == {"builtin-x": "newer"}
        assert s.get_graph_type(gt.id).version == "1.1.0"
        # the same version with another definition: refused, nothing changed
        other = GraphTypeModule("builtin-x", "1.1.0", node_types=[NodeType("only")])
        unregister_module("builtin-x", "1.1.0")
        before = rows(db, "graph_types")
        with pytest.raises(MigrationError, match=r"builtin-x 1\.1\.0"):
            init_tenant(db, ORG, [other])
        assert rows(db, "graph_types") == before
        s.close()
    finally:
        unregister_module("builtin-x", "1.0.0")
        unregister_module("builtin-x", "1.1.0")


def test_init_tenant_checks_org_id(db: alkdev_storage.Database) -> None:
    with pytest.raises(ValidationFailed) as info:
        init_tenant(db, "")
    assert info.value.field == "org_id"


# ---------------------------------------------------------------------------
# Scope protection: the access rules, written out plainly as the oracle
# ---------------------------------------------------------------------------


def oracle(p: Principal, action: str, scope: str, owner: str | None) -> str:
    """ok | scope | notfound, for an action on a graph type of ``scope``
    owned by ``owner`` (for register: the scope registered)."""
    is_system = p.kind == "system"
    manager = p.kind in ("system", "tenant") or p.level in ("owner", "admin")
    visible = is_system or scope != "user" or (p.kind == "user" and p.account_id == owner)
    own_user = p.kind == "user" and p.account_id == owner and p.level != "viewer"
    if action == "get":
        return "ok" if visible else "notfound"
    if action == "create_graph":
        if not visible:
            return "notfound"
        return "scope" if p.level == "viewer" else "ok"
    if action == "register":
        if scope == "system":
            return "ok" if is_system else "scope"
        if scope == "tenant":
            return "ok" if manager else "scope"
        return "ok" if (is_system or (p.kind == "user" and p.level != "viewer")) else "scope"
    # update / delete
    if scope == "system":
        return "ok" if is_system else "scope"
    if scope == "tenant":
        return "ok" if manager else "scope"
    return "ok" if (is_system or own_user) else "scope"


_versions = itertools.count(1)


def _setup_type(db: alkdev_storage.Database, scope: str, owner: str | None) -> GraphType:
    """A fresh graph type of ``scope`` (registered by a principal allowed to)."""
    m = make_module("scoped", f"0.{next(_versions)}.0")
    if scope == "system":
        return store(db, SYSTEM).register_graph_type(m, "system")
    if scope == "tenant":
        return store(db, TENANT).register_graph_type(m, "tenant")
    return store(db, Principal.user(owner or "u1", ORG, "member")).register_graph_type(m, "user")


def _attempt(db: alkdev_storage.Database, p: Principal, action: str, gt: GraphType,
             scope: str) -> str:
    s = store(db, p)
    try:
        if action == "get":
            s.get_graph_type(gt.id)
        elif action == "create_graph":
            s.create_graph(gt.id, "g")
        elif action == "update":
            s.update_graph_type(gt.id, make_module("scoped", f"0.{next(_versions)}.0"))
        elif action == "delete":
            s.delete_graph_type(gt.id)
        elif action == "register":
            s.register_graph_type(make_module("scoped", f"0.{next(_versions)}.0"), scope,  # type: ignore[arg-type]
                                  owner_id="u1" if p.is_system and scope == "user" else None)
    except ScopeViolation:
        return "scope"
    except NotFound:
        return "notfound"
    finally:
        s.close()
    return "ok"


PRINCIPALS = st.one_of(
    st.just(SYSTEM),
    st.builds(Principal.tenant_admin, st.just(ORG), st.sampled_from(["u1", "u2", "a"])),
    st.builds(Principal.user, st.sampled_from(["u1", "u2", "u3"]), st.just(ORG),
              st.sampled_from(["owner", "admin", "member", "viewer"])),
)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(p=PRINCIPALS, action=st.sampled_from(["get", "create_graph", "update", "delete",
                                             "register"]),
       scope=st.sampled_from(["system", "tenant", "user"]),
       owner=st.sampled_from(["u1", "u2"]))
def test_scope_rules_match_the_oracle(tenant: alkdev_storage.Database, p: Principal,
                                      action: str, scope: str, owner: str) -> None:
    gt = _setup_type(tenant, scope, owner)
    expected = oracle(p, action, scope, owner if scope == "user" else None)
    before_types, before_graphs = rows(tenant, "graph_types"), rows(tenant, "graphs")
    assert _attempt(tenant, p, action, gt, scope) == expected
    if expected != "ok" or action == "get":
        assert rows(tenant, "graph_types") == before_types
        assert rows(tenant, "graphs") == before_graphs


@pytest.mark.parametrize("p", EVERYONE, ids=lambda p: f"{p.kind}-{p.level}-{p.account_id}")
def test_system_types_from_each_principal(tenant: alkdev_storage.Database, p: Principal) -> None:
    """Each principal tries to change and delete a built-in type."""
    s = store(tenant, p)
    (call,) = s.graph_types(name="call-graph")
    before = rows(tenant, "graph_types")
    for attempt in (lambda: s.update_graph_type(call.id, CALL_GRAPH),
                    lambda: s.delete_graph_type(call.id),
                    lambda: s.register_graph_type(make_module("sys2"), "system")):
        if p.is_system:
            continue
        with pytest.raises(ScopeViolation, match="system"):
            attempt()
        assert rows(tenant, "graph_types") == before
    s.close()


def test_system_principal_changes_a_system_type_through_the_triggers(
        tenant: alkdev_storage.Database) -> None:
    s = store(tenant, SYSTEM)
    gt = s.register_graph_type(make_module("sys-ok", "1.0.0"), "system")
    updated = s.update_graph_type(gt.id, make_module("sys-ok", "2.0.0"))
    assert updated.version == "2.0.0"
    assert s.get_graph_type(gt.id).version == "2.0.0"
    s.delete_graph_type(gt.id)
    with pytest.raises(NotFound):
        s.get_graph_type(gt.id)
    # the triggers are back
    with pytest.raises(IntegrityError, match="is system-scope and cannot be changed"), \
            tenant.transaction() as tx:
        tx.execute("DELETE FROM graph_types WHERE name = 'call-graph'")
    s.close()


def test_user_types_are_private(tenant: alkdev_storage.Database) -> None:
    mine = store(tenant, MEMBER).register_graph_type(THINGS, "user")
    assert (mine.scope, mine.owner_id) == ("user", "u1")
    for p, sees in [(MEMBER, True), (OTHER, False), (TENANT, False), (ADMIN, False),
                    (SYSTEM, True)]:
        s = store(tenant, p)
        assert (mine.id in {t.id for t in s.graph_types()}) is sees
        if not sees:
            with pytest.raises(NotFound):
                s.get_graph_type(mine.id)
            with pytest.raises(NotFound):
                s.create_graph(mine.id, "nope")
        s.close()
    # another user cannot register for someone else either
    with pytest.raises(ScopeViolation):
        store(tenant, OTHER).register_graph_type(make_module("other"), "user", owner_id="u1")
    # a graph of a user type is invisible to others
    g = store(tenant, MEMBER).create_graph(mine.id, "private")
    for p in (OTHER, TENANT):
        with pytest.raises(NotFound):
            store(tenant, p).add_node(g.id, "k", "thing", {"size": 1})
        with pytest.raises(NotFound):
            store(tenant, p).get_graph(g.id)
    assert counts(tenant)[2] == 0


def test_orm_and_raw_sql_cannot_touch_system_types(tenant: alkdev_storage.Database) -> None:
    before = rows(tenant, "graph_types")
    engine = create_engine(tenant)
    with pytest.raises(sa.exc.IntegrityError, match="graph type is system-scope"), \
            Session(engine) as session, session.begin():
        gt = session.scalars(sa.select(GraphType).where(GraphType.name == "call-graph")).one()
        gt.version = "9.9.9"
    with pytest.raises(sa.exc.IntegrityError, match="graph type is system-scope"), \
            Session(engine) as session, session.begin():
        gt = session.scalars(sa.select(GraphType).where(GraphType.name == "acl-graph")).one()
        session.delete(gt)
    with pytest.raises(sa.exc.IntegrityError, match="graph type is system-scope"), \
            Session(engine) as session, session.begin():
        node_schema, edge_schema = module_to_db_schema(THINGS)
        session.add(GraphType(name="fake", version="1", scope="system", module="things",
                              node_schema=node_schema, edge_schema=edge_schema))
    engine.dispose()
    for sql in ("UPDATE graph_types SET version = 'x' WHERE scope = 'system'",
                "DELETE FROM graph_types",
                "INSERT INTO graph_types (id, name, version, scope, module, node_schema, "
                "edge_schema) VALUES ('X', 'evil', '1', 'system', 'm', '{}', '{}')",
                "INSERT OR REPLACE INTO graph_types (id, name, version, scope, module, "
                "node_schema, edge_schema) SELECT id, name, version, 'tenant', module, "
                "node_schema, edge_schema FROM graph_types WHERE scope = 'system'"):
        with pytest.raises(IntegrityError, match="is system-scope and cannot be changed"), \
                tenant.transaction() as tx:
            tx.execute(sql)
        assert rows(tenant, "graph_types") == before, sql


def test_orm_and_raw_sql_bypass_the_principal_rules(tenant: alkdev_storage.Database) -> None:
    """Documented: below the store only the system-scope triggers hold."""
    gt = store(tenant, MEMBER).register_graph_type(THINGS, "user")
    with tenant.transaction() as tx:
        tx.execute("UPDATE graph_types SET name = 'renamed' WHERE id = ?", [gt.id])
    assert store(tenant, MEMBER).get_graph_type(gt.id).name == "renamed"


def test_principal_of_another_org(tenant: alkdev_storage.Database) -> None:
    with pytest.raises(ScopeViolation, match="org-2"):
        GraphStore(tenant, ORG, Principal.user("u1", "org-2", "owner"))


def test_viewers_and_admin_only_modules(tenant: alkdev_storage.Database) -> None:
    with pytest.raises(ScopeViolation):
        store(tenant, VIEWER).create_graph("call-graph", "v")
    with pytest.raises(ScopeViolation, match="acl-graph"):
        store(tenant, MEMBER).create_graph("acl-graph", "acl")
    g = store(tenant, ADMIN).create_graph("acl-graph", "acl")
    store(tenant, ADMIN).add_node(g.id, "alice", "principal", {"kind": "account"})
    with pytest.raises(ScopeViolation):
        store(tenant, MEMBER).add_node(g.id, "mallory", "principal", {"kind": "account"})
    assert ACL_GRAPH.admin_writes and not CALL_GRAPH.admin_writes
    assert [n.key for n in store(tenant, MEMBER).list_nodes(g.id)] == ["alice"]


# ---------------------------------------------------------------------------
# Validation: refused naming the field, nothing written
# ---------------------------------------------------------------------------


@pytest.fixture
def things(tenant: alkdev_storage.Database) -> tuple[GraphStore, str]:
    s = store(tenant, MEMBER)
    gt = store(tenant, TENANT).register_graph_type(THINGS, "tenant")
    g = s.create_graph(gt, "g")
    s.add_node(g.id, "box", "box")
    s.add_node(g.id, "t1", "thing", {"size": 1})
    return s, g.id


@pytest.mark.parametrize(("call", "field"), [
    (lambda s, g: s.add_node(g, "n", "nope", {}), "type"),
    (lambda s, g: s.add_node(g, "n", "thing", {"size": "big"}), "attributes.size"),
    (lambda s, g: s.add_node(g, "n", "thing", {}), "attributes.size"),
    (lambda s, g: s.add_node(g, "n", "thing", {"size": 1, "colour": "red"}), "attributes.colour"),
    (lambda s, g: s.add_node(g, "n", "thing", [1]), "attributes"),
    (lambda s, g: s.add_node(g, "", "thing", {"size": 1}), "key"),
    (lambda s, g: s.add_node(g, "t1", "thing", {"size": 1}), "key"),
    (lambda s, g: s.add_edge(g, "holds", "box", "t1", {"count": 0}), "attributes.count"),
    (lambda s, g: s.add_edge(g, "holds", "t1", "box"), "source_type"),
    (lambda s, g: s.add_edge(g, "near", "t1", "box"), "target_type"),
    (lambda s, g: s.add_edge(g, "flies", "t1", "t1"), "type"),
    (lambda s, g: s.add_edge(g, "near", "t1", "ghost"), "target"),
    (lambda s, g: s.update_node(g, "t1", {"size": None}), "attributes.size"),
    (lambda s, g: s.update_node(g, "t1", {"size": 1}, type="box"), "attributes.size"),
    (lambda s, g: s.create_graph("things", ""), "name"),
    (lambda s, g: s.create_graph("things", "x", attributes={"f": object()}), "attributes"),
])
def test_invalid_writes_name_the_field_and_write_nothing(
        things: tuple[GraphStore, str], call: Any, field: str) -> None:
    s, g = things
    before = (counts(s.db), rows(s.db, "nodes"), rows(s.db, "edges"))
    with pytest.raises(ValidationFailed) as info:
        call(s, g)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert (counts(s.db), rows(s.db, "nodes"), rows(s.db, "edges")) == before


def test_a_batch_with_one_bad_node_writes_nothing(things: tuple[GraphStore, str]) -> None:
    s, g = things
    before = counts(s.db)
    good = [(f"k{i}", "thing", {"size": i}) for i in range(50)]
    for bad, field in [
        ((*good[:30], ("bad", "thing", {"size": "x"}), *good[30:]), "nodes.30.attributes.size"),
        ((*good, {"key": "k3", "type": "thing", "attributes": {"size": 1}}), "nodes.50.key"),
        ((*good, ("t1", "thing", {"size": 1})), "nodes.50.key"),
        ((*good, ("z", "unknown")), "nodes.50.type"),
        ((*good, "oops"), "nodes.50"),
    ]:
        with pytest.raises(ValidationFailed) as info:
            s.add_nodes(g, bad)
        assert info.value.field == field
        assert counts(s.db) == before
    made = s.add_nodes(g, good)
    assert [n.key for n in made] == [f"k{i}" for i in range(50)]
    assert counts(s.db)[2] == before[2] + 50


def test_a_batch_with_one_bad_edge_writes_nothing(things: tuple[GraphStore, str]) -> None:
    s, g = things
    s.add_nodes(g, [(f"k{i}", "thing", {"size": i}) for i in range(10)])
    before = counts(s.db)
    edges: list[Any] = [("near", f"k{i}", f"k{i + 1}") for i in range(9)]
    with pytest.raises(ValidationFailed) as info:
        s.add_edges(g, [*edges, ("holds", "k1", "k2")])
    assert info.value.field == "edges.9.source_type"
    assert counts(s.db) == before
    made = s.add_edges(g, [*edges, {"type": "holds", "source": "box", "target": "k0",
                                    "attributes": {"count": 2}}])
    assert len(made) == 10 and made[-1].attributes == {"count": 2}
    assert len(s.list_edges(g, source="box")) == 1


def test_stored_attributes_are_the_validated_dump(things: tuple[GraphStore, str]) -> None:
    s, g = things
    n = s.add_node(g, "n", "thing", {"size": "7"})
    assert n.attributes == {"size": 7, "label": None}
    assert s.get_node(g, "n").attributes == {"size": 7, "label": None}
    assert s.get_node(g, n.id).key == "n"
    merged = s.update_node(g, "n", {"label": "seven"}, merge=True)
    assert merged.attributes == {"size": 7, "label": "seven"}
    e = s.add_edge(g, "holds", "box", n.id)
    assert e.attributes == {"count": 1}
    assert s.update_edge(e.id, {"count": 3}).attributes == {"count": 3}
    with pytest.raises(ValidationFailed) as info:
        s.update_edge(e.id, {"count": -1})
    assert info.value.field == "attributes.count"
    assert s.get_edge(e.id).attributes == {"count": 3}


def test_node_type_change_keeps_edges_allowed(things: tuple[GraphStore, str]) -> None:
    s, g = things
    s.add_node(g, "t2", "thing", {"size": 2})
    s.add_edge(g, "near", "t1", "t2")
    with pytest.raises(ValidationFailed) as info:
        s.update_node(g, "t2", {}, type="box")
    assert info.value.field == "type" and "near" in str(info.value)
    assert s.get_node(g, "t2").type == "thing"
    s.delete_node(g, "t2")
    assert s.list_edges(g) == []


def test_update_graph_type_checks_what_its_graphs_use(things: tuple[GraphStore, str]) -> None:
    s, g = things
    s.add_node(g, "t2", "thing", {"size": 2})
    s.add_edge(g, "near", "t1", "t2")
    gt_id = s.get_graph(g).graph_type_id
    admin = store(s.db, TENANT)
    with pytest.raises(ValidationFailed) as info:
        admin.update_graph_type(gt_id, make_module("things", "2.0.0", with_near=False))
    assert info.value.field == "module" and "near" in str(info.value)
    assert admin.get_graph_type(gt_id).version == "1.0.0"
    with pytest.raises(ValidationFailed) as info:
        admin.delete_graph_type(gt_id)
    assert info.value.field == "graph_type_id"
    s.delete_graph(g)
    admin.delete_graph_type(gt_id)
    assert counts(s.db)[1:] == (0, 0, 0)


def test_register_is_idempotent_and_refuses_clashes(tenant: alkdev_storage.Database) -> None:
    s = store(tenant, TENANT)
    a = s.register_graph_type(THINGS, "tenant")
    assert s.register_graph_type(THINGS, "tenant").id == a.id
    with pytest.raises(ValidationFailed) as info:
        s.register_graph_type(CALL_GRAPH, "tenant")  # the system type has that name+version
    assert info.value.field == "name"
    with pytest.raises(ScopeViolation):  # a tenant principal owns no user types
        s.register_graph_type(THINGS, "user")
    with pytest.raises(ValidationFailed) as info:  # the system principal names the owner
        store(tenant, SYSTEM).register_graph_type(THINGS, "user")
    assert info.value.field == "owner_id"
    with pytest.raises(ValidationFailed) as info:
        s.register_graph_type(THINGS, "tenant", owner_id="u1")
    assert info.value.field == "owner_id"


def test_graph_type_by_name_must_be_unambiguous(tenant: alkdev_storage.Database) -> None:
    store(tenant, TENANT).register_graph_type(THINGS, "tenant")
    store(tenant, MEMBER).register_graph_type(THINGS, "user")
    with pytest.raises(ValidationFailed) as info:
        store(tenant, MEMBER).create_graph("things", "g")
    assert info.value.field == "graph_type"
    assert store(tenant, OTHER).create_graph("things", "g").name == "g"


def test_unregistered_module_cannot_be_written(tenant: alkdev_storage.Database) -> None:
    m = make_module("ephemeral")
    s = store(tenant, TENANT)
    g = s.create_graph(s.register_graph_type(m, "tenant"), "g")
    unregister_module("ephemeral", "1.0.0")
    with pytest.raises(NotFound, match=r"ephemeral 1\.0\.0 is not registered"):
        store(tenant, TENANT).add_node(g.id, "k", "box")
    assert counts(tenant)[2] == 0


# ---------------------------------------------------------------------------
# Transactions and hooks
# ---------------------------------------------------------------------------


def test_transaction_groups_writes_and_savepoints(things: tuple[GraphStore, str]) -> None:
    s, g = things
    before = counts(s.db)
    with pytest.raises(RuntimeError), s.transaction():
        s.add_node(g, "a", "box")
        s.add_node(g, "b", "box")
        raise RuntimeError("abandon")
    assert counts(s.db) == before
    with s.transaction():
        s.add_node(g, "a", "box")
        with pytest.raises(ValidationFailed):
            s.add_nodes(g, [("b", "box"), ("c", "thing")])  # savepoint: only this batch undone
        assert s.get_node(g, "a").type == "box"  # reads inside see the transaction
    assert [n.key for n in s.list_nodes(g, type="box")] == ["box", "a"]


def test_on_change_runs_inside_the_transaction(tenant: alkdev_storage.Database) -> None:
    seen: list[Change] = []

    def hook(conn: sa.Connection, change: Change) -> None:
        seen.append(change)
        if change.keys == ("boom",):
            raise RuntimeError("event refused")

    s = store(tenant, SYSTEM, on_change=hook)
    g = s.create_graph("call-graph", "g")
    s.add_nodes(g.id, [("op", "operation", {"operation_id": "x"}),
                       ("c", "call", {"operation_id": "x"})])
    assert [(c.entity, c.action) for c in seen] == [("graph", "created"), ("node", "created")]
    assert seen[1].keys == ("op", "c") and seen[1].graph_id == g.id
    with pytest.raises(RuntimeError, match="event refused"):
        s.add_node(g.id, "boom", "operation", {"operation_id": "y"})
    assert [n.key for n in s.list_nodes(g.id)] == ["op", "c"]


# ---------------------------------------------------------------------------
# Secret attributes: the sealer hook
# ---------------------------------------------------------------------------


class FakeEnvelope(str):
    """Stands in for domain.secrets.EncryptedData (``enc:<version>:...``)."""

    __alkdev_encrypted__ = True

    @property
    def key_version(self) -> int:
        return int(self.split(":")[1])

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(pattern=r"^enc:\d+:"))


class SecretAttrs(Attributes):
    name: str
    value: FakeEnvelope
    backup: FakeEnvelope | None = None


SECRETS = GraphTypeModule("fake-secrets", "1.0.0", node_types=[NodeType("secret", SecretAttrs)])


def test_sealer_seals_plaintext_and_sets_key_version(tenant: alkdev_storage.Database) -> None:
    calls: list[dict[str, Any]] = []

    def sealer(plaintext: str | bytes, *, org_id: str, table: str, column: str,
               row_id: str) -> FakeEnvelope:
        calls.append({"org_id": org_id, "table": table, "column": column, "row_id": row_id})
        return FakeEnvelope(f"enc:{2 if column.endswith('value') else 5}:{len(plaintext)}")

    s = store(tenant, TENANT, sealer=sealer)
    g = s.create_graph(s.register_graph_type(SECRETS, "tenant"), "vault")
    n = s.add_node(g.id, "db", "secret", {"name": "db", "value": "hunter2", "backup": "b"})
    assert {c["column"] for c in calls} == {"attributes.value", "attributes.backup"}
    assert all(c["row_id"] == n.id and c["org_id"] == ORG and c["table"] == "nodes"
               for c in calls)
    stored = tenant.query("SELECT attributes, key_version FROM nodes WHERE id = ?", [n.id])[0]
    assert "hunter2" not in stored["attributes"]
    assert stored["key_version"] == 2
    # written back unchanged: not sealed again
    calls.clear()
    s.update_node(g.id, "db", dict(s.get_node(g.id, "db").attributes))
    assert calls == []
    s.update_node(g.id, "db", {"backup": None}, merge=True)
    assert calls == [] and s.get_node(g.id, "db").key_version == 2
    # without a sealer, plaintext is refused naming the field, nothing written
    plain = store(tenant, TENANT)
    with pytest.raises(ValidationFailed) as info:
        plain.add_node(g.id, "x", "secret", {"name": "x", "value": "hunter2"})
    assert info.value.field == "attributes.value"
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value.errors)
    assert len(plain.list_nodes(g.id)) == 1


# ---------------------------------------------------------------------------
# The ORM path
# ---------------------------------------------------------------------------


def test_orm_writes_are_validated(things: tuple[GraphStore, str]) -> None:
    s, g = things
    engine = create_engine(s.db)
    before = counts(s.db)
    with pytest.raises(ValidationFailed) as info, Session(engine) as session, session.begin():
        session.add(Node(graph_id=g, key="n", type="thing", attributes={"size": "x"}))
    assert info.value.field == "attributes.size"
    assert counts(s.db) == before
    with Session(engine) as session, session.begin():
        session.add(Node(graph_id=g, key="n", type="thing", attributes={"size": "3"}))
    assert s.get_node(g, "n").attributes == {"size": 3, "label": None}
    box = s.get_node(g, "box").id
    n = s.get_node(g, "n").id
    with pytest.raises(ValidationFailed) as info, Session(engine) as session, session.begin():
        session.add(Edge(graph_id=g, type="holds", source_id=n, target_id=box))
    assert info.value.field == "source_type"
    with pytest.raises(ValidationFailed) as info, Session(engine) as session, session.begin():
        node = session.scalars(sa.select(Node).where(Node.key == "n")).one()
        node.attributes = {"size": 1, "extra": True}
    assert info.value.field == "attributes.extra"
    assert counts(s.db) == (*before[:2], before[2] + 1, before[3])
    # an object the store returned can be changed through a Session
    returned = s.get_node(g, "n")
    with Session(engine) as session, session.begin():
        session.add(returned)
        returned.attributes = {"size": 4}
    assert s.get_node(g, "n").attributes == {"size": 4, "label": None}
    engine.dispose()


def test_orm_refuses_graphs_of_unregistered_modules(tenant: alkdev_storage.Database) -> None:
    s = store(tenant, TENANT)
    g = s.create_graph(s.register_graph_type(make_module("gone"), "tenant"), "g")
    unregister_module("gone", "1.0.0")
    engine = create_engine(tenant)
    with pytest.raises(ValidationFailed) as info, Session(engine) as session, session.begin():
        session.add(Node(graph_id=g.id, key="n", type="box", attributes={}))
    assert info.value.field == "type"
    engine.dispose()
    assert counts(tenant)[2] == 0


def test_graph_crud(things: tuple[GraphStore, str]) -> None:
    s, g = things
    updated = s.update_graph(g, name="renamed", status="archived", project_id="p1",
                             attributes={"colour": "blue"})
    assert (updated.name, updated.status, updated.project_id) == ("renamed", "archived", "p1")
    assert [x.id for x in s.list_graphs(project_id="p1")] == [g]
    assert s.list_graphs(status="active") == []
    assert isinstance(s.get_graph(g), Graph)
    with pytest.raises(ValidationFailed) as info:
        s.update_graph(g, status="gone")
    assert info.value.field == "status"
    s.delete_graph(g)
    with pytest.raises(NotFound):
        s.get_graph(g)
    assert counts(s.db)[2:] == (0, 0)


def test_types_not_made_from_a_module(tenant: alkdev_storage.Database) -> None:
    """A graph type written below the store (no ``x-module`` in its schema)
    has nothing to validate against: ORM writes to its graphs go through
    as they are (documented), the store refuses to write to them."""
    engine = create_engine(tenant)
    with Session(engine) as session, session.begin():
        gt = GraphType(name="raw", version="1", scope="tenant", module="raw",
                       node_schema={"type": "object"}, edge_schema={"type": "object"})
        session.add(gt)
        session.flush()
        g = Graph(graph_type_id=gt.id, name="g")
        session.add(g)
        session.flush()
        session.add(Node(graph_id=g.id, key="n", type="anything", attributes={"x": 1}))
        graph_id = g.id
    engine.dispose()
    s = store(tenant, SYSTEM)
    assert s.get_node(graph_id, "n").attributes == {"x": 1}
    with pytest.raises(NotFound, match="module raw 1 is not registered"):
        s.add_node(graph_id, "m", "anything", {})
    assert len(s.list_nodes(graph_id)) == 1
