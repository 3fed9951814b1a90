"""Shared helpers of the operations tests."""

from __future__ import annotations

from typing import Any

from alkdev_storage.domain import CALL_GRAPH
from alkdev_storage.operations import CallContext

SYSTEM = CallContext.system()


def call_graph_type(ops: Any) -> str:
    """The id of the built-in call-graph type of the tenant file."""
    items = ops.call("graph_types.list", {"name": CALL_GRAPH.name}, SYSTEM)["items"]
    return str(items[0]["id"])


def op_node(key: str, op: str = "a.b") -> dict[str, Any]:
    """A valid ``operation`` node input (call graph)."""
    return {"key": key, "type": "operation", "attributes": {"operation_id": op, "version": "1"}}


def counts(db: Any) -> dict[str, int]:
    """Row counts of everything a mutation can write."""
    out = {}
    for table in ("graphs", "nodes", "edges", "graph_types", "operation_requests"):
        try:
            out[table] = db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"]
        except Exception:  # the system file has other tables
            continue
    for table in ("accounts", "organizations", "organization_memberships", "api_keys"):
        try:
            out[table] = db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"]
        except Exception:
            continue
    out["notifications"] = db.query("SELECT count(*) AS n FROM _honker_notifications")[0]["n"]
    out["stream"] = db.query("SELECT count(*) AS n FROM _honker_stream")[0]["n"]
    return out
