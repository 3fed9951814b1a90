"""Honker primitives vs raw stdlib sqlite3, side by side in one run.

The floor is the cheapest way to do the same durable work by hand: a raw
stdlib ``sqlite3`` connection on the same file, with honker's PRAGMAs (WAL,
synchronous=NORMAL, 32 MB cache, ...), inserting one row per ``BEGIN
IMMEDIATE ... COMMIT`` transaction. Replay is compared with a raw stdlib
scan of the same rows (same query on ``_honker_stream``). Each workload is
repeated, floor and primitives interleaved in every repeat; the median
ns/op is reported with the spread (max/min of the repeats).

Two write floors are reported: a raw insert of a row into a plain table
(``floor_insert_tx``), and a raw insert of the very row ``honker_enqueue``
writes into honker's ``_honker_live`` (``floor_insert_job_row_tx``). The
second is the least any client can pay for an enqueue on honker's on-disk
layout (AUTOINCREMENT and three partial indexes: more pages per commit).

For claim + ack, a third reference is stdlib sqlite3 running the same
statements in the same transactions by hand (``floor_claim_ack_raw``).

Workloads: enqueue 1 job per transaction; enqueue 100 per transaction (ns
per job); claim_one + ack on a live queue (backlog < 50) and on a 2,000-job
backlog; claim_batch + ack_batch at 8/32/128 (ns per job, backlog 8 x n);
stream publish 1 per transaction; stream replay (ns per event, blocking and
async); and notify -> listener wake latency across processes (p50/p99 over
>= 500 samples, for a blocking and an asyncio listener in another process).
The backlog table (docs/0010): enqueue + claim_one + ack at 0 / 1k / 10k /
100k due jobs (100k skipped with --quick), ours vs stdlib sqlite3 running
the previous claim SQL vs honker's extension (apsw, when available), and
the claim() iterator's cost per job.

Targets (2 cores): enqueue 1/tx <= 1.5x the floor; claim+ack <= 3x the
floor; replay <= 1.5x the raw scan per row; cross-process wake p50 <= 2 ms,
p99 <= 10 ms.

Run:  python benches/bench_primitives.py [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import _cli

import alkdev_storage
from alkdev_storage.primitives import _sql

PRAGMAS = [
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA cache_size = -32000",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA wal_autocheckpoint = 10000",
]
RAW_TABLE = "CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"
RAW_INSERT = "INSERT INTO bench_raw (payload) VALUES (?)"
# The row honker_enqueue writes, written by hand (same table, same columns).
RAW_JOB_INSERT = (
    "INSERT INTO _honker_live (queue, payload, run_at, priority, max_attempts, expires_at) "
    "VALUES ('bench-raw', ?, unixepoch(), 0, 3, NULL)"
)
REPLAY_SQL = (
    "SELECT offset, topic, key, payload, created_at FROM _honker_stream "
    "WHERE topic = ? AND offset > ? ORDER BY offset ASC"
)

# workload -> (floors it is compared with, target ratio or None). Writes
# are compared with two raw stdlib insert transactions: a row in a plain
# table, and the same job row in honker's _honker_live (AUTOINCREMENT and
# three partial indexes: several more pages per commit, a cost of honker's
# on-disk layout that every binding pays).
WRITE_FLOORS = ("floor_insert_tx", "floor_insert_job_row_tx")
TARGETS: dict[str, tuple[tuple[str, ...], float | None]] = {
    "enqueue_1_per_tx": (WRITE_FLOORS, 1.5),
    "enqueue_100_per_tx": (WRITE_FLOORS, None),
    "claim_ack_1": ((*WRITE_FLOORS, "floor_claim_ack_raw"), 3.0),
    "claim_ack_1_backlog_2000": (WRITE_FLOORS, None),
    "claim_batch_ack_batch_8": (WRITE_FLOORS, None),
    "claim_batch_ack_batch_32": (WRITE_FLOORS, None),
    "claim_batch_ack_batch_128": (WRITE_FLOORS, None),
    "stream_publish_1_per_tx": (WRITE_FLOORS, None),
    "stream_replay": (("floor_scan_row",), 1.5),
    "stream_replay_async": (("floor_scan_row",), None),
}
WAKE_P50_MS = 2.0
WAKE_P99_MS = 10.0


def timed(fn: Callable[[], Any], ops: int) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / ops


class Bench:
    def __init__(self, path: str, n_tx: int, n_claim: int, n_replay: int) -> None:
        self.db = alkdev_storage.open(path)
        self.raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for p in PRAGMAS:
            self.raw.execute(p)
        self.raw.execute(RAW_TABLE)
        self.n_tx = n_tx
        self.n_claim = n_claim
        self.n_replay = n_replay
        self.q = self.db.queue("bench")
        self.s = self.db.stream("bench-pub")
        self.replay = self.db.stream("bench-replay")
        with self.db.transaction() as tx:
            for i in range(n_replay):
                self.replay.publish({"i": i, "name": f"event-{i}"}, key=f"k{i % 10}", tx=tx)

    # -- floors ----------------------------------------------------------

    def floor_insert_tx(self) -> float:
        execute = self.raw.execute
        payloads = [json.dumps({"n": i}) for i in range(self.n_tx)]

        def run() -> None:
            for p in payloads:
                execute("BEGIN IMMEDIATE")
                execute(RAW_INSERT, (p,))
                execute("COMMIT")

        return timed(run, self.n_tx)

    def floor_insert_job_row_tx(self) -> float:
        execute = self.raw.execute
        payloads = [json.dumps({"n": i}) for i in range(self.n_tx)]

        def run() -> None:
            for p in payloads:
                execute("BEGIN IMMEDIATE")
                execute(RAW_JOB_INSERT, (p,))
                execute("COMMIT")

        t = timed(run, self.n_tx)
        self.raw.execute("DELETE FROM _honker_live WHERE queue = 'bench-raw'")
        return t

    def floor_claim_ack_raw(self) -> float:
        """claim + ack by hand: stdlib sqlite3 running the same statements
        (dead-letter step, claim, ack) in the same two transactions."""
        execute = self.raw.execute
        dead, claim, ack = _sql.DEAD_LETTER_EXHAUSTED, _sql.claim_sql(1), _sql.ACK
        self._drain()
        spent = done = 0
        while done < self.n_claim:
            self._seed(50)
            t0 = time.perf_counter_ns()
            for _ in range(50):
                execute("BEGIN IMMEDIATE")
                execute(dead, ("bench",)).fetchall()
                job_id = execute(claim, ("bench", "raw", 1, 300)).fetchone()[0]
                execute("COMMIT")
                execute("BEGIN IMMEDIATE")
                execute(ack, (job_id, "raw"))
                execute("COMMIT")
            spent += time.perf_counter_ns() - t0
            done += 50
        return spent / done

    def floor_scan_row(self) -> float:
        execute = self.raw.execute

        def run() -> None:
            n = 0
            for _row in execute(REPLAY_SQL, ("bench-replay", 0)):
                n += 1
            assert n == self.n_replay

        return timed(run, self.n_replay)

    # -- primitives ------------------------------------------------------

    def enqueue_1_per_tx(self) -> float:
        enqueue = self.q.enqueue

        def run() -> None:
            for i in range(self.n_tx):
                enqueue({"n": i})

        return timed(run, self.n_tx)

    def enqueue_100_per_tx(self) -> float:
        enqueue, transaction = self.q.enqueue, self.db.transaction
        batches = max(1, self.n_tx // 10)

        def run() -> None:
            for b in range(batches):
                with transaction() as tx:
                    for i in range(100):
                        enqueue({"n": b * 100 + i}, tx=tx)

        return timed(run, batches * 100)

    def _drain(self) -> None:
        while True:
            jobs = self.q.claim_batch("drain", 1000)
            if not jobs:
                return
            self.q.ack_batch([j.id for j in jobs], "drain")

    def _seed(self, n: int) -> None:
        with self.db.transaction() as tx:
            for i in range(n):
                self.q.enqueue({"n": i}, tx=tx)

    def _claims(self, n: int, chunk: int, total: int) -> float:
        """ns per job to claim ``total`` jobs ``n`` at a time (claim_one +
        ack for n == 1, claim_batch + ack_batch otherwise), the backlog
        refilled (untimed) to ``chunk`` jobs whenever it runs out."""
        q = self.q
        claim_one, claim_batch, ack_batch = q.claim_one, q.claim_batch, q.ack_batch
        self._drain()
        spent = 0
        done = 0
        while done < total:
            self._seed(chunk)
            t0 = time.perf_counter_ns()
            if n == 1:
                for _ in range(chunk):
                    claim_one("w").ack()
            else:
                for _ in range(chunk // n):
                    jobs = claim_batch("w", n)
                    assert ack_batch([j.id for j in jobs], "w") == n
            spent += time.perf_counter_ns() - t0
            done += chunk
        return spent / done

    def claim_ack_1(self) -> float:
        # a live queue: the backlog stays under 50 jobs
        return self._claims(1, 50, self.n_claim)

    def claim_ack_1_backlog_2000(self) -> float:
        # a deep backlog: honker_claim_batch first scans every due pending
        # row of the queue (its dead-letter step), so a claim costs O(backlog)
        self._drain()
        self._seed(2000)
        claim_one = self.q.claim_one
        n = min(200, self.n_claim)

        def run() -> None:
            for _ in range(n):
                claim_one("w").ack()

        return timed(run, n)

    def claim_batch_ack_batch(self, n: int) -> float:
        return self._claims(n, n * 8, max(self.n_claim * 2, n * 8))

    def stream_publish_1_per_tx(self) -> float:
        publish = self.s.publish

        def run() -> None:
            for i in range(self.n_tx):
                publish({"n": i})

        return timed(run, self.n_tx)

    def stream_replay(self) -> float:
        def run() -> None:
            n = 0
            for _e in self.replay.subscribe(timeout=0):
                n += 1
            assert n == self.n_replay

        return timed(run, self.n_replay)

    def stream_replay_async(self) -> float:
        async def consume() -> int:
            n = 0
            async for _e in self.replay.subscribe(timeout=0):
                n += 1
            return n

        def run() -> None:
            assert asyncio.run(consume()) == self.n_replay

        return timed(run, self.n_replay)

    def close(self) -> None:
        self.raw.close()
        self.db.close()


# ---------------------------------------------------------------- backlog
#
# One enqueue + claim_one + ack by due backlog of the queue (docs/0010):
# 0 / 1k / 10k / 100k due jobs (100k skipped with --quick), the backlog
# written with one executemany. Side by side: stdlib sqlite3 running the
# previous claim SQL (honker-core's dead-letter sweep, which walks every
# due row; the same statements our package ran before docs/0010), and,
# when apsw and honker's extension are at hand, honker's own functions.
# Then claim() iterator throughput: what spending the attempt on hand-out
# (one short write per buffered job) costs against the transactions the
# previous iterator ran (claim_batch(32) + one ack per job).

PREVIOUS_DEAD_LETTER = (
    "DELETE FROM _honker_live WHERE queue = ?1 AND attempts >= max_attempts "
    "AND (expires_at IS NULL OR expires_at > unixepoch()) "
    "AND ((state = 'pending' AND run_at <= unixepoch()) "
    "OR (state = 'processing' AND claim_expires_at < unixepoch())) "
    "RETURNING id, queue, payload, priority, run_at, max_attempts, attempts, created_at"
)
BACKLOG_INSERT = (
    "INSERT INTO _honker_live (queue, payload, run_at) VALUES (?, ?, unixepoch() - 100)"
)


def _honker_ext_conn(path: str) -> Any:
    """apsw connection with honker's extension, or None."""
    try:
        import apsw  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    ext = os.environ.get("HONKER_EXT_PATH") or os.path.join(
        os.path.dirname(__file__), "..", "target", "honker-ext", "release", "libhonker_ext.so"
    )
    if not os.path.isfile(ext):
        return None
    conn = apsw.Connection(path)
    conn.enable_load_extension(True)
    conn.load_extension(ext, "sqlite3_honkerext_init")
    for p in PRAGMAS:  # the same PRAGMAs as the stdlib side
        conn.execute(p)
    return conn


def backlog_table(tmp: str, quick: bool) -> dict[str, Any]:
    depths = [0, 1_000, 10_000] if quick else [0, 1_000, 10_000, 100_000]
    ops = 40 if quick else 150
    repeats = 3 if quick else 5
    path = os.path.join(tmp, "backlog.db")
    db = alkdev_storage.open(path)
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for p in PRAGMAS:
        raw.execute(p)
    ext = _honker_ext_conn(path)
    sides: dict[str, Callable[[str], None]] = {}

    def ours(queue: str) -> None:
        q = db.queue(queue)
        enqueue, claim_one = q.enqueue, q.claim_one
        for i in range(ops):
            enqueue(i)
            claim_one("w").ack()  # type: ignore[union-attr]

    def previous(queue: str) -> None:
        execute = raw.execute
        claim = _sql.claim_sql(1)
        for i in range(ops):
            execute("BEGIN IMMEDIATE")
            execute(_sql.ENQUEUE, (queue, str(i), None, None, 0, 3, None)).fetchone()
            execute("COMMIT")
            execute("BEGIN IMMEDIATE")
            for r in execute(PREVIOUS_DEAD_LETTER, (queue,)).fetchall():
                execute(_sql.INSERT_DEAD, (*r, "max attempts exceeded"))
            job_id = execute(claim, (queue, "w", 1, 300)).fetchone()[0]
            execute("COMMIT")
            execute("BEGIN IMMEDIATE")
            execute(_sql.ACK, (job_id, "w"))
            execute("COMMIT")

    sides["ours"] = ours
    sides["previous_sql_stdlib"] = previous
    if ext is not None:

        def honker_ext(queue: str) -> None:
            for i in range(ops):
                with ext:
                    ext.execute(
                        "SELECT honker_enqueue(?, ?, NULL, NULL, 0, 3, NULL)", (queue, str(i))
                    ).fetchall()
                with ext:
                    raw_jobs = ext.execute(
                        "SELECT honker_claim_batch(?, 'w', 1, 300)", (queue,)
                    ).fetchone()[0]
                job_id = json.loads(raw_jobs)[0]["id"]
                with ext:
                    ext.execute("SELECT honker_ack(?, 'w')", (job_id,)).fetchall()

        sides["honker_extension_apsw"] = honker_ext
    samples: dict[str, dict[int, list[float]]] = {s: {d: [] for d in depths} for s in sides}
    for side in sides:
        for d in depths:
            with db.transaction() as tx:
                tx.executemany(BACKLOG_INSERT, [(f"{side}-{d}", str(i)) for i in range(d)])
    for rep in range(repeats + 1):  # the first round warms up
        for side, fn in sides.items():
            for d in depths:
                t0 = time.perf_counter_ns()
                fn(f"{side}-{d}")
                if rep:
                    samples[side][d].append((time.perf_counter_ns() - t0) / ops)
    out: dict[str, Any] = {"depths": depths, "ops": ops, "repeats": repeats, "sides": {}}
    for side, by_depth in samples.items():
        med = {d: statistics.median(v) for d, v in by_depth.items()}
        out["sides"][side] = {
            str(d): {"median_ns": med[d], "growth": med[d] / med[0]} for d in depths
        }
    out["target_growth"] = 1.5
    out["claim_iterator"] = _claim_iterator_cost(db, quick)
    raw.close()
    if ext is not None:
        ext.close()
    db.close()
    return out


def _claim_iterator_cost(db: Any, quick: bool) -> dict[str, float]:
    """ns per job: claim() iterator + ack per job (attempt spent on
    hand-out) vs claim_batch(32) + ack per job (the previous iterator's
    transactions) vs claim_one + ack, over a 1,000-job backlog."""
    n = 300 if quick else 1_000
    repeats = 3 if quick else 5
    q = db.queue("iter")
    res: dict[str, list[float]] = {"claim_iter_32": [], "claim_batch_32_ack_1": [], "claim_one": []}

    def seed() -> None:
        with db.transaction() as tx:
            tx.executemany(BACKLOG_INSERT, [("iter", str(i)) for i in range(n)])

    for _ in range(repeats):
        seed()
        t0 = time.perf_counter_ns()
        for job in q.claim("w", batch_size=32, timeout=0):
            job.ack()
        res["claim_iter_32"].append((time.perf_counter_ns() - t0) / n)
        seed()
        t0 = time.perf_counter_ns()
        while jobs := q.claim_batch("w", 32):
            for job in jobs:
                job.ack()
        res["claim_batch_32_ack_1"].append((time.perf_counter_ns() - t0) / n)
        seed()
        t0 = time.perf_counter_ns()
        while job := q.claim_one("w"):
            job.ack()
        res["claim_one"].append((time.perf_counter_ns() - t0) / n)
    return {k: statistics.median(v) for k, v in res.items()}


def report_backlog(b: dict[str, Any]) -> list[str]:
    lines = [
        "enqueue + claim_one + ack by due backlog (median ns/op; growth vs the empty queue, "
        f"target <= {b['target_growth']:g}x for ours):",
        f"  {'side':<24}" + "".join(f"{d:>18}" for d in b["depths"]),
    ]
    for side, by_depth in b["sides"].items():
        cells = "".join(
            f"{by_depth[str(d)]['median_ns']:>10.0f} {by_depth[str(d)]['growth']:>5.1f}x "
            for d in b["depths"]
        )
        lines.append(f"  {side:<24}{cells}")
    it = b["claim_iterator"]
    lines.append(
        "claim() throughput, ns per job with an ack each: "
        + ", ".join(f"{k} {v:.0f}" for k, v in it.items())
        + f" (iterator / claim_batch(32): {it['claim_iter_32'] / it['claim_batch_32_ack_1']:.2f}x)"
    )
    return lines


# ---------------------------------------------------------------- wake latency


def child_listener(path: str, mode: str, count: int) -> None:
    """In another process: listen on 'wake', record monotonic-clock latency."""
    db = alkdev_storage.open(path)
    lat: list[int] = []
    if mode == "blocking":
        listener = db.listen("wake")
        listener.get(0)  # start the subscription before saying ready
        print("ready", flush=True)
        while len(lat) < count:
            n = listener.get(30)
            if n is None:
                break
            lat.append(time.monotonic_ns() - n.payload)
    else:

        async def main() -> None:
            listener = db.listen("wake")
            await listener.aget(0)  # start the bridge before saying ready
            print("ready", flush=True)
            while len(lat) < count:
                n = await listener.aget(30)
                if n is None:
                    break
                lat.append(time.monotonic_ns() - n.payload)

        asyncio.run(main())
    print(json.dumps(lat), flush=True)
    db.close()


def wake_latency(path: str, mode: str, samples: int) -> dict[str, float]:
    db = alkdev_storage.open(path)
    child = subprocess.Popen(
        [sys.executable, __file__, "--child-listener", path, mode, str(samples)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    rng = random.Random(7)
    for _ in range(samples):
        # spaced out so every sample is its own wake (no coalescing), with
        # jitter so samples do not align with the 1 ms poll
        time.sleep(0.002 + rng.random() * 0.002)
        db.notify("wake", time.monotonic_ns())
    out, _ = child.communicate(timeout=60)
    db.close()
    lat = sorted(json.loads(out.strip().splitlines()[-1]))
    assert len(lat) == samples, f"child got {len(lat)} of {samples} notifications"

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6

    return {
        "samples": len(lat),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": lat[-1] / 1e6,
    }


# ---------------------------------------------------------------- harness


def run(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 7
    n_tx = 300 if quick else 2_000
    n_claim = 300 if quick else 2_000
    n_replay = 5_000 if quick else 20_000
    wake_samples = 500 if quick else 2_000
    tmp = tempfile.mkdtemp(prefix="alk-bench-prim-")
    b = Bench(os.path.join(tmp, "bench.db"), n_tx, n_claim, n_replay)
    work: dict[str, Callable[[], float]] = {
        "floor_insert_tx": b.floor_insert_tx,
        "floor_insert_job_row_tx": b.floor_insert_job_row_tx,
        "floor_claim_ack_raw": b.floor_claim_ack_raw,
        "floor_scan_row": b.floor_scan_row,
        "enqueue_1_per_tx": b.enqueue_1_per_tx,
        "enqueue_100_per_tx": b.enqueue_100_per_tx,
        "claim_ack_1": b.claim_ack_1,
        "claim_ack_1_backlog_2000": b.claim_ack_1_backlog_2000,
        "claim_batch_ack_batch_8": lambda: b.claim_batch_ack_batch(8),
        "claim_batch_ack_batch_32": lambda: b.claim_batch_ack_batch(32),
        "claim_batch_ack_batch_128": lambda: b.claim_batch_ack_batch(128),
        "stream_publish_1_per_tx": b.stream_publish_1_per_tx,
        "stream_replay": b.stream_replay,
        "stream_replay_async": b.stream_replay_async,
    }
    samples: dict[str, list[float]] = {k: [] for k in work}
    names = list(work)
    for w in names:  # warm-up: prepare statements, fill caches
        work[w]()
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for w in order:
            samples[w].append(work[w]())
    b.close()
    result: dict[str, Any] = {"repeats": repeats, "quick": quick, "workloads": {}}
    med = {w: statistics.median(v) for w, v in samples.items()}
    for w, vals in samples.items():
        entry: dict[str, Any] = {"median_ns": med[w], "spread": max(vals) / min(vals)}
        if w in TARGETS:
            bases, target = TARGETS[w]
            entry["target"] = target
            entry["ratios"] = {base: med[w] / med[base] for base in bases}
            if target is not None:
                entry["met"] = {base: r <= target for base, r in entry["ratios"].items()}
        result["workloads"][w] = entry
    wake: dict[str, Any] = {}
    for mode in ("blocking", "asyncio"):
        r = wake_latency(os.path.join(tmp, "wake.db"), mode, wake_samples)
        r["met"] = r["p50_ms"] <= WAKE_P50_MS and r["p99_ms"] <= WAKE_P99_MS
        wake[mode] = r
    result["wake_latency"] = wake
    result["backlog"] = backlog_table(tmp, quick)
    result["versions"] = {
        "alkdev_sqlite": alkdev_storage.sqlite_version(),
        "stdlib_sqlite": sqlite3.sqlite_version,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        "Honker primitives vs raw stdlib sqlite3 "
        f"(median ns/op of {result['repeats']} repeats; spread = max/min of repeats)",
        f"{'workload':<27} {'ns/op':>9} {'spread':>6}  ratio vs floors",
    ]
    for w, e in result["workloads"].items():
        parts = []
        for base, r in e.get("ratios", {}).items():
            part = f"{r:5.2f}x {base}"
            if e.get("target") is not None:
                part += " (ok)" if e["met"][base] else " (MISSED)"
            parts.append(part)
        target = f"   target <={e['target']:.1f}x" if e.get("target") is not None else ""
        if not parts:
            parts.append("(floor)")
        lines.append(
            f"{w:<27} {e['median_ns']:>9.0f} {e['spread']:>6.2f}  " + ", ".join(parts) + target
        )
    lines.append("notify -> listener in another process (wake latency, ms):")
    for mode, r in result["wake_latency"].items():
        lines.append(
            f"  {mode:<9} n={r['samples']:<5} p50 {r['p50_ms']:.3f}  p90 {r['p90_ms']:.3f}  "
            f"p99 {r['p99_ms']:.3f}  max {r['max_ms']:.3f}   target p50<={WAKE_P50_MS:g} "
            f"p99<={WAKE_P99_MS:g} " + ("ok" if r["met"] else "MISSED")
        )
    lines += report_backlog(result["backlog"])
    v = result["versions"]
    lines.append(
        f"SQLite: alkdev {v['alkdev_sqlite']}, stdlib {v['stdlib_sqlite']}; "
        f"Python {v['python']}; {v['cpus']} CPUs"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child-listener":
        child_listener(argv[1], argv[2], int(argv[3]))
        return 0
    return _cli.main(__doc__, run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
