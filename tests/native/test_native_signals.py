"""Ctrl-C (SIGINT) stops a long read or executemany instead of waiting for
it to finish, and an interrupted executemany writes nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import sys, alkdev_storage
db = alkdev_storage.open(sys.argv[1])
db.executescript("CREATE TABLE IF NOT EXISTS t(x)")
print("ready", flush=True)
try:
    if sys.argv[2] == "read":
        db.fetchall("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "
                    "SELECT n FROM c LIMIT 200000000")
    else:
        db.executemany("INSERT INTO t VALUES (?)", ((i,) for i in range(200000000)))
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", db.fetchone("SELECT count(*) FROM t")[0], flush=True)
db.close()
"""


def interrupt(tmp_path: Path, what: str) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "s.db"), what],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out.split()


def test_sigint_stops_a_long_fetchall(tmp_path: Path) -> None:
    assert interrupt(tmp_path, "read") == ["interrupted", "0"]


def test_sigint_stops_executemany_and_nothing_is_written(tmp_path: Path) -> None:
    assert interrupt(tmp_path, "write") == ["interrupted", "0"]
