"""A session's operations run through the tenant Dispatcher with the
session's context: scopes from the key, the membership, idempotent request
ids and the catalogued event committed with the write."""

from __future__ import annotations

import pytest

from alkdev_storage.errors import ScopeViolation
from alkdev_storage.operations import CallContext
from alkdev_storage.tenancy import Hub


def test_session_call_runs_operations_with_the_sessions_context(hub: Hub, owner: str,
                                                                org: str) -> None:
    _key_id, key = hub.issue_key(owner, "ci", scopes=["graphs:write", "graphs:read",
                                                      "graph_types:read"])
    with hub.session(hub.authenticate(key), org) as session:
        assert isinstance(session.context, CallContext)
        assert session.context.key_scopes == frozenset(
            {"graphs:write", "graphs:read", "graph_types:read"})
        types = session.call("graph_types.list", {"limit": 10})["items"]
        call_graph = next(t["id"] for t in types if t["name"] == "call-graph")
        made = session.call("graphs.create", {"graph_type_id": call_graph, "name": "g"},
                            request_id="req-1")
        again = session.call("graphs.create", {"graph_type_id": call_graph, "name": "g"},
                             request_id="req-1")
        assert again["id"] == made["id"]  # the repeat wrote nothing
        assert session.db.fetchall("SELECT name FROM graphs") == [("g",)]
        assert session.db.fetchall(
            "SELECT channel FROM _honker_notifications WHERE channel = 'graph:created'"
        ) == [("graph:created",)]


def test_a_keys_scopes_limit_the_session(hub: Hub, owner: str, org: str) -> None:
    _key_id, key = hub.issue_key(owner, "read-only", scopes=["graph_types:read"])
    with hub.session(hub.authenticate(key), org) as session:
        types = session.call("graph_types.list", {"limit": 10})["items"]
        with pytest.raises(ScopeViolation):
            session.call("graphs.create", {"graph_type_id": types[0]["id"], "name": "g"})
        assert session.db.fetchall("SELECT count(*) FROM graphs") == [(0,)]
