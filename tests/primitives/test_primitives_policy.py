"""One job policy (run_task, task workers, outbox), one payload codec, the
primitives' typed contract, and the domain exceptions."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from primitives_helpers import dead_rows, live_count

import alkdev_storage
from alkdev_storage import errors
from alkdev_storage.primitives import (
    JobPolicy,
    LeadershipLost,
    LockHeld,
    Retryable,
    UnknownTaskError,
    registry,
    run_task,
    run_task_blocking,
)
from alkdev_storage.primitives.contract import executor
from alkdev_storage.primitives.payload import encode


@pytest.fixture(autouse=True)
def clean_registry():  # type: ignore[no-untyped-def]
    before = set(registry().names())
    yield
    for name in set(registry().names()) - before:
        registry().unregister(name)


def live_job(db: Any, job_id: int) -> dict[str, Any] | None:
    row = db.fetchone(
        "SELECT state, run_at, attempts, created_at FROM _honker_live WHERE id = ?", (job_id,)
    )
    if row is None:
        return None
    return dict(zip(("state", "run_at", "attempts", "created_at"), row, strict=True))


# ---------------------------------------------------------------------
# Retryable: its own delay, within the attempt budget, in all three runners
# ---------------------------------------------------------------------


def asks_later(_payload: object) -> None:
    raise Retryable("busy, later", delay_s=1234)


@pytest.mark.parametrize("blocking", [False, True])
def test_run_task_retryable_uses_its_delay_within_the_budget(db, blocking: bool) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("rt-retryable", max_attempts=5)
    within, beyond = q.enqueue("a"), q.enqueue("b")

    def run(retries: int) -> None:
        job = q.claim_one("w")
        assert job is not None
        if blocking:
            run_task_blocking(job, asks_later, retries=retries, retry_delay=1, backoff=1)
        else:
            asyncio.run(run_task(job, asks_later, retries=retries, retry_delay=1, backoff=1))

    t0 = int(time.time())
    run(retries=3)  # attempt 1 of 3: retried after Retryable.delay_s, not retry_delay
    job = live_job(db, within)
    assert job is not None and job["state"] == "pending"
    assert t0 + 1234 <= job["run_at"] <= int(time.time()) + 1234
    run(retries=1)  # attempt 1 of 1: the budget is used up, Retryable or not
    assert live_job(db, beyond) is None
    assert [(d[0], d[2]) for d in dead_rows(db, "rt-retryable")] == [(beyond, "busy, later")]


def test_task_retryable_respects_retries(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("task-retryable", max_attempts=5)

    @q.task(name="policy.once", retries=1)
    def once() -> None:
        raise Retryable("not now", delay_s=999)

    @q.task(name="policy.many", retries=3)
    def many() -> None:
        raise Retryable("not now", delay_s=999)

    r1, r2 = once(), many()
    assert db.run_workers_blocking(queue="task-retryable", timeout=0.3) == 2
    assert [(d[0], d[2]) for d in dead_rows(db, "task-retryable")] == [(r1.id, "not now")]
    job = live_job(db, r2.id)
    assert job is not None and job["state"] == "pending"
    assert job["run_at"] >= job["created_at"] + 999


def test_task_retryable_async_worker_respects_retries(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("task-retryable-async", max_attempts=5)

    @q.task(name="policy.async_once", retries=1)
    async def once() -> None:
        raise Retryable("not now", delay_s=999)

    r = once()

    async def main() -> None:
        stop = asyncio.Event()
        workers = asyncio.create_task(
            alkdev_storage.primitives.run_workers(db, queue="task-retryable-async", stop_event=stop)
        )
        for _ in range(200):
            await asyncio.sleep(0.02)
            if dead_rows(db, "task-retryable-async"):
                break
        stop.set()
        await asyncio.wait_for(workers, 10)

    asyncio.run(main())
    assert [(d[0], d[2]) for d in dead_rows(db, "task-retryable-async")] == [(r.id, "not now")]


def test_outbox_retryable_uses_its_delay_then_dead_letters(db) -> None:  # type: ignore[no-untyped-def]
    def deliver(payload: object) -> None:
        raise Retryable("rate limited", delay_s=777)

    ob = db.outbox("ob-retryable", deliver, max_attempts=2, base_backoff_s=1)
    ob.enqueue("x")
    t0 = int(time.time())
    assert ob.run_worker_blocking("w", timeout=0.2) == 0
    (job_id,) = [r[0] for r in db.fetchall("SELECT id FROM _honker_live")]
    job = live_job(db, job_id)
    assert job is not None and job["attempts"] == 1
    # Retryable's delay (777 s), not the outbox backoff (1 s).
    assert t0 + 777 <= job["run_at"] <= int(time.time()) + 777
    db.execute("UPDATE _honker_live SET run_at = unixepoch() WHERE id = ?", (job_id,))
    assert ob.run_worker_blocking("w", timeout=0.2) == 0
    assert [(d[0], d[2]) for d in dead_rows(db, ob.queue.name)] == [(job_id, "rate limited")]


def test_outbox_async_worker_retryable(db) -> None:  # type: ignore[no-untyped-def]
    async def deliver(payload: object) -> None:
        raise Retryable("later", delay_s=555)

    ob = db.outbox("ob-retryable-async", deliver)
    ob.enqueue("x")

    async def main() -> None:
        task = asyncio.create_task(ob.run_worker("w"))
        for _ in range(200):
            await asyncio.sleep(0.02)
            row = db.fetchone("SELECT attempts FROM _honker_live")
            if row and row[0] == 1 and db.fetchone(
                "SELECT state FROM _honker_live WHERE state = 'pending'"
            ):
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = int(time.time())
    asyncio.run(main())
    row = db.fetchone("SELECT state, run_at FROM _honker_live")
    assert row[0] == "pending" and row[1] >= t0 + 555


def test_outbox_backoff_doubles(db) -> None:  # type: ignore[no-untyped-def]
    def deliver(payload: object) -> None:
        raise ConnectionError("down")

    ob = db.outbox("ob-backoff", deliver, max_attempts=5, base_backoff_s=100)
    ob.enqueue("x")
    for attempt, delay in [(1, 100), (2, 200), (3, 400)]:
        t0 = int(time.time())
        assert ob.run_worker_blocking("w", timeout=0.1) == 0
        state, run_at, attempts = db.fetchone("SELECT state, run_at, attempts FROM _honker_live")
        assert (state, attempts) == ("pending", attempt)
        assert t0 + delay <= run_at <= int(time.time()) + delay
        db.execute("UPDATE _honker_live SET run_at = unixepoch()")


@given(
    retry_delay=st.floats(min_value=0, max_value=1e4),
    backoff=st.floats(min_value=0.5, max_value=4),
    attempts=st.integers(min_value=0, max_value=12),
)
def test_delay_for(retry_delay: float, backoff: float, attempts: int) -> None:
    p = JobPolicy(retry_delay_s=retry_delay, backoff=backoff)
    assert p.delay_for(attempts) == int(retry_delay * backoff ** max(0, attempts - 1))


def test_result_save_failure_is_logged_and_the_job_acked(db, caplog) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("rt-save")
    job_id = q.enqueue(1)
    with caplog.at_level(logging.ERROR, logger="alkdev_storage.worker"):
        run_task_blocking(q.claim_one("w"), lambda p: object(), save_result=True)
    assert live_count(db, "rt-save") == 0 and dead_rows(db, "rt-save") == []
    assert q.get_result(job_id) == (False, None)
    assert any("could not save the result" in r.message for r in caplog.records)


def test_timeout_error_text_is_the_same_everywhere(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("rt-timeout", max_attempts=1)
    q.enqueue(1)

    def slow(p: object) -> None:
        time.sleep(0.5)

    run_task_blocking(q.claim_one("w"), slow, timeout=0.05)
    assert [d[2] for d in dead_rows(db, "rt-timeout")] == ["timeout after 0.05s"]


# ---------------------------------------------------------------------
# Task options: defined once
# ---------------------------------------------------------------------


def test_unknown_task_option_is_a_type_error_naming_it(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("opts")
    before = registry().names()
    with pytest.raises(TypeError, match="retry_delay'"):
        q.task(retry_delay=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="retries"):
        db.periodic_task("@every 1m", queue="opts", retries=2)  # type: ignore[call-arg]
    assert registry().names() == before
    assert db.fetchone("SELECT COUNT(*) FROM _honker_scheduler_tasks")[0] == 0


def test_task_options_reach_the_spec(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("opts2", max_attempts=7)

    @db.task(queue="opts2", name="opts.a", retry_delay_s=3, timeout_s=2.5, priority=4)
    def a() -> None: ...

    # whole-second options are ints: a str or a float is refused, not converted
    with pytest.raises(TypeError, match="retry_delay_s"):
        db.task(queue="opts2", name="opts.bad", retry_delay_s="3")
    with pytest.raises(TypeError, match="priority"):
        db.task(queue="opts2", name="opts.bad", priority=1.5)

    @q.task()
    def b() -> None: ...

    spec_a, spec_b = registry().get("opts.a"), registry().get(b.name)
    assert spec_a is not None and spec_b is not None
    assert (spec_a.retries, spec_a.retry_delay_s, spec_a.timeout_s, spec_a.priority) == (
        7,
        3,
        2.5,
        4,
    )
    assert (spec_b.retries, spec_b.store_result, spec_b.result_ttl_s) == (7, True, 3600)
    policy = spec_a.policy()
    assert (policy.retries, policy.retry_delay_s, policy.timeout_s) == (7, 3, 2.5)
    assert policy.offload_sync and policy.save_result


def test_undecodable_payload_on_a_task_queue_goes_dead(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("bad-json")

    @q.task(name="bad.known")
    def known() -> None: ...

    job_id = q.enqueue("x")
    db.execute("UPDATE _honker_live SET payload = '{not json' WHERE id = ?", (job_id,))
    assert db.run_workers_blocking(queue="bad-json", timeout=0.2) == 1
    (dead,) = dead_rows(db, "bad-json")
    assert dead[0] == job_id and "undecodable payload" in dead[2]


# ---------------------------------------------------------------------
# The payload codec
# ---------------------------------------------------------------------


class Opaque:
    pass


def circular() -> list[object]:
    x: list[object] = []
    x.append(x)
    return x


BAD = [math.nan, math.inf, {"k": -math.inf}, Opaque(), {1, 2}, circular(), b"bytes"]


@pytest.mark.parametrize("bad", BAD, ids=lambda b: type(b).__name__)
def test_every_primitive_refuses_a_bad_payload_the_same_way(db, bad: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError) as expected:
        encode(bad)
    msg = str(expected.value)
    assert msg.startswith(f"payload of type {type(bad).__name__} cannot be encoded as JSON: ")
    q, s = db.queue("codec"), db.stream("codec")
    calls = [
        lambda: db.notify("codec", bad),
        lambda: q.enqueue(bad),
        lambda: s.publish(bad),
        lambda: q.save_result(1, bad),
        lambda: db.scheduler().add("codec", "codec", "@every 1m", payload=bad),
        lambda: db.outbox("codec", print).enqueue(bad),
    ]
    for call in calls:
        with pytest.raises(TypeError) as got:
            call()
        assert str(got.value) == msg
    # The native tx.notify encodes with the same rules and message.
    with pytest.raises(TypeError) as native:
        with db.transaction() as tx:
            tx.notify("codec", bad)
    assert str(native.value) == msg
    for table in (
        "_honker_notifications",
        "_honker_live",
        "_honker_stream",
        "_honker_results",
        "_honker_scheduler_tasks",
    ):
        assert db.fetchone(f"SELECT COUNT(*) FROM {table}")[0] == 0, table


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


# The fixture's Database is shared by the examples: each example deletes
# what it wrote.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values)
def test_codec_matches_stdlib_and_native(db, value: object) -> None:  # type: ignore[no-untyped-def]
    text = encode(value)
    assert text == json.dumps(value, allow_nan=False, separators=(",", ":"))
    assert json.loads(text) == value
    ours = db.notify("codec", value)
    with db.transaction() as tx:
        theirs = tx.notify("codec", value)
    rows = dict(db.fetchall("SELECT id, payload FROM _honker_notifications"))
    assert rows[ours] == rows[theirs] == text
    db.execute("DELETE FROM _honker_notifications")


# ---------------------------------------------------------------------
# The contract, exceptions, reprs
# ---------------------------------------------------------------------


def test_executor_resolves_tx_arguments(db) -> None:  # type: ignore[no-untyped-def]
    assert executor(db, None) is db
    with db.transaction() as tx:
        assert executor(db, tx) is tx
    for bad in ("tx", 1, object()):
        with pytest.raises(TypeError, match=f"tx must be a transaction.*{type(bad).__name__}"):
            executor(db, bad)
    q = db.queue("contract")
    with pytest.raises(TypeError, match="tx must be a transaction"):
        q.enqueue(1, tx="nope")  # type: ignore[arg-type]
    assert live_count(db, "contract") == 0


def test_statement_cache_and_writer_helper(db) -> None:  # type: ignore[no-untyped-def]
    st1 = db.statement("SELECT honker_lock_acquire(?1, ?2, ?3)")
    assert db.statement("SELECT honker_lock_acquire(?1, ?2, ?3)") is st1
    assert db.fetchone_on_writer(st1, ("l", "me", 60)) == (1,)
    assert db.fetchone_on_writer(st1, ("l", "you", 60)) == (0,)
    hub = db.wake_hub()
    assert db.wake_hub() is hub and "WakeHub" in repr(hub)


def test_domain_exceptions_live_in_errors(db) -> None:  # type: ignore[no-untyped-def]
    for cls in (LockHeld, LeadershipLost, Retryable, UnknownTaskError):
        assert cls.__module__ == "alkdev_storage.errors"
        assert getattr(errors, cls.__name__) is cls
        assert getattr(alkdev_storage, cls.__name__) is cls
        assert cls.__name__ in errors.__all__
    with db.lock("x"), pytest.raises(LockHeld), db.lock("x"):
        pass
    assert db.lock("y", ttl=1).renew() is False
    assert Retryable("m", delay_s=7).delay_s == 7
    for bad in ("7", 1.5, 2.0, True, None):
        with pytest.raises(TypeError, match="delay_s must be an int"):
            Retryable("m", delay_s=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay_s must be >= 0"):
        Retryable("m", delay_s=-1)


def test_reprs(db) -> None:  # type: ignore[no-untyped-def]
    assert repr(db) == f"<alkdev_storage.Database {db.path!r} open>"
    ev = db.update_events()
    assert "UpdateEvents" in repr(ev) and "open" in repr(ev)
    ev.close()
    assert "closed" in repr(ev)
    assert "TaskRegistry" in repr(registry())
    assert "JobPolicy(retries=2" in repr(JobPolicy(retries=2))
