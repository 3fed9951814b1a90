"""Generated operations through the dispatcher vs the same operation
hand-written on the native session vs a plain SQLAlchemy ORM function with
pydantic validation, side by side in one run (docs/0023-operation-specs.md).

Operations (a member of the org calls them; every variant applies the same
scope predicate: the node's graph must be shared or the caller's own):

* ``nodes.get``: one node by id, as a JSON-ready dict.
* ``nodes.create``: validate the input and the attributes against the
  call-graph module, check the graph is writable, insert, publish
  ``nodes:created`` and the ``call-protocol`` audit record, in one
  transaction; return the row.
* ``nodes.list``: a page of 100 nodes of a graph (keyset order by id).

Variants (µs per call, median of the repeats; variants interleaved):

* ``dispatcher``: ``Dispatcher.call`` (input and output validated,
  generated SQL compiled once into native prepared statements);
* ``native``: the same operation written by hand on the native session
  (prepared statements, ``db.read()`` / ``db.transaction()``, the same
  pydantic models for input validation);
* ``orm``: a plain SQLAlchemy ORM function (``Session``, ``select(Node)``)
  with pydantic validation of input and output.

Targets: dispatcher <= 1.5x native; ORM >= 3x dispatcher. ``spread`` is
max/min of the repeats (noise).

Run:  python benches/bench_operations.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _cli
import sqlalchemy as sa
from sqlalchemy.orm import Session

import alkdev_storage
from alkdev_storage.domain import CALL_GRAPH, Principal, catalog, init_tenant, model_for
from alkdev_storage.domain.models import validate
from alkdev_storage.domain.modules import dump_attributes, validate_node_attributes
from alkdev_storage.operations import CallContext, Dispatcher
from alkdev_storage.schema import Graph, GraphType, Node, new_id, utcnow
from alkdev_storage.schema.types import format_utc
from alkdev_storage.sqlalchemy import create_engine

ME = "acc1"
CTX = CallContext(Principal.user(ME, "org", "member"))
ATTRS = {"operation_id": "graphs.create", "version": "1"}

_COLS = "n.id, n.graph_id, n.key, n.type, n.attributes, n.key_version, n.created_at, " \
        "n.updated_at"
# The same rule as the generated predicate: the graph's type is visible
# (system/tenant scope, or the caller's user scope) and the graph is shared
# or the caller's own.
_TYPES = ("SELECT t.id FROM graph_types t WHERE t.scope IN ('system', 'tenant') "
          "OR (t.scope = 'user' AND t.owner_id = ?1)")
_VISIBLE = (f"n.graph_id IN (SELECT g.id FROM graphs g WHERE g.graph_type_id IN ({_TYPES}) "
            "AND (g.owner_id IS NULL OR g.owner_id = ?1))")
_NAMES = ("id", "graph_id", "key", "type", "attributes", "key_version", "created_at",
          "updated_at")


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(_NAMES, r, strict=True))
    d["attributes"] = json.loads(d["attributes"])
    return d


class Native:
    """The operations hand-written on the native session."""

    def __init__(self, db: alkdev_storage.Database) -> None:
        self.db = db
        self.get_sql = db.prepare(f"SELECT {_COLS} FROM nodes n WHERE n.id = ?2 AND {_VISIBLE}")
        self.list_sql = db.prepare(f"SELECT {_COLS} FROM nodes n WHERE n.graph_id = ?2 AND "
                                   f"{_VISIBLE} ORDER BY n.id LIMIT ?3")
        self.graph_sql = db.prepare(
            "SELECT t.module FROM graphs g JOIN graph_types t ON t.id = g.graph_type_id "
            "WHERE g.id = ?2 AND (t.scope IN ('system', 'tenant') OR (t.scope = 'user' AND "
            "t.owner_id = ?1)) AND t.module != 'acl-graph' AND (g.owner_id IS NULL OR "
            "g.owner_id = ?1)")
        self.insert_sql = db.prepare(f"INSERT INTO nodes (id, graph_id, key, type, attributes, "
                                     f"key_version, created_at, updated_at) VALUES (?, ?, ?, ?, "
                                     f"?, ?, ?, ?) RETURNING {_COLS.replace('n.', '')}")
        self.audit = db.stream("call-protocol")
        self.key_model = model_for(Node, "select", include="id", name="BenchNodeKey")
        self.create_model = model_for(Node, "insert", exclude=("id", "created_at", "updated_at",
                                                               "key_version"))

    def get(self, node_id: str) -> dict[str, Any]:
        validate(self.key_model, {"id": node_id})
        with self.db.read() as s:
            r = s.fetchone(self.get_sql, (ME, node_id))
        if r is None:
            raise LookupError(node_id)
        return _row(r)

    def list(self, graph_id: str, limit: int) -> list[dict[str, Any]]:
        with self.db.read() as s:
            rows = s.fetchall(self.list_sql, (ME, graph_id, limit + 1))
        return [_row(r) for r in rows[:limit]]

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        v = validate(self.create_model, data)
        attrs = dump_attributes(validate_node_attributes(CALL_GRAPH, v.type, v.attributes))
        now = format_utc(utcnow())
        node_id = new_id()
        with self.db.transaction() as tx:
            if tx.fetchone(self.graph_sql, (ME, v.graph_id)) is None:
                raise PermissionError(v.graph_id)
            r = tx.fetchone(self.insert_sql, (node_id, v.graph_id, v.key, v.type,
                                              json.dumps(attrs), None, now, now))
            catalog.notify(tx, catalog.NODES_CREATED, {"graph_id": v.graph_id, "keys": [v.key]})
            event = catalog.CallProtocolEvent(type="call.responded", call_id=new_id(),
                                              operation_id="nodes.create", graph_id=v.graph_id,
                                              data={"target_id": node_id})
            self.audit.publish(event.model_dump(mode="json"), key=v.graph_id, tx=tx)
        assert r is not None
        return _row(r)


class Orm:
    """The operations as plain SQLAlchemy ORM functions with pydantic."""

    def __init__(self, db: alkdev_storage.Database) -> None:
        self.engine = create_engine(db)
        self.write_engine = self.engine.execution_options(honker_begin_write=True)
        self.out = model_for(Node, "select")
        self.create_model = model_for(Node, "insert", exclude=("id", "created_at", "updated_at",
                                                               "key_version"))
        types = sa.select(GraphType.id).where(sa.or_(
            GraphType.scope.in_(("system", "tenant")),
            sa.and_(GraphType.scope == "user", GraphType.owner_id == ME)))
        self.visible = sa.and_(Graph.graph_type_id.in_(types),
                               sa.or_(Graph.owner_id.is_(None), Graph.owner_id == ME))

    def get(self, node_id: str) -> dict[str, Any]:
        with Session(self.engine) as s:
            node = s.execute(sa.select(Node).join(Graph, Graph.id == Node.graph_id)
                             .where(Node.id == node_id, self.visible)).scalar_one()
            return self.out.model_validate(node).model_dump(mode="json")

    def list(self, graph_id: str, limit: int) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            nodes = s.execute(sa.select(Node).join(Graph, Graph.id == Node.graph_id)
                              .where(Node.graph_id == graph_id, self.visible)
                              .order_by(Node.id).limit(limit + 1)).scalars().all()
            return [self.out.model_validate(n).model_dump(mode="json") for n in nodes[:limit]]

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        v = validate(self.create_model, data)
        with Session(self.write_engine) as s, s.begin():
            g = s.execute(sa.select(Graph).join(GraphType).where(
                Graph.id == v.graph_id, self.visible, GraphType.module != "acl-graph")
                          ).scalar_one_or_none()
            if g is None:
                raise PermissionError(v.graph_id)
            node = Node(graph_id=v.graph_id, key=v.key, type=v.type,
                        attributes=v.attributes)  # validated by the ORM mapper events
            s.add(node)
            s.flush()
            catalog.notify(s, catalog.NODES_CREATED, {"graph_id": v.graph_id, "keys": [v.key]})
            catalog.publish(s, catalog.CALL_PROTOCOL, {
                "type": "call.responded", "call_id": new_id(), "operation_id": "nodes.create",
                "graph_id": v.graph_id, "data": {"target_id": node.id}})
            return self.out.model_validate(node).model_dump(mode="json")


def run(quick: bool) -> dict[str, Any]:
    n_get, n_create, n_list = (1000, 500, 100) if quick else (3000, 1500, 300)
    repeats = 5 if quick else 7
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = alkdev_storage.open(Path(tmp) / "tenant-org.db")
        init_tenant(db, "org")
        ops = Dispatcher(db, "tenant", org_id="org")
        system = CallContext.system()
        t = ops.call("graph_types.list", {"name": CALL_GRAPH.name}, system)["items"][0]["id"]
        native, orm = Native(db), Orm(db)
        graph = ops.call("graphs.create", {"graph_type_id": t, "name": "bench"}, CTX)["id"]
        ids = [ops.call("nodes.create", {"graph_id": graph, "key": f"seed{i}",
                                         "type": "operation", "attributes": ATTRS}, CTX)["id"]
               for i in range(200)]
        # other principals' private graphs the predicate must skip
        other = CallContext(Principal.user("acc2", "org", "member"))
        for j in range(3):
            g2 = ops.call("graphs.create", {"graph_type_id": t, "name": f"o{j}"}, other)["id"]
            for i in range(50):
                ops.call("nodes.create", {"graph_id": g2, "key": f"o{i}", "type": "operation",
                                          "attributes": ATTRS}, other)
        # results agree
        assert ops.call("nodes.get", {"id": ids[0]}, CTX) == native.get(ids[0])
        assert native.get(ids[0])["attributes"] == orm.get(ids[0])["attributes"]
        page = ops.call("nodes.list", {"graph_id": graph, "limit": 100}, CTX)["items"]
        assert [r["id"] for r in page] == [r["id"] for r in native.list(graph, 100)] == [
            r["id"] for r in orm.list(graph, 100)]

        def timed(name: str, fn: Callable[[int], object], count: int) -> None:
            t0 = time.perf_counter_ns()
            for i in range(count):
                fn(i)
            times.setdefault(name, []).append((time.perf_counter_ns() - t0) / count / 1000)

        counter = iter(range(10**9))

        def node(i: int) -> dict[str, Any]:
            return {"graph_id": graph, "key": f"k{next(counter)}", "type": "operation",
                    "attributes": ATTRS}

        for _ in range(repeats):
            timed("get/dispatcher", lambda i: ops.call("nodes.get", {"id": ids[i % 200]}, CTX),
                  n_get)
            timed("get/native", lambda i: native.get(ids[i % 200]), n_get)
            timed("get/orm", lambda i: orm.get(ids[i % 200]), n_get)
            timed("create/dispatcher", lambda i: ops.call("nodes.create", node(i), CTX),
                  n_create)
            timed("create/native", lambda i: native.create(node(i)), n_create)
            timed("create/orm", lambda i: orm.create(node(i)), n_create)
            timed("list100/dispatcher", lambda i: ops.call(
                "nodes.list", {"graph_id": graph, "limit": 100}, CTX), n_list)
            timed("list100/native", lambda i: native.list(graph, 100), n_list)
            timed("list100/orm", lambda i: orm.list(graph, 100), n_list)
        orm.engine.dispose()
        db.close()
    return {"repeats": repeats, "counts": {"get": n_get, "create": n_create, "list100": n_list},
            "us_per_call": {k: statistics.median(v) for k, v in times.items()},
            "spread": {k: max(v) / min(v) for k, v in times.items()}}


def report(r: dict[str, Any]) -> str:
    us, spread = r["us_per_call"], r["spread"]
    lines = [f"operations: median of {r['repeats']} repeats (µs/call; x = vs native; "
             "orm/disp = how many times faster the dispatcher is than the ORM)",
             f"  {'operation':10s} {'dispatcher':>11s} {'native':>9s} {'orm':>9s} "
             f"{'disp/native':>12s} {'orm/disp':>9s}  spread (d / n / o)"]
    for op in ("get", "create", "list100"):
        d, n, o = (us[f"{op}/{v}"] for v in ("dispatcher", "native", "orm"))
        s = " / ".join(f"{spread[f'{op}/{v}']:.2f}" for v in ("dispatcher", "native", "orm"))
        lines.append(f"  {op:10s} {d:11.1f} {n:9.1f} {o:9.1f} {d / n:11.2f}x {o / d:8.2f}x"
                     f"  {s}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(_cli.main(__doc__, run, report))
