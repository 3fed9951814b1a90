"""Closing a Database releases everything; later use raises InterfaceError."""

from __future__ import annotations

import os
import threading

import pytest

import alkdev_storage
from alkdev_storage import InterfaceError

LIVENESS_TIMEOUT = 60


def open_fds_under(directory):
    """File descriptors of this process pointing into ``directory``."""
    directory = os.path.realpath(directory)
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(directory + os.sep):
            n += 1
    return n


def committed_rows(db_path):
    with alkdev_storage.open(db_path) as other:
        return other.fetchall("SELECT x FROM t ORDER BY x")


@pytest.fixture
def opened(db_path):
    db = alkdev_storage.open(db_path)
    db.executescript("CREATE TABLE t (x INTEGER)")
    yield db
    db.close()


DB_CALLS = [
    ("prepare", lambda db: db.prepare("SELECT 1")),
    ("execute", lambda db: db.execute("INSERT INTO t VALUES (1)")),
    ("execute_select", lambda db: db.execute("SELECT 1")),
    ("executemany", lambda db: db.executemany("INSERT INTO t VALUES (?)", [(1,)])),
    ("fetchone", lambda db: db.fetchone("SELECT 1")),
    ("fetchall", lambda db: db.fetchall("SELECT 1")),
    ("query", lambda db: db.query("SELECT 1")),
    ("iterate", lambda db: list(db.iterate("SELECT 1"))),
    ("executescript", lambda db: db.executescript("INSERT INTO t VALUES (1)")),
    ("transaction", lambda db: db.transaction()),
    ("begin", lambda db: db.begin()),
    ("read", lambda db: db.read()),
    ("notify", lambda db: db.notify("ch", 1)),
    ("bootstrap", lambda db: db.bootstrap_honker_schema()),
    ("subscribe", lambda db: db.subscribe_updates()),
]


@pytest.mark.parametrize("name,call", DB_CALLS, ids=[c[0] for c in DB_CALLS])
def test_every_method_raises_interface_error_after_close(opened, db_path, name, call):
    opened.execute("INSERT INTO t VALUES (0)")
    opened.close()
    assert opened.closed
    with pytest.raises(InterfaceError):
        call(opened)
    assert committed_rows(db_path) == [(0,)]


def test_statements_after_close(opened):
    sel = opened.prepare("SELECT ?")
    ins = opened.prepare("INSERT INTO t VALUES (?)")
    assert opened.fetchone(sel, (1,)) == (1,)
    opened.close()
    for call in (
        lambda: opened.fetchone(sel, (1,)),
        lambda: opened.fetchall(sel, (1,)),
        lambda: opened.execute(ins, (1,)),
        lambda: opened.executemany(ins, [(1,)]),
        lambda: list(opened.iterate(sel, (1,))),
        lambda: opened.query(sel, (1,)),
    ):
        with pytest.raises(InterfaceError):
            call()
    # The Statement's own description is still readable.
    assert sel.sql == "SELECT ?"
    assert sel.param_count == 1


def test_double_close_and_repr(opened):
    assert not opened.closed
    opened.close()
    opened.close()
    assert opened.closed
    assert "closed" in repr(opened)


def test_context_manager_closes(db_path):
    with alkdev_storage.open(db_path) as db:
        assert not db.closed
        db.executescript("CREATE TABLE t (x)")
    assert db.closed
    with pytest.raises(InterfaceError):
        db.fetchall("SELECT 1")
    with pytest.raises(KeyError):
        with alkdev_storage.open(db_path) as db2:
            raise KeyError
    assert db2.closed


def test_close_releases_every_file_handle(tmp_path):
    base = open_fds_under(tmp_path)
    db = alkdev_storage.open(tmp_path / "fds.db", max_readers=4)
    db.executescript("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])

    def reads():
        for _ in range(20):
            db.fetchall("SELECT x FROM t")

    threads = [threading.Thread(target=reads) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with db.read() as snap:
        snap.fetchall("SELECT 1")
    sub = db.subscribe_updates()
    assert open_fds_under(tmp_path) > base
    db.close()
    assert db.open_readers == 0
    assert open_fds_under(tmp_path) == base
    del sub
    # The last connection checkpointed and removed the WAL.
    assert not os.path.exists(tmp_path / "fds.db-wal")


def test_close_while_transaction_active(opened, db_path, tmp_path):
    tx = opened.begin()
    tx.execute("INSERT INTO t VALUES (1)")
    opened.close()
    with pytest.raises(InterfaceError):
        tx.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(InterfaceError):
        tx.commit()
    # Nothing of the transaction was committed, and the file is free.
    assert committed_rows(db_path) == []
    assert open_fds_under(tmp_path) == 0


def test_close_while_transaction_active_in_with_block(opened, db_path):
    with pytest.raises(InterfaceError):
        with opened.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (1)")
            opened.close()
            tx.execute("INSERT INTO t VALUES (2)")
    assert committed_rows(db_path) == []


def test_close_while_snapshot_active(opened, tmp_path):
    opened.execute("INSERT INTO t VALUES (1)")
    with opened.read() as snap:
        assert snap.fetchall("SELECT x FROM t") == [(1,)]
        opened.close()
        with pytest.raises(InterfaceError):
            snap.fetchall("SELECT x FROM t")
    assert open_fds_under(tmp_path) == 0


def test_close_while_iterator_active(opened, tmp_path):
    opened.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    it = opened.iterate("SELECT x FROM t ORDER BY x")
    assert next(it) == (0,)
    opened.close()
    with pytest.raises(InterfaceError):
        next(it)
    assert open_fds_under(tmp_path) == 0


def test_close_wakes_a_blocked_subscription_wait(opened):
    sub = opened.subscribe_updates()
    while sub.wait(0.2):
        pass
    entered = threading.Event()
    box = {}

    def waiter():
        entered.set()
        try:
            box["r"] = sub.wait()  # no timeout: only close can end it
        except BaseException as e:
            box["e"] = e

    th = threading.Thread(target=waiter, daemon=True)
    th.start()
    entered.wait()
    opened.close()
    th.join(LIVENESS_TIMEOUT)
    assert not th.is_alive(), "wait() stayed blocked after close()"
    assert isinstance(box.get("e"), InterfaceError), box
    with pytest.raises(InterfaceError):
        sub.wait(0)


def test_subscription_close_wakes_a_blocked_wait(opened):
    sub = opened.subscribe_updates()
    while sub.wait(0.2):
        pass
    entered = threading.Event()
    box = {}

    def waiter():
        entered.set()
        try:
            box["r"] = sub.wait()
        except BaseException as e:
            box["e"] = e

    th = threading.Thread(target=waiter, daemon=True)
    th.start()
    entered.wait()
    sub.close()
    th.join(LIVENESS_TIMEOUT)
    assert not th.is_alive(), "wait() stayed blocked after sub.close()"
    assert isinstance(box.get("e"), InterfaceError), box
    sub.close()  # idempotent
    # The database itself is unaffected.
    assert opened.fetchone("SELECT 1") == (1,)


def test_close_from_another_thread_while_writer_queued(opened):
    tx = opened.begin()
    box = {}
    started = threading.Event()

    def writer():
        started.set()
        try:
            box["r"] = opened.execute("INSERT INTO t VALUES (5)")
        except BaseException as e:
            box["e"] = e

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    started.wait()
    opened.close()
    th.join(LIVENESS_TIMEOUT)
    assert not th.is_alive(), "queued writer stayed blocked after close()"
    # It could not get the writer (the transaction holds it): close woke it.
    assert isinstance(box.get("e"), InterfaceError), box
    del tx


def test_reopen_after_close_sees_committed_data(db_path):
    with alkdev_storage.open(db_path) as db:
        db.executescript("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        with db.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (2)")
    with alkdev_storage.open(db_path) as db:
        assert db.fetchall("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
