"""Queues: every method, Job objects, claim iterators (sync and async),
retries and dead letters, expiry, results, transactions, validation."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest
from primitives_helpers import dead_rows, live_count

from alkdev_storage.primitives import ClaimIterator, Job, Queue


def test_enqueue_claim_ack(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("q")
    assert isinstance(q, Queue) and db.queue("q") is q
    assert (q.name, q.visibility_timeout_s, q.max_attempts) == ("q", 300, 3)
    jid = q.enqueue({"to": "alice"})
    assert isinstance(jid, int)
    job = q.claim_one("w1")
    assert isinstance(job, Job)
    assert (job.id, job.queue_name, job.worker_id, job.attempts) == (jid, "q", "w1", 1)
    assert job.state == "processing" and job.max_attempts == 3
    assert job.claim_expires_at >= time.time() + 290
    assert job._payload_raw == '{"to":"alice"}' and job.payload == {"to": "alice"}
    assert q.claim_one("w2") is None
    assert job.ack() is True
    assert job.ack() is False
    assert live_count(db, "q") == 0
    assert "Job(id=" in repr(job)


def test_claim_batch_and_ack_batch_priority_order(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("b")
    low = [q.enqueue(i) for i in range(3)]
    high = q.enqueue("urgent", priority=10)
    assert q.claim_batch("w", 0) == []
    top = q.claim_batch("w", 1)
    assert [j.id for j in top] == [high]  # priority first
    jobs = top + q.claim_batch("w", 10)
    assert sorted(j.id for j in jobs) == sorted([high, *low])
    assert q.ack_batch([], "w") == 0
    assert q.ack_batch([j.id for j in jobs[:2]], "someone-else") == 0
    assert q.ack_batch([j.id for j in jobs], "w") == 4
    assert q.claim_batch("w", 10) == []


def test_delay_and_run_at(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("later")
    q.enqueue("delayed", delay=60)
    q.enqueue("scheduled", run_at=int(time.time()) + 120)
    q.enqueue("both", run_at=int(time.time()) + 3600, delay=0)  # delay wins
    jobs = q.claim_batch("w", 10)
    assert [j.payload for j in jobs] == ["both"]
    assert 50 < q._next_claim_at() - time.time() < 70


def test_retry_then_dead_after_max_attempts(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("r", max_attempts=2)
    jid = q.enqueue({"x": 1})
    job = q.claim_one("w")
    assert job.retry(delay_s=0, error="first") is True
    assert job.retry(delay_s=0, error="again") is False  # claim gone
    job = q.claim_one("w")
    assert job.attempts == 2
    assert q.retry(job.id, "w", 0, "last") is True  # attempts exhausted -> dead
    assert q.claim_one("w") is None
    assert dead_rows(db, "r") == [(jid, '{"x":1}', "last")]
    assert db.query("SELECT state FROM _honker_jobs WHERE id = ?", (jid,)) == [{"state": "dead"}]


def test_fail_heartbeat_cancel_get_job(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("f", visibility_timeout_s=30)
    a = q.enqueue("a")
    b = q.enqueue("b")
    c = q.enqueue("c")
    info = q.get_job(a)
    assert info["state"] == "pending" and info["payload"] == '"a"' and info["queue"] == "f"
    job_a = q.claim_one("w")
    assert job_a.heartbeat() is True
    assert job_a.heartbeat(extend_s=600) is True
    assert q.get_job(a)["claim_expires_at"] >= int(time.time()) + 590
    assert q.heartbeat(a, "not-me") is False
    assert job_a.fail("broken") is True
    assert q.get_job(a) is None
    assert dead_rows(db, "f") == [(a, '"a"', "broken")]
    job_b = q.claim_one("w")
    assert q.cancel(job_b.id) is True  # processing job cancelled
    assert job_b.ack() is False
    assert q.cancel(c) is True and q.cancel(c) is False
    assert q.get_job(b) is None and q.get_job(999) is None


def test_expires_and_sweep(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("e")
    jid = q.enqueue("short", expires=1)
    keep = q.enqueue("keep")
    db.execute("UPDATE _honker_live SET expires_at = unixepoch() - 1 WHERE id = ?", (jid,))
    assert [j.id for j in q.claim_batch("w", 10)] == [keep]
    assert q.sweep_expired() == 1
    assert dead_rows(db, "e") == [(jid, '"short"', "expired")]


def test_expired_claim_is_reclaimed_by_another_worker(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("vt", visibility_timeout_s=1)
    jid = q.enqueue({"n": 1})
    first = q.claim_one("w1")
    assert q.claim_one("w2") is None
    job = q.claim("w2", timeout=5).get(5)  # woken by the claim-expiry deadline
    assert job is not None and job.id == jid and job.attempts == 2
    assert first.ack() is False and job.ack() is True


def test_exhausted_claim_goes_dead_on_reclaim(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("ex", visibility_timeout_s=1, max_attempts=1)
    jid = q.enqueue("once")
    assert q.claim_one("w1").attempts == 1
    db.execute("UPDATE _honker_live SET claim_expires_at = unixepoch() - 5 WHERE id = ?", (jid,))
    assert q.claim_one("w2") is None
    assert dead_rows(db, "ex") == [(jid, '"once"', "max attempts exceeded")]


def test_results_sync_and_async(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("res")
    assert q.get_result(1) == (False, None)
    q.save_result(1, {"ok": True})
    q.save_result(2, None, ttl=60)
    assert q.get_result(1) == (True, {"ok": True})
    assert q.get_result(2) == (True, None)
    q.save_result(3, "gone", ttl=1)
    db.execute("UPDATE _honker_results SET expires_at = unixepoch() - 1 WHERE job_id = 3")
    assert q.get_result(3) == (False, None)
    assert q.sweep_results() == 1
    with pytest.raises(TypeError):
        q.save_result(4, object())

    threading.Timer(0.05, lambda: q.save_result(5, [1, 2])).start()
    assert q.wait_result_blocking(5, timeout=5) == [1, 2]
    with pytest.raises(TimeoutError):
        q.wait_result_blocking(6, timeout=0.05)

    async def main() -> None:
        async def later() -> None:
            await asyncio.sleep(0.02)
            q.save_result(7, "seven")

        t = asyncio.create_task(later())
        assert await q.wait_result(7, timeout=5) == "seven"
        await t
        with pytest.raises(asyncio.TimeoutError):
            await q.wait_result(8, timeout=0.05)

    asyncio.run(main())


def test_transactions_roll_back_jobs_and_results(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("tx")
    with pytest.raises(KeyError):
        with db.transaction() as tx:
            q.enqueue({"a": 1}, tx=tx)
            q.save_result(42, "r", tx=tx)
            raise KeyError("abort")
    assert live_count(db, "tx") == 0
    assert q.get_result(42) == (False, None)
    with db.transaction() as tx:
        ids = [q.enqueue(i, tx=tx) for i in range(3)]
    assert len(set(ids)) == 3 and live_count(db, "tx") == 3
    with pytest.raises(TypeError, match="transaction"):
        q.enqueue(1, tx="nope")


def test_validation(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        db.queue("")
    with pytest.raises(TypeError):
        db.queue(3)
    with pytest.raises(ValueError):
        db.queue("x", visibility_timeout_s=0)
    with pytest.raises(ValueError):
        db.queue("x", max_attempts=0)
    q = db.queue("valid")
    with pytest.raises(TypeError, match="JSON"):
        q.enqueue({"when": object()})
    with pytest.raises(TypeError):
        q.enqueue(float("inf"))
    with pytest.raises(TypeError, match="priority"):
        q.enqueue(1, priority="high")
    with pytest.raises(TypeError, match="delay"):
        q.enqueue(1, delay=[1])
    with pytest.raises(ValueError):
        q.claim_batch("", 1)
    with pytest.raises(TypeError):
        q.claim(None)
    assert live_count(db, "valid") == 0


def test_claim_iterator_sync(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("it")
    ids = [q.enqueue(i) for i in range(20)]
    it = q.claim("w", timeout=0.2)
    assert isinstance(it, ClaimIterator)
    seen = []
    for job in it:
        seen.append(job.id)
        assert job.ack() is True
    assert seen == ids
    assert it.buffered == 0
    assert live_count(db, "it") == 0

    def produce() -> None:
        time.sleep(0.05)
        q.enqueue("late")

    t = threading.Thread(target=produce)
    t.start()
    job = q.claim("w").get(5)
    t.join()
    assert job is not None and job.payload == "late" and job.ack()


def test_claim_iterator_async(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("ait")

    async def main() -> list[int]:
        async def produce() -> None:
            for i in range(10):
                await asyncio.sleep(0.005)
                q.enqueue(i)

        task = asyncio.create_task(produce())
        got = []
        async with q.claim("w", timeout=1) as it:
            async for job in it:
                got.append(job.payload)
                job.ack()
                if len(got) == 10:
                    break
        await task
        return got

    assert asyncio.run(main()) == list(range(10))


def test_claim_batches_and_gives_back_unyielded_jobs(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("give", max_attempts=5)
    for i in range(40):
        q.enqueue(i)
    it = q.claim("w", batch_size=16)
    first = [next(it) for _ in range(4)]
    assert it.buffered > 0  # claimed under the hood
    claimed = db.fetchone("SELECT COUNT(*) FROM _honker_live WHERE state = 'processing'")[0]
    assert claimed == 4 + it.buffered
    it.close()
    # Only the 4 handed-out jobs stay claimed; the others are pending again
    # with their attempt given back.
    rows = db.fetchall("SELECT state, attempts FROM _honker_live ORDER BY id")
    assert rows[:4] == [("processing", 1)] * 4
    assert set(rows[4:]) == {("pending", 0)}
    assert q.ack_batch([j.id for j in first], "w") == 4


def test_dropped_iterator_claims_return_on_next_claim(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("orphan")
    for i in range(10):
        q.enqueue(i)
    it = q.claim("w1", batch_size=8)
    next(it)
    next(it)  # second claim is a batch
    n_buffered = it.buffered
    assert n_buffered > 0
    del it
    gc.collect()
    jobs = q.claim_batch("w2", 100)
    assert len(jobs) == 10 - 2
    assert all(j.attempts == 1 for j in jobs)


def test_stale_buffered_claim_is_never_yielded(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("stale", visibility_timeout_s=1)
    for i in range(4):
        q.enqueue(i)
    it = q.claim("w", batch_size=4, timeout=0)
    next(it)
    next(it)
    assert it.buffered
    db.execute(
        "UPDATE _honker_live SET claim_expires_at = unixepoch() - 2 WHERE state = 'processing'"
    )
    for job in it._buf:
        job.claim_expires_at -= 5
    stale_ids = [j.id for j in it._buf]
    rest = sorted(list(it), key=lambda j: j.id)
    # Every job comes back through a fresh claim (the 2 handed-out ones
    # with attempts 2); the stale buffered reservation is never yielded and
    # never spent an attempt, so it comes back with attempts 1 (docs/0010).
    assert [j.attempts for j in rest] == [2, 2, 1, 1]
    assert all(j.attempts == 1 for j in rest if j.id in stale_ids)


def test_close_database_ends_claim_iterators(db_path) -> None:  # type: ignore[no-untyped-def]
    import alkdev_storage

    db = alkdev_storage.open(db_path)
    q = db.queue("closing")
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(list(q.claim("w"))))
    t.start()

    async def main() -> list[object]:
        task = asyncio.create_task(_collect(q.claim("w2")))
        await asyncio.sleep(0.1)
        db.close()
        return await asyncio.wait_for(task, 5)

    assert asyncio.run(main()) == []
    t.join(5)
    assert out == [[]]


async def _collect(it):  # type: ignore[no-untyped-def]
    return [j async for j in it]


def test_rolled_back_transaction_writes_nothing_anywhere(db) -> None:  # type: ignore[no-untyped-def]
    """A business row, a job, a stream event and a notification written in
    one transaction: all or nothing, including inside a savepoint."""
    db.executescript("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    q, s = db.queue("outbox-q"), db.stream("outbox-s")
    listener = db.listen("orders")
    events = s.subscribe(from_offset=0)
    jobs = q.claim("w")

    def write_all(tx, item):  # type: ignore[no-untyped-def]
        tx.execute("INSERT INTO orders (item) VALUES (?)", (item,))
        q.enqueue({"item": item}, tx=tx)
        s.publish({"item": item}, tx=tx)
        tx.notify("orders", {"item": item})

    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            write_all(tx, "lost")
            raise RuntimeError("abort")
    with db.transaction() as tx:
        with pytest.raises(ValueError):
            with tx.savepoint():
                write_all(tx, "lost-in-savepoint")
                raise ValueError("inner abort")
        write_all(tx, "kept")

    async def main() -> None:
        assert (await listener.aget(1)).payload == {"item": "kept"}
        assert (await events.aget(1)).payload == {"item": "kept"}
        assert (await jobs.aget(1)).payload == {"item": "kept"}
        assert await listener.aget(0.05) is None
        assert await events.aget(0) is None
        assert await jobs.aget(0) is None

    asyncio.run(main())
    assert db.fetchall("SELECT item FROM orders") == [("kept",)]
    jobs.close()
