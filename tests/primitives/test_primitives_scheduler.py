"""Scheduler: expressions, add/remove/pause/resume/list/update, ticks, and
the leader-locked runner (async and blocking)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime

import pytest

from alkdev_storage.primitives import (
    CronSchedule,
    LeadershipLost,
    LockHeld,
    Scheduler,
    crontab,
    every_s,
)


def test_expressions() -> None:
    assert crontab("0 3 * * *").expr == "0 3 * * *"
    assert crontab("*/2 * * * * *").expr == "*/2 * * * * *"  # 6 fields: seconds
    assert every_s(5).expr == "@every 5s"
    assert CronSchedule("@every 2m").expr == "@every 2m"
    with pytest.raises(ValueError, match="every_s"):
        crontab("@every 1s")
    with pytest.raises(ValueError):
        every_s(0)
    for bad in ["* * *", "61 * * * *", "@every", "@every 5x", "a b c d e", ""]:
        with pytest.raises(ValueError, match="invalid schedule expression"):
            CronSchedule(bad)
    with pytest.raises(TypeError):
        CronSchedule(5)  # type: ignore[arg-type]
    base = datetime(2030, 1, 1, 10, 0, 30)
    assert crontab("0 * * * *").next_after(base) == datetime(2030, 1, 1, 11, 0, 0)
    assert every_s(10).next_after(base) == datetime(2030, 1, 1, 10, 0, 40)


def test_add_list_pause_resume_update_remove(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    assert isinstance(sched, Scheduler) and sched.lock_name == "honker-scheduler"
    sched.add(
        name="nightly",
        queue="backups",
        schedule=crontab("0 3 * * *"),
        payload={"t": "s3"},
        expires=3600,
    )
    sched.add("fast", queue="health", schedule="@every 1s", payload={"kind": "tick"})
    sched.add("secs", "health", cron="*/5 * * * * *", priority=2, max_attempts=7)
    rows = {r["name"]: r for r in sched.list()}
    assert set(rows) == {"nightly", "fast", "secs"}
    assert rows["nightly"]["cron_expr"] == "0 3 * * *"
    assert json.loads(rows["nightly"]["payload"]) == {"t": "s3"}
    assert rows["nightly"]["expires_s"] == 3600 and rows["nightly"]["enabled"] is True
    assert rows["secs"]["priority"] == 2 and rows["secs"]["max_attempts"] == 7
    assert rows["fast"]["next_fire_at"] > time.time() - 1
    assert sched.pause("fast") is True and sched.pause("fast") is False
    assert {r["name"]: r["enabled"] for r in sched.list()}["fast"] is False
    assert sched.resume("fast") is True and sched.resume("fast") is False
    assert sched.update("fast", schedule="@every 1h", payload=None, priority=5) is True
    row = {r["name"]: r for r in sched.list()}["fast"]
    assert (row["cron_expr"], row["payload"], row["priority"]) == ("@every 1h", "null", 5)
    assert sched.update("nightly", expires=None) is True
    assert {r["name"]: r for r in sched.list()}["nightly"]["expires_s"] is None
    assert sched.update("missing", priority=1) is False
    assert sched.remove("secs") is True and sched.remove("secs") is False
    assert sched.pause("missing") is False


def test_add_validation_writes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    with pytest.raises(ValueError, match=r"'\* \* \*'"):
        sched.add("bad", "q", "* * *")
    with pytest.raises(TypeError):
        sched.add("bad", "q", "@every 1s", payload=object())
    with pytest.raises(ValueError):
        sched.add("", "q", "@every 1s")
    with pytest.raises(ValueError):
        sched.add("n", "", "@every 1s")
    with pytest.raises(TypeError):
        sched.add("n", "q")
    with pytest.raises(ValueError):
        sched.add("n", "q", "@every 1s", cron="@every 2s")
    with pytest.raises(ValueError, match="61"):
        sched.update("n", schedule="61 * * * *")
    assert sched.list() == []


def test_tick_fires_due_and_catches_up(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    sched.add("every", "work", "@every 1s", payload={"p": 1})
    nxt = sched.list()[0]["next_fire_at"]
    assert sched.tick(now=nxt - 1) == []
    fires = sched.tick(now=nxt + 4)
    assert [f["fire_at"] for f in fires] == [nxt + i for i in range(5)]
    assert {f["name"] for f in fires} == {"every"} and {f["queue"] for f in fires} == {"work"}
    jobs = db.queue("work").claim_batch("w", 100)
    assert sorted(j.id for j in jobs) == sorted(f["job_id"] for f in fires)
    assert all(j.payload == {"p": 1} for j in jobs)
    assert sched.tick(now=nxt + 4) == []  # each boundary fires once
    sched.pause("every")
    assert sched.tick(now=nxt + 100) == []


def test_run_async_fires_and_releases_lock(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    sched.add("tick", "ticks", "@every 1s", payload="t")

    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(sched.run(stop))
        await asyncio.sleep(2.2)
        assert (
            db.fetchone("SELECT COUNT(*) FROM _honker_locks WHERE name = 'honker-scheduler'")[0]
            == 1
        )
        stop.set()
        await asyncio.wait_for(runner, 5)

    asyncio.run(main())
    fired = db.fetchone("SELECT COUNT(*) FROM _honker_live WHERE queue = 'ticks'")[0]
    assert 1 <= fired <= 6  # @every 1s for about 2 s
    assert db.fetchone("SELECT COUNT(*) FROM _honker_locks")[0] == 0


def test_run_requires_tasks_and_ends_when_none_left(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    with pytest.raises(RuntimeError, match="no registered tasks"):
        asyncio.run(sched.run())
    other = db.scheduler()
    other.add("once", "q", "@every 1h")
    sched.remove("once")
    other.add("once", "q", "@every 1h")

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(0.1)
        other.remove("once")  # a commit wakes the runner; nothing left -> it returns
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_run_raises_lock_held_and_standby_takes_over(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    sched.add("s", "sq", "@every 1s")
    holder = db.lock("honker-scheduler", ttl=60)
    holder.acquire()
    with pytest.raises(LockHeld):
        asyncio.run(sched.run())

    async def main() -> None:
        task = asyncio.create_task(sched.run(standby=True))
        await asyncio.sleep(0.3)
        assert not task.done()
        assert db.fetchone("SELECT COUNT(*) FROM _honker_live WHERE queue = 'sq'")[0] == 0
        holder.release()  # the commit wakes the standby runner
        for _ in range(60):
            await asyncio.sleep(0.05)
            if db.fetchone("SELECT COUNT(*) FROM _honker_live WHERE queue = 'sq'")[0]:
                break
        row = db.fetchone("SELECT owner FROM _honker_locks")
        assert row is not None and row[0] != holder.owner  # the runner leads now
        assert db.fetchone("SELECT COUNT(*) FROM _honker_live WHERE queue = 'sq'")[0] >= 1
        sched.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_runner_raises_leadership_lost(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    sched.add("s", "lq", "@every 1s")

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(0.2)
        db.execute("UPDATE _honker_locks SET owner = 'usurper' WHERE name = 'honker-scheduler'")
        with pytest.raises(LeadershipLost):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    fired_before = db.fetchone("SELECT COUNT(*) FROM _honker_live WHERE queue = 'lq'")[0]
    assert fired_before <= 1  # nothing fired after the lock was lost
    assert db.fetchone("SELECT owner FROM _honker_locks")[0] == "usurper"


def test_run_blocking_and_stop(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    sched.add("b", "bq", "*/1 * * * * *", payload={"six": "fields"})
    stop = threading.Event()
    t = threading.Thread(target=sched.run_blocking, args=(stop,))
    t.start()
    time.sleep(1.6)
    sched.stop()
    t.join(5)
    assert not t.is_alive()
    jobs = db.queue("bq").claim_batch("w", 10)
    assert 1 <= len(jobs) <= 5 and jobs[0].payload == {"six": "fields"}
    t2 = threading.Thread(target=sched.run_blocking, args=(stop,))
    t2.start()
    time.sleep(0.1)
    stop.set()
    t2.join(5)
    assert not t2.is_alive()
