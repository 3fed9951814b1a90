"""Several processes hammering one file's write lock (docs/0011): no
"database is locked" error, every process makes progress, and nothing a
process saw committed is lost when it is killed with SIGKILL."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import alkdev_storage

CHILD = r"""
import json, sys, time
import alkdev_storage

role, name, path, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
db = alkdev_storage.open(path)
q = db.queue("contention")
print("ready", flush=True)
sys.stdin.readline()  # every process starts together
end = time.monotonic() + seconds
done = errors = 0
msgs = []
while time.monotonic() < end:
    try:
        if role == "writer":
            with db.transaction() as tx:
                tx.execute("INSERT INTO rows (who) VALUES (?)", (name,))
                q.enqueue({"from": name}, tx=tx)
        else:
            job = q.claim_one(name)
            if job is None:
                time.sleep(0.001)
                continue
            with db.transaction() as tx:
                tx.execute("INSERT INTO effects (job_id, who) VALUES (?, ?)", (job.id, name))
                job.ack(tx=tx)
        done += 1
        print("committed", done, flush=True)
    except alkdev_storage.OperationalError as e:
        errors += 1
        msgs.append(str(e))
db.close()
print(json.dumps({"name": name, "done": done, "errors": errors, "msgs": msgs[:3]}), flush=True)
"""


def prepare(path: Path) -> None:
    db = alkdev_storage.open(path)
    try:
        db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, who TEXT)")
        db.execute("CREATE TABLE effects (job_id INTEGER PRIMARY KEY, who TEXT)")
        db.queue("contention")
    finally:
        db.close()


def start(path: Path, roles: list[str], seconds: float) -> list[subprocess.Popen[str]]:
    """Start one process per role; return once every one is ready, after
    telling them all to go."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, role, f"{role}{i}", str(path), str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, role in enumerate(roles)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


@pytest.mark.slow
def test_processes_share_the_write_lock_without_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    prepare(path)
    roles = ["writer"] * 3 + ["worker"] * 2
    procs = start(path, roles, seconds=4.0)
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    for r in reports:
        assert r["errors"] == 0, r
        assert r["done"] > 0, reports  # every process made progress
    db = alkdev_storage.open(path)
    try:
        for r in reports:
            if r["name"].startswith("writer"):
                assert db.fetchone("SELECT count(*) FROM rows WHERE who = ?", (r["name"],)) == (
                    r["done"],
                )
            else:
                assert db.fetchone("SELECT count(*) FROM effects WHERE who = ?", (r["name"],)) == (
                    r["done"],
                )
    finally:
        db.close()


@pytest.mark.slow
def test_nothing_committed_is_lost_when_processes_are_killed(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    prepare(path)
    roles = ["writer"] * 3 + ["worker"] * 2
    procs = start(path, roles, seconds=6.0)
    rng = random.Random(8)
    # Kill three of them (two writers, one worker) at random moments while
    # all five contend; the survivors must go on without errors.
    victims = [procs[0], procs[2], procs[3]]
    killed_at = sorted(rng.uniform(0.5, 2.5) for _ in victims)
    t0 = time.monotonic()
    for p, at in zip(victims, killed_at, strict=True):
        time.sleep(max(0.0, at - (time.monotonic() - t0)))
        p.send_signal(signal.SIGKILL)
    last: dict[str, int] = {}
    for i, (p, role) in enumerate(zip(procs, roles, strict=True)):
        out, err = p.communicate(timeout=60)
        name = f"{role}{i}"
        lines = out.strip().splitlines()
        done = [int(line.split()[1]) for line in lines if line.startswith("committed ")]
        last[name] = done[-1] if done else 0
        if p in victims:
            assert p.returncode == -signal.SIGKILL
        else:
            assert p.returncode == 0, err
            report = json.loads(lines[-1])
            assert report["errors"] == 0, report
            assert report["done"] > 0
    db = alkdev_storage.open(path)
    try:
        for name, reported in last.items():
            table = "rows" if name.startswith("writer") else "effects"
            (in_file,) = db.fetchone(f"SELECT count(*) FROM {table} WHERE who = ?", (name,))
            # Every commit a process reported is in the file; at most one more
            # (committed, killed before it could print).
            assert reported <= in_file <= reported + 1, (name, reported, in_file)
        # Every effect belongs to a distinct job that was acked exactly once.
        (effects,) = db.fetchone("SELECT count(*) FROM effects")
        (acked_rows,) = db.fetchone("SELECT count(DISTINCT job_id) FROM effects")
        assert effects == acked_rows
    finally:
        db.close()


LOCKER = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
"""


def test_the_timeout_error_says_how_long_it_waited(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    prepare(path)
    db = alkdev_storage.open(path, timeout=0.3)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None and locker.stdin is not None
    try:
        assert locker.stdout.readline().strip() == "locked"
        for attempt in (
            lambda: db.execute("INSERT INTO rows (who) VALUES ('x')"),
            lambda: db.transaction().__enter__(),
            lambda: db.queue("contention").enqueue({"n": 1}),
        ):
            t0 = time.monotonic()
            with pytest.raises(alkdev_storage.OperationalError) as e:
                attempt()
            waited = time.monotonic() - t0
            assert 0.3 <= waited < 3, waited
            assert e.value.sqlite_errorcode == 5
            assert e.value.sqlite_errorname == "SQLITE_BUSY"
            msg = str(e.value)
            expected = r"database is locked: waited 0\.[3-9] s for another process's"
            assert re.match(expected, msg), msg
            assert "timeout=0.3 s" in msg, msg
    finally:
        locker.stdin.write("\n")
        locker.stdin.flush()
        locker.wait(30)
    # Once the other process is done, the same Database writes at once.
    db.execute("INSERT INTO rows (who) VALUES ('x')")
    assert db.fetchone("SELECT count(*) FROM rows") == (1,)
    db.close()
