"""Ctrl-C stops every blocking wait promptly: a real child process blocks in
listen / claim / subscribe / wait_result / TaskResult.get / update_events,
gets SIGINT, and must leave with KeyboardInterrupt (measured: ~30-60 ms on
an idle machine; asserted < 2 s to stay robust on a loaded one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

BODIES = {
    "listen": "for n in db.listen('c'): pass",
    "listen_timeout": "db.listen('c').get(600)",
    "listen_follower": """
        import threading
        other = db.listen('c')
        threading.Thread(target=lambda: other.get(600), daemon=True).start()
        import time; time.sleep(0.2)  # the thread leads; main waits as a follower
        for n in db.listen('c'): pass
    """,
    "listen_async": """
        import asyncio
        async def main():
            async for n in db.listen('c'):
                pass
        asyncio.run(main())
    """,
    "listen_async_follower": """
        import asyncio
        async def main():
            lead = db.listen('c')
            task = asyncio.create_task(lead.aget(600))
            await asyncio.sleep(0.2)  # that task leads; main awaits its own future
            async for n in db.listen('c'):
                pass
        asyncio.run(main())
    """,
    "claim": "for job in db.queue('q').claim('w', idle_poll_s=None): pass",
    "claim_async": """
        import asyncio
        async def main():
            async for job in db.queue('q').claim('w', idle_poll_s=None):
                pass
        asyncio.run(main())
    """,
    "subscribe": "for e in db.stream('s').subscribe(): pass",
    "wait_result": "db.queue('q').wait_result_blocking(424242)",
    "task_result_get": """
        @db.task(queue='t')
        def work(x):
            return x
        work(1).get()
    """,
    "update_events": "for _ in db.update_events(): pass",
}

CHILD = """
import sys, time
import alkdev_storage
db = alkdev_storage.open(sys.argv[1])
print('ready', flush=True)
try:
{body}
except KeyboardInterrupt:
    print('interrupted', flush=True)
    sys.exit(7)
sys.exit(3)
"""


@pytest.mark.parametrize("case", sorted(BODIES))
def test_blocking_wait_stops_on_sigint(case: str, tmp_path: Path) -> None:
    body = textwrap.indent(textwrap.dedent(BODIES[case]).strip(), "    ")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(body=body), str(tmp_path / "s.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # well inside the blocking wait
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = proc.stdout.read()
    err = proc.stderr.read() if proc.stderr else ""
    print(f"{case}: exited {elapsed * 1000:.0f} ms after SIGINT")
    assert rc == 7 and "interrupted" in out, (rc, out, err)
    assert elapsed < 2.0
