"""One watcher for many databases: idle cost and wake latency.

Idle cost: N open databases (``alkdev_storage.open``), one listener each
(``db.listen(...)``: blocking ones each in a thread of their own, or asyncio
ones as tasks of one event loop), nothing written. Reported: CPU time of
the process as % of one core (``resource.getrusage`` over a few seconds)
and OS threads (``/proc/self/status``), also net of the benchmark's own
listener threads.

Wake latency: a process holding N open databases, each with a listener (or
a subscription), listens on one of them; this process commits a notify
carrying ``time.monotonic_ns()`` every 2-4 ms (jittered); the listener
measures arrival. p50/p99 at 1 and at 1,000 open databases, blocking and
asyncio.

"Before" is the landed per-file watcher (honker-core's
``SharedUpdateWatcher``: one ``PRAGMA data_version`` thread per file, plus
one asyncio bridge thread per Database), measured when this benchmark was
written and kept as constants (the old path is gone).

``--quick``: 200 databases for the idle cost, 200 for the "many" latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _cli

import alkdev_storage

# Targets (issue 8).
IDLE_CPU_TARGET = {200: 2.0, 1000: 5.0}  # % of one core
WAKE_P50_MS = 1.0
WAKE_P99_MS = 3.0
# Before (the per-file watcher), measured on the landed code, 2 cores.
BEFORE = {
    200: {"cpu_pct": 162.0, "threads": 401},
    1000: {"cpu_pct": 200.0, "threads": 2001},
}


def threads_now() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return threading.active_count()


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def idle_cost(tmp: str, n: int, mode: str, measure_s: float) -> dict[str, Any]:
    """CPU % of one core and threads with ``n`` idle databases, one
    listener each (``mode``: blocking threads or asyncio tasks)."""
    base_threads = threads_now()
    dbs = [alkdev_storage.open(os.path.join(tmp, f"{mode}-{i}.db")) for i in range(n)]
    listener_threads = 0
    stop = threading.Event()
    result: dict[str, Any] = {}
    if mode == "blocking":

        def listen(db: Any) -> None:
            for _ in db.listen("idle"):
                pass

        ths = [threading.Thread(target=listen, args=(db,), daemon=True) for db in dbs]
        for t in ths:
            t.start()
        listener_threads = n
        time.sleep(2.5)  # every listener subscribed, asleep, its file idle
        c0, t0 = cpu_s(), time.monotonic()
        time.sleep(measure_s)
        c1, t1 = cpu_s(), time.monotonic()
        threads = threads_now()
    else:
        loop_thread_ready = threading.Event()

        async def main() -> None:
            async def listen(db: Any) -> None:
                async for _ in db.listen("idle"):
                    pass

            tasks = [asyncio.create_task(listen(db)) for db in dbs]
            loop_thread_ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            for db in dbs:
                db.close()
            await asyncio.gather(*tasks, return_exceptions=True)

        lt = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        lt.start()
        listener_threads = 1  # the event loop's thread
        loop_thread_ready.wait()
        time.sleep(2.5)
        c0, t0 = cpu_s(), time.monotonic()
        time.sleep(measure_s)
        c1, t1 = cpu_s(), time.monotonic()
        threads = threads_now()
        stop.set()
        lt.join(30)
    cpu_pct = 100.0 * (c1 - c0) / (t1 - t0)
    for db in dbs:
        db.close()
    result.update(
        {
            "databases": n,
            "cpu_pct": cpu_pct,
            "threads": threads,
            "threads_net": threads - base_threads - listener_threads,
        }
    )
    return result


# ---------------------------------------------------------------- wake latency


def child_listener(tmp: str, mode: str, n: int, count: int) -> None:
    """In another process: open ``n`` databases (the first is ``wake.db``),
    a listener on each, and record the latency of notifications on the
    first."""
    dbs = [alkdev_storage.open(os.path.join(tmp, "wake.db"))]
    dbs += [alkdev_storage.open(os.path.join(tmp, f"other-{i}.db")) for i in range(n - 1)]
    lat: list[int] = []
    if mode == "blocking":
        # The other databases are watched too (a subscription each).
        subs = [db.subscribe_updates() for db in dbs[1:]]
        listener = dbs[0].listen("wake")
        listener.get(0)  # subscribe before saying ready
        print("ready", flush=True)
        while len(lat) < count:
            item = listener.get(30)
            if item is None:
                break
            lat.append(time.monotonic_ns() - item.payload)
        for s in subs:
            s.close()
    else:

        async def main() -> None:
            async def idle(db: Any) -> None:
                async for _ in db.listen("idle"):
                    pass

            others = [asyncio.create_task(idle(db)) for db in dbs[1:]]
            await asyncio.sleep(0.5)
            listener = dbs[0].listen("wake")
            await listener.aget(0)  # start the bridge before saying ready
            print("ready", flush=True)
            while len(lat) < count:
                item = await listener.aget(30)
                if item is None:
                    break
                lat.append(time.monotonic_ns() - item.payload)
            for db in dbs[1:]:
                db.close()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run(main())
    print(json.dumps(lat), flush=True)
    for db in dbs:
        db.close()


def wake_latency(tmp: str, mode: str, n: int, samples: int) -> dict[str, Any]:
    db = alkdev_storage.open(os.path.join(tmp, "wake.db"))
    child = subprocess.Popen(
        [sys.executable, __file__, "--child-listener", tmp, mode, str(n), str(samples)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    rng = random.Random(7)
    for _ in range(samples):
        # spaced out so every sample is its own wake, jittered so samples
        # do not align with the poll period
        time.sleep(0.002 + rng.random() * 0.002)
        db.notify("wake", time.monotonic_ns())
    out, _ = child.communicate(timeout=120)
    db.close()
    lat = sorted(json.loads(out.strip().splitlines()[-1]))
    assert len(lat) == samples, f"child got {len(lat)} of {samples} notifications"

    def pct(p: float) -> float:
        return float(lat[min(len(lat) - 1, int(p * len(lat)))]) / 1e6

    p50, p99 = pct(0.50), pct(0.99)
    return {
        "databases": n,
        "samples": len(lat),
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": lat[-1] / 1e6,
        "met": p50 <= WAKE_P50_MS and p99 <= WAKE_P99_MS,
    }


# ---------------------------------------------------------------- harness


def run(quick: bool) -> dict[str, Any]:
    sizes = [1, 200] if quick else [1, 200, 1000]
    many = 200 if quick else 1000
    measure_s = 2.0 if quick else 4.0
    samples = 300 if quick else 1000
    result: dict[str, Any] = {"quick": quick, "idle": [], "wake": [], "before": BEFORE}
    for mode in ("blocking", "asyncio"):
        for n in sizes:
            tmp = tempfile.mkdtemp(prefix="alk-bench-watch-")
            try:
                r = idle_cost(tmp, n, mode, measure_s)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            r["mode"] = mode
            target = IDLE_CPU_TARGET.get(n)
            if target is not None:
                r["target_pct"] = target
                r["met"] = r["cpu_pct"] <= target
            result["idle"].append(r)
    for mode in ("blocking", "asyncio"):
        for n in (1, many):
            tmp = tempfile.mkdtemp(prefix="alk-bench-wake-")
            try:
                r = wake_latency(tmp, mode, n, samples)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            r["mode"] = mode
            result["wake"].append(r)
    result["cpus"] = os.cpu_count()
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        "Idle: open databases, one listener each, nothing written "
        "(CPU % of one core; threads: total / net of listener threads):"
    ]
    for r in result["idle"]:
        before = result["before"].get(r["databases"]) if r["mode"] == "blocking" else None
        extra = ""
        if before is not None:
            extra = f"   before {before['cpu_pct']:.0f}% / {before['threads']} threads"
        met = ""
        if "met" in r:
            met = f"  target <={r['target_pct']:g}% " + ("ok" if r["met"] else "MISSED")
        lines.append(
            f"  {r['mode']:<9} {r['databases']:>5} dbs  cpu {r['cpu_pct']:6.2f}%  "
            f"threads {r['threads']:>5} / net {r['threads_net']:>3}{met}{extra}"
        )
    lines.append("Cross-process wake latency (ms), before: p50 ~0.75 at 1 database:")
    for r in result["wake"]:
        lines.append(
            f"  {r['mode']:<9} {r['databases']:>5} dbs  n={r['samples']:<5} "
            f"p50 {r['p50_ms']:.3f}  p99 {r['p99_ms']:.3f}  max {r['max_ms']:.3f}   "
            f"target p50<={WAKE_P50_MS:g} p99<={WAKE_P99_MS:g} " + ("ok" if r["met"] else "MISSED")
        )
    lines.append(f"{result['cpus']} CPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child-listener":
        child_listener(argv[1], argv[2], int(argv[3]), int(argv[4]))
        return 0
    return _cli.main(__doc__, run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
