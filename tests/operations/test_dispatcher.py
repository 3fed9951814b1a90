"""The dispatcher: bad input refused with clear errors and nothing written,
graph-typed validation, pagination, batches, timing, prepared statements,
secrets sealed on write and redacted on read."""

from __future__ import annotations

import os

import pytest
from ops_helpers import SYSTEM, call_graph_type, counts, op_node

import alkdev_storage
from alkdev_storage.domain import Principal, init_tenant
from alkdev_storage.domain.builtin.secret_graph import SECRET_GRAPH
from alkdev_storage.domain.secrets import StaticKeyProvider
from alkdev_storage.errors import NotFound, ScopeViolation, ValidationFailed
from alkdev_storage.operations import REDACTED, CallContext, CallTiming, Dispatcher

MEMBER = CallContext(Principal.user("acc1", "o1", "member"))
OTHER = CallContext(Principal.user("acc2", "o1", "member"))


def make_graph(ops, ctx=MEMBER, **extra):
    return ops.call("graphs.create", {"graph_type_id": call_graph_type(ops), "name": "g",
                                      **extra}, ctx)


def test_bad_calls_are_refused_naming_what_was_wrong_and_write_nothing(tenant_ops,
                                                                       tenant_db) -> None:
    g = make_graph(tenant_ops)
    before = counts(tenant_db)
    cases = [
        ("nodes.creat", {}, NotFound, "unknown operation 'nodes.creat'"),
        ("nodes.create", {"graph_id": g["id"], "key": "k"}, ValidationFailed, "type"),
        ("nodes.create", {**op_node("k"), "graph_id": g["id"], "bogus": 1}, ValidationFailed,
         "bogus"),
        ("nodes.create", {**op_node("k"), "graph_id": g["id"],
                          "attributes": {"operation_id": 5, "version": "1"}},
         ValidationFailed, r"attributes\.operation_id"),
        ("nodes.create", {"graph_id": g["id"], "key": "k", "type": "nope"}, ValidationFailed,
         "node type 'nope'"),
        ("nodes.create", {**op_node("k"), "graph_id": "missing"}, ScopeViolation,
         "does not exist or this caller may not write"),
        ("nodes.list", {"limit": 501}, ValidationFailed, "limit"),
        ("nodes.list", {"limit": 0}, ValidationFailed, "limit"),
        ("nodes.list", {"cursor": "abc.def"}, ValidationFailed, "cursor"),
        ("nodes.list", {"order_by": "attributes"}, ValidationFailed, "order_by"),
        ("graphs.patch", {"id": g["id"]}, ValidationFailed, "no column to change"),
        ("graphs.patch", {"id": g["id"], "graph_type_id": "x"}, ValidationFailed,
         "graph_type_id"),
        ("graphs.update", {"id": g["id"], "status": "active"}, ValidationFailed, "name"),
    ]
    for op, data, exc, text in cases:
        with pytest.raises(exc, match=text) as info:
            tenant_ops.call(op, data, MEMBER)
        if isinstance(info.value, ValidationFailed):
            assert info.value.field is not None
    assert counts(tenant_db) == before


def test_a_key_that_exists_is_refused_naming_it(tenant_ops, tenant_db) -> None:
    g = make_graph(tenant_ops)
    tenant_ops.call("nodes.create", {**op_node("k"), "graph_id": g["id"]}, MEMBER)
    before = counts(tenant_db)
    with pytest.raises(ValidationFailed, match="key: a nodes row with this key already") as e:
        tenant_ops.call("nodes.create", {**op_node("k"), "graph_id": g["id"]}, MEMBER)
    assert e.value.field == "key"
    assert counts(tenant_db) == before


def test_cursor_pages_cover_every_row_once_under_concurrent_inserts(tenant_ops) -> None:
    g = make_graph(tenant_ops)
    for i in range(25):
        tenant_ops.call("nodes.create", {**op_node(f"k{i:02}"), "graph_id": g["id"]}, MEMBER)
    seen: list[str] = []
    cursor = None
    extra = 0
    while True:
        page = tenant_ops.call("nodes.list", {"graph_id": g["id"], "limit": 4,
                                              "cursor": cursor}, MEMBER)
        seen += [n["key"] for n in page["items"]]
        # rows added while paging: later ids, so they come after the cursor
        tenant_ops.call("nodes.create", {**op_node(f"x{extra}"), "graph_id": g["id"]}, MEMBER)
        extra += 1
        cursor = page["next_cursor"]
        if cursor is None or extra > 100:
            break
    assert len(seen) == len(set(seen))
    assert {f"k{i:02}" for i in range(25)} <= set(seen)


@pytest.mark.parametrize("order", ["id", "created_at"])
def test_descending_and_created_at_orderings_page_the_same_rows(tenant_ops, order) -> None:
    g = make_graph(tenant_ops)
    for i in range(9):
        tenant_ops.call("nodes.create", {**op_node(f"k{i}"), "graph_id": g["id"]}, MEMBER)
    keys: list[str] = []
    cursor = None
    while True:
        page = tenant_ops.call("nodes.list", {"graph_id": g["id"], "limit": 2, "order_by": order,
                                              "descending": True, "cursor": cursor}, MEMBER)
        keys += [n["key"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert keys == [f"k{i}" for i in reversed(range(9))]


def test_a_tampered_or_foreign_cursor_is_refused(tenant_ops) -> None:
    g = make_graph(tenant_ops)
    for i in range(3):
        tenant_ops.call("nodes.create", {**op_node(f"k{i}"), "graph_id": g["id"]}, MEMBER)
    cursor = tenant_ops.call("nodes.list", {"graph_id": g["id"], "limit": 1}, MEMBER)[
        "next_cursor"]
    body, tag = cursor.split(".")
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    for bad in (f"{flipped}.{tag}", f"{body}.{tag[::-1]}", cursor + "x", "x" * 40):
        with pytest.raises(ValidationFailed, match="cursor") as info:
            tenant_ops.call("nodes.list", {"graph_id": g["id"], "limit": 1, "cursor": bad},
                            MEMBER)
        assert info.value.field == "cursor"
    with pytest.raises(ValidationFailed, match="another listing"):
        tenant_ops.call("nodes.list", {"graph_id": g["id"], "limit": 1, "cursor": cursor,
                                       "descending": True}, MEMBER)
    with pytest.raises(ValidationFailed, match="another listing"):
        tenant_ops.call("nodes.list", {"limit": 1, "cursor": cursor}, MEMBER)


def test_cursors_survive_a_restart_and_work_in_another_dispatcher(tenant_db, tmp_path) -> None:
    ops = Dispatcher(tenant_db, "tenant")
    g = make_graph(ops)
    for i in range(3):
        ops.call("nodes.create", {**op_node(f"k{i}"), "graph_id": g["id"]}, MEMBER)
    cursor = ops.call("nodes.list", {"graph_id": g["id"], "limit": 1}, MEMBER)["next_cursor"]
    path = tenant_db.path
    tenant_db.close()
    db = alkdev_storage.open(path)
    try:
        page = Dispatcher(db, "tenant").call("nodes.list", {"graph_id": g["id"], "limit": 5,
                                                            "cursor": cursor}, MEMBER)
        assert [n["key"] for n in page["items"]] == ["k1", "k2"]
        # another file has another key
        other = alkdev_storage.open(tmp_path / "tenant-o2.db")
        try:
            init_tenant(other, "o2")
            with pytest.raises(ValidationFailed, match="tampered"):
                Dispatcher(other, "tenant").call("nodes.list", {"graph_id": g["id"],
                                                                "cursor": cursor}, SYSTEM)
        finally:
            other.close()
    finally:
        db.close()


def test_batch_runs_in_one_transaction(tenant_ops, tenant_db) -> None:
    g = make_graph(tenant_ops)
    out = tenant_ops.batch([("nodes.create", {**op_node("a"), "graph_id": g["id"]}),
                            ("nodes.create", {**op_node("b"), "graph_id": g["id"]}),
                            ("nodes.list", {"graph_id": g["id"]})], MEMBER)
    assert [n["key"] for n in out[2]["items"]] == ["a", "b"]
    before = counts(tenant_db)
    with pytest.raises(ValidationFailed) as info:
        tenant_ops.batch([("nodes.create", {**op_node("c"), "graph_id": g["id"]}),
                          ("nodes.create", {**op_node("a"), "graph_id": g["id"]})], MEMBER)
    assert any("batch item 1 (nodes.create)" in n for n in info.value.__notes__)
    assert counts(tenant_db) == before


def test_timing_is_reported(tenant_db) -> None:
    seen: list[CallTiming] = []
    ops = Dispatcher(tenant_db, "tenant", observer=seen.append)
    g = make_graph(ops)
    result = ops.call_result("graphs.get", {"id": g["id"]}, MEMBER)
    assert result.value == g
    t = result.timing
    assert t.op_id == "graphs.get" and not t.replayed
    assert 0 <= t.validate_input <= t.total and 0 <= t.run <= t.total
    assert [s.op_id for s in seen][-2:] == ["graphs.create", "graphs.get"]


def test_each_statement_is_compiled_once(tenant_ops) -> None:
    g = make_graph(tenant_ops)
    for i in range(3):
        tenant_ops.call("nodes.create", {**op_node(f"k{i}"), "graph_id": g["id"]}, MEMBER)
        tenant_ops.call("nodes.list", {"graph_id": g["id"]}, MEMBER)
    n = tenant_ops.compiled_count()
    for i in range(3, 10):
        node = tenant_ops.call("nodes.create", {**op_node(f"k{i}"), "graph_id": g["id"]},
                               MEMBER)
        tenant_ops.call("nodes.get", {"id": node["id"]}, MEMBER)
        tenant_ops.call("nodes.list", {"graph_id": g["id"]}, MEMBER)
    assert tenant_ops.compiled_count() == n + 1  # nodes.get's statement, once


def test_members_graphs_are_their_own_and_owner_cannot_be_given_away(tenant_ops) -> None:
    g = make_graph(tenant_ops)
    assert g["owner_id"] == "acc1"
    with pytest.raises(ScopeViolation, match="may not create"):
        make_graph(tenant_ops, owner_id="acc2")
    with pytest.raises(ScopeViolation, match=r"may not change .*owner_id"):
        tenant_ops.call("graphs.patch", {"id": g["id"], "owner_id": "acc2"}, MEMBER)
    with pytest.raises(NotFound):
        tenant_ops.call("graphs.patch", {"id": g["id"], "name": "x"}, OTHER)
    with pytest.raises(NotFound):
        tenant_ops.call("graphs.patch", {"id": "missing", "name": "x"}, OTHER)
    admin = CallContext(Principal.user("acc9", "o1", "admin"))
    assert tenant_ops.call("graphs.patch", {"id": g["id"], "owner_id": "acc2"},
                           admin)["owner_id"] == "acc2"


def test_principal_of_another_org_is_refused(tenant_ops) -> None:
    with pytest.raises(ScopeViolation, match="org 'o2' cannot act in org 'o1'"):
        tenant_ops.call("graphs.list", {}, CallContext(Principal.user("a", "o2", "owner")))


def test_key_scopes_limit_operations_and_projects(tenant_ops) -> None:
    admin = CallContext(Principal.tenant_admin("o1"))
    t = call_graph_type(tenant_ops)
    a = tenant_ops.call("graphs.create", {"graph_type_id": t, "name": "a", "project_id": "p1"},
                        admin)
    tenant_ops.call("graphs.create", {"graph_type_id": t, "name": "b", "project_id": "p2"},
                    admin)
    key = CallContext(Principal.user("acc1", "o1", "owner"),
                      key_scopes=frozenset({"graphs:read", "project:p1"}))
    assert [g["name"] for g in tenant_ops.call("graphs.list", {}, key)["items"]] == ["a"]
    with pytest.raises(ScopeViolation, match="needs scope 'graphs:write'"):
        tenant_ops.call("graphs.patch", {"id": a["id"], "name": "z"}, key)


def test_secrets_are_sealed_on_write_and_redacted_unless_the_call_may_decrypt(tmp_path) -> None:
    provider = StaticKeyProvider({1: os.urandom(32)})
    db = alkdev_storage.open(tmp_path / "tenant-o1.db")
    try:
        init_tenant(db, "o1", [SECRET_GRAPH])
        ops = Dispatcher(db, "tenant", org_id="o1", key_provider=provider)
        t = ops.call("graph_types.list", {"name": SECRET_GRAPH.name}, SYSTEM)["items"][0]["id"]
        g = ops.call("graphs.create", {"graph_type_id": t, "name": "vault"}, MEMBER)
        node = ops.call("nodes.create", {"graph_id": g["id"], "key": "db", "type": "secret",
                                         "attributes": {"name": "db", "value": "hunter2"}},
                        MEMBER)
        assert node["attributes"]["value"] == REDACTED and node["key_version"] == 1
        stored = db.query("SELECT attributes FROM nodes WHERE id = ?", [node["id"]])[0]
        assert "hunter2" not in stored["attributes"]
        reader = CallContext(Principal.user("acc1", "o1", "member", scopes={"secrets:read"}))
        assert ops.call("nodes.get", {"id": node["id"]}, reader)["attributes"][
            "value"] == "hunter2"
        limited = CallContext(reader.principal, key_scopes=frozenset({"nodes:read"}))
        assert ops.call("nodes.get", {"id": node["id"]}, limited)["attributes"][
            "value"] == REDACTED
        with pytest.raises(ValidationFailed, match="redacted placeholder"):
            ops.call("nodes.patch", {"id": node["id"], "attributes": {
                "name": "db", "value": REDACTED}}, MEMBER)
        patched = ops.call("nodes.patch", {"id": node["id"], "attributes": {
            "name": "db", "value": "new"}}, reader)
        assert patched["attributes"]["value"] == "new"
    finally:
        db.close()


def test_system_accounts_organizations_and_keys(system_ops, system_db) -> None:
    admin = system_ops.call("accounts.create", {"email": " Boss@Example.COM ",
                                                "access_level": "admin"}, SYSTEM)
    assert admin["email"] == "boss@example.com"
    alice = system_ops.call("accounts.create", {"email": "alice@example.com"}, SYSTEM)
    me = CallContext(Principal.user(alice["id"], "none", "member"))
    org = system_ops.call("organizations.create", {"slug": "acme", "name": "Acme"}, me)
    assert org["owner_id"] == alice["id"]
    members = system_ops.call("memberships.list", {"org_id": org["id"]}, me)["items"]
    assert [(m["account_id"], m["level"]) for m in members] == [(alice["id"], "owner")]
    with pytest.raises(ValidationFailed, match="slug"):
        system_ops.call("organizations.create", {"slug": "-bad", "name": "x"}, me)
    with pytest.raises(ScopeViolation, match="access_level"):
        system_ops.call("accounts.patch", {"id": alice["id"], "access_level": "admin"}, me)
    key = system_ops.call("api_keys.create", {"name": "ci", "prefix": "ak_", "key_hash":
                                              b"\x01" * 32, "pepper_version": 1,
                                              "org_id": org["id"]}, me)
    assert "key_hash" not in key and key["account_id"] == alice["id"]
    assert "key_hash" not in system_ops.call("api_keys.get", {"id": key["id"]}, me)
    assert all("key_hash" not in k for k in
               system_ops.call("api_keys.list", {}, SYSTEM)["items"])
    stranger = CallContext(Principal.user(admin["id"] + "x", "none", "member"))
    with pytest.raises(NotFound):
        system_ops.call("api_keys.get", {"id": key["id"]}, stranger)
    boss = CallContext(Principal.user(admin["id"], "none", "member"))
    assert system_ops.call("api_keys.get", {"id": key["id"]}, boss)["id"] == key["id"]


def test_batch_items_are_idempotent_by_their_request_ids(tenant_ops, tenant_db) -> None:
    g = make_graph(tenant_ops)
    ctx = MEMBER.with_request("batch-1")
    calls = [("nodes.create", {**op_node("a"), "graph_id": g["id"]}),
             ("nodes.create", {**op_node("b"), "graph_id": g["id"]}, "own-id")]
    first = tenant_ops.batch(calls, ctx)
    before = counts(tenant_db)
    assert tenant_ops.batch(calls, ctx) == first  # a retried batch writes nothing
    assert counts(tenant_db) == before
    ids = {r["request_id"] for r in tenant_db.query("SELECT request_id FROM operation_requests")}
    assert {"batch-1#0", "own-id"} <= ids


def test_a_missing_row_is_named_in_the_not_found_error(tenant_ops) -> None:
    with pytest.raises(NotFound, match="nodes id='missing': not found"):
        tenant_ops.call("nodes.get", {"id": "missing"}, MEMBER)
    with pytest.raises(NotFound, match="graphs id='missing': not found"):
        tenant_ops.call("graphs.delete", {"id": "missing"}, MEMBER)


def test_acall_runs_off_the_event_loop(tenant_db) -> None:
    import asyncio
    import threading

    from pydantic import BaseModel

    from alkdev_storage.operations import custom

    class Empty(BaseModel):
        pass

    class Where(BaseModel):
        thread: int

    ops = Dispatcher(tenant_db, "tenant")
    ops.registry.add(custom("graphs.where", "query",
                            lambda inv, data: {"thread": threading.get_ident()},
                            input=Empty, output=Where, scope="graphs:read"))
    g = make_graph(ops)

    async def main():
        here = threading.get_ident()
        where = await ops.acall("graphs.where", {}, MEMBER)
        made = await asyncio.gather(*(ops.acall(
            "nodes.create", {**op_node(f"a{i}"), "graph_id": g["id"]}, MEMBER)
            for i in range(5)))
        return here, where["thread"], made

    here, there, made = asyncio.run(main())
    assert here != there
    assert sorted(n["key"] for n in made) == [f"a{i}" for i in range(5)]
    assert len(ops.call("nodes.list", {"graph_id": g["id"]}, MEMBER)["items"]) == 5
