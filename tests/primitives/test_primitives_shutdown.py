"""Graceful, signal-aware workers (primitives/worker_loop.py): a real
worker process gets SIGTERM while it runs a job."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

_CHILD = """
import asyncio, json, sys, time, alkdev_storage
path, mode, sleep_s, grace_s, effects = sys.argv[1:6]
db = alkdev_storage.open(path)
q = db.queue("sd", max_attempts=3)

def say(**kw):
    print(json.dumps(kw), flush=True)

if mode == "async":
    @q.task(name="sd.slow")
    async def slow(n):
        say(started=n)
        await asyncio.sleep(float(sleep_s))
        with open(effects, "a") as f:
            f.write(f"{n}\\n")
        return n
    asyncio.run(db.run_workers(queue="sd", concurrency=1, grace_s=float(grace_s)))
else:
    @q.task(name="sd.slow")
    def slow(n):
        say(started=n)
        time.sleep(float(sleep_s))
        with open(effects, "a") as f:
            f.write(f"{n}\\n")
        return n
    db.run_workers_blocking(queue="sd")
say(stopped=True)
db.close()
"""


def _enqueue_two(db: Any) -> list[int]:
    q = db.queue("sd", max_attempts=3)
    env = [{"__honker_task__": {"task": "sd.slow", "args": [n], "kwargs": {}}} for n in (1, 2)]
    return [q.enqueue(e) for e in env]


def _run_child(db_path: Path, tmp_path: Path, mode: str, sleep_s: float, grace_s: float,
               signals: int = 1) -> tuple[subprocess.Popen[str], Path]:
    effects = tmp_path / "effects.txt"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db_path), mode, str(sleep_s), str(grace_s),
         str(effects)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert json.loads(line) == {"started": 1}, (line, child.stderr.read() if child.stderr else "")
    for _ in range(signals):
        child.send_signal(signal.SIGTERM)
    return child, effects


def _jobs(db: Any) -> list[tuple[Any, ...]]:
    return db.fetchall(
        "SELECT id, state, attempts, worker_id FROM _honker_live WHERE queue = 'sd' ORDER BY id"
    )


@pytest.mark.parametrize("mode", ["async", "blocking"])
def test_sigterm_finishes_the_job_in_hand(db, db_path, tmp_path, mode) -> None:  # type: ignore[no-untyped-def]
    ids = _enqueue_two(db)
    child, effects = _run_child(db_path, tmp_path, mode, sleep_s=1.0, grace_s=30)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"stopped": True}
    assert effects.read_text() == "1\n"  # the running job finished...
    # ... and was acked; the other job was never run and costs nothing.
    assert _jobs(db) == [(ids[1], "pending", 0, None)]
    assert db.fetchone("SELECT count(*) FROM _honker_dead") == (0,)


def test_sigterm_past_grace_gives_the_job_back_unspent(db, db_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = _enqueue_two(db)
    child, effects = _run_child(db_path, tmp_path, "async", sleep_s=60, grace_s=0.3)
    out, err = child.communicate(timeout=30)  # far less than the job's 60 s
    assert child.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"stopped": True}
    assert not effects.exists()
    assert _jobs(db) == [(ids[0], "pending", 0, None), (ids[1], "pending", 0, None)]


def test_a_second_sigterm_gives_the_job_back_at_once(db, db_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = _enqueue_two(db)
    child, effects = _run_child(db_path, tmp_path, "async", sleep_s=60, grace_s=120)
    # Signals sent back to back can be coalesced into one by the OS/Python:
    # keep signalling until the child has seen a second one (it can only
    # exit this early through the second-signal path: grace_s is 120 s).
    deadline = time.monotonic() + 30
    while child.poll() is None and time.monotonic() < deadline:
        try:
            child.wait(0.3)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGTERM)
    _out, err = child.communicate(timeout=10)
    assert child.returncode == 0, err
    assert not effects.exists()
    assert _jobs(db) == [(ids[0], "pending", 0, None), (ids[1], "pending", 0, None)]


def test_stop_event_without_signals_and_idle_workers(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("idle")

    @q.task(name="sd.noop")
    def noop() -> None:
        return None

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            db.run_workers(queue="idle", concurrency=3, stop_event=stop, handle_signals=False)
        )
        await asyncio.sleep(0.2)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # nothing installed
        stop.set()
        await asyncio.wait_for(task, 10)  # idle workers stop at once

    asyncio.run(main())
    import alkdev_storage

    alkdev_storage.registry().unregister("sd.noop")


def test_grace_must_not_be_negative(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("neg")

    @q.task(name="sd.neg")
    def neg() -> None:
        return None

    with pytest.raises(ValueError, match="grace_s"):
        asyncio.run(db.run_workers(queue="neg", grace_s=-1))
    import alkdev_storage

    alkdev_storage.registry().unregister("sd.neg")
