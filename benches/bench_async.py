"""Writes from async code: the blocking call vs the awaitable one, side by
side in one run (docs/0020-async-writes.md).

1. Cost per uncontended write (median µs/op of the repeats): a blocking
   ``q.enqueue`` made from the loop (freezes it when the writer is busy),
   ``await q.aenqueue``, ``await asyncio.to_thread(q.enqueue)`` (what a
   user would write by hand), and 100 enqueues in one ``async with
   db.atransaction()`` (per job).
2. Loop stall under contention: another thread holds the writer in 20 ms
   bursts while the loop writes for ~1 s; a 1 ms ticker records the
   longest gap between its ticks (ms) with blocking writes and with
   awaitable ones.
3. Fan-in: N coroutines each ``await q.aenqueue`` at once; wall time per
   job and the number of threads the process uses (bounded: the pool has
   ``WAITERS_MAX`` threads whatever N).

Run:  python benches/bench_async.py [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
from typing import Any

import _cli

import alkdev_storage
from alkdev_storage.primitives.aio import WAITERS_MAX


def _threads() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1


async def _per_op(q: Any, db: Any, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter_ns()
    for i in range(n):
        q.enqueue(i)
    out["blocking_enqueue_from_loop"] = (time.perf_counter_ns() - t0) / n / 1000
    t0 = time.perf_counter_ns()
    for i in range(n):
        await q.aenqueue(i)
    out["aenqueue"] = (time.perf_counter_ns() - t0) / n / 1000
    t0 = time.perf_counter_ns()
    for i in range(n):
        await asyncio.to_thread(q.enqueue, i)
    out["to_thread_enqueue"] = (time.perf_counter_ns() - t0) / n / 1000
    t0 = time.perf_counter_ns()
    for _ in range(n // 100):
        async with db.atransaction() as tx:
            for i in range(100):
                q.enqueue(i, tx=tx)
    out["atransaction_100_per_tx"] = (time.perf_counter_ns() - t0) / (n // 100 * 100) / 1000
    return out


async def _stall(db: Any, q: Any, awaitable: bool, seconds: float) -> float:
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            with db.transaction() as tx:
                tx.execute("SELECT 1")
                time.sleep(0.02)
            time.sleep(0.001)

    t = threading.Thread(target=hog, daemon=True)
    t.start()
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if awaitable:
            await q.aenqueue("x")
        else:
            q.enqueue("x")
        await asyncio.sleep(0)
    done = True
    await tick
    stop.set()
    t.join()
    return worst * 1000


async def _fan_in(q: Any, n: int) -> dict[str, float]:
    before = _threads()
    t0 = time.perf_counter()
    await asyncio.gather(*(q.aenqueue(i) for i in range(n)))
    dt = time.perf_counter() - t0
    return {"coroutines": n, "us_per_job": dt / n * 1e6, "threads_before": before,
            "threads_after": _threads()}


def run(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 5
    n = 500 if quick else 2000
    with tempfile.TemporaryDirectory() as tmp:
        db = alkdev_storage.open(os.path.join(tmp, "a.db"))
        q = db.queue("bench-async")

        async def main() -> dict[str, Any]:
            rounds = [await _per_op(q, db, n) for _ in range(repeats)]
            per_op = {
                k: {
                    "median_us": statistics.median(r[k] for r in rounds),
                    "spread": max(r[k] for r in rounds) / min(r[k] for r in rounds),
                }
                for k in rounds[0]
            }
            secs = 0.5 if quick else 1.0
            stall = {
                "blocking_max_gap_ms": statistics.median(
                    [await _stall(db, q, False, secs) for _ in range(repeats)]),
                "awaitable_max_gap_ms": statistics.median(
                    [await _stall(db, q, True, secs) for _ in range(repeats)]),
            }
            fan = await _fan_in(q, 1000 if quick else 5000)
            return {"per_op": per_op, "stall": stall, "fan_in": fan}

        result = asyncio.run(main())
        db.close()
    result["repeats"] = repeats
    result["waiters_max"] = WAITERS_MAX
    return result


def report(r: dict[str, Any]) -> str:
    base = r["per_op"]["blocking_enqueue_from_loop"]["median_us"]
    lines = [f"Async writes (median of {r['repeats']} repeats; spread = max/min)",
             f"{'write':<30} {'us/op':>8} {'spread':>6}  vs blocking"]
    for k, e in r["per_op"].items():
        lines.append(f"{k:<30} {e['median_us']:>8.1f} {e['spread']:>6.2f}  "
                     f"{e['median_us'] / base:5.2f}x")
    s = r["stall"]
    lines.append(
        f"longest event-loop stall while another thread holds the writer in 20 ms bursts: "
        f"blocking {s['blocking_max_gap_ms']:.1f} ms, awaitable {s['awaitable_max_gap_ms']:.1f} ms"
    )
    f = r["fan_in"]
    lines.append(
        f"fan-in: {f['coroutines']} coroutines awaiting aenqueue at once: "
        f"{f['us_per_job']:.1f} us/job, threads {f['threads_before']} -> {f['threads_after']} "
        f"(pool bound {r['waiters_max']})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(_cli.main(__doc__, run, report))
