"""Write-lock contention across processes: ours vs stdlib sqlite3, one run.

Workload (issue 8, item 3), on one file: 3 writer processes, each looping
over one transaction that inserts a row and enqueues a job; 2 worker
processes, each looping over ``claim_one`` (its own transaction) and then
one transaction that writes the job's effect and acks it. Every process
runs for the same wall-clock window (``--quick``: 4 s, else 20 s; 3
repeats, the two implementations interleaved in each repeat).

* ``ours``: the public API (``alkdev_storage.open``, ``db.transaction()``,
  ``db.queue(...)``), the Database's default ``timeout`` (5 s).
* ``stdlib``: stdlib sqlite3 with ``busy_timeout=5000`` (SQLite's default
  back-off), honker's PRAGMAs, plain tables: ``BEGIN IMMEDIATE``; the
  claim is one ``UPDATE ... RETURNING`` on an indexed ``state`` column.

Reported per implementation (median over repeats, errors summed): the
transactions of each process (a claim that found no job is not counted),
fairness (slowest / fastest process), lock waits p50 / p99 / max (time
to enter a write transaction, and the whole ``claim_one`` for workers),
the job backlog left at the end, and "database is locked" errors.

Targets: 0 lock errors; fairness >= 0.2; p99 wait <= 1 s.

Run:  python benches/bench_contention.py [--quick] [--json PATH]
      python benches/bench_contention.py --seconds 60   (one long repeat)
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import main

WRITERS = 3
WORKERS = 2
STDLIB_SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY, payload TEXT, state INTEGER NOT NULL DEFAULT 0, worker TEXT);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
CREATE TABLE IF NOT EXISTS effects (job_id INTEGER, v TEXT);
"""
HONKER_PRAGMAS = "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32000;"


def _child_ours(role: str, name: str, path: str, start: float, end: float) -> dict[str, Any]:
    import alkdev_storage

    db = alkdev_storage.open(path)
    q = db.queue("bench")
    waits: list[float] = []
    tx_count = errors = 0
    msgs: list[str] = []
    _sleep_until(start)
    while time.time() < end:
        try:
            if role == "writer":
                t0 = time.perf_counter()
                with db.transaction() as tx:
                    waits.append(time.perf_counter() - t0)
                    tx.execute("INSERT INTO rows (v) VALUES (?)", (name,))
                    q.enqueue({"from": name}, tx=tx)
                tx_count += 1
            else:
                t0 = time.perf_counter()
                job = q.claim_one(name)
                waits.append(time.perf_counter() - t0)
                if job is None:
                    time.sleep(0.001)
                    continue
                tx_count += 1
                t0 = time.perf_counter()
                with db.transaction() as tx:
                    waits.append(time.perf_counter() - t0)
                    tx.execute("INSERT INTO effects (job_id, v) VALUES (?, ?)", (job.id, name))
                    job.ack(tx=tx)
                tx_count += 1
        except alkdev_storage.OperationalError as e:
            errors += 1
            if len(msgs) < 3:
                msgs.append(str(e)[:200])
    db.close()
    return {"name": name, "tx": tx_count, "waits": waits, "errors": errors, "msgs": msgs}


def _child_stdlib(role: str, name: str, path: str, start: float, end: float) -> dict[str, Any]:
    con = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    con.executescript(HONKER_PRAGMAS)
    waits: list[float] = []
    tx_count = errors = 0
    msgs: list[str] = []

    def begin() -> None:
        t0 = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        waits.append(time.perf_counter() - t0)

    _sleep_until(start)
    while time.time() < end:
        try:
            if role == "writer":
                begin()
                con.execute("INSERT INTO rows (v) VALUES (?)", (name,))
                con.execute("INSERT INTO jobs (payload) VALUES (?)", (json.dumps({"from": name}),))
                con.execute("COMMIT")
                tx_count += 1
            else:
                t0 = time.perf_counter()
                con.execute("BEGIN IMMEDIATE")
                row = con.execute(
                    "UPDATE jobs SET state = 1, worker = ? WHERE id = "
                    "(SELECT id FROM jobs WHERE state = 0 ORDER BY id LIMIT 1) "
                    "RETURNING id, payload",
                    (name,),
                ).fetchone()
                con.execute("COMMIT")
                waits.append(time.perf_counter() - t0)
                if row is None:
                    time.sleep(0.001)
                    continue
                tx_count += 1
                begin()
                con.execute("INSERT INTO effects (job_id, v) VALUES (?, ?)", (row[0], name))
                con.execute("DELETE FROM jobs WHERE id = ?", (row[0],))
                con.execute("COMMIT")
                tx_count += 1
        except sqlite3.OperationalError as e:
            errors += 1
            if len(msgs) < 3:
                msgs.append(str(e)[:200])
            if con.in_transaction:
                con.execute("ROLLBACK")
    con.close()
    return {"name": name, "tx": tx_count, "waits": waits, "errors": errors, "msgs": msgs}


def _sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.05))


def _setup(impl: str, path: Path) -> None:
    if impl == "ours":
        import alkdev_storage

        db = alkdev_storage.open(path)
        db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS effects (job_id INTEGER, v TEXT)")
        db.queue("bench")
        db.close()
    else:
        con = sqlite3.connect(path)
        con.executescript(STDLIB_SCHEMA)
        con.close()


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def run_once(impl: str, seconds: float, folder: Path) -> dict[str, Any]:
    """One contention run of `impl` ("ours" or "stdlib") for `seconds`."""
    path = folder / f"{impl}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _setup(impl, path)
    start = time.time() + 1.5  # every child imported and connected
    end = start + seconds
    roles = ["writer"] * WRITERS + ["worker"] * WORKERS
    when = [repr(start), repr(end)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", impl, role, f"{role}{i}", str(path), *when],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, role in enumerate(roles)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        results.append(json.loads(out))
    waits = [w for r in results for w in r["waits"]]
    counts = {r["name"]: r["tx"] for r in results}
    con = sqlite3.connect(path)
    table = "_honker_live" if impl == "ours" else "jobs WHERE state = 0"
    (backlog,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    con.close()
    return {
        "backlog_at_end": backlog,
        "wait_p99_ms_by_process": {r["name"]: _pct(r["waits"], 0.99) * 1e3 for r in results},
        "impl": impl,
        "seconds": seconds,
        "tx": counts,
        "tx_per_s": sum(counts.values()) / seconds,
        "fairness": min(counts.values()) / max(1, max(counts.values())),
        "wait_p50_ms": _pct(waits, 0.50) * 1e3,
        "wait_p99_ms": _pct(waits, 0.99) * 1e3,
        "wait_max_ms": max(waits, default=0.0) * 1e3,
        "errors": sum(r["errors"] for r in results),
        "error_msgs": [m for r in results for m in r["msgs"]][:3],
    }


def run(quick: bool, seconds: float | None = None, repeats: int | None = None) -> dict[str, Any]:
    seconds = seconds or (4.0 if quick else 20.0)
    repeats = repeats or 3
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "stdlib": []}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeats):
            for impl in runs:
                runs[impl].append(run_once(impl, seconds, Path(d)))
    summary: dict[str, Any] = {"seconds": seconds, "repeats": repeats, "cores": os.cpu_count()}
    for impl, rs in runs.items():
        summary[impl] = {
            "fairness": statistics.median(r["fairness"] for r in rs),
            "tx_per_s": statistics.median(r["tx_per_s"] for r in rs),
            "wait_p50_ms": statistics.median(r["wait_p50_ms"] for r in rs),
            "wait_p99_ms": statistics.median(r["wait_p99_ms"] for r in rs),
            "wait_max_ms": max(r["wait_max_ms"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "runs": rs,
        }
    return summary


def report(r: dict[str, Any]) -> str:
    lines = [
        f"contention: {WRITERS} writers + {WORKERS} workers, {r['seconds']:.0f} s x "
        f"{r['repeats']} repeats, {r['cores']} cores (medians; errors summed; max of max)",
        f"{'impl':8} {'tx/s':>7} {'fair':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'errors':>6}  per-process tx (last repeat)",
    ]
    for impl in ("ours", "stdlib"):
        s = r[impl]
        last = s["runs"][-1]["tx"]
        lines.append(
            f"{impl:8} {s['tx_per_s']:7.0f} {s['fairness']:6.3f} {s['wait_p50_ms']:8.2f} "
            f"{s['wait_p99_ms']:8.1f} {s['wait_max_ms']:8.1f} {s['errors']:6d}  "
            + " ".join(f"{n}={c}" for n, c in last.items())
        )
        lines.append(
            f"         backlog at the end {s['runs'][-1]['backlog_at_end']} jobs; p99 wait ms: "
            + " ".join(f"{n}={w:.1f}" for n, w in s["runs"][-1]["wait_p99_ms_by_process"].items())
        )
        for m in s["runs"][-1]["error_msgs"]:
            lines.append(f"         error: {m}")
    ours, std = r["ours"], r["stdlib"]
    lines.append(
        f"ours/stdlib: fairness {ours['fairness'] / max(std['fairness'], 1e-9):.1f}x, "
        f"p99 wait {ours['wait_p99_ms'] / max(std['wait_p99_ms'], 1e-9):.2f}x, "
        f"throughput {ours['tx_per_s'] / max(std['tx_per_s'], 1e-9):.2f}x"
    )
    return "\n".join(lines)


def _child(argv: list[str]) -> None:
    impl, role, name, path, start, end = argv
    fn = _child_ours if impl == "ours" else _child_stdlib
    print(json.dumps(fn(role, name, path, float(start), float(end))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
        sys.exit(0)
    if "--seconds" in sys.argv:
        i = sys.argv.index("--seconds")
        secs = float(sys.argv[i + 1])
        del sys.argv[i : i + 2]
        sys.exit(main(__doc__, lambda quick: run(quick, secs, 1), report))
    sys.exit(main(__doc__, run, report))
