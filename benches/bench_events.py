"""Events (docs/0021, docs/0022): every figure of issue 11, side by side
with the alternatives, in one run.

1. In-process dispatch to listener. (a) asyncio: ``pubsub.publish`` to 10
   subscriptions read with ``async for``, against a bare ``asyncio.Queue``
   fan-out (``put_nowait`` to 10 queues, the broadcaster style): latency
   from publish to each consumer, p50/p99 µs, and wall time per event.
   (b) sync listeners: ``target.dispatch_event`` to 10 callbacks against a
   pyee-style emitter (``for f in handlers[name]: f(payload)``): ns per
   dispatch. Target: within 1.5x of the bare queue.
2. Composite target: the local path (dispatch to an in-process listener,
   the Honker write included in the dispatch call but not in the latency)
   against the Honker cross-process path (another process dispatches, this
   one's listener gets it), p50/p99.
3. Fan-out of one commit on one database with 10,000 ``topic:id``
   subscribers (one ephemeral target, pubsub subscriptions): commit to
   delivery with 1 and with all 10,000 channels in the commit, and the
   ``SELECT``s per commit; next to 10,000 ``db.listen`` async listeners
   (one task each: the seeds' "each topic:id gets its own listen").
4. Idle CPU (share of one core) of the process with 0 and with 10,000
   subscribers (sync subscriptions on the dispatcher thread, and 10,000
   asyncio tasks awaiting subscriptions).
5. Relay throughput to Redis (events/s): ``RedisRelay`` from a Honker
   stream against a raw redis-py pipelined ``XADD`` loop of the same
   entries (same fields, same batch size). Target: >= 0.7x of raw. Needs
   ``redis-server`` (started here on a free port) and redis-py.

Run:  python benches/bench_events.py [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import _cli

import alkdev_storage
from alkdev_storage.events import (
    CompositeEventTarget,
    DurableEventTarget,
    EphemeralEventTarget,
    Event,
    InProcessEventTarget,
    RedisRelay,
    create_pubsub,
)
from alkdev_storage.primitives.fanout import fanout_of

SUBSCRIBERS = 10


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def med(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Median of each figure over repeats, with its spread (max/min)."""
    out: dict[str, Any] = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        lo = min(vals)
        out[k] = {"median": statistics.median(vals), "spread": max(vals) / lo if lo > 0 else 1.0}
    return out


# ---------------------------------------------------------------------
# 1. in process
# ---------------------------------------------------------------------


async def _fanout_round(publish: Any, sources: list[Any], m: int) -> dict[str, float]:
    """``m`` rounds: publish one stamp, wait until every consumer got it."""
    lat: list[float] = []
    left = [0]
    done = asyncio.Event()
    clock = time.perf_counter_ns

    async def consume(src: Any) -> None:
        get = src.get if isinstance(src, asyncio.Queue) else src.__anext__
        while True:
            t0 = await get()
            lat.append((clock() - t0) / 1000)
            left[0] -= 1
            if not left[0]:
                done.set()

    tasks = [asyncio.create_task(consume(s)) for s in sources]
    await asyncio.sleep(0)
    start = clock()
    for _ in range(m):
        left[0] = len(sources)
        done.clear()
        publish(clock())
        await done.wait()
    wall = (clock() - start) / m / 1000
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99), "us_per_event": wall}


async def _async_inproc(m: int) -> dict[str, dict[str, float]]:
    queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(SUBSCRIBERS)]

    def q_publish(x: int) -> None:
        for q in queues:
            q.put_nowait(x)

    ps = create_pubsub()
    subs = [ps.subscribe("k") for _ in range(SUBSCRIBERS)]
    return {
        "asyncio_queue": await _fanout_round(q_publish, queues, m),
        "pubsub": await _fanout_round(lambda x: ps.publish("k", x), subs, m),
    }


def _sync_inproc(m: int) -> dict[str, float]:
    sink: list[Any] = []
    # The same 10 one-line callbacks on both sides (pyee passes the payload,
    # an EventTarget the event).
    handlers: dict[str, list[Any]] = {
        "k": [lambda x, a=sink.append: a(x) for _ in range(SUBSCRIBERS)]
    }

    def emit(name: str, payload: Any) -> None:  # pyee's EventEmitter.emit, reduced
        for f in list(handlers.get(name, ())):
            f(payload)

    t = InProcessEventTarget()
    for _ in range(SUBSCRIBERS):
        t.add_event_listener("k", lambda e, a=sink.append: a(e))  # 10 distinct listeners
    clock = time.perf_counter_ns
    t0 = clock()
    for i in range(m):
        emit("k", i)
    pyee = (clock() - t0) / m
    sink.clear()
    t0 = clock()
    for i in range(m):
        t.dispatch_event(Event("k", i))
    ours = (clock() - t0) / m
    return {"pyee_style_ns": pyee, "dispatch_event_ns": ours}


def bench_inproc(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 5
    m = 2000 if quick else 10_000
    a = [asyncio.run(_async_inproc(m)) for _ in range(repeats)]
    s = [_sync_inproc(m * 5) for _ in range(repeats)]
    return {
        "asyncio_queue": med([r["asyncio_queue"] for r in a]),
        "pubsub": med([r["pubsub"] for r in a]),
        "sync": med(s),
        "repeats": repeats,
        "events": m,
    }


# ---------------------------------------------------------------------
# 2. composite: local vs cross-process
# ---------------------------------------------------------------------


def child_publish(path: str, count: str, gap_ms: str) -> None:
    """Child role: a composite target dispatching stamped events."""
    db = alkdev_storage.open(path)
    c = CompositeEventTarget(EphemeralEventTarget(db))
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(int(count)):
        c.dispatch_event(Event("x", {"i": i, "t": time.monotonic_ns()}))
        time.sleep(float(gap_ms) / 1000)
    db.close()


def bench_composite(d: str, quick: bool) -> dict[str, Any]:
    n = 300 if quick else 1000
    db = alkdev_storage.open(os.path.join(d, "composite.db"))
    c = CompositeEventTarget(EphemeralEventTarget(db))
    local: list[float] = []
    remote: list[float] = []
    t_disp = [0]

    def listener(e: Event) -> None:
        if e.origin == c.origin:
            local.append((time.perf_counter_ns() - t_disp[0]) / 1000)
        else:
            remote.append((time.monotonic_ns() - e.detail["t"]) / 1000)

    c.add_event_listener("x", listener)
    for i in range(n):
        t_disp[0] = time.perf_counter_ns()
        c.dispatch_event(Event("x", {"i": i}))
    child = subprocess.Popen(
        [sys.executable, __file__, "--child-publish", db.path, str(n), "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    child.stdout.readline()
    child.stdin.write("go\n")
    child.stdin.flush()
    child.wait(120)
    deadline = time.monotonic() + 10
    while len(remote) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    c.close()
    db.close()
    return {
        "local_p50_us": pct(local, 0.5),
        "local_p99_us": pct(local, 0.99),
        "honker_cross_process_p50_us": pct(remote, 0.5),
        "honker_cross_process_p99_us": pct(remote, 0.99),
        "own_dropped": c.dropped_own,
        "events": n,
        "remote_received": len(remote),
    }


# ---------------------------------------------------------------------
# 3. one commit, 10,000 topic:id subscribers; 4. idle CPU
# ---------------------------------------------------------------------


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _idle_share(seconds: float) -> float:
    c0, w0 = _cpu(), time.monotonic()
    time.sleep(seconds)
    return (_cpu() - c0) / (time.monotonic() - w0)


def bench_fanout(d: str, quick: bool) -> dict[str, Any]:
    n = 10_000
    rounds = 20 if quick else 100
    idle_s = 1.5 if quick else 5.0
    db = alkdev_storage.open(os.path.join(d, "fanout.db"))
    out: dict[str, Any] = {"idle_cpu_no_subscribers": _idle_share(idle_s)}
    target = EphemeralEventTarget(db)
    one = create_pubsub(target).subscribe("solo")
    out["idle_cpu_1_subscriber"] = _idle_share(idle_s)
    one.close()
    arrived: dict[int, int] = {}
    lat_one: list[float] = []

    def make(i: int) -> Any:
        def listener(e: Event) -> None:
            arrived[i] = time.monotonic_ns()

        return listener

    listeners = [make(i) for i in range(n)]
    ps = create_pubsub(target)
    for i in range(n):
        target.add_event_listener(f"graph:{i}", listeners[i])
    fan = fanout_of(db)
    out["match_listeners"] = fan.listener_count()

    def wait_all(keys: list[int], t0: int) -> float:
        deadline = time.monotonic() + 30
        while any(arrived.get(k, 0) < t0 for k in keys):
            if time.monotonic() > deadline:
                raise RuntimeError("delivery timed out")
            time.sleep(0.0002)
        return (max(arrived[k] for k in keys) - t0) / 1000

    ps.publish("graph", 0, "warm")
    wait_all([0], 1)
    q0 = fan.queries
    for r in range(rounds):
        k = (r * 7919) % n
        t0 = time.monotonic_ns()
        with db.transaction() as tx:
            ps.publish("graph", k, r, tx=tx)
        lat_one.append(wait_all([k], t0))
        time.sleep(0.002)
    out["one_of_10000_p50_us"] = pct(lat_one, 0.5)
    out["one_of_10000_p99_us"] = pct(lat_one, 0.99)
    out["selects_per_commit"] = (fan.queries - q0) / rounds
    all_lat: list[float] = []
    writes: list[float] = []
    for r in range(3 if quick else 10):
        w0 = time.monotonic_ns()
        with db.transaction() as tx:
            for i in range(n):
                ps.publish("graph", i, r, tx=tx)
        t0 = time.monotonic_ns()  # committed
        writes.append((t0 - w0) / 1000)
        all_lat.append(wait_all(list(range(n)), t0))
        time.sleep(0.01)
    out["all_10000_write_ms"] = statistics.median(writes) / 1000
    out["all_10000_in_one_commit_ms"] = statistics.median(all_lat) / 1000
    out["all_10000_per_event_us"] = statistics.median(all_lat) / n
    time.sleep(0.3)
    out["idle_cpu_10000_listeners"] = _idle_share(idle_s)
    for i in range(n):
        target.remove_event_listener(f"graph:{i}", listeners[i])
    subs = [ps.subscribe("graph", i) for i in range(n)]
    out["idle_cpu_10000_subscriptions"] = _idle_share(idle_s)

    async def idle_async() -> float:
        async def wait(s: Any) -> None:
            await s.aget()

        tasks = [asyncio.create_task(wait(s)) for s in subs]
        await asyncio.sleep(0.2)
        c0, w0 = _cpu(), time.monotonic()
        await asyncio.sleep(idle_s)
        share = (_cpu() - c0) / (time.monotonic() - w0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return share

    out["idle_cpu_10000_async_subscriptions"] = asyncio.run(idle_async())
    for s in subs:
        s.close()
    out["listen_per_topic"] = asyncio.run(_listen_per_topic(db, n, rounds))
    target.close()
    db.close()
    return out


async def _listen_per_topic(db: Any, n: int, rounds: int) -> dict[str, float]:
    """The alternative: one ``db.listen`` and one task per topic:id."""
    lat: list[float] = []
    got = asyncio.Event()
    fan = fanout_of(db)

    async def consume(lst: Any) -> None:
        async for note in lst:
            lat.append((time.monotonic_ns() - note.payload) / 1000)
            got.set()

    listeners = [db.listen(f"t:{i}") for i in range(n)]
    tasks = [asyncio.create_task(consume(lst)) for lst in listeners]
    await asyncio.sleep(0.5)
    c0, w0 = _cpu(), time.monotonic()
    await asyncio.sleep(1.0)
    idle = (_cpu() - c0) / (time.monotonic() - w0)
    q0 = fan.queries
    for r in range(rounds):
        got.clear()
        async with db.atransaction() as tx:
            tx.notify(f"t:{(r * 7919) % n}", time.monotonic_ns())
        await asyncio.wait_for(got.wait(), 30)
        await asyncio.sleep(0.002)
    out = {
        "one_of_10000_p50_us": pct(lat, 0.5),
        "one_of_10000_p99_us": pct(lat, 0.99),
        "selects_per_commit": (fan.queries - q0) / rounds,
        "idle_cpu": idle,
    }
    for lst in listeners:
        lst.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


# ---------------------------------------------------------------------
# 5. relay to Redis
# ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis(d: str) -> tuple[Any, Any] | None:
    exe = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        return None
    if exe is None:
        return None
    port = _free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            d,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, client
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                return None
            time.sleep(0.02)


def bench_relay(d: str, quick: bool) -> dict[str, Any]:
    started = _redis(d)
    if started is None:
        return {"skipped": "redis-server or redis-py is not installed"}
    proc, client = started
    n = 20_000 if quick else 100_000
    batch = 500
    repeats = 3
    try:
        db = alkdev_storage.open(os.path.join(d, "relay.db"))
        producer = DurableEventTarget(db, stream="events", prefix="app:")
        with db.transaction() as tx:
            for i in range(n):
                detail = {"graph_id": f"g{i % 97}", "node": i, "op": "update"}
                producer.dispatch_event(Event(f"graph:{i % 97}", detail), tx=tx)
        rows = db.fetchall("SELECT offset, key, payload FROM _honker_stream ORDER BY offset")
        entries = [
            {"mid": f"bench/events/{o}", "src": "bench", "key": k, "data": p} for o, k, p in rows
        ]
        payload_bytes = statistics.mean(len(p) for _, _, p in rows)
        runs: list[dict[str, float]] = []
        for r in range(repeats):
            client.delete("raw")
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                pipe = client.pipeline(transaction=False)
                for f in entries[i : i + batch]:
                    pipe.xadd("raw", f)
                pipe.execute()
            raw = n / (time.perf_counter() - t0)
            client.delete("alkdev:events")
            relay = RedisRelay(db, client, source="bench", batch_size=batch, name=f"bench-{r}")
            t0 = time.perf_counter()
            relay.run(idle_timeout=0.0)
            rel = n / (time.perf_counter() - t0)
            assert client.xlen("alkdev:events") == n
            runs.append({"raw_xadd_per_s": raw, "relay_per_s": rel, "ratio": rel / raw})
        db.close()
        out = med(runs)
        out["events"] = n
        out["batch"] = batch
        out["payload_bytes"] = payload_bytes
        return out
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        return {
            "inproc": bench_inproc(quick),
            "composite": bench_composite(d, quick),
            "fanout": bench_fanout(d, quick),
            "relay": bench_relay(d, quick),
        }


def report(r: dict[str, Any]) -> str:
    ip = r["inproc"]
    q, p, s = ip["asyncio_queue"], ip["pubsub"], ip["sync"]

    def m(x: dict[str, Any], k: str) -> str:
        return f"{x[k]['median']:8.1f} (±{(x[k]['spread'] - 1) * 100:3.0f}%)"

    lines = [
        f"1. in process, {SUBSCRIBERS} subscribers, {ip['events']} events, "
        f"median of {ip['repeats']} (spread = max/min - 1)",
        f"   {'asyncio':<28} {'p50 us':>16} {'p99 us':>16} {'us/event':>16}",
        f"   {'bare asyncio.Queue fan-out':<28} {m(q, 'p50_us')} {m(q, 'p99_us')} "
        f"{m(q, 'us_per_event')}",
        f"   {'pubsub.subscribe, async for':<28} {m(p, 'p50_us')} {m(p, 'p99_us')} "
        f"{m(p, 'us_per_event')}",
        f"   ratio pubsub / asyncio.Queue: p50 "
        f"{p['p50_us']['median'] / q['p50_us']['median']:.2f}x, per event "
        f"{p['us_per_event']['median'] / q['us_per_event']['median']:.2f}x "
        "(target <= 1.5x)",
        f"   sync listeners: pyee-style emit {s['pyee_style_ns']['median']:.0f} ns, "
        f"dispatch_event {s['dispatch_event_ns']['median']:.0f} ns "
        f"({s['dispatch_event_ns']['median'] / s['pyee_style_ns']['median']:.2f}x)",
    ]
    c = r["composite"]
    lines += [
        f"2. composite target, {c['events']} events: local p50 {c['local_p50_us']:.1f} us "
        f"p99 {c['local_p99_us']:.1f} us | Honker cross-process p50 "
        f"{c['honker_cross_process_p50_us'] / 1000:.2f} ms p99 "
        f"{c['honker_cross_process_p99_us'] / 1000:.2f} ms "
        f"({c['remote_received']} received; own events dropped: {c['own_dropped']})",
    ]
    f = r["fanout"]
    lp = f["listen_per_topic"]
    lines += [
        f"3. one commit, 10,000 topic:id subscribers on one database "
        f"({f['match_listeners']} fan-out listener):",
        f"   1 channel in the commit: p50 {f['one_of_10000_p50_us']:.0f} us, p99 "
        f"{f['one_of_10000_p99_us']:.0f} us, {f['selects_per_commit']:.1f} SELECTs/commit | "
        f"10,000 db.listen tasks: p50 {lp['one_of_10000_p50_us']:.0f} us, p99 "
        f"{lp['one_of_10000_p99_us']:.0f} us, {lp['selects_per_commit']:.1f} SELECTs/commit",
        f"   all 10,000 channels in one commit: written in {f['all_10000_write_ms']:.1f} ms; "
        f"commit to the last listener {f['all_10000_in_one_commit_ms']:.1f} ms "
        f"({f['all_10000_per_event_us']:.1f} us/event)",
        f"4. idle CPU (share of one core): no subscribers {f['idle_cpu_no_subscribers'] * 100:.2f}%"
        f" | 1 subscriber {f['idle_cpu_1_subscriber'] * 100:.2f}%"
        f" | 10,000 listeners {f['idle_cpu_10000_listeners'] * 100:.2f}%"
        f" | 10,000 subscriptions {f['idle_cpu_10000_subscriptions'] * 100:.2f}%"
        f" | 10,000 async subscriptions {f['idle_cpu_10000_async_subscriptions'] * 100:.2f}%"
        f" | 10,000 db.listen tasks {lp['idle_cpu'] * 100:.2f}%",
    ]
    rl = r["relay"]
    if "skipped" in rl:
        lines.append(f"5. relay to Redis: skipped ({rl['skipped']})")
    else:
        lines.append(
            f"5. relay to Redis, {rl['events']} events of ~{rl['payload_bytes']:.0f} B, batches "
            f"of {rl['batch']}: raw pipelined XADD {rl['raw_xadd_per_s']['median']:,.0f}/s "
            f"(±{(rl['raw_xadd_per_s']['spread'] - 1) * 100:.0f}%), relay "
            f"{rl['relay_per_s']['median']:,.0f}/s "
            f"(±{(rl['relay_per_s']['spread'] - 1) * 100:.0f}%)"
            f", ratio {rl['ratio']['median']:.2f}x (target >= 0.7x)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-publish":
        child_publish(*sys.argv[2:])
        raise SystemExit(0)
    raise SystemExit(_cli.main(__doc__, run, report))
