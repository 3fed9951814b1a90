"""The system and tenant models on real files (made by the migrations and
by create_all): valid rows go in with their defaults; every CHECK, UNIQUE
and FOREIGN KEY refuses a bad row with IntegrityError and nothing is
written; ON DELETE does what the contract says; the Python validators
refuse bad e-mails and slugs before anything is sent."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from schema_helpers import count
from sqlalchemy.orm import Session

from alkdev_storage.errors import ValidationFailed
from alkdev_storage.schema import (
    Account,
    ApiKey,
    Edge,
    Graph,
    GraphType,
    Node,
    Organization,
    OrganizationMembership,
    TenantRecord,
    normalize_email,
    protection_lifted,
    validate_slug,
)

HASH = bytes(range(32))


def seed_system(engine: sa.Engine) -> dict[str, str]:
    with Session(engine) as s, s.begin():
        acc = Account(email="Ada@Example.com ")
        s.add(acc)
        s.flush()
        org = Organization(slug="acme", name="Acme", owner_id=acc.id)
        s.add(org)
        s.flush()
        s.add(OrganizationMembership(org_id=org.id, account_id=acc.id, level="owner"))
        key = ApiKey(
            account_id=acc.id,
            org_id=org.id,
            name="ci",
            prefix="alk_12",
            key_hash=HASH,
            pepper_version=1,
        )
        s.add(key)
        s.add(TenantRecord(org_id=org.id, status="creating"))
        s.flush()
        return {"account": acc.id, "org": org.id, "key": key.id}


def test_system_rows_with_defaults(system_engine_any) -> None:
    ids = seed_system(system_engine_any)
    with Session(system_engine_any) as s:
        acc = s.get_one(Account, ids["account"])
        assert acc.email == "ada@example.com"
        assert (acc.access_level, acc.status, acc.display_name) == ("user", "active", None)
        assert acc.created_at.tzinfo == UTC and acc.updated_at == acc.created_at
        assert abs(acc.created_at - datetime.now(UTC)) < timedelta(seconds=30)
        key = s.get_one(ApiKey, ids["key"])
        assert (key.scopes, key.key_hash, key.expires_at, key.revoked_at) == ([], HASH, None, None)
        org = s.get_one(Organization, ids["org"])
        assert org.status == "active"
        tenant = s.get_one(TenantRecord, ids["org"])
        assert (tenant.status, tenant.schema_revision) == ("creating", None)
        # updated_at moves on update, created_at stays
        before = acc.updated_at
        acc.display_name = "Ada"
        s.commit()
        assert acc.updated_at >= before and acc.created_at <= acc.updated_at


def test_raw_sql_inserts_get_the_server_defaults(system_engine_any) -> None:
    with system_engine_any.begin() as c:
        c.exec_driver_sql("INSERT INTO accounts (id, email) VALUES ('a1', 'x@y.z')")
        row = c.exec_driver_sql(
            "SELECT access_level, status, created_at, updated_at FROM accounts"
        ).one()
    assert row[:2] == ("user", "active")
    assert len(row[2]) == 24 and row[2].endswith("Z") and row[2] == row[3]
    with Session(system_engine_any) as s:
        assert s.get_one(Account, "a1").created_at.tzinfo == UTC


# (table, good row, column overrides that make it bad, what the error names)
def system_bad_rows(ids: dict[str, str]) -> list[tuple[str, dict[str, Any], str]]:
    acc = {"id": "acc3", "email": "carl@example.com"}
    org = {"id": "org2", "slug": "other", "name": "O", "owner_id": ids["account"]}
    key = {
        "id": "key2",
        "account_id": ids["account"],
        "name": "k",
        "prefix": "p",
        "key_hash": HASH,
        "pepper_version": 1,
    }
    mem = {"org_id": ids["org"], "account_id": "acc2", "level": "member"}
    return [
        ("accounts", {**acc, "email": "Bob@example.com"}, "ck_accounts_email_normalized"),
        ("accounts", {**acc, "email": " bob@example.com"}, "ck_accounts_email_normalized"),
        ("accounts", {**acc, "email": "bob @example.com"}, "ck_accounts_email_normalized"),
        ("accounts", {**acc, "email": "bob@example.com\x00x"}, "ck_accounts_email_normalized"),
        ("accounts", {**acc, "email": "bobexample.com"}, "ck_accounts_email_format"),
        ("accounts", {**acc, "email": "@example.com"}, "ck_accounts_email_format"),
        ("accounts", {**acc, "email": "bob@"}, "ck_accounts_email_format"),
        ("accounts", {**acc, "email": "a@" + "b" * 253}, "ck_accounts_email_format"),
        ("accounts", {**acc, "email": b"bob@example.com"}, "ck_accounts_email_"),
        ("accounts", {**acc, "email": "bob@example.com"}, "UNIQUE constraint failed: accounts.em"),
        ("accounts", {**acc, "email": None}, "NOT NULL constraint failed: accounts.email"),
        ("accounts", {**acc, "access_level": "root"}, "ck_accounts_access_level"),
        ("accounts", {**acc, "status": "gone"}, "ck_accounts_status"),
        ("accounts", {**acc, "id": ids["account"]}, "UNIQUE constraint failed: accounts.id"),
        ("organizations", {**org, "slug": "ac"}, "ck_organizations_slug_format"),
        ("organizations", {**org, "slug": "x" * 64}, "ck_organizations_slug_format"),
        ("organizations", {**org, "slug": "Acme2"}, "ck_organizations_slug_format"),
        ("organizations", {**org, "slug": "-acme"}, "ck_organizations_slug_format"),
        ("organizations", {**org, "slug": "acme-"}, "ck_organizations_slug_format"),
        ("organizations", {**org, "slug": "ac_me"}, "ck_organizations_slug_format"),
        ("organizations", {**org, "slug": "acé"}, "ck_organizations_slug_format"),
        ("organizations", {**org, "slug": "abc\x00-"}, "ck_organizations_slug_format"),
        ("organizations", {**org, "slug": "acme"}, "UNIQUE constraint failed: organizations.slug"),
        ("organizations", {**org, "owner_id": "nobody"}, "FOREIGN KEY constraint failed"),
        ("organizations", {**org, "status": "active2"}, "ck_organizations_status"),
        ("organization_memberships", {**mem, "account_id": "nobody"}, "FOREIGN KEY"),
        ("organization_memberships", {**mem, "org_id": "nowhere"}, "FOREIGN KEY"),
        ("organization_memberships", {**mem, "account_id": ids["account"]}, "UNIQUE"),
        ("organization_memberships", {**mem, "level": "god"}, "ck_organization_memberships_level"),
        ("api_keys", {**key, "key_hash": HASH[:31]}, "ck_api_keys_key_hash_size"),
        ("api_keys", {**key, "key_hash": HASH.hex()[:32]}, "ck_api_keys_key_hash_size"),
        ("api_keys", {**key, "scopes": "{}"}, "ck_api_keys_scopes_array"),
        ("api_keys", {**key, "scopes": "[unclosed"}, "ck_api_keys_scopes_array"),
        ("api_keys", {**key, "account_id": "nobody"}, "FOREIGN KEY"),
        ("api_keys", {**key, "org_id": "nowhere"}, "FOREIGN KEY"),
        ("api_keys", {**key, "pepper_version": None}, "NOT NULL"),
        ("tenants", {"org_id": ids["org"], "status": "ready"}, "UNIQUE"),
        ("tenants", {"org_id": "nowhere", "status": "ready"}, "FOREIGN KEY"),
        ("tenants", {"org_id": "org2", "status": "done"}, "ck_tenants_status"),
    ]


def insert_raw(conn: sa.Connection, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(f'"{k}"' for k in row)
    marks = ", ".join("?" for _ in row)
    conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))


def test_every_system_constraint_refuses_bad_rows(system_engine_any) -> None:
    ids = seed_system(system_engine_any)
    with system_engine_any.begin() as c:
        insert_raw(c, "accounts", {"id": "acc2", "email": "bob@example.com"})
        insert_raw(c, "organizations", {"id": "org2", "slug": "other2", "name": "O",
                                        "owner_id": ids["account"]})
    tables = ["accounts", "organizations", "organization_memberships", "api_keys", "tenants"]
    before = {t: count(system_engine_any, t) for t in tables}
    for table, row, expected in system_bad_rows(ids):
        if table == "organizations":
            row = {**row, "id": "org3"}
        with pytest.raises(sa.exc.IntegrityError, match=expected):
            with system_engine_any.begin() as c:
                insert_raw(c, table, row)
        assert {t: count(system_engine_any, t) for t in tables} == before, (table, row)


def test_the_good_versions_of_the_bad_rows_go_in(system_engine_any) -> None:
    ids = seed_system(system_engine_any)
    with system_engine_any.begin() as c:
        insert_raw(c, "accounts", {"id": "acc2", "email": "bob@example.com"})
        insert_raw(c, "organizations", {"id": "org2", "slug": "a-9", "name": "O",
                                        "owner_id": ids["account"]})
        insert_raw(c, "organization_memberships",
                   {"org_id": ids["org"], "account_id": "acc2", "level": "viewer"})
        insert_raw(c, "api_keys", {"id": "k2", "account_id": "acc2", "name": "k", "prefix": "p",
                                   "key_hash": HASH, "pepper_version": 2,
                                   "scopes": '["graphs:read"]'})
        insert_raw(c, "tenants", {"org_id": "org2", "status": "ready"})
    assert count(system_engine_any, "organization_memberships") == 2


def test_memberships_go_with_their_org_or_account(system_engine_any) -> None:
    ids = seed_system(system_engine_any)
    with system_engine_any.begin() as c:
        insert_raw(c, "accounts", {"id": "acc2", "email": "bob@example.com"})
        insert_raw(c, "organization_memberships",
                   {"org_id": ids["org"], "account_id": "acc2", "level": "member"})
        c.exec_driver_sql("DELETE FROM accounts WHERE id = 'acc2'")
    assert count(system_engine_any, "organization_memberships") == 1
    # an organization with API keys or a tenant cannot go (no cascade there)
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        with system_engine_any.begin() as c:
            c.exec_driver_sql("DELETE FROM organizations")
    with system_engine_any.begin() as c:
        c.exec_driver_sql("DELETE FROM api_keys")
        c.exec_driver_sql("DELETE FROM tenants")
        c.exec_driver_sql("DELETE FROM organizations")
    assert count(system_engine_any, "organization_memberships") == 0


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ada@Example.COM", "ada@example.com"),
        ("  ada@example.com\t\n", "ada@example.com"),
        ("\u00a0Ünïcode@Example.org\u2003", "ünïcode@example.org"),
        ("a@b", "a@b"),
    ],
)
def test_email_is_normalized_before_it_is_stored(system_engine, raw, stored) -> None:
    with Session(system_engine) as s, s.begin():
        acc = Account(email=raw)
        assert acc.email == stored
        s.add(acc)
    with system_engine.connect() as c:
        assert c.exec_driver_sql("SELECT email FROM accounts").scalar_one() == stored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ab", "must be 3 to 254 characters"),
        ("   ", "must be 3 to 254 characters"),
        ("a@" + "b" * 253, "must be 3 to 254 characters"),
        ("ada @example.com", "must not contain whitespace"),
        ("ada@exa\x00mple.com", "control characters"),
        ("adaexample.com", "must contain '@'"),
        ("@example.com", "must contain '@'"),
        ("ada\ud800@x.y", "valid Unicode"),
        (42, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_bad_email_is_refused_in_python_naming_the_field(system_engine, raw, message) -> None:
    with pytest.raises(ValidationFailed, match=re.escape(message)) as info:
        Account(email=raw)
    assert info.value.field == "email"
    assert info.value.errors[0]["loc"] == ("email",)
    with Session(system_engine) as s, s.begin():
        acc = Account(email="ok@example.com")
        s.add(acc)
        with pytest.raises(ValidationFailed):
            acc.email = raw
    with system_engine.connect() as c:
        assert c.exec_driver_sql("SELECT email FROM accounts").scalars().all() == [
            "ok@example.com"
        ]


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("ab", "must be 3 to 63 characters"),
        ("a" * 64, "must be 3 to 63 characters"),
        ("Acme", "may only contain a-z, 0-9 and '-' (found 'A')"),
        ("ac me_", "found ' _'"),
        ("-acme", "must not start or end with '-'"),
        ("acme-", "must not start or end with '-'"),
        (None, "must be a string"),
    ],
)
def test_bad_slug_is_refused_in_python_naming_the_field(slug, message) -> None:
    with pytest.raises(ValidationFailed, match=re.escape(message)) as info:
        Organization(slug=slug, name="x", owner_id="a")
    assert info.value.field == "slug"


def test_validators_accept_the_boundaries() -> None:
    assert validate_slug("a-b") == "a-b"
    assert validate_slug("a" * 63) == "a" * 63
    assert validate_slug("0-0-0") == "0-0-0"
    assert normalize_email("A@" + "b" * 252) == "a@" + "b" * 252


def test_enum_columns_refuse_unknown_values_before_sending(system_engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="'root' is not among the defined enum"):
        with Session(system_engine) as s, s.begin():
            s.add(Account(email="x@y.z", access_level="root"))
    assert count(system_engine, "accounts") == 0


# ---------------------------------------------------------------------
# Tenant tables
# ---------------------------------------------------------------------


def seed_tenant(engine: sa.Engine) -> dict[str, str]:
    with Session(engine) as s, s.begin():
        gt = GraphType(name="calls", version="1", scope="tenant", module="call_graph",
                       node_schema={"type": "object"}, edge_schema={"type": "object"})
        s.add(gt)
        s.flush()
        g1 = Graph(graph_type_id=gt.id, name="g1", owner_id="u1", project_id="p1")
        g2 = Graph(graph_type_id=gt.id, name="g2")
        s.add_all([g1, g2])
        s.flush()
        a = Node(graph_id=g1.id, key="a", type="call", attributes={"x": 1})
        b = Node(graph_id=g1.id, key="b", type="call")
        c = Node(graph_id=g2.id, key="c", type="call")
        s.add_all([a, b, c])
        s.flush()
        e = Edge(graph_id=g1.id, type="calls", source_id=a.id, target_id=b.id)
        s.add(e)
        s.flush()
        return {"gt": gt.id, "g1": g1.id, "g2": g2.id, "a": a.id, "b": b.id, "c": c.id,
                "e": e.id}


def test_tenant_rows_with_defaults(tenant_engine_any) -> None:
    ids = seed_tenant(tenant_engine_any)
    with Session(tenant_engine_any) as s:
        g = s.get_one(Graph, ids["g2"])
        assert (g.status, g.attributes, g.owner_id, g.project_id) == ("active", {}, None, None)
        n = s.get_one(Node, ids["a"])
        assert (n.attributes, n.key_version) == ({"x": 1}, None)
        e = s.get_one(Edge, ids["e"])
        assert (e.attributes, e.key_version, e.created_at.tzinfo) == ({}, None, UTC)


def tenant_bad_rows(ids: dict[str, str]) -> list[tuple[str, dict[str, Any], str]]:
    gt = {"id": "gt2", "name": "acl", "version": "1", "scope": "tenant", "module": "acl",
          "node_schema": "{}", "edge_schema": "{}"}
    graph = {"id": "g3", "graph_type_id": ids["gt"], "name": "g"}
    node = {"id": "n9", "graph_id": ids["g1"], "key": "z", "type": "t"}
    edge = {"id": "e9", "graph_id": ids["g1"], "type": "t", "source_id": ids["a"],
            "target_id": ids["b"]}
    return [
        ("graph_types", {**gt, "scope": "global"}, "ck_graph_types_scope"),
        ("graph_types", {**gt, "scope": "user"}, "ck_graph_types_owner_for_user_scope"),
        ("graph_types", {**gt, "owner_id": "u1"}, "ck_graph_types_owner_for_user_scope"),
        ("graph_types", {**gt, "node_schema": "[]"}, "ck_graph_types_node_schema_object"),
        ("graph_types", {**gt, "edge_schema": "nope"}, "ck_graph_types_edge_schema_object"),
        ("graph_types", {**gt, "name": "calls"},
         "UNIQUE constraint failed: index 'uq_graph_types_name_version_owner'"),
        ("graph_types", {**gt, "module": None}, "NOT NULL"),
        ("graphs", {**graph, "graph_type_id": "nope"}, "FOREIGN KEY"),
        ("graphs", {**graph, "status": "deleted"}, "ck_graphs_status"),
        ("graphs", {**graph, "attributes": "[1]"}, "ck_graphs_attributes_object"),
        ("graphs", {**graph, "attributes": "null"}, "ck_graphs_attributes_object"),
        ("nodes", {**node, "graph_id": "nope"}, "FOREIGN KEY"),
        ("nodes", {**node, "key": "a"}, "UNIQUE constraint failed: nodes.graph_id, nodes.key"),
        ("nodes", {**node, "attributes": "1"}, "ck_nodes_attributes_object"),
        ("nodes", {**node, "type": None}, "NOT NULL"),
        ("edges", {**edge, "graph_id": "nope"}, "FOREIGN KEY|edge source and target"),
        ("edges", {**edge, "source_id": "nope"}, "FOREIGN KEY"),
        ("edges", {**edge, "target_id": "nope"}, "FOREIGN KEY"),
        ("edges", {**edge, "target_id": ids["c"]}, "edge source and target must be nodes"),
        ("edges", {**edge, "graph_id": ids["g2"], "source_id": ids["c"]},
         "edge source and target must be nodes"),
        ("edges", {**edge, "attributes": "\"s\""}, "ck_edges_attributes_object"),
        ("edges", {**edge, "id": ids["e"]}, "UNIQUE constraint failed: edges.id"),
    ]


def test_every_tenant_constraint_refuses_bad_rows(tenant_engine_any) -> None:
    ids = seed_tenant(tenant_engine_any)
    tables = ["graph_types", "graphs", "nodes", "edges"]
    before = {t: count(tenant_engine_any, t) for t in tables}
    for table, row, expected in tenant_bad_rows(ids):
        with pytest.raises(sa.exc.IntegrityError, match=expected):
            with tenant_engine_any.begin() as c:
                insert_raw(c, table, row)
        assert {t: count(tenant_engine_any, t) for t in tables} == before, (table, row)


def test_user_scope_types_are_unique_per_owner(tenant_engine_any) -> None:
    seed_tenant(tenant_engine_any)
    row = {"name": "calls", "version": "1", "scope": "user", "module": "m",
           "node_schema": "{}", "edge_schema": "{}"}
    with tenant_engine_any.begin() as c:
        insert_raw(c, "graph_types", {**row, "id": "u1t", "owner_id": "u1"})
        insert_raw(c, "graph_types", {**row, "id": "u2t", "owner_id": "u2"})
        insert_raw(c, "graph_types", {**row, "id": "u1v2", "owner_id": "u1", "version": "2"})
    with pytest.raises(sa.exc.IntegrityError, match="uq_graph_types_name_version_owner"):
        with tenant_engine_any.begin() as c:
            insert_raw(c, "graph_types", {**row, "id": "again", "owner_id": "u1"})


def test_deletes_cascade_and_restrict(tenant_engine_any) -> None:
    ids = seed_tenant(tenant_engine_any)
    # a graph type in use cannot be deleted
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        with tenant_engine_any.begin() as c:
            c.exec_driver_sql("DELETE FROM graph_types")
    # deleting a node deletes its edges
    with tenant_engine_any.begin() as c:
        c.exec_driver_sql("DELETE FROM nodes WHERE id = ?", (ids["b"],))
    assert count(tenant_engine_any, "edges") == 0
    # deleting a graph deletes its nodes
    with tenant_engine_any.begin() as c:
        c.exec_driver_sql("DELETE FROM graphs WHERE id = ?", (ids["g1"],))
    assert count(tenant_engine_any, "nodes") == 1
    with tenant_engine_any.begin() as c:
        c.exec_driver_sql("DELETE FROM graphs")
        c.exec_driver_sql("DELETE FROM graph_types")
    assert count(tenant_engine_any, "graph_types") == 0


def test_edges_stay_inside_their_graph(tenant_engine_any) -> None:
    ids = seed_tenant(tenant_engine_any)
    msg = "edge source and target must be nodes of the edge's graph"
    # through the ORM and Core, insert and update
    with pytest.raises(sa.exc.IntegrityError, match=msg):
        with Session(tenant_engine_any) as s, s.begin():
            s.add(Edge(graph_id=ids["g1"], type="t", source_id=ids["c"], target_id=ids["a"]))
    with pytest.raises(sa.exc.IntegrityError, match=msg):
        with tenant_engine_any.begin() as c:
            c.execute(sa.update(Edge).where(Edge.id == ids["e"]).values(target_id=ids["c"]))
    with pytest.raises(sa.exc.IntegrityError, match=msg):
        with tenant_engine_any.begin() as c:
            c.execute(sa.update(Edge).values(graph_id=ids["g2"]))
    # a node with edges cannot move; one without can
    with pytest.raises(sa.exc.IntegrityError, match="a node with edges cannot move"):
        with tenant_engine_any.begin() as c:
            c.execute(sa.update(Node).where(Node.id == ids["a"]).values(graph_id=ids["g2"]))
    with tenant_engine_any.begin() as c:
        c.execute(sa.update(Node).where(Node.id == ids["c"]).values(graph_id=ids["g1"]))
        # now c is in g1: an edge a -> c is fine, and other updates of edges too
        c.execute(sa.update(Edge).where(Edge.id == ids["e"]).values(target_id=ids["c"]))
        c.execute(sa.update(Edge).values(type="renamed", attributes={"w": 2}))
    with tenant_engine_any.connect() as c:
        assert c.execute(sa.select(Edge.target_id, Edge.type)).one() == (ids["c"], "renamed")


def test_key_version_partial_indexes_answer_the_rotation_query(tenant_engine_any) -> None:
    ids = seed_tenant(tenant_engine_any)
    with tenant_engine_any.begin() as c:
        c.execute(sa.update(Node).where(Node.id == ids["a"]).values(key_version=1))
        plan = " ".join(
            str(r[-1])
            for r in c.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM nodes WHERE key_version < 2"
            ).all()
        )
        assert "ix_nodes_key_version" in plan
        plan = " ".join(
            str(r[-1])
            for r in c.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM edges WHERE key_version < 2"
            ).all()
        )
        assert "ix_edges_key_version" in plan


def test_system_graph_types_need_protection_lifted(tenant_engine_any) -> None:
    with Session(tenant_engine_any) as s, s.begin():
        with protection_lifted(s):
            s.add(GraphType(name="acl", version="1", scope="system", module="acl",
                            node_schema={}, edge_schema={}))
    assert count(tenant_engine_any, "graph_types") == 1
