"""PEP 249 driver: module globals, connections, cursors, transactions."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

import alkdev_storage
from alkdev_storage import dbapi


@pytest.fixture
def conn(db_path):
    c = dbapi.connect(db_path)
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, v REAL)")
    c.commit()
    yield c
    c.close()


def count(c, table="t"):
    return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- module globals ---------------------------------------------------------


def test_module_globals():
    assert dbapi.apilevel == "2.0"
    assert dbapi.threadsafety == 1
    assert dbapi.paramstyle == "qmark"
    assert dbapi.sqlite_version == alkdev_storage.sqlite_version()
    assert dbapi.sqlite_version_info == tuple(int(x) for x in dbapi.sqlite_version.split("."))
    assert dbapi.Binary(b"x") == b"x"
    assert dbapi.Date(2024, 1, 2) == dt.date(2024, 1, 2)
    assert dbapi.Time(1, 2, 3) == dt.time(1, 2, 3)
    assert dbapi.Timestamp(2024, 1, 2, 3, 4, 5) == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert isinstance(dbapi.DateFromTicks(0), dt.date)
    assert isinstance(dbapi.TimeFromTicks(0), dt.time)
    assert isinstance(dbapi.TimestampFromTicks(0), dt.datetime)
    assert dbapi.STRING == str  # noqa: E721 - PEP 249 type objects compare equal
    assert dbapi.NUMBER == int  # noqa: E721
    assert dbapi.BINARY == bytes  # noqa: E721
    for name in (
        "Warning Error InterfaceError DatabaseError DataError OperationalError "
        "IntegrityError InternalError ProgrammingError NotSupportedError"
    ).split():
        assert getattr(dbapi, name) is getattr(alkdev_storage, name)
        assert getattr(dbapi.Connection, name) is getattr(alkdev_storage, name)
    assert issubclass(dbapi.IntegrityError, dbapi.DatabaseError)


# -- connections ------------------------------------------------------------


def test_connections_to_one_file_share_one_database(db_path, tmp_path):
    a = dbapi.connect(db_path)
    b = dbapi.connect(str(db_path))
    other = dbapi.connect(tmp_path / "other.db")
    try:
        assert a.database is b.database
        assert other.database is not a.database
        db = a.database
        a.close()
        assert not db.closed  # b still uses it
        b.close()
        assert db.closed  # closed with its last connection
    finally:
        other.close()


def test_connect_accepts_an_open_database_and_never_closes_it(db):
    c = dbapi.connect(db)
    assert c.database is db
    c.execute("CREATE TABLE x (a)")
    c.commit()
    c.close()
    assert not db.closed
    assert db.fetchall("SELECT name FROM sqlite_master WHERE name = 'x'") == [("x",)]


def test_connect_rejects_bad_input(db_path, tmp_path):
    with pytest.raises(ValueError, match="in-memory"):
        dbapi.connect(":memory:")
    with pytest.raises(TypeError, match=r"unexpected keyword|got an unexpected"):
        dbapi.connect(db_path, busy=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_readers"):
        dbapi.connect(db_path, max_readers=0)
    with pytest.raises(TypeError, match="autocommit"):
        dbapi.connect(db_path, autocommit="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="database"):
        dbapi.connect(42)  # type: ignore[arg-type]
    c = dbapi.connect(db_path, max_readers=2)
    try:
        with pytest.raises(ValueError, match="max_readers=3 conflicts"):
            dbapi.connect(db_path, max_readers=3)
        dbapi.connect(db_path, max_readers=2).close()
    finally:
        c.close()


def test_closed_connection_and_cursor_raise_clear_errors(db_path):
    c = dbapi.connect(db_path)
    cur = c.cursor()
    cur.execute("SELECT 1")
    cur.close()
    with pytest.raises(dbapi.ProgrammingError, match="closed cursor"):
        cur.execute("SELECT 1")
    with pytest.raises(dbapi.ProgrammingError, match="closed cursor"):
        cur.fetchone()
    c.close()
    c.close()  # idempotent
    for call in (c.cursor, c.commit, c.rollback, lambda: c.execute("SELECT 1")):
        with pytest.raises(dbapi.ProgrammingError, match="closed connection"):
            call()
    cur2 = dbapi.Cursor(c)
    with pytest.raises(dbapi.ProgrammingError, match="closed connection"):
        cur2.execute("SELECT 1")


def test_file_replaced_underneath_gets_a_new_database(tmp_path):
    p = tmp_path / "r.db"
    a = dbapi.connect(p)
    a.execute("CREATE TABLE old (x)")
    a.commit()
    for suffix in ("", "-wal", "-shm"):
        f = tmp_path / f"r.db{suffix}"
        if f.exists():
            f.unlink()
    b = dbapi.connect(p)
    try:
        assert b.database is not a.database
        assert b.execute("SELECT count(*) FROM sqlite_master WHERE name='old'").fetchone() == (0,)
    finally:
        a.close()
        b.close()


# -- cursors ----------------------------------------------------------------


def test_cursor_fetch_methods_description_rowcount_lastrowid(conn):
    cur = conn.cursor()
    cur.execute("INSERT INTO t (name, v) VALUES (?, ?)", ("a", 1.5))
    assert cur.rowcount == 1
    assert cur.lastrowid == 1
    assert cur.description is None
    cur.executemany("INSERT INTO t (name, v) VALUES (?, ?)", [(f"n{i}", i) for i in range(5)])
    assert cur.rowcount == 5
    conn.commit()
    cur.execute("SELECT id, name, v FROM t ORDER BY id")
    assert [d[0] for d in cur.description] == ["id", "name", "v"]
    assert all(len(d) == 7 for d in cur.description)
    assert cur.rowcount == -1
    assert cur.fetchone() == (1, "a", 1.5)
    assert cur.arraysize == 1
    assert cur.fetchmany() == [(2, "n0", 0.0)]
    assert cur.fetchmany(2) == [(3, "n1", 1.0), (4, "n2", 2.0)]
    cur.arraysize = 10
    assert cur.fetchmany() == [(5, "n3", 3.0), (6, "n4", 4.0)]
    assert cur.fetchone() is None
    assert cur.fetchall() == []
    cur.execute("SELECT name FROM t WHERE id > ? ORDER BY id", (4,))
    assert list(cur) == [("n3",), ("n4",)]
    cur.execute("SELECT name FROM t WHERE id = :id", {"id": 1})
    assert cur.fetchall() == [("a",)]
    cur.execute("UPDATE t SET v = v + 1 WHERE id > 3")
    assert cur.rowcount == 3
    cur.execute("DELETE FROM t WHERE id = 1 RETURNING name")
    assert cur.fetchall() == [("a",)]
    assert cur.rowcount == 1
    conn.rollback()
    with conn.cursor() as c2:
        c2.execute("SELECT 1")
    with pytest.raises(dbapi.ProgrammingError, match="closed cursor"):
        c2.fetchall()


def test_duplicate_column_names_and_binary(conn):
    cur = conn.execute("SELECT 1 AS a, 2 AS a, ? AS b", (dbapi.Binary(b"\x00\x01"),))
    assert [d[0] for d in cur.description] == ["a", "a", "b"]
    assert cur.fetchone() == (1, 2, b"\x00\x01")


def test_date_time_parameters_are_stored_as_iso_text(conn):
    conn.execute("CREATE TABLE d (a, b, c)")
    conn.execute(
        "INSERT INTO d VALUES (?, ?, ?)",
        (dbapi.Date(2024, 5, 6), dbapi.Time(7, 8, 9), dbapi.Timestamp(2024, 5, 6, 7, 8, 9, 10)),
    )
    conn.executemany("INSERT INTO d VALUES (?, ?, ?)", [(dt.date(2020, 1, 1), None, None)])
    assert conn.execute("SELECT * FROM d").fetchall() == [
        ("2024-05-06", "07:08:09", "2024-05-06 07:08:09.000010"),
        ("2020-01-01", None, None),
    ]


def test_bad_parameters_raise_and_write_nothing(conn):
    with pytest.raises(dbapi.ProgrammingError, match="binding"):
        conn.execute("INSERT INTO t (name) VALUES (?)", ([1, 2],))
    assert conn.transaction is None  # the empty transaction was given back
    with pytest.raises(dbapi.ProgrammingError, match="number of bindings"):
        conn.execute("INSERT INTO t (name) VALUES (?)", ())
    with pytest.raises(dbapi.OperationalError, match="syntax error"):
        conn.execute("INSERT INTO t VALUES (1,,)")
    with pytest.raises(dbapi.ProgrammingError, match="executemany"):
        conn.executemany("SELECT 1", [()])
    assert count(conn) == 0


def test_failed_statement_writes_nothing_and_frees_the_writer(conn, db_path):
    conn.execute("INSERT INTO t (name) VALUES ('x')")
    conn.commit()
    with pytest.raises(dbapi.IntegrityError):
        conn.execute("INSERT INTO t (name) VALUES ('x')")
    assert conn.transaction is None
    # The writer slot is free: another connection in another thread writes.
    other = dbapi.connect(db_path)
    done = []
    th = threading.Thread(
        target=lambda: (
            other.execute("INSERT INTO t (name) VALUES ('y')"),
            other.commit(),
            done.append(1),
        )
    )
    th.start()
    th.join(10)
    assert done == [1]
    other.close()
    # executemany: all rows or none, also inside a transaction.
    conn.execute("INSERT INTO t (name) VALUES ('z')")
    with pytest.raises(dbapi.IntegrityError):
        conn.executemany("INSERT INTO t (name) VALUES (?)", [("p",), ("q",), ("x",)])
    conn.commit()
    assert sorted(r[0] for r in conn.execute("SELECT name FROM t").fetchall()) == ["x", "y", "z"]


# -- transactions -----------------------------------------------------------


def test_select_outside_transaction_runs_on_a_reader(conn):
    conn.execute("SELECT * FROM t").fetchall()
    assert conn.transaction is None and not conn.in_transaction
    assert conn.database.open_readers >= 1


def test_first_write_begins_a_writer_transaction(conn, db_path):
    other = dbapi.connect(db_path)
    try:
        conn.execute("INSERT INTO t (name) VALUES ('a')")
        tx = conn.transaction
        assert isinstance(tx, alkdev_storage.Transaction) and tx.active
        # own writes are visible inside, not outside
        assert count(conn) == 1
        assert count(other) == 0
        conn.commit()
        assert conn.transaction is None and not tx.active
        assert count(other) == 1
        conn.execute("DELETE FROM t")
        conn.rollback()
        assert count(other) == 1
    finally:
        other.close()


def test_writers_queue_for_the_slot_while_readers_proceed(conn, db_path):
    conn.execute("INSERT INTO t (name) VALUES ('first')")  # holds the writer
    events: list[str] = []
    committed = threading.Event()

    def writer() -> None:
        c = dbapi.connect(db_path)
        c.execute("INSERT INTO t (name) VALUES ('second')")
        events.append(f"second wrote; first committed={committed.is_set()}")
        c.commit()
        c.close()

    def reader() -> None:
        c = dbapi.connect(db_path)
        events.append(f"reader saw {count(c)}")
        c.close()

    r = threading.Thread(target=reader)
    r.start()
    r.join(10)
    assert events == ["reader saw 0"]  # not blocked by the open write transaction
    w = threading.Thread(target=writer)
    w.start()
    w.join(0.2)
    assert w.is_alive()  # queued for the writer slot
    committed.set()
    conn.commit()
    w.join(10)
    assert events[-1] == "second wrote; first committed=True"
    assert count(conn) == 2


def test_explicit_begin_and_transaction_control_sql(conn):
    conn.begin()
    assert conn.transaction is not None
    with pytest.raises(dbapi.OperationalError, match="within a transaction"):
        conn.begin()
    conn.rollback()
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    cur.execute("INSERT INTO t (name) VALUES ('a')")
    cur.execute("SAVEPOINT sp1")
    cur.execute("INSERT INTO t (name) VALUES ('b')")
    cur.execute('SAVEPOINT "Sp2"')
    cur.execute("INSERT INTO t (name) VALUES ('c')")
    cur.execute("ROLLBACK TO SAVEPOINT sp2")  # case-insensitive; keeps sp2
    assert count(conn) == 2
    cur.execute("INSERT INTO t (name) VALUES ('d')")
    cur.execute("RELEASE sp2")
    cur.execute("ROLLBACK TRANSACTION TO sp1")
    assert count(conn) == 1
    cur.execute("RELEASE SAVEPOINT sp1")
    with pytest.raises(dbapi.OperationalError, match="no such savepoint"):
        cur.execute("RELEASE sp1")
    cur.execute("COMMIT")
    assert conn.transaction is None
    assert [r[0] for r in conn.execute("SELECT name FROM t")] == ["a"]
    with pytest.raises(dbapi.OperationalError, match="no transaction is active"):
        cur.execute("COMMIT")
    with pytest.raises(dbapi.OperationalError, match="no transaction is active"):
        cur.execute("ROLLBACK")
    cur.execute("SAVEPOINT outer")  # begins the transaction
    cur.execute("INSERT INTO t (name) VALUES ('e')")
    cur.execute("RELEASE outer")
    assert conn.transaction is not None  # still open: commit() decides
    cur.execute("END")
    assert count(conn) == 2


def test_autocommit_mode(db_path):
    c = dbapi.connect(db_path, autocommit=True)
    other = dbapi.connect(db_path)
    try:
        assert c.autocommit
        c.execute("CREATE TABLE a (x)")
        c.execute("INSERT INTO a VALUES (1)")
        assert c.transaction is None
        assert count(other, "a") == 1  # committed already
        c.execute("BEGIN")
        c.execute("INSERT INTO a VALUES (2)")
        assert count(other, "a") == 1
        c.execute("COMMIT")
        assert count(other, "a") == 2
        c.execute("SAVEPOINT s")  # as in SQLite: starts a transaction...
        c.execute("INSERT INTO a VALUES (3)")
        assert count(other, "a") == 2
        c.execute("RELEASE s")  # ...that releasing the outermost savepoint commits
        assert c.transaction is None
        assert count(other, "a") == 3
        # switching autocommit on commits the open transaction (as sqlite3)
        c.autocommit = False
        c.execute("INSERT INTO a VALUES (4)")
        c.autocommit = True
        assert count(other, "a") == 4
    finally:
        c.close()
        other.close()


def test_readonly_mode_reads_a_snapshot_and_refuses_writes(conn, db_path):
    conn.execute("INSERT INTO t (name) VALUES ('a')")
    conn.commit()
    ro = dbapi.connect(db_path, readonly=True)
    try:
        assert count(ro) == 1  # the snapshot begins here
        conn.execute("INSERT INTO t (name) VALUES ('b')")
        conn.commit()
        assert count(ro) == 1  # still the same snapshot
        with pytest.raises(dbapi.OperationalError, match="readonly"):
            ro.execute("INSERT INTO t (name) VALUES ('c')")
        with pytest.raises(dbapi.ProgrammingError, match="inside a transaction"):
            ro.readonly = False
        ro.rollback()
        assert count(ro) == 2  # a new snapshot
        ro.rollback()
        ro.readonly = False
        ro.execute("INSERT INTO t (name) VALUES ('c')")
        ro.commit()
    finally:
        ro.close()
    assert count(conn) == 3


def test_notify_in_the_transaction_commits_with_it(conn):
    conn.execute("INSERT INTO t (name) VALUES ('a')")
    conn.transaction.notify("ch", {"n": 1})
    conn.execute("SELECT notify('ch', '2')")
    conn.rollback()
    db = conn.database
    assert db.fetchone("SELECT count(*) FROM _honker_notifications") == (0,)
    conn.execute("SELECT notify('ch', '3')")  # a writing function begins the transaction
    assert conn.transaction is not None
    conn.commit()
    assert db.fetchone("SELECT count(*) FROM _honker_notifications") == (1,)


def test_write_transaction_accessor(conn):
    tx = conn.write_transaction()
    assert tx is conn.transaction and tx.active
    assert conn.write_transaction() is tx
    conn.rollback()


def test_context_manager_commits_or_rolls_back(conn):
    with conn:
        conn.execute("INSERT INTO t (name) VALUES ('a')")
    with pytest.raises(ZeroDivisionError), conn:
        conn.execute("INSERT INTO t (name) VALUES ('b')")
        1 / 0  # noqa: B018
    assert count(conn) == 1


# -- schema changes -----------------------------------------------------------


def test_select_star_follows_schema_changes(conn):
    conn.execute("INSERT INTO t (name) VALUES ('a')")
    conn.commit()
    assert len(conn.execute("SELECT * FROM t").description) == 3
    conn.execute("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'e'")
    # inside the DDL transaction: compiled on the writer
    cur = conn.execute("SELECT * FROM t")
    assert [d[0] for d in cur.description] == ["id", "name", "v", "extra"]
    assert cur.fetchall() == [(1, "a", None, "e")]
    cur = conn.execute("SELECT * FROM t WHERE id < 0")
    assert len(cur.description) == 4 and cur.fetchall() == []
    conn.commit()
    cur = conn.execute("SELECT * FROM t")
    assert [d[0] for d in cur.description] == ["id", "name", "v", "extra"]
    assert cur.fetchall() == [(1, "a", None, "e")]


def test_create_table_and_use_it_in_one_transaction(conn):
    conn.execute("CREATE TABLE n (a INTEGER PRIMARY KEY, b TEXT)")
    conn.execute("INSERT INTO n (b) VALUES (?)", ("x",))
    cur = conn.execute("SELECT a, b FROM n")
    assert [d[0] for d in cur.description] == ["a", "b"]
    assert cur.fetchall() == [(1, "x")]
    conn.rollback()
    with pytest.raises(dbapi.OperationalError, match="no such table"):
        conn.execute("SELECT * FROM n")


def test_pragmas(conn):
    cur = conn.execute("PRAGMA table_info(t)")
    assert [r[1] for r in cur.fetchall()] == ["id", "name", "v"]
    assert cur.description[1][0] == "name"
    conn.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES t(id))")
    conn.commit()
    # a reader that has already loaded the schema sees the new table
    assert conn.execute("PRAGMA foreign_key_list(c)").fetchall()[0][2] == "t"
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_attach_and_temp_tables_are_seen_by_later_reads(conn, tmp_path):
    other = tmp_path / "other.db"
    conn.execute(f"ATTACH DATABASE '{other}' AS aux")
    conn.execute(f"ATTACH DATABASE '{other}' AS aux")  # the shared writer has it already
    conn.execute("CREATE TABLE aux.x (a)")
    conn.execute("INSERT INTO aux.x VALUES (1)")
    conn.commit()
    assert conn.execute("SELECT a FROM aux.x").fetchall() == [(1,)]
    assert "aux" in [r[1] for r in conn.execute("PRAGMA database_list").fetchall()]
    conn.execute("CREATE TEMP TABLE tmp (b)")
    conn.execute("INSERT INTO tmp VALUES (2)")
    conn.commit()
    assert conn.execute("SELECT b FROM tmp").fetchall() == [(2,)]
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    conn.execute("DETACH DATABASE aux")
