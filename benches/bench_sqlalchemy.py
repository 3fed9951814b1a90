"""SQLAlchemy over sqlite+honker vs SQLAlchemy's stock pysqlite driver, and
prepared typed queries vs the raw native Statement, side by side in one run.

Same schema, same file settings (honker's PRAGMAs: WAL, synchronous=NORMAL,
foreign keys on...) for both drivers; each workload is repeated, drivers
interleaved in each repeat, and the median ns/op is reported with the
spread (max/min of the repeats) as the noise.

Driver workloads (target: sqlite+honker <= 1.0x the stock driver):

* ``core_point_select``: ``conn.execute(select(items).where(id == :id)).one()``
* ``core_insert``: ``conn.execute(insert(items), row)`` inside one transaction
* ``orm_get``: ``session.get(Item, id)`` (each id once per session: a SELECT)

Prepared queries (issue 4), on sqlite+honker only, point select by id:

* ``native``: ``db.fetchone(stmt, (id,))`` with a native Statement (tuples)
* ``prepared``: ``prepare(select(...)).one(id=...)`` (typed SQLAlchemy Rows)
* ``core``: SQLAlchemy's ``connection.execute(select(...)).one()``

Targets: prepared <= 2.0x native; core / prepared >= 8x.

Run:  python benches/bench_sqlalchemy.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import alkdev_storage
from alkdev_storage.sqlalchemy import honker_database, prepare

try:  # installed package: the entry point registers the dialect
    sa.dialects.registry.load("sqlite.honker")
except Exception:  # pragma: no cover - running from a source tree
    sa.dialects.registry.register(
        "sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect"
    )

PRAGMAS = [
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA cache_size = -32000",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA wal_autocheckpoint = 10000",
]
SEED_ROWS = 20_000
DRIVER_TARGET = 1.0
PREPARED_VS_NATIVE = 2.0
CORE_VS_PREPARED = 8.0


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    value: Mapped[float]
    tag: Mapped[str] = mapped_column(sa.String(10))
    created: Mapped[dt.datetime]
    active: Mapped[bool]


items = Item.__table__
SELECT_ONE = sa.select(items).where(items.c.id == sa.bindparam("id"))
INSERT = sa.insert(items)
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def row(i: int) -> dict[str, Any]:
    return {
        "name": f"name-{i}",
        "value": i * 0.5,
        "tag": "t" + str(i % 7),
        "created": T0 + dt.timedelta(seconds=i),
        "active": i % 2 == 0,
    }


def make_engine(kind: str, path: str) -> sa.Engine:
    if kind == "honker":
        return sa.create_engine(f"sqlite+honker:///{path}")
    eng = sa.create_engine(f"sqlite:///{path}")

    @event.listens_for(eng, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _rec: Any) -> None:
        for p in PRAGMAS:
            dbapi_conn.execute(p)

    return eng


class Driver:
    def __init__(self, kind: str, path: str) -> None:
        self.name = kind
        self.engine = make_engine(kind, path)
        Base.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(INSERT, [row(i) for i in range(SEED_ROWS)])
        self.conn = self.engine.connect()

    def core_point_select(self, ids: list[int]) -> None:
        execute = self.conn.execute
        for i in ids:
            execute(SELECT_ONE, {"id": i}).one()
        self.conn.rollback()

    def core_insert(self, rows: list[dict[str, Any]]) -> None:
        execute = self.conn.execute
        for r in rows:
            execute(INSERT, r)
        self.conn.commit()

    def orm_get(self, ids: list[int]) -> None:
        with Session(self.engine) as s:
            get = s.get
            for i in ids:
                get(Item, i)

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


class Prepared:
    """Point select three ways on the honker engine."""

    def __init__(self, drv: Driver) -> None:
        self.db = honker_database(drv.engine)
        self.conn = drv.conn
        self.stmt = self.db.prepare(
            "SELECT id, name, value, tag, created, active FROM items WHERE id = ?"
        )
        self.q = prepare(SELECT_ONE, drv.engine)

    def native(self, ids: list[int]) -> None:
        fetchone, stmt = self.db.fetchone, self.stmt
        for i in ids:
            fetchone(stmt, (i,))

    def prepared(self, ids: list[int]) -> None:
        one = self.q.one
        for i in ids:
            one(id=i)

    def core(self, ids: list[int]) -> None:
        execute = self.conn.execute
        for i in ids:
            execute(SELECT_ONE, {"id": i}).one()
        self.conn.rollback()


def timed(fn: Callable[[], Any], ops: int) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / ops


def run(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 7
    n_select = 2_000 if quick else 10_000
    n_insert = 1_000 if quick else 5_000
    n_get = 1_000 if quick else 5_000
    rng = random.Random(42)
    tmp = tempfile.mkdtemp(prefix="alk-bench-sa-")
    drivers = [Driver(k, os.path.join(tmp, f"{k}.db")) for k in ("honker", "pysqlite")]
    prep = Prepared(drivers[0])
    # Sanity: the prepared query returns what SQLAlchemy returns.
    with drivers[0].engine.connect() as c:
        assert tuple(prep.q.one(id=7)) == tuple(c.execute(SELECT_ONE, {"id": 7}).one())
    samples: dict[str, dict[str, list[float]]] = {
        "core_point_select": {"honker": [], "pysqlite": []},
        "core_insert": {"honker": [], "pysqlite": []},
        "orm_get": {"honker": [], "pysqlite": []},
        "prepared_point_select": {"native": [], "prepared": [], "core": []},
    }
    for rep in range(repeats):
        ids = [rng.randint(1, SEED_ROWS) for _ in range(n_select)]
        get_ids = rng.sample(range(1, SEED_ROWS + 1), n_get)
        rows = [row(i) for i in range(n_insert)]
        order = drivers if rep % 2 == 0 else drivers[::-1]
        for d in order:
            s = samples
            s["core_point_select"][d.name].append(timed(lambda d=d: d.core_point_select(ids), n_select))
            s["core_insert"][d.name].append(timed(lambda d=d: d.core_insert(rows), n_insert))
            s["orm_get"][d.name].append(timed(lambda d=d: d.orm_get(get_ids), n_get))
        ways = ["native", "prepared", "core"]
        ways = ways[rep % 3 :] + ways[: rep % 3]
        for w in ways:
            fn = getattr(prep, w)
            samples["prepared_point_select"][w].append(timed(lambda fn=fn: fn(ids), n_select))
    for d in drivers:
        d.close()
    result: dict[str, Any] = {"repeats": repeats, "quick": quick, "workloads": {}}
    for w, per in samples.items():
        entry: dict[str, Any] = {
            name: {"median_ns": statistics.median(v), "spread": max(v) / min(v)}
            for name, v in per.items()
        }
        if w == "prepared_point_select":
            nat, pre, core = (entry[k]["median_ns"] for k in ("native", "prepared", "core"))
            entry["prepared_vs_native"] = pre / nat
            entry["core_vs_prepared"] = core / pre
            entry["met"] = (
                entry["prepared_vs_native"] <= PREPARED_VS_NATIVE
                and entry["core_vs_prepared"] >= CORE_VS_PREPARED
            )
        else:
            entry["ratio_vs_pysqlite"] = entry["honker"]["median_ns"] / entry["pysqlite"]["median_ns"]
            entry["target"] = DRIVER_TARGET
            entry["met"] = entry["ratio_vs_pysqlite"] <= DRIVER_TARGET
        result["workloads"][w] = entry
    result["versions"] = {
        "sqlalchemy": sa.__version__,
        "alkdev_sqlite": alkdev_storage.sqlite_version(),
        "stdlib_sqlite": sqlite3.sqlite_version,
        "python": sys.version.split()[0],
    }
    return result


def report(result: dict[str, Any]) -> str:
    w = result["workloads"]
    lines = [
        "SQLAlchemy: sqlite+honker vs stock pysqlite "
        f"(median ns/op of {result['repeats']} repeats; spread = max/min of repeats)",
        f"{'workload':<20} {'honker':>15} {'pysqlite':>15} {'ratio':>7} {'target':>8}",
    ]
    for name in ("core_point_select", "core_insert", "orm_get"):
        e = w[name]
        lines.append(
            f"{name:<20} {e['honker']['median_ns']:>8.0f} ±{e['honker']['spread']:.2f} "
            f"{e['pysqlite']['median_ns']:>8.0f} ±{e['pysqlite']['spread']:.2f} "
            f"{e['ratio_vs_pysqlite']:>6.2f}x <={e['target']:.1f}x "
            f"{'ok' if e['met'] else 'MISSED'}"
        )
    e = w["prepared_point_select"]
    lines.append("")
    lines.append("Prepared typed queries on sqlite+honker, point select by id (ns/op):")
    for k in ("native", "prepared", "core"):
        lines.append(f"  {k:<9} {e[k]['median_ns']:>8.0f} ±{e[k]['spread']:.2f}")
    lines.append(
        f"  prepared / native = {e['prepared_vs_native']:.2f}x (target <= {PREPARED_VS_NATIVE:.1f}x); "
        f"core / prepared = {e['core_vs_prepared']:.1f}x (target >= {CORE_VS_PREPARED:.0f}x) "
        f"{'ok' if e['met'] else 'MISSED'}"
    )
    v = result["versions"]
    lines.append(
        f"SQLAlchemy {v['sqlalchemy']}; SQLite: alkdev {v['alkdev_sqlite']}, stdlib "
        f"{v['stdlib_sqlite']}; Python {v['python']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, 3 repeats")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    result = run(args.quick)
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
