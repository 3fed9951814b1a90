"""Listener fan-out: one read per commit for every listener of a Database
(docs/0014), side by side with the per-listener path it replaced.

1, 100 and 1,000 asyncio listeners on distinct channels (``topic:i``) of one
database, every listener awaiting its next notification. Two workloads:
one notify to one (random) channel, and one transaction notifying every
channel. Reported per mode: ``SELECT``s on ``_honker_notifications`` per
commit and delivery latency (commit to the listener's task, monotonic
clock) p50/p99. A blocking (thread) single listener is reported too, to
show a lone listener is not slower.

``per_listener`` is the landed behaviour before the fan-out, rebuilt here
on the public wake machinery: every listener runs its own ``WHERE channel
= ? AND id > ?`` read on every commit tick.

Streams (docs/0028): 1 and 1,000 asyncio stream subscriptions on distinct
topics of one database, each awaiting its next event, one publish to one
(random) topic per commit; ``SELECT``s on ``_honker_stream`` per commit and
delivery latency p50/p99, per subscriber reads (``shared=False``, the path
before the stream fan-out) against the shared read. Three runs each: the
median and the range of the run medians (the noise) are printed. One
blocking subscriber in a thread too.

Run:  python benches/bench_fanout.py [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import threading
import time
from collections import deque
from typing import Any

import _cli

import alkdev_storage
from alkdev_storage.primitives.fanout import fanout_of
from alkdev_storage.primitives.notify import Notification
from alkdev_storage.primitives.stream import StreamSubscription
from alkdev_storage.primitives.stream_fanout import stream_fanout_of
from alkdev_storage.primitives.wake import NOTHING, WakeIterator

SQL_OLD_READ = (
    "SELECT id, channel, payload, created_at FROM _honker_notifications "
    "WHERE channel = ?1 AND id > ?2 ORDER BY id LIMIT 1000"
)
SQL_OLD_START = "SELECT COALESCE(MAX(id), 0) FROM _honker_notifications WHERE channel = ?1"


class PerListener(WakeIterator):
    """The pre-fan-out Listener: its own read on every wake."""

    queries = 0

    def __init__(self, db: Any, channel: str) -> None:
        super().__init__(db, None)
        self.channel = channel
        self._buf: deque[Notification] = deque()
        self._s = db.statement(SQL_OLD_READ)
        self._last = int(db.fetchone(db.statement(SQL_OLD_START), (channel,))[0])

    def _poll(self) -> Any:
        if self._buf:
            return self._buf.popleft()
        rows = self._db.fetchall(self._s, (self.channel, self._last))
        PerListener.queries += 1
        if not rows:
            return NOTHING
        self._last = rows[-1][0]
        self._buf.extend(Notification._from_tuple(r) for r in rows)
        return self._buf.popleft()

    def _wait_hint(self) -> float | None:
        return 15.0


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_async(path: str, mode: str, n: int, singles: int, alls: int) -> dict[str, Any]:
    db = alkdev_storage.open(path)
    try:
        return asyncio.run(_run_async(db, mode, n, singles, alls))
    finally:
        db.close()


async def _run_async(db: Any, mode: str, n: int, singles: int, alls: int) -> dict[str, Any]:
    chans = [f"topic:{i}" for i in range(n)]
    if mode == "fanout":
        listeners: list[Any] = [db.listen(c) for c in chans]
        fan = fanout_of(db)

        def count() -> int:
            return fan.queries
    else:
        listeners = [PerListener(db, c) for c in chans]

        def count() -> int:
            return PerListener.queries

    lat: list[float] = []
    got = asyncio.Event()
    expected = [0]

    async def consume(lst: Any) -> None:
        async for note in lst:
            lat.append((time.monotonic_ns() - note.payload) / 1e6)
            expected[0] -= 1
            if expected[0] == 0:
                got.set()

    tasks = [asyncio.create_task(consume(lst)) for lst in listeners]
    await asyncio.sleep(0.2)
    rng = random.Random(3)
    out: dict[str, Any] = {}
    for label, rounds, targets in (
        ("one", singles, lambda: [rng.choice(chans)]),
        ("all", alls, lambda: chans),
    ):
        lat.clear()
        q0 = count()
        for _ in range(rounds):
            got.clear()
            tg = targets()
            expected[0] = len(tg)
            with db.transaction() as tx:
                now = time.monotonic_ns()
                for c in tg:
                    tx.notify(c, now)
            await asyncio.wait_for(got.wait(), 60)
            await asyncio.sleep(0.003 + rng.random() * 0.002)
        out[label] = {
            "queries_per_commit": (count() - q0) / rounds,
            "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99),
        }
    for lst in listeners:
        lst.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


def run_blocking_single(path: str, mode: str, samples: int) -> dict[str, float]:
    db = alkdev_storage.open(path)
    lst: Any = db.listen("solo") if mode == "fanout" else PerListener(db, "solo")
    lat: list[float] = []

    def consume() -> None:
        for _ in range(samples):
            note = lst.get(30)
            lat.append((time.monotonic_ns() - note.payload) / 1e6)

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.1)
    rng = random.Random(5)
    for _ in range(samples):
        db.notify("solo", time.monotonic_ns())
        time.sleep(0.003 + rng.random() * 0.002)
    t.join(60)
    lst.close()
    db.close()
    return {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}


def run_stream_async(path: str, shared: bool, n: int, rounds: int) -> dict[str, float]:
    db = alkdev_storage.open(path)
    try:
        return asyncio.run(_run_stream_async(db, shared, n, rounds))
    finally:
        db.close()


async def _run_stream_async(db: Any, shared: bool, n: int, rounds: int) -> dict[str, float]:
    streams = [db.stream(f"topic:{i}") for i in range(n)]
    subs = [StreamSubscription(s, 0, shared=shared) for s in streams]
    fan = stream_fanout_of(db)
    lat: list[float] = []
    got = asyncio.Event()

    async def consume(sub: StreamSubscription) -> None:
        async for e in sub:
            lat.append((time.monotonic_ns() - e.payload) / 1e6)
            got.set()

    tasks = [asyncio.create_task(consume(sub)) for sub in subs]
    await asyncio.sleep(0.2)
    rng = random.Random(7)
    q0 = fan.queries
    for _ in range(rounds):
        got.clear()
        rng.choice(streams).publish(time.monotonic_ns())
        await asyncio.wait_for(got.wait(), 60)
        await asyncio.sleep(0.003 + rng.random() * 0.002)
    out = {
        "queries_per_commit": (fan.queries - q0) / rounds,
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
    }
    for sub in subs:
        sub.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


def run_stream_blocking_single(path: str, shared: bool, samples: int) -> dict[str, float]:
    db = alkdev_storage.open(path)
    s = db.stream("solo")
    sub = StreamSubscription(s, 0, shared=shared)
    lat: list[float] = []

    def consume() -> None:
        for _ in range(samples):
            e = sub.get(30)
            lat.append((time.monotonic_ns() - e.payload) / 1e6)

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.1)
    rng = random.Random(5)
    for _ in range(samples):
        s.publish(time.monotonic_ns())
        time.sleep(0.003 + rng.random() * 0.002)
    t.join(60)
    sub.close()
    db.close()
    return {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}


def _spread(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Median of each figure over the runs, with the range of the runs."""
    return {
        k: {
            "median": statistics.median(r[k] for r in runs),
            "min": min(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }
        for k in runs[0]
    }


def run_streams(d: str, quick: bool) -> dict[str, Any]:
    rounds, solo, repeats = (30, 100, 3) if quick else (100, 300, 3)
    out: dict[str, Any] = {"async": {}, "blocking_single": {}}
    for mode, shared in (("per_subscriber", False), ("shared", True)):
        for n in (1, 1000):
            runs = [
                run_stream_async(f"{d}/stream-{mode}-{n}-{r}.db", shared, n, rounds)
                for r in range(repeats)
            ]
            out["async"][f"{mode}:{n}"] = _spread(runs)
        runs = [
            run_stream_blocking_single(f"{d}/stream-solo-{mode}-{r}.db", shared, solo)
            for r in range(repeats)
        ]
        out["blocking_single"][mode] = _spread(runs)
    return out


def run(quick: bool) -> dict[str, Any]:
    sizes = [1, 100, 1000]
    singles, alls, solo = (30, 3, 100) if quick else (200, 10, 500)
    repeats = 1 if quick else 3
    result: dict[str, Any] = {"async": {}, "blocking_single": {}}
    with tempfile.TemporaryDirectory() as d:
        for mode in ("per_listener", "fanout"):
            for n in sizes:
                runs = [
                    run_async(f"{d}/{mode}-{n}-{r}.db", mode, n, singles, alls)
                    for r in range(repeats)
                ]
                merged: dict[str, Any] = {}
                for label in ("one", "all"):
                    merged[label] = {
                        k: statistics.median(x[label][k] for x in runs) for k in runs[0][label]
                    }
                result["async"][f"{mode}:{n}"] = merged
            result["blocking_single"][mode] = run_blocking_single(f"{d}/solo-{mode}.db", mode, solo)
        result["stream"] = run_streams(d, quick)
    return result


def report(r: dict[str, Any]) -> str:
    lines = [
        "listener fan-out (asyncio listeners on distinct channels of one database)",
        f"{'listeners':>9} {'workload':>8} | {'per-listener q/commit':>21} {'p50 ms':>7} "
        f"{'p99 ms':>7} | {'fan-out q/commit':>16} {'p50 ms':>7} {'p99 ms':>7}",
    ]
    for key in r["async"]:
        if not key.startswith("fanout:"):
            continue
        n = key.split(":")[1]
        for label in ("one", "all"):
            old = r["async"][f"per_listener:{n}"][label]
            new = r["async"][key][label]
            lines.append(
                f"{n:>9} {label:>8} | {old['queries_per_commit']:>21.1f} {old['p50_ms']:>7.2f} "
                f"{old['p99_ms']:>7.2f} | {new['queries_per_commit']:>16.1f} "
                f"{new['p50_ms']:>7.2f} {new['p99_ms']:>7.2f}"
            )
    old, new = r["blocking_single"]["per_listener"], r["blocking_single"]["fanout"]
    lines.append(
        f"one blocking listener (thread): per-listener p50 {old['p50_ms']:.2f} ms "
        f"p99 {old['p99_ms']:.2f} ms | fan-out p50 {new['p50_ms']:.2f} ms "
        f"p99 {new['p99_ms']:.2f} ms"
    )
    st = r.get("stream")
    if st:

        def fig(x: dict[str, float], digits: int = 2) -> str:
            return f"{x['median']:.{digits}f} [{x['min']:.{digits}f}-{x['max']:.{digits}f}]"

        lines += [
            "",
            "stream fan-out (asyncio subscriptions on distinct topics, one publish per commit;"
            " median [range] of 3 runs)",
            f"{'subs':>5} | {'per-subscriber q/commit':>24} {'p50 ms':>18} {'p99 ms':>18} | "
            f"{'shared q/commit':>16} {'p50 ms':>18} {'p99 ms':>18}",
        ]
        for n in ("1", "1000"):
            old, new = st["async"][f"per_subscriber:{n}"], st["async"][f"shared:{n}"]
            lines.append(
                f"{n:>5} | {fig(old['queries_per_commit'], 1):>24} {fig(old['p50_ms']):>18} "
                f"{fig(old['p99_ms']):>18} | {fig(new['queries_per_commit'], 1):>16} "
                f"{fig(new['p50_ms']):>18} {fig(new['p99_ms']):>18}"
            )
        old, new = st["blocking_single"]["per_subscriber"], st["blocking_single"]["shared"]
        lines.append(
            f"one blocking subscriber (thread): per-subscriber p50 {fig(old['p50_ms'])} ms "
            f"p99 {fig(old['p99_ms'])} ms | shared p50 {fig(new['p50_ms'])} ms "
            f"p99 {fig(new['p99_ms'])} ms"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return _cli.main(__doc__, run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
