"""Oracle for the parity tests: the stdlib sqlite3 module reading the file
in a child process. Never open the file with another SQLite copy inside
the test process while a Database is open on it: closing that connection
drops the process's POSIX locks on the file (docs/0002)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_CHILD = (
    "import json, sqlite3, sys\n"
    "con = sqlite3.connect(sys.argv[1])\n"
    "rows = con.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()\n"
    "con.close()\n"
    "print(json.dumps(rows))\n"
)


def file_oracle(path: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read by stdlib sqlite3 in a child process."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), sql, json.dumps(list(params))],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [tuple(r) for r in json.loads(out)]
