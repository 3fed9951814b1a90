"""Task decorators, workers (async and blocking), run_task, and the outbox."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from primitives_helpers import dead_rows, live_count

from alkdev_storage.primitives import (
    Outbox,
    Retryable,
    TaskResult,
    registry,
    run_task,
    run_task_blocking,
    run_workers,
)


@pytest.fixture(autouse=True)
def clean_registry():  # type: ignore[no-untyped-def]
    before = set(registry().names())
    yield
    for name in set(registry().names()) - before:
        registry().unregister(name)


def test_task_enqueues_envelope_and_worker_runs_it(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("tasks")

    @q.task()
    def add(a: int, b: int = 0) -> int:
        return a + b

    assert add.name == f"{__name__}.test_task_enqueues_envelope_and_worker_runs_it.<locals>.add"
    assert add.call_local(1, b=2) == 3
    r = add(2, b=3)
    assert isinstance(r, TaskResult) and isinstance(r.id, int)
    raw = q.get_job(r.id)["payload"]
    assert json.loads(raw) == {
        "__honker_task__": {"task": add.name, "args": [2], "kwargs": {"b": 3}}
    }

    async def main() -> None:
        stop = asyncio.Event()
        workers = asyncio.create_task(
            run_workers(db, queue="tasks", concurrency=2, stop_event=stop)
        )
        assert await r.aget(timeout=10) == 5
        r2 = add(10)
        assert await r2.aget(timeout=10) == 10
        stop.set()
        await asyncio.wait_for(workers, 10)

    asyncio.run(main())
    assert r.get(timeout=1) == 5
    assert live_count(db, "tasks") == 0


def test_db_task_shortcut_async_task_and_blocking_worker(db) -> None:  # type: ignore[no-untyped-def]
    @db.task(queue="mixed", name="mixed.double")
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    @db.task(queue="mixed", name="mixed.shout", store_result=False)
    def shout(s: str) -> str:
        return s.upper()

    r1 = double(21)
    r2 = shout("hi")
    assert db.run_workers_blocking(queue="mixed", timeout=0.2) == 2
    assert r1.get(timeout=1) == 42
    with pytest.raises(TimeoutError):
        r2.get(timeout=0.05)  # store_result=False
    with pytest.raises(ValueError, match="duplicate task name"):

        @db.task(queue="mixed", name="mixed.double")
        def other(x: int) -> int:
            return x


def test_task_retries_then_dead_and_retryable(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("flaky", max_attempts=5)
    calls = {"n": 0}

    @q.task(name="flaky.always", retries=2, retry_delay_s=0)
    def always_fails() -> None:
        calls["n"] += 1
        raise ValueError("nope")

    @q.task(name="flaky.retryable")
    def asks_retry() -> None:
        raise Retryable("later please", delay_s=3600)

    r = always_fails()
    r2 = asks_retry()
    db.run_workers_blocking(queue="flaky", timeout=0.3)
    assert calls["n"] == 2
    dead = dead_rows(db, "flaky")
    assert [d[0] for d in dead] == [r.id] and "ValueError: nope" in dead[0][2]
    job = q.get_job(r2.id)
    assert job["state"] == "pending" and job["run_at"] > job["created_at"] + 3000


def test_unknown_and_raw_jobs_go_dead(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("strict")

    @q.task(name="strict.known")
    def known() -> int:
        return 1

    raw = q.enqueue({"plain": True})
    unknown = q.enqueue({"__honker_task__": {"task": "nobody.home", "args": [], "kwargs": {}}})
    db.run_workers_blocking(queue="strict", timeout=0.2)
    dead = {d[0]: d[2] for d in dead_rows(db, "strict")}
    assert "raw" in dead[raw]
    assert "unknown task: 'nobody.home'" in dead[unknown]


def test_periodic_task_registers_schedule(db) -> None:  # type: ignore[no-untyped-def]
    from alkdev_storage.primitives import every_s

    @db.periodic_task(every_s(60), queue="cron", name="cron.job")
    def job() -> str:
        return "ran"

    rows = db.scheduler().list()
    assert [r["name"] for r in rows] == ["cron.job"]
    assert json.loads(rows[0]["payload"]) == {
        "__honker_task__": {"task": "cron.job", "args": [], "kwargs": {}}
    }
    fires = db.scheduler().tick(now=rows[0]["next_fire_at"])
    assert len(fires) == 1
    assert db.run_workers_blocking(queue="cron", timeout=0.2) == 1


def test_run_task_and_blocking_variant(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("rt", max_attempts=5)
    a = q.enqueue({"v": 1})
    b = q.enqueue({"v": 2})
    c = q.enqueue({"v": 3})

    async def main() -> None:
        job = q.claim_one("w")
        await run_task(job, lambda p: p["v"] * 10, save_result=True)
        job = q.claim_one("w")

        async def boom(p: object) -> None:
            raise RuntimeError("x")

        await run_task(job, boom, retries=1)
        job = q.claim_one("w")

        async def slow(p: object) -> None:
            await asyncio.sleep(5)

        await run_task(job, slow, timeout=0.05, retry_delay=100, backoff=2)

    asyncio.run(main())
    assert q.get_result(a) == (True, 10)
    assert [d[0] for d in dead_rows(db, "rt")] == [b]
    job_c = q.get_job(c)
    assert job_c["state"] == "pending" and job_c["run_at"] >= job_c["created_at"] + 100
    d = q.enqueue({"v": 4})
    run_task_blocking(q.claim_one("w"), lambda p: p["v"], save_result=True, timeout=5)
    assert q.get_result(d) == (True, 4)


def test_outbox(db) -> None:  # type: ignore[no-untyped-def]
    delivered: list[object] = []
    attempts = {"n": 0}

    def deliver(payload: object) -> None:
        attempts["n"] += 1
        if payload == "flaky" and attempts["n"] == 1:
            raise ConnectionError("down")
        delivered.append(payload)

    ob = db.outbox("webhooks", deliver, base_backoff_s=0)
    assert isinstance(ob, Outbox) and db.outbox("webhooks", deliver) is ob
    assert ob.queue.name == "_outbox:webhooks" and ob.queue.max_attempts == 5
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            ob.enqueue("lost", tx=tx)
            raise RuntimeError("rollback")
    with db.transaction() as tx:
        ob.enqueue("flaky", tx=tx)
        ob.enqueue("fine", tx=tx)
    assert ob.run_worker_blocking("ob-1", timeout=0.3) == 2
    assert sorted(delivered) == ["fine", "flaky"]

    async def main() -> None:
        task = asyncio.create_task(ob.run_worker("ob-2"))
        ob.enqueue({"async": True})
        for _ in range(100):
            await asyncio.sleep(0.02)
            if {"async": True} in delivered:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert {"async": True} in delivered
    with pytest.raises(TypeError):
        db.outbox("bad", delivery=None)


def test_worker_threads_share_a_queue(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("threads")
    with db.transaction() as tx:
        for i in range(200):
            q.enqueue(i, tx=tx)
    seen: list[int] = []
    lock = threading.Lock()

    def work(wid: str) -> None:
        for job in q.claim(wid, timeout=0.3):
            with lock:
                seen.append(job.payload)
            assert job.ack()

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(seen) == list(range(200))
