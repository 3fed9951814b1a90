"""Public dead-letter API (dead / requeue_dead / purge_dead), queue stats,
and result waiters on a dead task raising TaskFailed."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parity_helpers import file_oracle

import alkdev_storage
from alkdev_storage.errors import TaskFailed


def _kill(q, n: int, error: str = "boom") -> list[int]:  # type: ignore[no-untyped-def]
    """Enqueue ``n`` jobs and fail them into the dead table."""
    ids = [q.enqueue({"i": i}, priority=i) for i in range(n)]
    for _ in ids:
        job = q.claim_one("w")
        assert job is not None and job.fail(error)
    return ids


def test_dead_lists_decoded_jobs_with_paging(db, db_path) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("dl")
    other = db.queue("other")
    ids = _kill(q, 5, "kaput")
    _kill(other, 2)
    dead = q.dead()
    assert [d["id"] for d in dead] == sorted(ids)
    first = dead[0]
    assert first["payload"] == {"i": 0} and first["last_error"] == "kaput"
    assert first["attempts"] == 1 and first["max_attempts"] == 3 and first["queue"] == "dl"
    assert {"priority", "run_at", "created_at", "died_at"} <= set(first)
    assert [d["id"] for d in q.dead(limit=2, offset=1)] == sorted(ids)[1:3]
    assert q.dead(limit=0) == []
    # Oracle: stdlib sqlite3 (another process) sees the same rows.
    rows = file_oracle(db_path, "SELECT id FROM _honker_dead WHERE queue = 'dl' ORDER BY id")
    assert [r[0] for r in rows] == [d["id"] for d in dead]
    with pytest.raises(ValueError, match="limit"):
        q.dead(limit=-1)
    with pytest.raises(TypeError, match="offset"):
        q.dead(offset=1.5)


def test_requeue_dead_resets_attempts_and_runs_again(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("rq", max_attempts=2)
    ids = _kill(q, 3)
    assert q.requeue_dead(ids[0]) == [ids[0]]
    assert q.requeue_dead([ids[0], 999_999]) == []  # no longer dead / unknown: ignored
    assert len(q.dead()) == 2
    job = q.claim_one("w2")
    assert job is not None and job.id == ids[0] and job.attempts == 1
    assert job.payload == {"i": 0}
    assert job.ack()
    assert sorted(q.requeue_dead(all=True)) == sorted(ids[1:])
    assert q.dead() == [] and q.stats()["pending"] == 2
    # another queue's dead jobs are not touched
    other = db.queue("rq-other")
    (oid,) = _kill(other, 1)
    assert q.requeue_dead(oid) == [] and [d["id"] for d in other.dead()] == [oid]


def test_requeue_wakes_a_blocked_claim(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("wake")
    (jid,) = _kill(q, 1)

    async def main() -> int:
        async def consume() -> int:
            async for job in q.claim("w", idle_poll_s=None):
                job.ack()
                return int(job.id)
            raise AssertionError("claim ended")

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        q.requeue_dead(jid)
        return await asyncio.wait_for(task, 5)

    assert asyncio.run(main()) == jid


def test_purge_dead(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("pg")
    ids = _kill(q, 4)
    assert q.purge_dead(ids[0]) == 1
    assert q.purge_dead(all=True, older_than_s=3600) == 0  # all died just now
    db.execute("UPDATE _honker_dead SET died_at = died_at - 7200 WHERE id = ?", (ids[1],))
    assert q.purge_dead(all=True, older_than_s=3600) == 1
    assert q.purge_dead(all=True) == 2 and q.dead() == []
    with pytest.raises(ValueError, match="all=True"):
        q.purge_dead()
    with pytest.raises(ValueError, match="not both"):
        q.purge_dead(1, all=True)
    with pytest.raises(TypeError, match="job_ids"):
        q.purge_dead("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        q.requeue_dead([1.0])  # type: ignore[list-item]


def test_stats_by_state(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("st")
    empty = q.stats()
    assert empty == {
        "pending": 0,
        "scheduled": 0,
        "processing": 0,
        "dead": 0,
        "oldest_due_age_s": None,
    }
    _kill(q, 1)
    q.enqueue(1)
    q.enqueue(2, run_at=int(time.time()) - 30)
    q.enqueue(3, delay=3600)
    q.enqueue(4)
    db.queue("st-other").enqueue("x")
    s = q.stats()
    assert (s["pending"], s["scheduled"], s["processing"], s["dead"]) == (3, 1, 0, 1)
    assert 29 <= s["oldest_due_age_s"] <= 40
    job = q.claim_one("w")
    assert job is not None and job.payload == 2  # the oldest due job
    s = q.stats()
    assert (s["pending"], s["scheduled"], s["processing"], s["dead"]) == (2, 1, 1, 1)
    assert 0 <= s["oldest_due_age_s"] <= 5


def test_wait_result_on_dead_task_raises_task_failed(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("res", max_attempts=1)
    jid = q.enqueue("x")
    job = q.claim_one("w")
    assert job is not None
    assert job.retry(0, "ValueError: bad input")  # attempts used up: dead
    t0 = time.monotonic()
    with pytest.raises(TaskFailed, match="bad input") as info:
        q.wait_result_blocking(jid, timeout=10)
    assert time.monotonic() - t0 < 2
    assert info.value.job_id == jid and info.value.last_error == "ValueError: bad input"
    with pytest.raises(TaskFailed):
        asyncio.run(q.wait_result(jid, timeout=10))
    assert isinstance(info.value, alkdev_storage.TaskFailed)


def test_task_result_get_raises_when_the_task_dies_meanwhile(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("tq", max_attempts=1)

    @q.task(name="parity.always_fails")
    def always_fails(x: int) -> int:
        raise RuntimeError(f"no luck with {x}")

    res = always_fails(7)

    async def main() -> None:
        stop = asyncio.Event()
        workers = asyncio.create_task(db.run_workers(queue="tq", stop_event=stop))
        try:
            with pytest.raises(TaskFailed, match="no luck with 7"):
                await res.aget(timeout=10)
        finally:
            stop.set()
            await asyncio.wait_for(workers, 10)

    t0 = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - t0 < 8
    with pytest.raises(TaskFailed, match="RuntimeError"):
        res.get(timeout=5)
    alkdev_storage.registry().unregister("parity.always_fails")


_EXAMPLE = itertools.count()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ops=st.lists(
        st.one_of(
            st.just(("enqueue",)),
            st.just(("kill",)),
            st.tuples(st.just("requeue"), st.lists(st.integers(0, 7), max_size=3)),
            st.tuples(st.just("purge"), st.lists(st.integers(0, 7), max_size=3)),
            st.just(("requeue_all",)),
            st.just(("purge_all",)),
        ),
        max_size=15,
    )
)
def test_dead_letter_ops_match_a_model(db, db_path, ops) -> None:  # type: ignore[no-untyped-def]
    name = f"model-{next(_EXAMPLE)}"  # a fresh queue per example
    q = db.queue(name)
    live: set[int] = set()
    dead: set[int] = set()
    known: list[int] = []

    def pick(idx: list[int]) -> list[int]:
        return [known[i % len(known)] for i in idx] if known else [10**9]

    for op in ops:
        if op[0] == "enqueue":
            jid = q.enqueue("p")
            live.add(jid)
            known.append(jid)
        elif op[0] == "kill":
            job = q.claim_one("w")
            if job is None:
                assert not live
                continue
            assert job.fail("e")
            live.discard(job.id)
            dead.add(job.id)
        elif op[0] == "requeue":
            ids = pick(op[1])
            assert sorted(q.requeue_dead(ids)) == sorted(set(ids) & dead)
            live |= set(ids) & dead
            dead -= set(ids)
        elif op[0] == "purge":
            ids = pick(op[1])
            assert q.purge_dead(ids) == len(set(ids) & dead)
            dead -= set(ids)
        elif op[0] == "requeue_all":
            assert sorted(q.requeue_dead(all=True)) == sorted(dead)
            live |= dead
            dead = set()
        else:
            assert q.purge_dead(all=True) == len(dead)
            dead = set()
        stats = q.stats()
        assert stats["dead"] == len(dead)
        assert stats["pending"] + stats["processing"] == len(live)
    assert {d["id"] for d in q.dead(limit=1000)} == dead
    got_live = {r[0] for r in db.fetchall("SELECT id FROM _honker_live WHERE queue = ?", (name,))}
    got_dead = {r[0] for r in db.fetchall("SELECT id FROM _honker_dead WHERE queue = ?", (name,))}
    attempts = {
        r[0] for r in db.fetchall("SELECT attempts FROM _honker_live WHERE queue = ?", (name,))
    }
    assert (got_live, got_dead) == (live, dead)
    assert attempts <= {0}  # never-claimed and requeued jobs start from 0
