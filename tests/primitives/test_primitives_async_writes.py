"""Writes from async code wait off the event loop (primitives/aio.py).

Each test holds the writer (in another thread, or the file's write lock
in another process) while an async write waits, and counts how often a
ticker task ran meanwhile: a blocked loop runs it (almost) never. The
control case — the blocking call from the loop — proves the probe can
tell the difference. No timing thresholds: only "the loop kept running".
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import alkdev_storage

HOLD_S = 0.6


def _hold_writer(db: Any, held: threading.Event, release: threading.Event) -> threading.Thread:
    def run() -> None:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS hold (x)")
            held.set()
            release.wait(10)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert held.wait(5)
    return t


def _ticks_during(db: Any, make: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
    """Run ``make()`` while another thread holds the writer for HOLD_S;
    return how many times a 5 ms ticker ran meanwhile, and the result."""
    held, release = threading.Event(), threading.Event()
    holder = _hold_writer(db, held, release)
    threading.Timer(HOLD_S, release.set).start()

    out = asyncio.run(_count_ticks(make))
    holder.join(5)
    return out


async def _count_ticks(make: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
    """Await ``make()`` while a 5 ms ticker task runs; (ticks, result)."""
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(0.005)
            ticks += 1

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    result = await make()
    done = True
    await t
    return ticks, result


async def _blocking(fn: Callable[[], Any]) -> Any:
    return fn()  # the blocking call, made from the loop (the control)


def test_control_a_blocking_write_freezes_the_loop(db) -> None:  # type: ignore[no-untyped-def]
    ticks, _ = _ticks_during(db, lambda: _blocking(lambda: db.notify("c", 1)))
    assert ticks <= 3  # the probe sees a frozen loop


def test_anotify_waits_off_the_loop(db) -> None:  # type: ignore[no-untyped-def]
    ticks, nid = _ticks_during(db, lambda: db.anotify("c", {"a": 1}))
    assert ticks >= 10, ticks
    assert db.fetchone("SELECT payload FROM _honker_notifications WHERE id = ?", (nid,)) == (
        '{"a":1}',
    )


def test_aenqueue_apublish_and_job_methods_wait_off_the_loop(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("aq")
    ticks, jid = _ticks_during(db, lambda: q.aenqueue({"n": 1}, priority=3))
    assert ticks >= 10
    assert q.get_job(jid)["priority"] == 3
    ticks, off = _ticks_during(db, lambda: db.stream("s").apublish({"e": 1}, key="k"))
    assert ticks >= 10
    assert [(e.offset, e.key, e.payload) for e in db.stream("s").read()] == [(off, "k", {"e": 1})]
    job = q.claim_one("w")
    assert job is not None
    ticks, ok = _ticks_during(db, job.aack)
    assert ticks >= 10 and ok is True
    assert q.get_job(jid) is None


def test_job_async_retry_fail_heartbeat(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("rq", max_attempts=5)
    a, b = q.enqueue(1), q.enqueue(2)

    async def main() -> None:
        ja = q.claim_one("w")
        jb = q.claim_one("w")
        assert ja is not None and jb is not None
        assert await ja.aheartbeat(100)
        assert await ja.aretry(delay_s=0, error="again")
        assert await jb.afail("broken")
        assert not await jb.afail("twice")  # no longer ours

    asyncio.run(main())
    assert q.get_job(a)["state"] == "pending"
    assert [r["id"] for r in q.dead()] == [b]


def test_give_back_refunds_the_attempt(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("gb", max_attempts=2)
    jid = q.enqueue("x", delay=3600)
    db.execute("UPDATE _honker_live SET run_at = unixepoch() WHERE id = ?", (jid,))
    job = q.claim_one("w")
    assert job is not None and job.attempts == 1
    assert asyncio.run(job.agive_back()) is True
    row = q.get_job(jid)
    assert (row["state"], row["attempts"], row["worker_id"]) == ("pending", 0, None)
    assert job.give_back() is False  # the claim is gone
    again = q.claim_one("w2")
    assert again is not None and again.attempts == 1  # not 2: the give-back cost nothing
    assert again.ack()
    assert again.give_back() is False  # an acked job cannot be given back


def test_atransaction_commits_rolls_back_and_waits_off_the_loop(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE t (x INTEGER)")
    q = db.queue("txq")

    async def commit() -> int:
        async with db.atransaction() as tx:
            tx.execute("INSERT INTO t VALUES (1)")
            return q.enqueue({"with": "row"}, tx=tx)

    ticks, jid = _ticks_during(db, commit)
    assert ticks >= 10
    assert db.fetchall("SELECT x FROM t") == [(1,)]
    assert q.get_job(jid) is not None

    async def fail() -> None:
        async with db.atransaction() as tx:
            tx.execute("INSERT INTO t VALUES (2)")
            await q.aenqueue({"joined": True}, tx=tx)
            tx.notify("c", "gone")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(fail())
    assert db.fetchall("SELECT x FROM t") == [(1,)]
    assert live_jobs(db, "txq") == 1
    assert db.fetchone("SELECT count(*) FROM _honker_notifications WHERE channel = 'c'") == (0,)


def live_jobs(db: Any, queue: str) -> int:
    row = db.fetchone("SELECT count(*) FROM _honker_live WHERE queue = ?", (queue,))
    return int(row[0])


def test_cancelled_while_waiting_to_begin_leaks_no_transaction(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE t (x INTEGER)")
    held, release = threading.Event(), threading.Event()
    holder = _hold_writer(db, held, release)

    async def main() -> None:
        async def writer() -> None:
            async with db.atransaction() as tx:
                tx.execute("INSERT INTO t VALUES (1)")

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    release.set()
    holder.join(5)
    # The BEGIN that completed after the cancellation was rolled back: the
    # writer is free again and nothing was written.
    deadline = time.monotonic() + 5
    while True:
        try:
            db.execute("INSERT INTO t VALUES (2)")
            break
        except alkdev_storage.ProgrammingError:
            raise
        except alkdev_storage.OperationalError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert db.fetchall("SELECT x FROM t") == [(2,)]


def test_async_lock_and_claim_wait_off_the_loop(db) -> None:  # type: ignore[no-untyped-def]
    async def lock() -> bool:
        async with db.lock("L", ttl=30) as lk:
            return bool(lk.acquired)

    ticks, acquired = _ticks_during(db, lock)
    assert ticks >= 10 and acquired
    q = db.queue("cq")
    q.enqueue("j")

    async def claim() -> Any:
        it = q.claim("w", timeout=5)
        try:
            return await it.__anext__()
        finally:
            it.close()

    ticks, job = _ticks_during(db, claim)
    assert ticks >= 10
    assert job.payload == "j" and job.ack()


_HOLD_LOCK_CHILD = """
import sys, time, alkdev_storage
db = alkdev_storage.open(sys.argv[1])
with db.transaction() as tx:
    tx.execute("CREATE TABLE IF NOT EXISTS other (x)")
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
db.close()
"""


def test_waits_for_another_processs_write_lock_off_the_loop(db, db_path) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("xq")
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK_CHILD, str(db_path), str(HOLD_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"

        ticks, jid = asyncio.run(_count_ticks(lambda: q.aenqueue({"p": 1})))
    finally:
        child.wait(10)
    assert child.returncode == 0
    assert ticks >= 10
    assert q.get_job(jid) is not None


def test_try_begin_never_waits(db, db_path) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE t (x INTEGER)")
    tx = db.try_begin()
    assert tx is not None and tx.active
    assert db.try_begin() is None  # this thread holds the slot: None, not a deadlock
    tx.execute("INSERT INTO t VALUES (1)")
    tx.commit()
    assert db.fetchall("SELECT x FROM t") == [(1,)]
    # Another thread holds the writer: None at once.
    held, release = threading.Event(), threading.Event()
    holder = _hold_writer(db, held, release)
    assert db.try_begin() is None
    release.set()
    holder.join(5)
    # Another process holds the file's write lock (for far longer than the
    # busy timeout would wait): None, not an error after waiting.
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK_CHILD, str(db_path), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert db.try_begin() is None
    finally:
        child.kill()
        child.wait(10)
    tx = db.try_begin()
    assert tx is not None
    tx.execute("INSERT INTO t VALUES (2)")
    tx.rollback()
    assert db.fetchall("SELECT x FROM t") == [(1,)]


def test_try_begin_leaves_the_auto_checkpoint_to_a_waiting_thread(db, db_path) -> None:  # type: ignore[no-untyped-def]
    """A commit that would run the automatic WAL checkpoint (10,000 frames:
    page copies and an fsync) is not made on the event loop: try_begin()
    declines near the threshold, the write goes to the pool, checkpoints
    there, and the fast path resumes."""
    q = db.queue("ckpt")
    page = db.fetchone("PRAGMA page_size")[0]
    declined_at = None
    for i in range(20_000):
        tx = db.try_begin()
        if tx is None:
            declined_at = i
            break
        q.enqueue({"i": i, "pad": "x" * 200}, tx=tx)
        tx.commit()
    assert declined_at is not None, "try_begin never declined"
    wal_frames = db_path.with_name(db_path.name + "-wal").stat().st_size // (page + 24)
    assert wal_frames >= 10_000 - 256 - 64  # declined only near the threshold
    # Writes near the threshold go through the pool (one of them runs the
    # checkpoint there); then the WAL restarts and the fast path resumes.
    async def until_fast() -> int:
        for n in range(2_000):
            tx = db.try_begin()
            if tx is not None:
                tx.rollback()
                return n
            await q.aenqueue({"via": "pool", "pad": "x" * 200})
        raise AssertionError("the fast path never resumed")

    slow_writes = asyncio.run(until_fast())
    assert 1 <= slow_writes < 2_000
