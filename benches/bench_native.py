"""Native session vs stdlib sqlite3 vs apsw, side by side in one run.

Same schema, same file settings (honker's PRAGMAs: WAL, synchronous=NORMAL,
32 MB cache, foreign keys on, temp_store=MEMORY) for every library; each
workload is repeated, libraries interleaved in each repeat, and the median
ns/op is reported with the spread (max/min of the repeats) as the noise.

Workloads: point select by primary key, insert inside one transaction,
autocommit insert, executemany of 10k rows (one transaction), scan of 1,000
rows. Targets: point select <= 0.5x apsw, the others <= 1.0x apsw.

Run:  python benches/bench_native.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import _cli

import alkdev_storage

try:
    import apsw
except ImportError:  # pragma: no cover - the bench extra installs it
    apsw = None

PRAGMAS = [
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA cache_size = -32000",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA wal_autocheckpoint = 10000",
]
SCHEMA = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL, tag TEXT)"
SELECT_ONE = "SELECT id, name, value, tag FROM items WHERE id = ?"
INSERT = "INSERT INTO items (name, value, tag) VALUES (?, ?, ?)"
SCAN = "SELECT id, name, value, tag FROM items WHERE id > ? ORDER BY id LIMIT 1000"
SEED_ROWS = 20_000

TARGETS = {
    "point_select": 0.5,
    "insert_in_tx": 1.0,
    "autocommit_insert": 1.0,
    "executemany_10k": 1.0,
    "scan_1000": 1.0,
}


def row(i: int) -> tuple[str, float, str]:
    return (f"name-{i}", i * 0.5, "t" + str(i % 7))


# ---------------------------------------------------------------- adapters


class Ours:
    name = "alkdev"

    def __init__(self, path: str) -> None:
        self.db = alkdev_storage.open(path)
        self.db.executescript(SCHEMA)
        self.sel = self.db.prepare(SELECT_ONE)
        self.ins = self.db.prepare(INSERT)
        self.scan = self.db.prepare(SCAN)

    def point_select(self, ids: list[int]) -> None:
        fetchone, sel = self.db.fetchone, self.sel
        for i in ids:
            fetchone(sel, (i,))

    def insert_in_tx(self, rows: list[tuple[Any, ...]]) -> None:
        with self.db.transaction() as tx:
            execute, ins = tx.execute, self.ins
            for r in rows:
                execute(ins, r)

    def autocommit_insert(self, rows: list[tuple[Any, ...]]) -> None:
        execute, ins = self.db.execute, self.ins
        for r in rows:
            execute(ins, r)

    def executemany(self, rows: list[tuple[Any, ...]]) -> None:
        self.db.executemany(self.ins, rows)

    def scan_rows(self, start: int) -> int:
        return len(self.db.fetchall(self.scan, (start,)))

    def close(self) -> None:
        self.db.close()


class _Plain:
    """The same workloads through a connection with sqlite3's execute API
    (stdlib sqlite3 in autocommit mode, or apsw): explicit BEGIN/COMMIT."""

    name = ""
    conn: Any

    def point_select(self, ids: list[int]) -> None:
        execute = self.conn.execute
        for i in ids:
            execute(SELECT_ONE, (i,)).fetchone()

    def insert_in_tx(self, rows: list[tuple[Any, ...]]) -> None:
        execute = self.conn.execute
        execute("BEGIN IMMEDIATE")
        for r in rows:
            execute(INSERT, r)
        execute("COMMIT")

    def autocommit_insert(self, rows: list[tuple[Any, ...]]) -> None:
        execute = self.conn.execute
        for r in rows:
            execute(INSERT, r)

    def executemany(self, rows: list[tuple[Any, ...]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(INSERT, rows)
        self.conn.execute("COMMIT")

    def scan_rows(self, start: int) -> int:
        return len(self.conn.execute(SCAN, (start,)).fetchall())

    def close(self) -> None:
        self.conn.close()


class Stdlib(_Plain):
    name = "sqlite3"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for p in PRAGMAS:
            self.conn.execute(p).fetchall()
        self.conn.execute(SCHEMA)


class Apsw(_Plain):
    name = "apsw"

    def __init__(self, path: str) -> None:
        assert apsw is not None
        self.conn = apsw.Connection(path)
        for p in PRAGMAS:
            self.conn.execute(p).fetchall()
        self.conn.execute(SCHEMA)


# ---------------------------------------------------------------- harness


def timed(fn: Callable[[], Any], ops: int) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / ops


def measure(
    lib: Any,
    s: dict[str, dict[str, list[float]]],
    ids: list[int],
    rows_tx: list[tuple[Any, ...]],
    rows_auto: list[tuple[Any, ...]],
    rows_many: list[tuple[Any, ...]],
    starts: list[int],
) -> None:
    """One repeat of every workload for one library."""
    s["point_select"][lib.name].append(timed(lambda: lib.point_select(ids), len(ids)))
    s["insert_in_tx"][lib.name].append(timed(lambda: lib.insert_in_tx(rows_tx), len(rows_tx)))
    s["autocommit_insert"][lib.name].append(
        timed(lambda: lib.autocommit_insert(rows_auto), len(rows_auto))
    )
    s["executemany_10k"][lib.name].append(timed(lambda: lib.executemany(rows_many), len(rows_many)))

    def scans() -> None:
        for st in starts:
            assert lib.scan_rows(st) == 1000

    s["scan_1000"][lib.name].append(timed(scans, len(starts)))


def run(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 9
    n_select = 2_000 if quick else 20_000
    n_tx = 1_000 if quick else 10_000
    n_auto = 100 if quick else 1_000
    n_many = 10_000
    n_scan = 20 if quick else 200
    rng = random.Random(42)
    tmp = tempfile.mkdtemp(prefix="alk-bench-")
    libs: list[Any] = []
    for cls in (Ours, Stdlib, Apsw):
        if cls is Apsw and apsw is None:
            continue
        lib = cls(os.path.join(tmp, f"{cls.name}.db"))
        lib.executemany([row(i) for i in range(SEED_ROWS)])
        libs.append(lib)
    samples: dict[str, dict[str, list[float]]] = {
        w: {lib.name: [] for lib in libs} for w in TARGETS
    }
    for rep in range(repeats):
        ids = [rng.randint(1, SEED_ROWS) for _ in range(n_select)]
        rows_tx = [row(i) for i in range(n_tx)]
        rows_auto = [row(i) for i in range(n_auto)]
        rows_many = [row(i) for i in range(n_many)]
        starts = [rng.randint(0, SEED_ROWS - 1000) for _ in range(n_scan)]
        order = libs[rep % len(libs) :] + libs[: rep % len(libs)]
        for lib in order:
            measure(lib, samples, ids, rows_tx, rows_auto, rows_many, starts)
    for lib in libs:
        lib.close()
    result: dict[str, Any] = {"repeats": repeats, "quick": quick, "workloads": {}}
    for w, per in samples.items():
        entry: dict[str, Any] = {}
        for name, vals in per.items():
            entry[name] = {
                "median_ns": statistics.median(vals),
                "spread": max(vals) / min(vals),
            }
        ours = entry["alkdev"]["median_ns"]
        for other in ("apsw", "sqlite3"):
            if other in entry:
                entry[f"ratio_vs_{other}"] = ours / entry[other]["median_ns"]
        entry["target_vs_apsw"] = TARGETS[w]
        if "ratio_vs_apsw" in entry:
            entry["met"] = entry["ratio_vs_apsw"] <= TARGETS[w]
        result["workloads"][w] = entry
    result["versions"] = {
        "alkdev_sqlite": alkdev_storage.sqlite_version(),
        "stdlib_sqlite": sqlite3.sqlite_version,
        "apsw_sqlite": apsw.sqlite_lib_version() if apsw else None,
        "python": sys.version.split()[0],
    }
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        "Native session vs stdlib sqlite3 vs apsw "
        f"(median ns/op of {result['repeats']} repeats; spread = max/min of repeats)",
        f"{'workload':<18} {'alkdev':>14} {'sqlite3':>14} {'apsw':>14} "
        f"{'vs sqlite3':>10} {'vs apsw':>8} {'target':>7}",
    ]
    for w, e in result["workloads"].items():

        def cell(name: str, e: dict[str, Any] = e) -> str:
            if name not in e:
                return "-"
            return f"{e[name]['median_ns']:>8.0f} ±{e[name]['spread']:.2f}"

        ok = "" if "met" not in e else ("ok" if e["met"] else "MISSED")
        lines.append(
            f"{w:<18} {cell('alkdev'):>14} {cell('sqlite3'):>14} {cell('apsw'):>14} "
            f"{e.get('ratio_vs_sqlite3', float('nan')):>9.2f}x "
            f"{e.get('ratio_vs_apsw', float('nan')):>7.2f}x "
            f"<={e['target_vs_apsw']:.1f}x {ok}"
        )
    v = result["versions"]
    lines.append(
        f"SQLite: alkdev {v['alkdev_sqlite']}, stdlib {v['stdlib_sqlite']}, "
        f"apsw {v['apsw_sqlite']}; Python {v['python']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return _cli.main(__doc__, run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
