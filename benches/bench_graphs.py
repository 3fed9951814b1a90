"""Validated graph writes vs unvalidated inserts, side by side in one run
(docs/0018-graph-type-modules.md).

Per node (µs, median of the repeats; each repeat writes N call-graph
nodes into a fresh graph of one tenant file, in one transaction):

* ``core_insert_unvalidated``: the floor, a SQLAlchemy Core
  ``executemany`` of the same rows (ids and timestamps generated, the
  attributes as given, no validation).
* ``store_add_nodes``: ``GraphStore.add_nodes`` (principal checks,
  validation against the module, duplicate-key check, one
  ``executemany``, detached ORM objects returned).
* ``orm_add_all``: ``Session.add_all`` of ``Node`` objects, validated by
  the ORM mapper events on flush.
* ``validate_only``: ``validate_node`` alone (pydantic).

Edges likewise (``store_add_edges`` vs ``core_insert_edges``), N edges
between the nodes written. Ratios are against the floor.

Run:  python benches/bench_graphs.py [--quick] [--json PATH]
"""

from __future__ import annotations

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
from alkdev_storage.domain import CALL_GRAPH, GraphStore, Principal, init_tenant, validate_node
from alkdev_storage.schema import Edge, Node, new_id, utcnow
from alkdev_storage.sqlalchemy import create_engine


def _attrs(i: int) -> dict[str, Any]:
    return {"operation_id": "graphs.create", "status": "succeeded", "timeout_ms": 1000 + i,
            "input": {"n": i}, "duration_ms": i % 97}


def run(quick: bool) -> dict[str, Any]:
    n = 2_000 if quick else 10_000
    repeats = 3 if quick else 5
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = alkdev_storage.open(Path(tmp) / "tenant.db")
        init_tenant(db, "org")
        store = GraphStore(db, "org", Principal.system())
        engine = create_engine(db)
        specs = [(f"c{i}", "call", _attrs(i)) for i in range(n)]

        def timed(name: str, fn: Callable[[], object], per: int = n) -> None:
            t0 = time.perf_counter_ns()
            fn()
            results.setdefault(name, []).append((time.perf_counter_ns() - t0) / per / 1000)

        def core_nodes(graph_id: str) -> None:
            now = utcnow()
            rows = [{"id": new_id(), "graph_id": graph_id, "key": k, "type": t,
                     "attributes": a, "created_at": now, "updated_at": now}
                    for k, t, a in specs]
            with engine.begin() as conn:
                conn.execute(sa.insert(Node.__table__), rows)

        def orm_nodes(graph_id: str) -> None:
            with Session(engine) as session, session.begin():
                session.add_all([Node(graph_id=graph_id, key=k, type=t, attributes=a)
                                 for k, t, a in specs])

        def core_edges(graph_id: str, ids: list[str]) -> None:
            now = utcnow()
            rows = [{"id": new_id(), "graph_id": graph_id, "type": "calls",
                     "source_id": ids[i], "target_id": ids[(i + 1) % n], "attributes": {},
                     "created_at": now, "updated_at": now} for i in range(n)]
            with engine.begin() as conn:
                conn.execute(sa.insert(Edge.__table__), rows)

        edges = [("calls", f"c{i}", f"c{(i + 1) % n}") for i in range(n)]
        for _ in range(repeats):
            g1, g2, g3 = (store.create_graph("call-graph", f"g{i}").id for i in range(3))
            timed("core_insert_unvalidated", lambda g=g1: core_nodes(g))
            timed("store_add_nodes", lambda g=g2: store.add_nodes(g, specs))
            timed("orm_add_all", lambda g=g3: orm_nodes(g))
            timed("validate_only", lambda: [validate_node(CALL_GRAPH, t, a) for _, t, a in specs])
            ids = [r.id for r in store.list_nodes(g1)]
            timed("store_add_edges", lambda g=g2: store.add_edges(g, edges))
            timed("core_insert_edges", lambda g=g1, ids=ids: core_edges(g, ids))
        store.close()
        engine.dispose()
        db.close()
    return {"n": n, "repeats": repeats,
            "us_per_row": {k: statistics.median(v) for k, v in results.items()},
            "spread": {k: max(v) / min(v) for k, v in results.items()}}


def report(r: dict[str, Any]) -> str:
    us = r["us_per_row"]
    lines = [f"graph writes: {r['n']} rows per repeat, median of {r['repeats']} (µs/row)"]
    for name, floor in (("core_insert_unvalidated", "core_insert_unvalidated"),
                        ("store_add_nodes", "core_insert_unvalidated"),
                        ("orm_add_all", "core_insert_unvalidated"),
                        ("validate_only", "core_insert_unvalidated"),
                        ("core_insert_edges", "core_insert_edges"),
                        ("store_add_edges", "core_insert_edges")):
        lines.append(f"  {name:26s} {us[name]:8.1f}  x{us[name] / us[floor]:5.2f}"
                     f"  (spread {r['spread'][name]:.2f})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(_cli.main(__doc__, run, report))
