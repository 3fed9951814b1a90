"""Shared helpers for tests/events/test_events_*.py.

Imported by the tests (process helpers, waiting) and run as a script for
child-process roles: ``python tests/events/events_helpers.py <role> args...``.
Every child prints JSON lines on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: child_processes (also when run as a script)
from child_processes import finish as finish  # noqa: E402  (re-exported for the tests)
from child_processes import read_line as read_line  # noqa: E402
from child_processes import spawn_role  # noqa: E402


def spawn(role: str, *args: Any) -> subprocess.Popen[str]:
    """Start a child running ``role`` of this script (JSON lines on stdout)."""
    return spawn_role(HERE / "events_helpers.py", role, *args)


def kill9(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a child and reap it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``pred`` until truthy (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def lines(path: Path) -> list[str]:
    """The complete lines of a file written by a child (may not exist yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [ln for ln in text.split("\n")[:-1] if ln]


# ---------------------------------------------------------------------
# child roles
# ---------------------------------------------------------------------


def _emit(**kw: Any) -> None:
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def role_publish(path: str, kind: str, type_: str, count: str, prefix: str = "") -> None:
    """Dispatch ``count`` events ``{"i": i, "t": monotonic_ns}`` through an
    ephemeral or composite target (kind ``ephemeral`` / ``composite``)."""
    import alkdev_storage
    from alkdev_storage.events import CompositeEventTarget, EphemeralEventTarget, Event

    db = alkdev_storage.open(path)
    target: Any = EphemeralEventTarget(db, prefix=prefix)
    if kind == "composite":
        target = CompositeEventTarget(target)
    _emit(origin=target.origin, pid=os.getpid())
    for i in range(int(count)):
        target.dispatch_event(Event(type_, {"i": i, "t": time.monotonic_ns()}))
    _emit(done=True)
    db.close()


def role_durable(path: str, stream: str, consumer: str, ttl: str, out: str, on_busy: str) -> None:
    """A durable consumer appending ``offset`` lines to ``out``; prints
    ``{"active": true}`` once it holds the lease, then runs until killed."""
    import alkdev_storage
    from alkdev_storage.events import ConsumerBusy, DurableEventTarget

    db = alkdev_storage.open(path)
    target = DurableEventTarget(
        db,
        stream=stream,
        consumer=consumer,
        lease_ttl=int(ttl),
        on_busy=on_busy,  # type: ignore[arg-type]
        save_every_n=1,
    )
    f = open(out, "a")

    def listener(e: Any) -> None:
        f.write(f"{e.offset}\n")
        f.flush()

    try:
        target.add_event_listener("*", listener)
    except ConsumerBusy as e:
        _emit(busy=str(e))
        return
    _emit(started=True)
    target.wait_active()
    _emit(active=True)
    while True:
        time.sleep(1)


def role_relay(path: str, port: str, source: str, stream: str, batch: str) -> None:
    """A RedisRelay of ``stream`` running until killed."""
    import redis

    import alkdev_storage
    from alkdev_storage.events import RedisRelay

    db = alkdev_storage.open(path)
    client = redis.Redis(host="127.0.0.1", port=int(port))
    relay = RedisRelay(db, client, source=source, stream=stream, batch_size=int(batch), lease_ttl=2)
    _emit(started=True, offset=relay.offset)
    relay.run()


def role_redis_consumer(port: str, group: str, consumer: str, out: str) -> None:
    """A RedisEventTarget consumer whose listener records the first entry
    it gets, then hangs without returning (so nothing is acknowledged)."""
    import redis

    from alkdev_storage.events import RedisEventTarget

    client = redis.Redis(host="127.0.0.1", port=int(port))
    target = RedisEventTarget(
        client, group=group, consumer=consumer, start_id="0", claim_every_s=3600
    )

    def listener(e: Any) -> None:
        with open(out, "a") as f:
            f.write(f"{e.message_id}\n")
        while True:
            time.sleep(1)

    target.add_event_listener("*", listener)
    target.wait_ready(10)
    _emit(started=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    role = sys.argv[1]
    globals()[f"role_{role}"](*sys.argv[2:])
