"""Every wait for a connection is bounded (the ``timeout`` option, default
5 s) and returns to Python promptly on Ctrl-C (docs/0008-waits.md)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from alkdev_storage import OperationalError, _native


def hold_in_thread(
    name: str, enter: AbstractContextManager[Any], release: threading.Event
) -> threading.Thread:
    """A thread called `name` that enters the context `enter` and keeps it
    until `release` is set."""
    entered = threading.Event()

    def run() -> None:
        with enter:
            entered.set()
            release.wait(30)

    t = threading.Thread(target=run, name=name)
    t.start()
    assert entered.wait(10)
    return t


def test_timeout_defaults_to_five_seconds(db_path: Path) -> None:
    db = _native.Database(db_path)
    try:
        assert db.timeout == 5.0
    finally:
        db.close()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_timeout_is_refused(db_path: Path, bad: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        _native.Database(db_path, timeout=bad)
    assert list(db_path.parent.iterdir()) == []  # nothing was created


def test_waiting_for_the_writer_times_out_naming_the_holder(db_path: Path) -> None:
    db = _native.Database(db_path, timeout=0.3)
    release = threading.Event()
    try:
        db.execute("CREATE TABLE t (x)")
        holder = hold_in_thread("slow-writer", db.transaction(), release)
        t0 = time.monotonic()
        with pytest.raises(OperationalError) as e:
            db.execute("INSERT INTO t VALUES (1)")
        waited = time.monotonic() - t0
        assert 0.3 <= waited < 3, waited
        assert e.value.sqlite_errorcode == 5
        assert e.value.sqlite_errorname == "SQLITE_BUSY"
        msg = str(e.value)
        assert "'slow-writer'" in msg and str(holder.ident) in msg, msg
        assert "timeout" in msg
        # A transaction waits the same way.
        with pytest.raises(OperationalError, match="slow-writer"):
            db.begin()
        release.set()
        holder.join(10)
        db.execute("INSERT INTO t VALUES (1)")
        assert db.fetchone("SELECT count(*) FROM t") == (1,)
    finally:
        release.set()
        db.close()


def test_a_zero_timeout_does_not_wait(db_path: Path) -> None:
    db = _native.Database(db_path, timeout=0)
    release = threading.Event()
    try:
        holder = hold_in_thread("holder", db.transaction(), release)
        t0 = time.monotonic()
        with pytest.raises(OperationalError, match="holder"):
            db.execute("CREATE TABLE t (x)")
        assert time.monotonic() - t0 < 1
        release.set()
        holder.join(10)
    finally:
        release.set()
        db.close()


def test_waiting_for_a_reader_times_out(db_path: Path) -> None:
    db = _native.Database(db_path, max_readers=1, timeout=0.3)
    release = threading.Event()
    try:
        holder = hold_in_thread("snapshot-holder", db.read(), release)
        t0 = time.monotonic()
        with pytest.raises(OperationalError, match="max_readers") as e:
            db.fetchone("SELECT 1")
        assert 0.3 <= time.monotonic() - t0 < 3
        assert e.value.sqlite_errorcode == 5
        release.set()
        holder.join(10)
        assert db.fetchone("SELECT 1") == (1,)
    finally:
        release.set()
        db.close()


LOCKER = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
"""


@contextmanager
def locked_by_another_process(path: Path) -> Iterator[None]:
    """Another process holds the write lock of `path` (POSIX locks of one
    process never block each other, so it must be another process)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(30)


def test_the_busy_wait_on_another_process_is_bounded(db_path: Path) -> None:
    db = _native.Database(db_path, timeout=0.3)
    try:
        db.execute("CREATE TABLE t (x)")
        with locked_by_another_process(db_path):
            t0 = time.monotonic()
            with pytest.raises(OperationalError, match="locked") as e:
                db.execute("INSERT INTO t VALUES (1)")
            assert 0.3 <= time.monotonic() - t0 < 3
            assert e.value.sqlite_errorcode is not None
            assert e.value.sqlite_errorcode & 0xFF == 5
        db.execute("INSERT INTO t VALUES (1)")
    finally:
        db.close()


CHILD = r"""
import sys, threading, time
from alkdev_storage import _native

path, what = sys.argv[1], sys.argv[2]
db = _native.Database(path, max_readers=1, timeout=60)
if what != "busy":
    db.execute("CREATE TABLE IF NOT EXISTS t (x)")
release = threading.Event()

def hold(ctx):
    entered = threading.Event()
    def run():
        with ctx:
            entered.set()
            release.wait()
    threading.Thread(target=run, daemon=True).start()
    entered.wait()

if what == "writer":
    hold(db.transaction())
    block = lambda: db.execute("INSERT INTO t VALUES (1)")
elif what == "reader":
    hold(db.read())
    block = lambda: db.fetchone("SELECT 1")
elif what == "subscription":
    sub = db.subscribe_updates()
    block = lambda: sub.wait()
else:  # busy: another process holds the write lock
    block = lambda: db.execute("INSERT INTO t VALUES (1)")
print("ready", flush=True)
try:
    block()
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
release.set()
"""


@pytest.mark.parametrize("what", ["writer", "reader", "subscription", "busy"])
def test_ctrl_c_ends_a_wait_promptly(tmp_path: Path, what: str) -> None:
    path = tmp_path / "w.db"
    if what == "busy":
        first = _native.Database(path)  # create the file (WAL) and table first
        first.execute("CREATE TABLE t (x)")
        first.close()
        with locked_by_another_process(path):
            interrupt_child(path, what)
    else:
        interrupt_child(path, what)


def interrupt_child(path: Path, what: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), what],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.4)  # well inside the wait
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    word, at = out.split()
    assert word == "interrupted"
    latency = float(at) - sent
    assert latency < 0.3, f"KeyboardInterrupt after {latency * 1000:.0f} ms"
