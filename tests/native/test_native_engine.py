"""One engine per database file per process: every native Database opened on
one file is a handle on the same writer slot, reader pool and watcher."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import alkdev_storage
from alkdev_storage import InterfaceError, ProgrammingError, _native


def open_fds(path: Path) -> list[str]:
    """This process's open descriptors on the database file or its -wal/-shm."""
    fd_dir = Path("/proc/self/fd")
    assert fd_dir.is_dir(), "these tests read /proc/self/fd (Linux)"
    found = []
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def test_handles_on_one_file_share_one_engine(db_path: Path) -> None:
    a = _native.Database(db_path)
    b = _native.Database(str(db_path))
    try:
        assert a.shared_handles == b.shared_handles == 2
        a.execute("CREATE TABLE t (x)")
        st = a.prepare("INSERT INTO t VALUES (?)")
        # A Statement of one handle runs on the other, in and out of transactions.
        b.execute(st, (1,))
        with b.transaction() as tx:
            tx.execute(st, (2,))
        tx = a.begin()
        tx.execute(b.prepare("INSERT INTO t VALUES (?)"), (3,))
        tx.commit()
        assert a.fetchall("SELECT x FROM t ORDER BY x") == [(1,), (2,), (3,)]
    finally:
        a.close()
        b.close()


def test_the_same_file_by_another_path_is_the_same_engine(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    a = _native.Database(tmp_path / "a.db")
    b = _native.Database(tmp_path / "sub" / ".." / "a.db")
    os.symlink(tmp_path / "a.db", tmp_path / "link.db")
    c = _native.Database(tmp_path / "link.db")
    try:
        assert a.shared_handles == 3
    finally:
        for d in (a, b, c):
            d.close()


def test_public_open_and_native_database_share(db_path: Path) -> None:
    db = alkdev_storage.open(db_path)
    raw = _native.Database(db_path)
    try:
        assert db.shared_handles == raw.shared_handles == 2
        q = db.queue("jobs")
        q.enqueue({"n": 1})
        # A statement of the public Database inside a transaction of the other handle.
        st = db.prepare("SELECT count(*) FROM _honker_live")
        with raw.transaction() as tx:
            assert tx.fetchone(st) == (1,)
    finally:
        raw.close()
        db.close()


def test_two_handles_share_the_writer_slot(db_path: Path) -> None:
    a = _native.Database(db_path)
    b = _native.Database(db_path)
    try:
        a.execute("CREATE TABLE t (x)")
        tx = a.begin()
        tx.execute("INSERT INTO t VALUES (1)")
        # Same thread, other handle: the writer is held by this thread, a clear
        # error at once instead of waiting for itself.
        with pytest.raises(ProgrammingError, match="already holds the writer"):
            b.execute("INSERT INTO t VALUES (2)")
        # Another thread waits for the writer until the transaction ends.
        done: dict[str, float] = {}

        def other() -> None:
            b.execute("INSERT INTO t VALUES (3)")
            done["at"] = time.monotonic()

        th = threading.Thread(target=other)
        th.start()
        time.sleep(0.3)
        assert "at" not in done, "the second handle did not wait for the writer"
        committed = time.monotonic()
        tx.commit()
        th.join(10)
        assert done["at"] >= committed
        assert b.fetchall("SELECT x FROM t ORDER BY x") == [(1,), (3,)]
    finally:
        a.close()
        b.close()


def test_closing_one_handle_leaves_the_other_working(db_path: Path) -> None:
    a = _native.Database(db_path)
    b = _native.Database(db_path)
    try:
        a.execute("CREATE TABLE t (x)")
        sub = b.subscribe_updates()
        a.close()
        a.close()  # idempotent
        assert a.closed and not b.closed
        assert b.shared_handles == 1
        with pytest.raises(InterfaceError):
            a.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(InterfaceError):
            a.transaction()
        b.execute("INSERT INTO t VALUES (1)")
        assert b.fetchone("SELECT count(*) FROM t") == (1,)
        assert sub.wait(5.0) is True, "the watcher kept running"
        assert "closed" in repr(a) and "closed" not in repr(b)
    finally:
        b.close()


def test_closing_the_last_handle_closes_the_files(db_path: Path) -> None:
    a = _native.Database(db_path)
    b = _native.Database(db_path)
    a.execute("CREATE TABLE t (x)")
    b.fetchall("SELECT * FROM t")
    assert b.open_readers >= 1
    a.close()
    assert open_fds(db_path), "one handle is still open"
    b.close()
    assert b.open_readers == 0
    assert open_fds(db_path) == []
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    # A fresh engine on a fresh file.
    c = _native.Database(db_path)
    try:
        assert c.shared_handles == 1
        assert c.fetchall("SELECT name FROM sqlite_schema WHERE name = 't'") == []
    finally:
        c.close()


def test_a_replaced_file_gets_a_fresh_engine(db_path: Path) -> None:
    a = _native.Database(db_path)
    try:
        a.execute("CREATE TABLE t (x)")
        st = a.prepare("SELECT count(*) FROM t")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        b = _native.Database(db_path)
        try:
            assert a.shared_handles == 1 and b.shared_handles == 1
            assert b.fetchall("SELECT name FROM sqlite_schema WHERE name = 't'") == []
            with pytest.raises(ProgrammingError, match="prepare it again"):
                b.fetchone(st)
        finally:
            b.close()
    finally:
        a.close()


def test_a_statement_of_another_file_says_what_to_do(tmp_path: Path) -> None:
    a = _native.Database(tmp_path / "a.db")
    b = _native.Database(tmp_path / "b.db")
    try:
        st = b.prepare("SELECT 1")
        with pytest.raises(ProgrammingError, match=r"another Database .*b\.db.*db\.prepare"):
            a.fetchone(st)
        with a.transaction() as tx, pytest.raises(ProgrammingError, match="another Database"):
            tx.fetchone(st)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("first", "second", "name", "in_force"),
    [
        ({"max_readers": 2}, {"max_readers": 3}, "max_readers", "2"),
        ({}, {"max_readers": 3}, "max_readers", "8"),
        ({"timeout": 1.5}, {"timeout": 2}, "timeout", "1.5"),
        ({"watcher_poll_interval_ms": 5}, {"watcher_poll_interval_ms": 7}, "poll", "5"),
    ],
)
def test_options_apply_when_the_engine_is_created(
    db_path: Path, first: dict[str, Any], second: dict[str, Any], name: str, in_force: str
) -> None:
    a = _native.Database(db_path, **first)
    try:
        with pytest.raises(ValueError, match=rf"{name}.*{in_force}") as e:
            _native.Database(db_path, **second)
        assert "leave" in str(e.value)
        assert a.shared_handles == 1, "a refused open takes no handle"
        # Not given, or given with the value in force: the same engine.
        same = _native.Database(db_path)
        again = _native.Database(db_path, **first)
        assert a.shared_handles == 3
        same.close()
        again.close()
    finally:
        a.close()


def test_a_dropped_handle_releases_its_share(db_path: Path) -> None:
    a = _native.Database(db_path)
    try:
        b = _native.Database(db_path)
        assert a.shared_handles == 2
        del b
        assert a.shared_handles == 1
        # A transaction outlives the handle that began it.
        tx = _native.Database(db_path).begin()
        tx.execute("CREATE TABLE t (x)")
        tx.commit()
        assert a.fetchone("SELECT count(*) FROM t") == (0,)
    finally:
        a.close()


def test_concurrent_opens_make_one_engine(db_path: Path) -> None:
    handles: list[_native.Database] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def opener() -> None:
        start.wait()
        d = _native.Database(db_path)
        with lock:
            handles.append(d)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert len(handles) == 8
        assert {h.shared_handles for h in handles} == {8}
    finally:
        for h in handles:
            h.close()
    assert open_fds(db_path) == []
