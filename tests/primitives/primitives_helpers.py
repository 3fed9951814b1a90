"""Shared helpers for tests/primitives/test_primitives_*.py.

Imported by the tests (fixtures, process helpers) and run as a script for
child-process roles: ``python tests/primitives/primitives_helpers.py <role> args...``.
Every child prints JSON lines on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: child_processes (also when run as a script)
from child_processes import finish as finish  # noqa: E402  (re-exported for the tests)
from child_processes import read_line as read_line  # noqa: E402
from child_processes import spawn_role  # noqa: E402

ROOT = HERE.parent.parent

def spawn(role: str, *args: Any) -> subprocess.Popen[str]:
    """Start a child running ``role`` of this script (JSON lines on stdout)."""
    return spawn_role(HERE / "primitives_helpers.py", role, *args)


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def dead_rows(db: Any, queue: str) -> list[tuple[Any, ...]]:
    return db.fetchall("SELECT id, payload, last_error FROM _honker_dead WHERE queue = ?", (queue,))


def live_count(db: Any, queue: str) -> int:
    return db.fetchone("SELECT COUNT(*) FROM _honker_live WHERE queue = ?", (queue,))[0]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------
# honker's loadable extension (interop tests)
# ---------------------------------------------------------------------


def honker_extension() -> str | None:
    """Path of honker's SQLite extension: $HONKER_EXT_PATH, else
    target/honker-ext (built by scripts/build_honker_ext.sh, which this runs
    if cargo is available). None if it cannot be had."""
    env = os.environ.get("HONKER_EXT_PATH")
    if env:
        return env if os.path.isfile(env) else None
    out = ROOT / "target" / "honker-ext"
    for name in ("libhonker_ext.so", "libhonker_ext.dylib", "honker_ext.dll"):
        p = out / "release" / name
        if p.is_file():
            return str(p)
    if shutil.which("cargo") is None:
        return None
    r = subprocess.run(
        ["sh", str(ROOT / "scripts" / "build_honker_ext.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if r.returncode != 0:
        return None
    path = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    return path if os.path.isfile(path) else None


# ---------------------------------------------------------------------
# child roles
# ---------------------------------------------------------------------


def _emit(**kw: Any) -> None:
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def role_notify(path: str, channel: str, count: str, delay: str) -> None:
    import alkdev_storage

    db = alkdev_storage.open(path)
    time.sleep(float(delay))
    for i in range(int(count)):
        db.notify(channel, {"i": i, "pid": os.getpid()})
    _emit(done=True)
    db.close()


def role_crash_worker(path: str, queue: str, vt: str) -> None:
    """Claim one job, report it, then hang until SIGKILLed."""
    import alkdev_storage

    db = alkdev_storage.open(path)
    q = db.queue(queue, visibility_timeout_s=int(vt))
    job = q.claim("crasher", timeout=20).get(20)
    assert job is not None
    _emit(claimed=job.id, payload=job.payload, attempts=job.attempts)
    time.sleep(600)


def role_producer(path: str, queue: str, start: str, count: str, per_tx: str) -> None:
    import alkdev_storage

    db = alkdev_storage.open(path)
    q = db.queue(queue, visibility_timeout_s=1, max_attempts=50)
    n, end, k = int(start), int(start) + int(count), int(per_tx)
    while n < end:
        with db.transaction() as tx:
            for i in range(n, min(n + k, end)):
                q.enqueue({"n": i}, tx=tx)
        n += k
    _emit(produced=int(count))
    db.close()


def role_consumer(path: str, queue: str, worker: str, idle: str, slow: str) -> None:
    """Process jobs until idle; a job whose n is in ``slow`` is held past
    the visibility timeout (its claim expires, another worker gets it)."""
    import alkdev_storage

    slow_set = {int(x) for x in slow.split(",") if x}
    db = alkdev_storage.open(path)
    q = db.queue(queue, visibility_timeout_s=1, max_attempts=50)
    for job in q.claim(worker, timeout=float(idle)):
        n = job.payload["n"]
        if n in slow_set and job.attempts == 1:
            time.sleep(2.6)
        ok = job.ack()
        _emit(
            n=n,
            id=job.id,
            attempts=job.attempts,
            ok=ok,
            expires=job.claim_expires_at,
            at=time.time(),
            worker=worker,
        )
    db.close()


def role_scheduler(path: str, seconds: str, ttl: str) -> None:
    """Run the scheduler (standby) for ``seconds``; report every fire."""
    import logging

    import alkdev_storage

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            fire = getattr(record, "fire", None)
            if fire is not None:
                _emit(pid=os.getpid(), **fire)

    log = logging.getLogger("alkdev_storage.scheduler")
    log.setLevel(logging.DEBUG)
    log.addHandler(H())
    db = alkdev_storage.open(path)
    sched = db.scheduler()
    sched.LOCK_TTL = int(ttl)
    sched.HEARTBEAT_INTERVAL = max(1, int(ttl) // 2)
    stop = threading.Event()
    threading.Timer(float(seconds), stop.set).start()
    sched.run_blocking(stop, standby=True)
    _emit(stopped=True, pid=os.getpid())
    db.close()


ROLES = {
    "notify": role_notify,
    "crash_worker": role_crash_worker,
    "producer": role_producer,
    "consumer": role_consumer,
    "scheduler": role_scheduler,
}

if __name__ == "__main__":
    ROLES[sys.argv[1]](*sys.argv[2:])
