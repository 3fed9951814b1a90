"""The process-wide update watcher (docs/0012-one-watcher.md): one poll
thread for every watched file, no missed commit from another process, a
deleted or replaced file surfaces once as a clear error, stderr stays
quiet, POSIX locks are kept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import alkdev_storage
from alkdev_storage import InterfaceError

WRITER = textwrap.dedent(
    """
    import random, sqlite3, sys, time
    paths, n = sys.argv[1:-1], int(sys.argv[-1])
    conns = [sqlite3.connect(p, timeout=10, isolation_level=None) for p in paths]
    rng = random.Random(3)
    for i in range(1, n + 1):
        for c in conns:
            c.execute("UPDATE t SET x = ?", (i,))
        if rng.random() < 0.3:
            time.sleep(rng.random() * 0.003)
    """
)


def make_table(path):
    with alkdev_storage.open(path) as db:
        db.executescript("CREATE TABLE IF NOT EXISTS t (x INTEGER); INSERT INTO t VALUES (0)")


def native_threads():
    """Names of this process's threads started by the native module."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith("alkdev"):
            names.append(name)
    return names


@pytest.mark.parametrize("n_files", [1, 12])
def test_no_commit_from_another_process_is_missed(tmp_path, n_files):
    paths = [str(tmp_path / f"w{i}.db") for i in range(n_files)]
    for p in paths:
        make_table(p)
    n = 300
    dbs = [alkdev_storage.open(p) for p in paths]
    subs = [db.subscribe_updates() for db in dbs]
    final: dict[int, int] = {}
    wakes: dict[int, int] = {}

    def listen(i):
        seen, count = 0, 0
        while seen < n:
            if not subs[i].wait(10):
                break  # 10 s without a wake: a commit was missed
            count += 1
            seen = dbs[i].fetchone("SELECT x FROM t")[0]
        final[i], wakes[i] = seen, count

    ths = [threading.Thread(target=listen, args=(i,)) for i in range(n_files)]
    for t in ths:
        t.start()
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, *paths, str(n)], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for t in ths:
        t.join(60)
    assert final == dict.fromkeys(range(n_files), n)
    # Ticks coalesce (fewer wakes than commits is fine); a WAL reset or a
    # checkpoint may add a spurious one.
    assert all(1 <= wakes[i] <= 2 * n for i in range(n_files)), wakes
    for db in dbs:
        db.close()


def test_threads_are_bounded_whatever_the_number_of_files(tmp_path):
    before = len(native_threads())
    dbs = [alkdev_storage.open(str(tmp_path / f"b{i}.db")) for i in range(40)]
    stop = threading.Event()

    def listen(db):
        for _ in db.listen("nothing"):
            pass

    ths = [threading.Thread(target=listen, args=(db,)) for db in dbs]
    for t in ths:
        t.start()
    time.sleep(0.5)
    named = native_threads()
    # One watcher thread and one reader janitor for the whole process.
    assert len(named) <= max(before, 2), named
    stop.set()
    for db in dbs:
        db.close()
    for t in ths:
        t.join(10)
        assert not t.is_alive()


def test_subscription_wait_closes_and_times_out(db):
    sub = db.subscribe_updates()
    t0 = time.monotonic()
    assert sub.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.04
    db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    assert sub.wait(5) is True
    got: list[BaseException] = []

    def blocked():
        try:
            sub.wait(None)
        except BaseException as e:
            got.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.1)
    sub.close()
    t.join(5)
    assert not t.is_alive()
    assert isinstance(got[0], InterfaceError)
    assert "closed" in repr(sub)


CHILD_GONE = textwrap.dedent(
    """
    import os, sys, time, alkdev_storage
    path, how = sys.argv[1], sys.argv[2]
    db = alkdev_storage.open(path)
    db.executescript("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    sub = db.subscribe_updates()
    if how == "delete":
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass
    else:
        other = path + ".new"
        alkdev_storage.open(other).close()
        os.replace(other, path)
    t0 = time.monotonic()
    errors = []
    while time.monotonic() - t0 < 3.5:
        try:
            sub.wait(0.2)
        except alkdev_storage.InterfaceError as e:
            errors.append(str(e))
    try:
        db.subscribe_updates().wait(0.1)
    except alkdev_storage.InterfaceError as e:
        errors.append(str(e))
    print(len(errors), errors[0] if errors else "")
    db.close()
    """
)


@pytest.mark.parametrize("how", ["delete", "replace"])
def test_deleted_or_replaced_file_is_one_clear_error_and_stderr_stays_quiet(db_path, how):
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_GONE, str(db_path), how],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    count, message = proc.stdout.strip().split(" ", 1)
    assert int(count) >= 1
    assert str(db_path) in message
    assert ("deleted" if how == "delete" else "replaced") in message


TRY_LOCK = textwrap.dedent(
    """
    import sqlite3, sys
    c = sqlite3.connect(sys.argv[1], timeout=0.2, isolation_level=None)
    try:
        c.execute("BEGIN IMMEDIATE")
        print("free")
    except sqlite3.OperationalError as e:
        print("locked" if "locked" in str(e) else e)
    """
)


def try_write_lock(path):
    """Whether another process can take the write lock right now."""
    out = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(path)], capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip()


def test_watching_keeps_this_process_posix_locks(db_path):
    """Subscribing (the watcher opens its connection) and closing a
    subscription while this process holds the write lock must not let
    another process take it."""
    make_table(db_path)
    db = alkdev_storage.open(db_path)
    tx = db.begin()
    tx.execute("UPDATE t SET x = 1")  # holds the write lock
    for _ in range(3):
        sub = db.subscribe_updates()
        sub.wait(0.01)
        sub.close()
    assert try_write_lock(db_path) == "locked"
    tx.commit()
    assert try_write_lock(db_path) == "free"
    db.close()


def test_closing_the_database_ends_waiting_subscriptions(db):
    sub = db.subscribe_updates()
    got: list[BaseException] = []

    def blocked():
        try:
            sub.wait(None)
        except BaseException as e:
            got.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.1)
    db.close()
    t.join(5)
    assert not t.is_alive()
    assert isinstance(got[0], InterfaceError) and "closed" in str(got[0])


def test_async_listeners_of_many_databases_share_one_bridge_thread(tmp_path):
    import asyncio

    dbs = [alkdev_storage.open(str(tmp_path / f"a{i}.db")) for i in range(30)]

    async def main():
        listeners = [db.listen("go") for db in dbs]

        async def first(lst):
            return (await lst.__anext__()).payload

        tasks = [asyncio.create_task(first(lst)) for lst in listeners]
        await asyncio.sleep(0.2)
        threads = threading.active_count()
        for i, db in enumerate(dbs):
            db.notify("go", i)
        got = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return threads, got

    before = threading.active_count()
    threads, got = asyncio.run(main())
    assert got == list(range(30))
    # At most the one bridge thread of the process, not one per Database.
    assert threads - before <= 1
    # ...and one native watcher thread ("alkdev-storage-watcher", cut to 15).
    assert native_threads().count("alkdev-storage-") <= 1
    for db in dbs:
        db.close()
        assert not db.wake_hub().running


def test_wake_sink_reports_ticks_and_ends(db):
    sink = alkdev_storage._native.WakeSink()
    sub = db.subscribe_updates()
    sub.forward_to(sink, 7)
    assert sink.wait(0.05) == []
    db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    assert 7 in sink.wait(5)
    assert sub.wait(0) is True
    sub.close()
    assert 7 in sink.wait(5)
    with pytest.raises(InterfaceError):
        sub.wait(0)
    sink.close()
    with pytest.raises(InterfaceError):
        sink.wait(1)
    with pytest.raises(ValueError):
        alkdev_storage._native.WakeSink().wait(-1)

