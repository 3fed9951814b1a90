"""SQLAlchemy over sqlite+honker vs SQLAlchemy's stock pysqlite driver, and
prepared typed queries vs the raw native Statement, side by side in one run.

Same schema, same file settings (honker's PRAGMAs: WAL, synchronous=NORMAL,
foreign keys on...) for both drivers. Each workload runs in chunks; each
chunk runs on both drivers back to back (order alternating), so a ratio is
the median of paired per-chunk ratios, robust to load from other processes.
The median ns/op is reported with the interquartile spread as the noise.

Driver workloads (target: sqlite+honker <= 1.0x the stock driver):

* ``core_point_select``: ``conn.execute(select(items).where(id == :id)).one()``
* ``core_insert``: ``conn.execute(insert(items), row)`` inside one transaction
* ``orm_get``: ``session.get(Item, id)`` (each id once per session: a SELECT)

Prepared queries, on sqlite+honker only, point select by id:

the table and query of the native point-select benchmark:

* ``native``: ``db.fetchone(stmt, (id,))`` with a native Statement (tuples)
* ``prepared``: ``prepare(select(...)).one(id=...)`` (typed SQLAlchemy Rows)
* ``core``: SQLAlchemy's ``connection.execute(select(...)).one()``

Targets: prepared <= 2.0x native; core / prepared >= 8x. The same three on
a table with DateTime, Boolean, JSON and Numeric columns are reported too
(result processing costs the same in both SQLAlchemy paths; no target).

Run:  python benches/bench_sqlalchemy.py [--quick] [--json PATH]
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import _cli
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
CHUNKS = 10  # each workload is timed in this many chunks per repeat


class Base(DeclarativeBase):
    pass


class Item(Base):
    """The table of the native point-select benchmark (benches/bench_native.py)."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    value: Mapped[float]
    tag: Mapped[str] = mapped_column(sa.String(10))


class Typed(Base):
    """Columns with result processing (reported, no target)."""

    __tablename__ = "typed"
    id: Mapped[int] = mapped_column(primary_key=True)
    created: Mapped[dt.datetime]
    active: Mapped[bool]
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))


items = Item.__table__
typed = Typed.__table__
SELECT_ONE = sa.select(items).where(items.c.id == sa.bindparam("id"))
SELECT_TYPED = sa.select(typed).where(typed.c.id == sa.bindparam("id"))
INSERT = sa.insert(items)
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def row(i: int) -> dict[str, Any]:
    return {"name": f"name-{i}", "value": i * 0.5, "tag": "t" + str(i % 7)}


def typed_row(i: int) -> dict[str, Any]:
    return {
        "created": T0 + dt.timedelta(seconds=i),
        "active": i % 2 == 0,
        "data": {"i": i, "tags": ["a", "b"]},
        "amount": Decimal(i) / 4,
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
            conn.execute(sa.insert(typed), [typed_row(i) for i in range(SEED_ROWS)])
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

    def __init__(self, drv: Driver, stmt: Any, sql: str) -> None:
        self.db = honker_database(drv.engine)
        self.conn = drv.conn
        self.select = stmt
        self.stmt = self.db.prepare(sql)
        self.q = prepare(stmt, drv.engine)

    def native(self, ids: list[int]) -> None:
        fetchone, stmt = self.db.fetchone, self.stmt
        for i in ids:
            fetchone(stmt, (i,))

    def prepared(self, ids: list[int]) -> None:
        one = self.q.one
        for i in ids:
            one(id=i)

    def core(self, ids: list[int]) -> None:
        execute, sel = self.conn.execute, self.select
        for i in ids:
            execute(sel, {"id": i}).one()
        self.conn.rollback()


def _spread(v: list[float]) -> float:
    """Interquartile spread: 75th / 25th percentile of the samples."""
    q = statistics.quantiles(v, n=4) if len(v) >= 4 else [min(v), 0, max(v)]
    return q[2] / q[0]


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
    preps = {
        "prepared_point_select": Prepared(
            drivers[0], SELECT_ONE, "SELECT id, name, value, tag FROM items WHERE id = ?"
        ),
        "prepared_typed_select": Prepared(
            drivers[0],
            SELECT_TYPED,
            "SELECT id, created, active, data, amount FROM typed WHERE id = ?",
        ),
    }
    # Sanity: the prepared queries return what SQLAlchemy returns.
    with drivers[0].engine.connect() as c:
        for p in preps.values():
            assert tuple(p.q.one(id=7)) == tuple(c.execute(p.select, {"id": 7}).one())
    samples: dict[str, dict[str, list[float]]] = {
        "core_point_select": {"honker": [], "pysqlite": []},
        "core_insert": {"honker": [], "pysqlite": []},
        "orm_get": {"honker": [], "pysqlite": []},
        "prepared_point_select": {"native": [], "prepared": [], "core": []},
        "prepared_typed_select": {"native": [], "prepared": [], "core": []},
    }
    # Paired ratios: every chunk of work runs on both drivers back to back
    # (order alternating), and the ratio of each pair is a sample, so load
    # from other processes hits both sides of a pair alike.
    pairs: dict[str, list[float]] = {"core_point_select": [], "core_insert": [], "orm_get": []}

    def chunks(seq: list[Any]) -> list[list[Any]]:
        size = max(1, len(seq) // CHUNKS)
        return [seq[i : i + size] for i in range(0, len(seq), size)]

    for rep in range(repeats):
        ids = [rng.randint(1, SEED_ROWS) for _ in range(n_select)]
        get_ids = rng.sample(range(1, SEED_ROWS + 1), n_get)
        rows = [row(i) for i in range(n_insert)]
        work = {
            "core_point_select": (ids, "core_point_select"),
            "core_insert": (rows, "core_insert"),
            "orm_get": (get_ids, "orm_get"),
        }
        for w, (seq, method) in work.items():
            for k, part in enumerate(chunks(seq)):
                order = drivers if (rep + k) % 2 == 0 else drivers[::-1]
                got = {}
                for d in order:
                    fn = getattr(d, method)
                    got[d.name] = timed(lambda fn=fn, part=part: fn(part), len(part))
                    samples[w][d.name].append(got[d.name])
                pairs[w].append(got["honker"] / got["pysqlite"])
        ways = ["native", "prepared", "core"]
        for key, prep in preps.items():
            for k, part in enumerate(chunks(ids)):
                for w in ways[k % 3 :] + ways[: k % 3]:
                    fn = getattr(prep, w)
                    samples[key][w].append(timed(lambda fn=fn, part=part: fn(part), len(part)))
    for d in drivers:
        d.close()
    result: dict[str, Any] = {"repeats": repeats, "quick": quick, "workloads": {}}
    for w, per in samples.items():
        entry: dict[str, Any] = {
            name: {"median_ns": statistics.median(v), "spread": _spread(v)}
            for name, v in per.items()
        }
        if w.startswith("prepared_"):
            nat, pre, core = (entry[k]["median_ns"] for k in ("native", "prepared", "core"))
            entry["prepared_vs_native"] = pre / nat
            entry["core_vs_prepared"] = core / pre
            if w == "prepared_point_select":
                entry["met"] = (
                    entry["prepared_vs_native"] <= PREPARED_VS_NATIVE
                    and entry["core_vs_prepared"] >= CORE_VS_PREPARED
                )
        else:
            entry["ratio_vs_pysqlite"] = statistics.median(pairs[w])
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
        f"(median ns/op over {result['repeats']} repeats x {CHUNKS} chunks; spread = "
        "p75/p25 of the chunks; ratio = median of the paired per-chunk ratios)",
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
    lines.append(
        "Prepared typed queries on sqlite+honker, the native benchmark's point select (ns/op):"
    )
    for k in ("native", "prepared", "core"):
        lines.append(f"  {k:<9} {e[k]['median_ns']:>8.0f} ±{e[k]['spread']:.2f}")
    lines.append(
        f"  prepared / native = {e['prepared_vs_native']:.2f}x "
        f"(target <= {PREPARED_VS_NATIVE:.1f}x); "
        f"core / prepared = {e['core_vs_prepared']:.1f}x (target >= {CORE_VS_PREPARED:.0f}x) "
        f"{'ok' if e['met'] else 'MISSED'}"
    )
    e = w["prepared_typed_select"]
    lines.append(
        "  with DateTime, Boolean, JSON and Numeric result processing (no target): "
        f"native {e['native']['median_ns']:.0f}, prepared {e['prepared']['median_ns']:.0f}, "
        f"core {e['core']['median_ns']:.0f}; prepared / native = {e['prepared_vs_native']:.2f}x, "
        f"core / prepared = {e['core_vs_prepared']:.1f}x"
    )
    v = result["versions"]
    lines.append(
        f"SQLAlchemy {v['sqlalchemy']}; SQLite: alkdev {v['alkdev_sqlite']}, stdlib "
        f"{v['stdlib_sqlite']}; Python {v['python']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return _cli.main(__doc__, run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
