"""Real processes on one file: a worker killed with SIGKILL mid-job,
several producers and consumers, two scheduler runners."""

from __future__ import annotations

import collections

from primitives_helpers import (
    dead_rows,
    finish,
    kill9,
    live_count,
    read_line,
    spawn,
)


def test_sigkilled_worker_job_is_reclaimed(db, db_path) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("crash", visibility_timeout_s=1)
    jid = q.enqueue({"important": True})
    worker = spawn("crash_worker", db_path, "crash", 1)
    try:
        claimed = read_line(worker)
        assert claimed == {"claimed": jid, "payload": {"important": True}, "attempts": 1}
    finally:
        kill9(worker)
    assert worker.returncode == -9
    assert q.claim_one("survivor") is None  # the dead worker's claim is still valid
    job = q.claim("survivor", timeout=30).get(30)  # woken by the claim-expiry deadline
    assert job is not None, "the job was lost"
    assert (job.id, job.payload, job.attempts) == (jid, {"important": True}, 2)
    assert job.ack()
    assert live_count(db, "crash") == 0 and dead_rows(db, "crash") == []


def test_producers_and_consumers_at_least_once(db, db_path) -> None:  # type: ignore[no-untyped-def]
    per_producer, producers = 150, 3
    total = per_producer * producers
    slow = "7,222,401"  # held past the visibility timeout by whoever first gets them
    consumers = [spawn("consumer", db_path, "mp", f"c{i}", 3.0, slow) for i in range(3)]
    prods = [
        spawn("producer", db_path, "mp", i * per_producer, per_producer, 1 + 4 * i)
        for i in range(producers)
    ]
    for p in prods:
        assert finish(p) == [{"produced": per_producer}]
    records = [r for c in consumers for r in finish(c, timeout=120)]

    by_n = collections.defaultdict(list)
    for r in records:
        by_n[r["n"]].append(r)
    assert sorted(by_n) == list(range(total)), "a job was never processed"
    duplicates = 0
    for _n, runs in by_n.items():
        acked = [r for r in runs if r["ok"]]
        assert len(acked) == 1  # exactly one processing completed the job
        for r in runs:
            if not r["ok"]:
                # every failed ack is a claim that expired before the ack
                assert r["at"] > r["expires"], r
                duplicates += 1
        assert len(runs) - 1 == sum(1 for r in runs if not r["ok"])
    assert duplicates >= 1  # the scenario did exercise expired claims
    # the deliberately slow jobs are the (only) source of duplicates
    assert duplicates == sum(len(by_n[n]) - 1 for n in by_n)
    assert {n for n, runs in by_n.items() if len(runs) > 1} <= {7, 222, 401}
    assert live_count(db, "mp") == 0 and dead_rows(db, "mp") == []


def test_schedule_fires_once_per_tick_across_two_runners(db, db_path) -> None:  # type: ignore[no-untyped-def]
    db.scheduler().add("heartbeat", "beats", "@every 1s", payload={"beat": True})
    first = spawn("scheduler", db_path, 3.0, 3)  # leads, then stops and releases
    first_fire = read_line(first)  # it leads
    second = spawn("scheduler", db_path, 5.0, 3)  # standby, takes over
    fires = [r for r in [first_fire, *finish(first), *finish(second)] if "fire_at" in r]
    fire_ats = [f["fire_at"] for f in fires]
    assert len(fire_ats) == len(set(fire_ats)), f"a tick fired twice: {fires}"
    assert fire_ats and sorted(fire_ats) == list(range(min(fire_ats), max(fire_ats) + 1))
    assert len({f["pid"] for f in fires}) == 2  # both runners led at some point
    jobs = db.queue("beats").claim_batch("w", 100)
    assert sorted(j.id for j in jobs) == sorted(f["job_id"] for f in fires)
    assert all(j.payload == {"beat": True} for j in jobs)
