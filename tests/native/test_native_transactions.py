"""Transactions, savepoints, read snapshots and streaming iterators."""

from __future__ import annotations

import json
import threading

import pytest

import alkdev_storage
from alkdev_storage import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    Savepoint,
    Snapshot,
    Transaction,
)

LIVENESS_TIMEOUT = 60  # seconds; only reached when something deadlocks


def in_thread(fn, *args):
    """Run fn in another thread; return its result or re-raise its exception.
    Fails (instead of hanging the suite) if it never finishes."""
    box = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(LIVENESS_TIMEOUT)
    if t.is_alive():
        pytest.fail(f"{fn!r} did not finish: deadlock")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def t(db):
    db.executescript(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, x INTEGER UNIQUE);CREATE TABLE other (y)"
    )
    return db


def xs(db, table="t"):
    col = "x" if table == "t" else "y"
    return [r[0] for r in db.fetchall(f"SELECT {col} FROM {table} ORDER BY rowid")]


def notifications(db):
    return db.fetchall("SELECT channel, payload FROM _honker_notifications ORDER BY id")


def fresh_view(db_path):
    """Rows as a brand-new Database on the same file sees them (committed state)."""
    with alkdev_storage.open(db_path) as other:
        return xs(other)


# ---------------------------------------------------------------------------
# Commit, rollback, atomicity
# ---------------------------------------------------------------------------


def test_commit_on_success(t, db_path):
    with t.transaction() as tx:
        assert isinstance(tx, Transaction)
        assert tx.active
        tx.execute("INSERT INTO t (x) VALUES (1)")
        tx.execute("INSERT INTO t (x) VALUES (?)", (2,))
    assert not tx.active
    assert xs(t) == [1, 2]
    assert fresh_view(db_path) == [1, 2]


def test_rollback_on_exception_and_exception_propagates(t, db_path):
    with pytest.raises(RuntimeError, match="boom"):
        with t.transaction() as tx:
            tx.execute("INSERT INTO t (x) VALUES (1)")
            tx.executemany("INSERT INTO t (x) VALUES (?)", [(2,), (3,)])
            tx.notify("ch", {"n": 1})
            raise RuntimeError("boom")
    assert not tx.active
    assert xs(t) == []
    assert fresh_view(db_path) == []
    assert notifications(t) == []


def test_error_mid_transaction_leaves_nothing(t, db_path):
    t.execute("INSERT INTO t (x) VALUES (100)")
    with pytest.raises(IntegrityError):
        with t.transaction() as tx:
            for i in range(10):
                tx.execute("INSERT INTO t (x) VALUES (?)", (i,))
            tx.execute("UPDATE t SET x = x + 1000")
            tx.execute("INSERT INTO t (x) VALUES (?)", (1100,))  # UNIQUE violation
    assert xs(t) == [100]
    assert fresh_view(db_path) == [100]


def test_caught_statement_error_keeps_the_transaction(t):
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (1)")
        with pytest.raises(IntegrityError):
            tx.execute("INSERT INTO t (x) VALUES (1)")
        tx.execute("INSERT INTO t (x) VALUES (2)")
    assert xs(t) == [1, 2]


def test_base_exception_rolls_back(t):
    class Stop(BaseException):
        pass

    with pytest.raises(Stop):
        with t.transaction() as tx:
            tx.execute("INSERT INTO t (x) VALUES (1)")
            raise Stop
    assert xs(t) == []
    # the writer was given back
    t.execute("INSERT INTO t (x) VALUES (2)")
    assert xs(t) == [2]


def test_explicit_begin_commit(t, db_path):
    tx = t.begin()
    assert tx.active
    tx.execute("INSERT INTO t (x) VALUES (1)")
    assert xs(t) == []  # not committed yet: readers do not see it
    tx.commit()
    assert not tx.active
    assert xs(t) == [1]
    assert fresh_view(db_path) == [1]


def test_explicit_begin_rollback(t, db_path):
    tx = t.begin()
    tx.execute("INSERT INTO t (x) VALUES (1)")
    tx.notify("ch", "gone")
    tx.rollback()
    assert not tx.active
    assert xs(t) == []
    assert fresh_view(db_path) == []
    assert notifications(t) == []


def test_begin_then_with_commits_at_exit(t):
    tx = t.begin()
    with tx:
        tx.execute("INSERT INTO t (x) VALUES (5)")
    assert not tx.active
    assert xs(t) == [5]


def test_commit_inside_with_block_then_exit_is_harmless(t):
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (1)")
        tx.commit()
    assert xs(t) == [1]
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (2)")
        tx.rollback()
    assert xs(t) == [1]


def test_abandoned_transaction_rolls_back_and_frees_writer(t):
    tx = t.begin()
    tx.execute("INSERT INTO t (x) VALUES (1)")
    del tx  # never committed
    # The writer is free again and the insert is gone.
    in_thread(t.execute, "INSERT INTO t (x) VALUES (2)")
    assert xs(t) == [2]


ENDED_CALLS = [
    ("execute", lambda tx: tx.execute("INSERT INTO t (x) VALUES (9)")),
    ("executemany", lambda tx: tx.executemany("INSERT INTO t (x) VALUES (?)", [(9,)])),
    ("fetchone", lambda tx: tx.fetchone("SELECT 1")),
    ("fetchall", lambda tx: tx.fetchall("SELECT 1")),
    ("query", lambda tx: tx.query("SELECT 1")),
    ("iterate", lambda tx: list(tx.iterate("SELECT 1"))),
    ("executescript", lambda tx: tx.executescript("INSERT INTO t (x) VALUES (9)")),
    ("notify", lambda tx: tx.notify("ch", 1)),
    ("savepoint", lambda tx: tx.savepoint().__enter__()),
    ("commit", lambda tx: tx.commit()),
    ("rollback", lambda tx: tx.rollback()),
    ("reenter", lambda tx: tx.__enter__()),
]


@pytest.mark.parametrize("how", ["with", "with_error", "commit", "rollback"])
@pytest.mark.parametrize("name,call", ENDED_CALLS, ids=[c[0] for c in ENDED_CALLS])
def test_use_after_end_raises_interface_error(t, how, name, call):
    if how == "with":
        with t.transaction() as tx:
            tx.execute("INSERT INTO t (x) VALUES (1)")
    elif how == "with_error":
        with pytest.raises(KeyError):
            with t.transaction() as tx:
                raise KeyError
    else:
        tx = t.begin()
        tx.execute("INSERT INTO t (x) VALUES (1)")
        getattr(tx, how)()
    before = (xs(t), notifications(t))
    with pytest.raises(InterfaceError):
        call(tx)
    assert (xs(t), notifications(t)) == before


def test_transaction_not_entered_raises_interface_error(t):
    tx = t.transaction()
    assert not tx.active
    with pytest.raises(InterfaceError):
        tx.execute("INSERT INTO t (x) VALUES (1)")
    with pytest.raises(InterfaceError):
        tx.commit()
    assert xs(t) == []
    # It can still be entered afterwards.
    with tx:
        tx.execute("INSERT INTO t (x) VALUES (1)")
    assert xs(t) == [1]


# ---------------------------------------------------------------------------
# Visibility: own writes, readers, other threads
# ---------------------------------------------------------------------------


def test_reads_inside_transaction_see_own_writes_readers_do_not(t):
    t.execute("INSERT INTO t (x) VALUES (0)")
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (1)")
        assert [r[0] for r in tx.fetchall("SELECT x FROM t ORDER BY x")] == [0, 1]
        assert tx.fetchone("SELECT count(*) FROM t") == (2,)
        assert tx.query("SELECT x FROM t WHERE x = 1") == [{"x": 1}]
        assert list(tx.iterate("SELECT x FROM t ORDER BY x")) == [(0,), (1,)]
        # Database-level reads run on readers: only committed rows.
        assert t.fetchall("SELECT x FROM t") == [(0,)]
        assert list(t.iterate("SELECT x FROM t")) == [(0,)]
        assert t.query("SELECT x FROM t") == [{"x": 0}]
        with t.read() as snap:
            assert snap.fetchall("SELECT x FROM t") == [(0,)]
        # ... from another thread too
        assert in_thread(t.fetchall, "SELECT x FROM t") == [(0,)]
    assert xs(t) == [0, 1]


def test_other_thread_write_waits_for_transaction_then_succeeds(t):
    tx = t.begin()
    tx.execute("INSERT INTO t (x) VALUES (1)")
    started = threading.Event()
    box = {}

    def writer():
        started.set()
        try:
            box["r"] = t.execute("INSERT INTO t (x) VALUES (2)")
        except BaseException as e:
            box["e"] = e

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    started.wait()
    tx.execute("INSERT INTO t (x) VALUES (3)")
    tx.commit()
    th.join(LIVENESS_TIMEOUT)
    assert not th.is_alive(), "writer thread deadlocked"
    assert "e" not in box, box.get("e")
    assert box["r"].changes == 1
    assert sorted(xs(t)) == [1, 2, 3]


SAME_THREAD_WRITES = [
    ("execute", lambda db: db.execute("INSERT INTO t (x) VALUES (2)")),
    ("execute_stmt", lambda db: db.execute(db.prepare("INSERT INTO t (x) VALUES (2)"))),
    ("executemany", lambda db: db.executemany("INSERT INTO t (x) VALUES (?)", [(2,)])),
    ("executescript", lambda db: db.executescript("INSERT INTO t (x) VALUES (2)")),
    ("notify", lambda db: db.notify("ch", 2)),
    ("begin", lambda db: db.begin()),
    ("transaction", lambda db: db.transaction().__enter__()),
    ("select_notify", lambda db: db.fetchone("SELECT notify('ch', '2')")),
    ("insert_returning", lambda db: db.fetchall("INSERT INTO t (x) VALUES (2) RETURNING x")),
]


@pytest.mark.parametrize("name,call", SAME_THREAD_WRITES, ids=[c[0] for c in SAME_THREAD_WRITES])
def test_db_write_while_holding_transaction_is_programming_error(t, name, call):
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (1)")
        with pytest.raises(ProgrammingError):
            call(t)
        # the transaction is unharmed
        tx.execute("INSERT INTO t (x) VALUES (3)")
    assert xs(t) == [1, 3]
    assert notifications(t) == []


# ---------------------------------------------------------------------------
# Savepoints
# ---------------------------------------------------------------------------


def test_savepoint_release_keeps_and_rollback_discards(t):
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (1)")
        with tx.savepoint() as sp:
            assert isinstance(sp, Savepoint)
            assert sp.active
            tx.execute("INSERT INTO t (x) VALUES (2)")
        assert not sp.active
        with pytest.raises(ValueError):
            with tx.savepoint():
                tx.execute("INSERT INTO t (x) VALUES (3)")
                tx.notify("ch", "inner")
                raise ValueError
        assert [r[0] for r in tx.fetchall("SELECT x FROM t ORDER BY x")] == [1, 2]
        tx.execute("INSERT INTO t (x) VALUES (4)")
    assert xs(t) == [1, 2, 4]
    assert notifications(t) == []


def test_nested_savepoints(t):
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (1)")
        with tx.savepoint():
            tx.execute("INSERT INTO t (x) VALUES (2)")
            with pytest.raises(KeyError):
                with tx.savepoint():
                    tx.execute("INSERT INTO t (x) VALUES (3)")
                    with tx.savepoint():
                        tx.execute("INSERT INTO t (x) VALUES (4)")
                    raise KeyError
            with tx.savepoint():
                tx.execute("INSERT INTO t (x) VALUES (5)")
                with tx.savepoint():
                    tx.execute("INSERT INTO t (x) VALUES (6)")
    assert xs(t) == [1, 2, 5, 6]


def test_inner_savepoint_rollback_then_outer_transaction_rollback(t):
    with pytest.raises(RuntimeError):
        with t.transaction() as tx:
            with tx.savepoint():
                tx.execute("INSERT INTO t (x) VALUES (1)")
            raise RuntimeError
    assert xs(t) == []


def test_explicit_savepoint_release_and_rollback(t):
    with t.transaction() as tx:
        sp = tx.savepoint()
        sp.__enter__()
        tx.execute("INSERT INTO t (x) VALUES (1)")
        sp.release()
        assert not sp.active
        sp2 = tx.savepoint()
        with sp2:
            tx.execute("INSERT INTO t (x) VALUES (2)")
            sp2.rollback()
            assert not sp2.active
            tx.execute("INSERT INTO t (x) VALUES (3)")  # after the savepoint: kept
        with pytest.raises(InterfaceError):
            sp.release()
        with pytest.raises(InterfaceError):
            sp2.rollback()
    assert xs(t) == [1, 3]


def test_savepoints_must_end_innermost_first(t):
    with t.transaction() as tx:
        outer = tx.savepoint()
        outer.__enter__()
        tx.execute("INSERT INTO t (x) VALUES (1)")
        inner = tx.savepoint()
        inner.__enter__()
        tx.execute("INSERT INTO t (x) VALUES (2)")
        with pytest.raises(ProgrammingError):
            outer.release()
        assert outer.active and inner.active
        inner.rollback()
        outer.release()
    assert xs(t) == [1]


def test_savepoint_after_transaction_end(t):
    tx = t.begin()
    sp = tx.savepoint()
    sp.__enter__()
    tx.execute("INSERT INTO t (x) VALUES (1)")
    tx.commit()
    with pytest.raises(InterfaceError):
        sp.rollback()
    assert xs(t) == [1]


def test_executemany_in_transaction_is_all_or_nothing(t):
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (1)")
        with pytest.raises(IntegrityError):
            tx.executemany("INSERT INTO t (x) VALUES (?)", [(2,), (3,), (1,), (4,)])
        assert [r[0] for r in tx.fetchall("SELECT x FROM t ORDER BY x")] == [1]
        r = tx.executemany("INSERT INTO t (x) VALUES (?)", [(2,), (3,)])
        assert r.changes == 2
    assert xs(t) == [1, 2, 3]


# ---------------------------------------------------------------------------
# Notifications follow the transaction
# ---------------------------------------------------------------------------


def test_notification_in_rolled_back_transaction_never_appears(t, db_path):
    with pytest.raises(RuntimeError):
        with t.transaction() as tx:
            nid = tx.notify("orders", {"id": 1})
            assert isinstance(nid, int)
            assert tx.fetchone(
                "SELECT channel, payload FROM _honker_notifications WHERE id = ?", (nid,)
            ) == ("orders", json.dumps({"id": 1}, separators=(",", ":")))
            raise RuntimeError
    assert notifications(t) == []
    with alkdev_storage.open(db_path) as other:
        assert notifications(other) == []
    with t.transaction() as tx:
        tx.notify("orders", {"id": 2})
    assert notifications(t) == [("orders", json.dumps({"id": 2}, separators=(",", ":")))]


def test_notification_via_sql_in_rolled_back_transaction(t):
    tx = t.begin()
    assert tx.fetchone("SELECT notify('c', '\"x\"')")[0] >= 1
    tx.rollback()
    assert notifications(t) == []


# ---------------------------------------------------------------------------
# Scripts inside transactions
# ---------------------------------------------------------------------------


def test_executescript_in_transaction_follows_the_transaction(t):
    with pytest.raises(RuntimeError):
        with t.transaction() as tx:
            tx.executescript("INSERT INTO t (x) VALUES (1); INSERT INTO other VALUES ('a');")
            raise RuntimeError
    assert xs(t) == [] and xs(t, "other") == []
    with t.transaction() as tx:
        tx.executescript("INSERT INTO t (x) VALUES (1); INSERT INTO other VALUES ('a');")
    assert xs(t) == [1] and xs(t, "other") == ["a"]


@pytest.mark.parametrize(
    "script", ["COMMIT", "INSERT INTO t (x) VALUES (2); COMMIT", "END", "COMMIT; BEGIN"]
)
def test_script_committing_inside_transaction_commits_nothing(t, db_path, script):
    # The script's COMMIT is "not allowed": the error propagates out of the
    # with-block, which must then leave nothing behind (atomicity).
    with pytest.raises(ProgrammingError):
        with t.transaction() as tx:
            tx.execute("INSERT INTO t (x) VALUES (1)")
            tx.executescript(script)
            raise ProgrammingError("the script did not raise")
    assert xs(t) == []
    assert fresh_view(db_path) == []


def test_script_rolling_back_inside_transaction(t):
    with pytest.raises(ProgrammingError):
        with t.transaction() as tx:
            tx.execute("INSERT INTO t (x) VALUES (1)")
            tx.executescript("ROLLBACK")
    assert xs(t) == []


def test_db_executescript_with_transaction_control_writes_nothing(t, db_path):
    # Scripts run atomically in one transaction of their own: transaction
    # control inside them is refused and nothing is written.
    for script in (
        "BEGIN; INSERT INTO t (x) VALUES (1); INSERT INTO other VALUES (2);",
        "INSERT INTO t (x) VALUES (1); COMMIT;",
        "BEGIN; INSERT INTO t (x) VALUES (3); COMMIT;",
        "INSERT INTO t (x) VALUES (1); SAVEPOINT a; RELEASE a;",
    ):
        with pytest.raises(ProgrammingError, match="not allowed in a script"):
            t.executescript(script)
    assert xs(t) == [] and xs(t, "other") == []
    assert fresh_view(db_path) == []
    # the writer is usable afterwards, and a failing statement midway leaves
    # nothing from the script
    with pytest.raises(OperationalError):
        t.executescript("INSERT INTO t (x) VALUES (4); INSERT INTO missing VALUES (1);")
    assert xs(t) == []
    t.executescript("INSERT INTO t (x) VALUES (3); INSERT INTO t (x) VALUES (5);")
    assert xs(t) == [3, 5]


# ---------------------------------------------------------------------------
# Read snapshots
# ---------------------------------------------------------------------------


def test_snapshot_isolation(t):
    t.executemany("INSERT INTO t (x) VALUES (?)", [(i,) for i in range(5)])
    with t.read() as snap:
        assert isinstance(snap, Snapshot)
        assert snap.active
        assert snap.fetchone("SELECT count(*) FROM t") == (5,)
        t.execute("INSERT INTO t (x) VALUES (100)")
        in_thread(t.execute, "DELETE FROM t WHERE x < 2")
        with t.transaction() as tx:
            tx.execute("UPDATE t SET x = x + 1000 WHERE x = 4")
        # Inside the snapshot: still the state at its start.
        assert snap.fetchone("SELECT count(*) FROM t") == (5,)
        assert [r[0] for r in snap.fetchall("SELECT x FROM t ORDER BY x")] == [0, 1, 2, 3, 4]
        assert [r[0] for r in snap.iterate("SELECT x FROM t ORDER BY x")] == [0, 1, 2, 3, 4]
        assert snap.query("SELECT max(x) AS m FROM t") == [{"m": 4}]
        # Outside: the new state.
        assert sorted(xs(t)) == [2, 3, 100, 1004]
    assert not snap.active
    with t.read() as snap2:
        assert sorted(r[0] for r in snap2.fetchall("SELECT x FROM t")) == [2, 3, 100, 1004]


def test_snapshot_cannot_write(t):
    with t.read() as snap:
        with pytest.raises(OperationalError):
            snap.execute("INSERT INTO t (x) VALUES (1)")
        with pytest.raises(OperationalError):
            snap.fetchall("INSERT INTO t (x) VALUES (2) RETURNING x")
        with pytest.raises(ProgrammingError):
            snap.execute("COMMIT")
        assert snap.fetchone("SELECT count(*) FROM t") == (0,)
    assert xs(t) == []


def test_snapshot_close_and_use_after(t):
    snap = t.read()
    with pytest.raises(InterfaceError):
        snap.fetchall("SELECT 1")  # not begun
    with snap:
        assert snap.fetchone("SELECT 1") == (1,)
        snap.close()
        assert not snap.active
        with pytest.raises(InterfaceError):
            snap.fetchone("SELECT 1")
    snap.close()  # idempotent
    with pytest.raises(InterfaceError):
        snap.query("SELECT 1")
    with pytest.raises(InterfaceError):
        snap.__enter__()


def test_snapshot_returns_reader(tmp_path):
    with alkdev_storage.open(tmp_path / "one.db", max_readers=1) as db:
        for _ in range(5):
            with db.read() as snap:
                snap.fetchone("SELECT 1")
        with pytest.raises(ZeroDivisionError):
            with db.read() as snap:
                1 / 0  # noqa: B018
        assert in_thread(db.fetchone, "SELECT 2") == (2,)


# ---------------------------------------------------------------------------
# Iterators
# ---------------------------------------------------------------------------


def test_iterate_inside_transaction_sees_own_writes_and_can_interleave(t):
    t.executemany("INSERT INTO t (x) VALUES (?)", [(i,) for i in range(10)])
    with t.transaction() as tx:
        tx.execute("INSERT INTO t (x) VALUES (10)")
        seen = []
        for (x,) in tx.iterate("SELECT x FROM t ORDER BY x"):
            seen.append(x)
            tx.execute("INSERT INTO other VALUES (?)", (x * 2,))
        assert seen == list(range(11))
    assert xs(t, "other") == [x * 2 for x in range(11)]


def test_iterator_after_transaction_end_raises_interface_error(t):
    t.executemany("INSERT INTO t (x) VALUES (?)", [(i,) for i in range(10)])
    tx = t.begin()
    it = tx.iterate("SELECT x FROM t ORDER BY x")
    assert next(it) == (0,)
    assert next(it) == (1,)
    tx.commit()
    with pytest.raises(InterfaceError):
        next(it)
    # with-block exit ends it too
    with t.transaction() as tx2:
        it2 = iter(tx2.iterate("SELECT x FROM t"))
        next(it2)
    with pytest.raises(InterfaceError):
        next(it2)
    # and a snapshot's
    with t.read() as snap:
        it3 = snap.iterate("SELECT x FROM t")
        next(it3)
    with pytest.raises(InterfaceError):
        next(it3)


def test_iterator_close_is_idempotent(t):
    t.executemany("INSERT INTO t (x) VALUES (?)", [(i,) for i in range(3)])
    with t.transaction() as tx:
        it = tx.iterate("SELECT x FROM t ORDER BY x")
        assert next(it) == (0,)
        it.close()
        it.close()
        with pytest.raises(StopIteration):
            next(it)
        # the transaction still works
        assert tx.fetchone("SELECT count(*) FROM t") == (3,)
        with tx.iterate("SELECT x FROM t ORDER BY x") as it2:
            assert list(it2) == [(0,), (1,), (2,)]


def test_db_iterate_reads_a_consistent_statement_snapshot(t):
    t.executemany("INSERT INTO t (x) VALUES (?)", [(i,) for i in range(100)])
    it = t.iterate("SELECT x FROM t ORDER BY x")
    assert next(it) == (0,)
    t.executemany("INSERT INTO t (x) VALUES (?)", [(i,) for i in range(100, 300)])
    t.execute("DELETE FROM t WHERE x BETWEEN 50 AND 60")
    rest = [r[0] for r in it]
    assert rest == list(range(1, 100))
    assert len(xs(t)) == 289


@pytest.mark.parametrize("finish", ["exhaust", "close", "del", "context", "error"])
def test_db_iterate_gives_its_reader_back(tmp_path, finish):
    with alkdev_storage.open(tmp_path / "one.db", max_readers=1) as db:
        db.executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);")
        for _ in range(3):
            if finish == "exhaust":
                assert list(db.iterate("SELECT x FROM t")) == [(1,), (2,), (3,)]
            elif finish == "close":
                it = db.iterate("SELECT x FROM t")
                next(it)
                it.close()
            elif finish == "del":
                it = db.iterate("SELECT x FROM t")
                next(it)
                del it
            elif finish == "context":
                with db.iterate("SELECT x FROM t") as it:
                    next(it)
            else:
                with pytest.raises(alkdev_storage.DataError):
                    list(db.iterate("SELECT CAST(x'ff' AS TEXT) FROM t"))
            assert in_thread(db.fetchone, "SELECT count(*) FROM t") == (3,)


@pytest.mark.parametrize(
    "sql,params,exc",
    [
        ("SELECT * FROM nope", None, OperationalError),
        ("SELECT ?", (), ProgrammingError),
        ("SELECT ?", (object(),), TypeError),
        ("SELECT :a", {"b": 1}, ProgrammingError),
        ("BEGIN", None, ProgrammingError),
        ("SELECT 1; SELECT 2", None, ProgrammingError),
        ("", None, ProgrammingError),
    ],
)
def test_db_iterate_errors_give_the_reader_back(tmp_path, sql, params, exc):
    with alkdev_storage.open(tmp_path / "one.db", max_readers=1) as db:
        for _ in range(3):
            with pytest.raises(exc):
                list(db.iterate(sql, params))
        assert in_thread(db.fetchone, "SELECT 7") == (7,)


def test_all_readers_held_by_this_thread_raise_instead_of_deadlocking(tmp_path):
    db = alkdev_storage.open(tmp_path / "r.db", max_readers=2)
    try:
        db.executescript("CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
        s1 = db.read().__enter__()
        it = db.iterate("SELECT x FROM t")
        assert next(it) == (1,)
        with pytest.raises(ProgrammingError, match="held by this thread"):
            db.fetchall("SELECT x FROM t")
        with pytest.raises(ProgrammingError, match="held by this thread"):
            db.read().__enter__()
        # Another thread simply waits for a reader, and gets one once this
        # thread gives one back.
        got: list[object] = []
        th = threading.Thread(target=lambda: got.append(db.fetchall("SELECT x FROM t")))
        th.start()
        th.join(0.2)
        assert th.is_alive() and got == []
        s1.close()
        th.join(LIVENESS_TIMEOUT)
        assert got == [[(1,), (2,)]]
        assert list(it) == [(2,)]
        assert db.fetchall("SELECT x FROM t") == [(1,), (2,)]
    finally:
        db.close()
