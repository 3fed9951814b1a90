"""Child processes of the tests that print JSON lines on stdout: start one
running a role of a helper script, read its next line, wait for it.
Used by tests/primitives/primitives_helpers.py and
tests/events/events_helpers.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


def spawn_role(script: Path, role: str, *args: Any) -> subprocess.Popen[str]:
    """Start ``python script role args...``; stdout is a pipe of JSON lines."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, str(script), role, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> dict[str, Any]:
    """Next JSON line of a child (fails the test on timeout or exit)."""
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    t.start()
    t.join(timeout)
    if not box or not box[0]:
        err = ""
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""  # type: ignore[union-attr]
        raise AssertionError(f"no output from child within {timeout}s; stderr: {err}")
    return json.loads(box[0])  # type: ignore[no-any-return]


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait for a child; return its JSON lines (fails on a non-zero exit)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"child failed ({proc.returncode}): {err}"
    return [json.loads(line) for line in out.splitlines() if line.strip()]
