"""Events and audit records committed with every write: catalogued events
with the request id, nothing without the write (injected failures, kill -9
mid-batch), idempotent retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from ops_helpers import SYSTEM, call_graph_type, counts, op_node

import alkdev_storage
from alkdev_storage.domain import ACL_GRAPH, Principal
from alkdev_storage.errors import ValidationFailed
from alkdev_storage.operations import CallContext, Dispatcher, records

MEMBER = CallContext(Principal.user("acc1", "o1", "member"))


def notifications(db, channel):
    return [json.loads(r["payload"]) for r in db.query(
        "SELECT payload FROM _honker_notifications WHERE channel = ? ORDER BY id", [channel])]


def stream(db, topic):
    return [json.loads(r["payload"]) for r in db.query(
        "SELECT payload FROM _honker_stream WHERE topic = ? ORDER BY offset", [topic])]


def test_tenant_mutations_publish_their_events_and_audit_records(tenant_ops, tenant_db) -> None:
    ctx = MEMBER.with_request("req-1")
    g = tenant_ops.call("graphs.create", {"graph_type_id": call_graph_type(tenant_ops),
                                          "name": "g"}, ctx)
    assert notifications(tenant_db, "graph:created")[-1] | {"occurred_at": None} == {
        "graph_id": g["id"], "graph_type_id": g["graph_type_id"], "owner_id": "acc1",
        "request_id": "req-1", "occurred_at": None}
    tenant_ops.call("graphs.patch", {"id": g["id"], "name": "h"}, MEMBER.with_request("req-2"))
    upd = notifications(tenant_db, "graph:updated")[-1]
    assert upd["changes"] == ["name"] and upd["request_id"] == "req-2"
    n = tenant_ops.call("nodes.create", {**op_node("k"), "graph_id": g["id"]},
                        MEMBER.with_request("req-3"))
    assert notifications(tenant_db, "nodes:created")[-1]["keys"] == ["k"]
    tenant_ops.call("nodes.delete", {"id": n["id"]}, MEMBER)
    audit = stream(tenant_db, "call-protocol")
    assert [(e["operation_id"], e["type"]) for e in audit] == [
        ("graphs.create", "call.responded"), ("graphs.patch", "call.responded"),
        ("nodes.create", "call.responded"), ("nodes.delete", "call.responded")]
    assert [e["request_id"] for e in audit] == ["req-1", "req-2", "req-3", None]
    assert audit[2]["data"]["target_id"] == n["id"] and audit[2]["graph_id"] == g["id"]


def test_delegation_edges_publish_acl_delegation_changed(tenant_ops, tenant_db) -> None:
    acl = tenant_ops.call("graph_types.list", {"name": ACL_GRAPH.name}, SYSTEM)["items"][0]
    admin = CallContext(Principal.tenant_admin("o1"))
    g = tenant_ops.call("graphs.create", {"graph_type_id": acl["id"], "name": "acl"}, admin)
    p = tenant_ops.call("nodes.create", {"graph_id": g["id"], "key": "p", "type": "principal",
                                         "attributes": {"kind": "account"}}, admin)
    a = tenant_ops.call("nodes.create", {"graph_id": g["id"], "key": "a", "type": "agent",
                                         "attributes": {"name": "bot"}}, admin)
    e = tenant_ops.call("edges.create", {"graph_id": g["id"], "type": "delegates_to",
                                         "source_id": p["id"], "target_id": a["id"],
                                         "attributes": {"scopes": ["graphs:read"]}}, admin)
    tenant_ops.call("edges.delete", {"id": e["id"]}, admin)
    got = [(x["principal_id"], x["agent_id"], x["change"])
           for x in notifications(tenant_db, "acl:delegation_changed")]
    assert got == [(p["id"], a["id"], "granted"), (p["id"], a["id"], "revoked")]
    # members do not write the ACL graph (admin_writes), whatever they see
    with pytest.raises(Exception, match="may not write"):
        tenant_ops.call("nodes.create", {"graph_id": g["id"], "key": "q", "type": "agent",
                                         "attributes": {"name": "x"}},
                        CallContext(Principal.user("acc1", "o1", "member")))


def test_system_mutations_publish_their_events_and_audit_records(system_ops, system_db) -> None:
    a = system_ops.call("accounts.create", {"email": "a@x.io"}, SYSTEM.with_request("r1"))
    b = system_ops.call("accounts.create", {"email": "b@x.io"}, SYSTEM)
    me = CallContext(Principal.user(a["id"], "none", "member"), request_id="r2")
    org = system_ops.call("organizations.create", {"slug": "acme", "name": "Acme"}, me)
    system_ops.call("memberships.create", {"org_id": org["id"], "account_id": b["id"],
                                           "level": "member"}, me.with_request("r3"))
    system_ops.call("accounts.patch", {"id": a["id"], "display_name": "A"},
                    me.with_request("r4"))
    assert notifications(system_db, "account:created")[0]["request_id"] == "r1"
    assert notifications(system_db, "org:created")[0]["slug"] == "acme"
    assert [(m["account_id"], m["membership_level"]) for m in
            notifications(system_db, "org:member_added")] == [(a["id"], "owner"),
                                                               (b["id"], "member")]
    assert notifications(system_db, "account:updated")[0]["changes"] == ["display_name"]
    actions = [(e["action"], e["actor_id"]) for e in stream(system_db, "audit-events")]
    assert actions == [("accounts.create", None), ("accounts.create", None),
                       ("organizations.create", a["id"]), ("memberships.create", a["id"]),
                       ("accounts.patch", a["id"])]


def test_a_failure_after_the_write_leaves_neither_row_nor_event(tenant_ops, tenant_db,
                                                                 monkeypatch) -> None:
    g = tenant_ops.call("graphs.create", {"graph_type_id": call_graph_type(tenant_ops),
                                          "name": "g"}, MEMBER)
    before = counts(tenant_db)

    def boom(*args, **kwargs):
        raise RuntimeError("injected: the audit record cannot be written")

    monkeypatch.setattr(records, "audit", boom)
    with pytest.raises(RuntimeError, match="injected"):
        # the row and nodes:created are written before the audit record fails
        tenant_ops.call("nodes.create", {**op_node("k"), "graph_id": g["id"]},
                        MEMBER.with_request("r-fail"))
    assert counts(tenant_db) == before
    monkeypatch.undo()
    # the retry with the same request id runs (nothing was remembered)
    n = tenant_ops.call("nodes.create", {**op_node("k"), "graph_id": g["id"]},
                        MEMBER.with_request("r-fail"))
    after = counts(tenant_db)
    assert after["nodes"] == before["nodes"] + 1
    assert after["notifications"] == before["notifications"] + 1
    assert after["stream"] == before["stream"] + 1
    assert notifications(tenant_db, "nodes:created")[-1]["keys"] == [n["key"]]


def test_a_repeated_request_id_returns_the_stored_result_and_writes_nothing(tenant_ops,
                                                                            tenant_db) -> None:
    g = tenant_ops.call("graphs.create", {"graph_type_id": call_graph_type(tenant_ops),
                                          "name": "g"}, MEMBER)
    ctx = MEMBER.with_request("same")
    first = tenant_ops.call("nodes.create", {**op_node("k"), "graph_id": g["id"]}, ctx)
    before = counts(tenant_db)
    for _ in range(3):
        result = tenant_ops.call_result("nodes.create", {**op_node("k"), "graph_id": g["id"]},
                                        ctx)
        assert result.value == first and result.timing.replayed
    assert counts(tenant_db) == before
    with pytest.raises(ValidationFailed, match="request id 'same' was already used") as info:
        tenant_ops.call("nodes.create", {**op_node("other"), "graph_id": g["id"]}, ctx)
    assert info.value.field == "request_id"
    assert counts(tenant_db) == before


def test_concurrent_retries_write_once(tenant_db) -> None:
    ops = Dispatcher(tenant_db, "tenant")
    g = ops.call("graphs.create", {"graph_type_id": call_graph_type(ops), "name": "g"}, MEMBER)
    results: list[dict] = []
    errors: list[BaseException] = []

    def retry() -> None:
        try:
            results.append(ops.call("nodes.create", {**op_node("k"), "graph_id": g["id"]},
                                    MEMBER.with_request("retried")))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r["id"] for r in results}) == 1 and len(results) == 8
    assert tenant_db.query("SELECT count(*) AS n FROM nodes")[0]["n"] == 1
    assert len(notifications(tenant_db, "nodes:created")) == 1


CHILD = textwrap.dedent("""
    import sys, alkdev_storage
    from alkdev_storage.domain import Principal
    from alkdev_storage.operations import CallContext, Dispatcher
    db = alkdev_storage.open(sys.argv[1])
    ops = Dispatcher(db, "tenant")
    ctx = CallContext(Principal.user("acc1", "o1", "member"))
    graph = sys.argv[2]
    i = 0
    while True:
        calls = [("nodes.create", {"graph_id": graph, "key": f"k{i}-{j}", "type": "operation",
                                   "attributes": {"operation_id": "a.b", "version": "1"}},
                  f"req-{i}-{j}") for j in range(5)]
        ops.batch(calls, ctx)
        i += 1
        print(i, flush=True)
""")


def test_kill_9_mid_batch_leaves_writes_and_events_together(tenant_db, tmp_path) -> None:
    ops = Dispatcher(tenant_db, "tenant")
    g = ops.call("graphs.create", {"graph_type_id": call_graph_type(ops), "name": "g"}, MEMBER)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), tenant_db.path, g["id"]],
                             stdout=subprocess.PIPE, env={**os.environ})
    try:
        assert child.stdout is not None
        for _ in range(3):  # a few batches committed, then kill it wherever it is
            assert child.stdout.readline(), "the child died"
        time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    path = tenant_db.path
    tenant_db.close()
    db = alkdev_storage.open(path)
    try:
        keys = {r["key"] for r in db.query("SELECT key FROM nodes")}
        created = [k for n in notifications(db, "nodes:created") for k in n["keys"]]
        audited = [e["data"]["key"] for e in stream(db, "call-protocol")
                   if e["operation_id"] == "nodes.create"]
        remembered = {r["request_id"] for r in db.query(
            "SELECT request_id FROM operation_requests")}
        assert len(keys) >= 15 and len(keys) % 5 == 0  # whole batches only
        assert sorted(created) == sorted(keys) == sorted(audited)
        assert remembered == {"req-" + k[1:] for k in keys}
    finally:
        db.close()


def test_an_agent_gets_the_intersection_of_key_and_delegation(tenant_ops, tenant_db) -> None:
    from alkdev_storage.operations.delegation import agent_context, delegated_scopes

    acl = tenant_ops.call("graph_types.list", {"name": ACL_GRAPH.name}, SYSTEM)["items"][0]
    admin = CallContext(Principal.tenant_admin("o1"))
    g = tenant_ops.call("graphs.create", {"graph_type_id": acl["id"], "name": "acl"}, admin)
    p = tenant_ops.call("nodes.create", {"graph_id": g["id"], "key": "alice", "type":
                                         "principal", "attributes": {"kind": "account",
                                                                     "account_id": "acc1"}},
                        admin)
    a = tenant_ops.call("nodes.create", {"graph_id": g["id"], "key": "bot", "type": "agent",
                                         "attributes": {"name": "bot"}}, admin)
    for scopes, expires in ((["graphs:read", "nodes:read"], None),
                            (["graphs:write"], "2000-01-01T00:00:00Z")):  # expired
        tenant_ops.call("edges.create", {"graph_id": g["id"], "type": "delegates_to",
                                         "source_id": p["id"], "target_id": a["id"],
                                         "attributes": {"scopes": scopes,
                                                        "expires_at": expires}}, admin)
    assert delegated_scopes(tenant_db, "acc1", "bot") == {"graphs:read", "nodes:read"}
    assert delegated_scopes(tenant_db, "acc1", a["id"]) == {"graphs:read", "nodes:read"}
    assert delegated_scopes(tenant_db, "acc2", "bot") == frozenset()
    user = Principal.user("acc1", "o1", "member")
    ctx = agent_context(tenant_db, user, "bot", key_scopes={"graphs:*"})
    assert ctx.allows("graphs:read")
    assert not ctx.allows("graphs:write") and not ctx.allows("nodes:read")
    tenant_ops.call("graphs.list", {}, ctx)
    with pytest.raises(Exception, match="needs scope 'graphs:write'"):
        tenant_ops.call("graphs.create", {"graph_type_id": acl["id"], "name": "x"}, ctx)
    nobody = agent_context(tenant_db, Principal.user("acc2", "o1", "member"), "bot")
    with pytest.raises(Exception, match="needs scope 'graphs:read'"):
        tenant_ops.call("graphs.list", {}, nobody)
