"""Access compiled into SQL, checked against a plain Python oracle of the
rules (docs/0024-access-in-sql.md): for random principals, scopes,
delegations and rows, every generated operation sees and changes exactly
the rows the oracle allows, and a hidden row is reported like a missing
one."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alkdev_storage.domain import ACL_GRAPH, CALL_GRAPH, Principal, module_to_db_schema
from alkdev_storage.errors import NotFound, ScopeViolation
from alkdev_storage.operations import CallContext, Dispatcher
from alkdev_storage.schema import new_id

ACCOUNTS = ("u1", "u2", "u3")
PROJECTS = ("p1", "p2")
NODE_SCHEMA, EDGE_SCHEMA = (json.dumps(s) for s in module_to_db_schema(CALL_GRAPH))
SETTINGS = settings(max_examples=75, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@dataclass
class T:
    id: str
    scope: str
    owner: str | None
    module: str


@dataclass
class G:
    id: str
    type: T
    owner: str | None
    project: str | None


# -- the oracle ---------------------------------------------------------------


def sees_type(p: Principal, t: T) -> bool:
    return p.is_system or t.scope in ("system", "tenant") or (
        t.scope == "user" and p.kind == "user" and t.owner == p.account_id)


def sees_graph(ctx: CallContext, g: G, write: bool = False) -> bool:
    p = ctx.principal
    if write and not p.can_write:
        return False
    if not sees_type(p, g.type):
        return False
    if write and not p.manages_tenant and g.type.module == ACL_GRAPH.name:
        return False
    if not p.manages_tenant and g.owner not in (None, p.account_id):
        return False
    projects = ctx.projects()
    return projects is None or g.project in projects


def may_create_graph(ctx: CallContext, t: T, project: str | None) -> bool:
    p = ctx.principal
    owner = p.account_id if p.kind == "user" and not p.manages_tenant else None
    return sees_graph(ctx, G("new", t, owner, project), write=True)


# -- strategies -----------------------------------------------------------------

principals = st.one_of(
    st.just(Principal.system()),
    st.just(Principal.tenant_admin("o1")),
    st.builds(Principal.user, st.sampled_from(ACCOUNTS), st.just("o1"),
              st.sampled_from(["owner", "admin", "member", "viewer"])),
)
scope_sets = st.one_of(
    st.none(),
    st.just(frozenset({"*"})),
    st.just(frozenset({"graphs:*", "nodes:*"})),
    st.just(frozenset({"graphs:read", "nodes:read"})),
    st.sets(st.sampled_from(["graphs:*", "nodes:*", "project:p1", "project:p2", "graphs:read"]),
            max_size=4).map(frozenset),
)


@st.composite
def contexts(draw):
    p = draw(principals)
    keys = draw(scope_sets)
    agent = draw(st.sampled_from([None, None, "agent-1"]))
    delegated = draw(scope_sets) if agent else None
    return CallContext(p, key_scopes=keys, agent_id=agent, delegated_scopes=delegated)


graph_rows = st.lists(st.tuples(st.integers(0, 4), st.sampled_from((None, *ACCOUNTS)),
                                st.sampled_from((None, *PROJECTS))), max_size=8)


def load(db, rows) -> tuple[list[T], list[G], dict[str, str]]:
    """Replace the tenant file's data by ``rows``; the types, graphs and
    graph id -> node id."""
    with db.transaction() as tx:
        for table in ("edges", "nodes", "graphs"):
            tx.execute(f"DELETE FROM {table}")
        tx.execute("DELETE FROM graph_types WHERE scope != 'system'")
        system = {r[1]: T(r[0], "system", None, r[1]) for r in tx.fetchall(
            "SELECT id, module FROM graph_types WHERE scope = 'system'")}
        types = [system[CALL_GRAPH.name], system[ACL_GRAPH.name]]
        for name, scope, owner in (("team", "tenant", None), ("mine", "user", "u1"),
                                   ("mine", "user", "u2")):
            t = T(new_id(), scope, owner, CALL_GRAPH.name)
            tx.execute("INSERT INTO graph_types (id, name, version, scope, owner_id, module, "
                       "node_schema, edge_schema) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (t.id, name, CALL_GRAPH.version, scope, owner, CALL_GRAPH.name,
                        NODE_SCHEMA, EDGE_SCHEMA))
            types.append(t)
        types += [t for m, t in sorted(system.items()) if t not in types]  # other built-ins
        graphs, nodes = [], {}
        for type_index, owner, project in rows:
            g = G(new_id(), types[type_index], owner, project)
            tx.execute("INSERT INTO graphs (id, graph_type_id, name, owner_id, project_id) "
                       "VALUES (?, ?, 'g', ?, ?)", (g.id, g.type.id, owner, project))
            nodes[g.id] = new_id()
            tx.execute("INSERT INTO nodes (id, graph_id, key, type) VALUES (?, ?, 'k', 'x')",
                       (nodes[g.id], g.id))
            other = new_id()
            tx.execute("INSERT INTO nodes (id, graph_id, key, type) VALUES (?, ?, 'k2', 'x')",
                       (other, g.id))
            tx.execute("INSERT INTO edges (id, graph_id, type, source_id, target_id) VALUES "
                       "(?, ?, 'y', ?, ?)", (new_id(), g.id, nodes[g.id], other))
            graphs.append(g)
    return types, graphs, nodes


def expect(ops, op, data, ctx, allowed: bool, visible: bool, scope: str):
    """Call and check the outcome: the result when allowed, else the error
    the rules promise (ScopeViolation for a missing scope or a visible row
    the caller may not change, NotFound for a missing or hidden row)."""
    if not ctx.allows(scope):
        with pytest.raises(ScopeViolation, match="needs scope"):
            ops.call(op, data, ctx)
        return None
    if allowed:
        return ops.call(op, data, ctx)
    with pytest.raises(ScopeViolation if visible else NotFound):
        ops.call(op, data, ctx)
    return None


@SETTINGS
@given(rows=graph_rows, ctx=contexts())
def test_reads_see_exactly_what_the_oracle_allows(tenant_db, rows, ctx) -> None:
    ops = Dispatcher(tenant_db, "tenant", org_id="o1")
    types, graphs, nodes = load(tenant_db, rows)
    visible = {g.id for g in graphs if sees_graph(ctx, g)}
    if ctx.allows("graphs:read"):
        page = ops.call("graphs.list", {"limit": 500}, ctx)
        assert {g["id"] for g in page["items"]} == visible
        for g in graphs:
            expect(ops, "graphs.get", {"id": g.id}, ctx, g.id in visible, False, "graphs:read")
    if ctx.allows("graph_types:read"):
        seen_types = {t["id"] for t in ops.call("graph_types.list", {}, ctx)["items"]}
        assert seen_types == {t.id for t in types if sees_type(ctx.principal, t)}
    if ctx.allows("nodes:read"):
        listed = ops.call("nodes.list", {"limit": 500}, ctx)["items"]
        assert {n["id"] for n in listed if n["key"] == "k"} == {nodes[g] for g in visible}
        assert len(listed) == 2 * len(visible)
        for g in graphs:
            expect(ops, "nodes.get", {"id": nodes[g.id]}, ctx, g.id in visible, False,
                   "nodes:read")
            page = ops.call("nodes.list", {"graph_id": g.id}, ctx)["items"]
            assert len(page) == (2 if g.id in visible else 0)
    else:
        with pytest.raises(ScopeViolation):
            ops.call("nodes.list", {}, ctx)
    if ctx.allows("edges:read"):
        edges = ops.call("edges.list", {"limit": 500}, ctx)["items"]
        assert {e["graph_id"] for e in edges} == visible and len(edges) == len(visible)
        for e in edges:
            assert ops.call("edges.get", {"id": e["id"]}, ctx)["id"] == e["id"]


@SETTINGS
@given(rows=graph_rows, ctx=contexts(), project=st.sampled_from((None, *PROJECTS)))
def test_writes_change_exactly_what_the_oracle_allows(tenant_db, rows, ctx, project) -> None:
    ops = Dispatcher(tenant_db, "tenant", org_id="o1")
    types, graphs, nodes = load(tenant_db, rows)
    for g in graphs:
        ok = sees_graph(ctx, g, write=True)
        out = expect(ops, "graphs.patch", {"id": g.id, "name": "renamed"}, ctx, ok,
                     sees_graph(ctx, g), "graphs:write")
        stored = tenant_db.query("SELECT name FROM graphs WHERE id = ?", [g.id])[0]["name"]
        assert stored == ("renamed" if out is not None else "g")
        deleted = expect(ops, "nodes.delete", {"id": nodes[g.id]}, ctx, ok, sees_graph(ctx, g),
                         "nodes:write")
        left = tenant_db.query("SELECT count(*) AS n FROM nodes WHERE id = ?", [nodes[g.id]])
        assert left[0]["n"] == (0 if deleted is not None else 1)
    for t in types:
        data = {"graph_type_id": t.id, "name": "new", "project_id": project}
        if not ctx.allows("graphs:write"):
            with pytest.raises(ScopeViolation):
                ops.call("graphs.create", data, ctx)
        elif may_create_graph(ctx, t, project):
            made = ops.call("graphs.create", data, ctx)
            p = ctx.principal
            if p.kind == "user" and not p.manages_tenant:
                assert made["owner_id"] == p.account_id
        else:
            with pytest.raises(ScopeViolation, match="may not create"):
                ops.call("graphs.create", data, ctx)


# -- the system file ------------------------------------------------------------------


@st.composite
def system_worlds(draw):
    admins = draw(st.sets(st.sampled_from(ACCOUNTS), max_size=1))
    orgs = draw(st.lists(st.sampled_from(ACCOUNTS), min_size=1, max_size=3))  # owners
    members = draw(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(ACCOUNTS),
                                      st.sampled_from(["owner", "admin", "member", "viewer"])),
                            max_size=6))
    me = draw(st.sampled_from(ACCOUNTS))
    return admins, orgs, members, me


@SETTINGS
@given(world=system_worlds())
def test_system_rules_match_the_oracle(system_db, world) -> None:
    admins, owners, members, me = world
    ops = Dispatcher(system_db, "system")
    with system_db.transaction() as tx:
        for table in ("api_keys", "organization_memberships", "organizations", "accounts"):
            tx.execute(f"DELETE FROM {table}")
        for a in ACCOUNTS:
            tx.execute("INSERT INTO accounts (id, email, access_level) VALUES (?, ?, ?)",
                       (a, f"{a}@x.io", "admin" if a in admins else "user"))
        org_ids = []
        for i, owner in enumerate(owners):
            org_ids.append(f"org{i}")
            tx.execute("INSERT INTO organizations (id, slug, name, owner_id) VALUES "
                       "(?, ?, 'n', ?)", (f"org{i}", f"org-{i}", owner))
        level: dict[tuple[str, str], str] = {}
        for i, account, lv in members:
            if i < len(org_ids):
                level[(org_ids[i], account)] = lv
        for (org, account), lv in level.items():
            tx.execute("INSERT INTO organization_memberships (org_id, account_id, level) "
                       "VALUES (?, ?, ?)", (org, account, lv))
        keys = {}  # key id -> (account, org)
        for i, account in enumerate(ACCOUNTS):
            for org in (None, *org_ids[:1]):
                kid = f"k{i}{org or ''}"
                keys[kid] = (account, org)
                tx.execute("INSERT INTO api_keys (id, account_id, org_id, name, prefix, "
                           "key_hash, pepper_version) VALUES (?, ?, ?, 'n', 'p', ?, 1)",
                           (kid, account, org, bytes(32)))
    ctx = CallContext(Principal.user(me, "none", "member"))
    admin = me in admins
    my_orgs = {o for (o, a) in level if a == me}
    managed = {o for (o, a), lv in level.items() if a == me and lv in ("owner", "admin")}
    owned = {o for o, owner in zip(org_ids, owners, strict=True) if owner == me}

    got = {o["id"] for o in ops.call("organizations.list", {}, ctx)["items"]}
    assert got == (set(org_ids) if admin else my_orgs | owned)
    accounts = {a["id"] for a in ops.call("accounts.list", {}, ctx)["items"]}
    co = {a for (o, a) in level if o in my_orgs}
    assert accounts == (set(ACCOUNTS) if admin else {me} | co)
    ms = {(m["org_id"], m["account_id"]) for m in ops.call("memberships.list", {}, ctx)["items"]}
    assert ms == {k for k in level if admin or k[1] == me or k[0] in my_orgs}
    for o in org_ids:
        visible = admin or o in my_orgs or o in owned
        may = admin or o in managed or o in owned
        expect(ops, "organizations.patch", {"id": o, "name": "x"}, ctx, may, visible,
               "organizations:write")
    seen_keys = {k["id"] for k in ops.call("api_keys.list", {}, ctx)["items"]}
    assert seen_keys == {k for k, (acc, org) in keys.items()
                         if admin or acc == me or (org is not None and org in managed)}
    for k, (acc, _org) in keys.items():
        expect(ops, "api_keys.patch", {"id": k, "name": "renamed"}, ctx, admin or acc == me,
               k in seen_keys, "api_keys:write")
    for a in ACCOUNTS:
        expect(ops, "accounts.patch", {"id": a, "display_name": "d"}, ctx, admin or a == me,
               admin or a == me or a in co, "accounts:write")
