"""PEP 249 details: description type codes, fetch without a result set,
close semantics, repr, the hooks integrations use."""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alkdev_storage
from alkdev_storage import dbapi
from alkdev_storage.dbapi._types import type_code


@pytest.fixture
def conn(db_path: Path):  # type: ignore[no-untyped-def]
    c = dbapi.connect(db_path)
    yield c
    c.close()


# -- type codes --------------------------------------------------------------

DECLARED = {
    "INTEGER": int,
    "BIGINT": int,
    "VARCHAR(20)": str,
    "TEXT": str,
    "CLOB": str,
    "BLOB": bytes,
    "": bytes,
    "REAL": float,
    "DOUBLE PRECISION": float,
    "FLOAT": float,
    "NUMERIC(10, 2)": Decimal,
    "BOOLEAN": Decimal,
    "DATE": dt.date,
    "DATETIME": dt.datetime,
    "TIMESTAMP": dt.datetime,
    "TIME": dt.time,
}

TYPE_OBJECTS = {
    int: {"NUMBER", "ROWID"},
    str: {"STRING"},
    bytes: {"BINARY"},
    float: {"NUMBER"},
    Decimal: {"NUMBER"},
    dt.date: {"DATETIME"},
    dt.datetime: {"DATETIME"},
    dt.time: {"DATETIME"},
}


def test_description_type_codes_follow_the_declared_types(conn: dbapi.Connection) -> None:
    cols = list(DECLARED)
    conn.execute(
        "CREATE TABLE typed ("
        + ", ".join(f"c{i} {decl}" for i, decl in enumerate(cols))
        + ")"
    )
    conn.commit()
    cur = conn.execute("SELECT *, count(*) AS n, c0 + 1 AS expr FROM typed")
    desc = cur.description
    assert desc is not None
    for i, decl in enumerate(cols):
        code = desc[i][1]
        assert code is DECLARED[decl], decl
        for name in ("STRING", "NUMBER", "BINARY", "DATETIME", "ROWID"):
            expected = name in TYPE_OBJECTS[code]
            assert (code == getattr(dbapi, name)) is expected, (decl, name)
            assert (getattr(dbapi, name) == code) is expected, (decl, name)
        assert desc[i][2:] == (None,) * 5
    # Expressions have no declared type: BINARY, like an undeclared column.
    assert desc[-2][1] is bytes and desc[-1][1] is bytes
    assert desc[-2][1] == dbapi.BINARY


FRAGMENTS = ["INT", "CHAR", "CLOB", "TEXT", "BLOB", "REAL", "FLOA", "DOUB", "DATE", "TIME",
             "NUM", "VAR", "X", "STAMP", "BIG", "ER", "int", "Text"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=3), max_size=2),
    size=st.booleans(),
)
def test_type_codes_agree_with_sqlites_affinity(words: list[list[str]], size: bool) -> None:
    """Oracle: the stdlib sqlite3 module's column affinity, observed by
    storing probe values (INTEGER and NUMERIC affinity differ only in
    CAST, so both map to a NUMBER code)."""
    decl = " ".join("".join(w) for w in words)
    if decl and size:
        decl += "(10)"
    with tempfile.TemporaryDirectory() as d:
        con = sqlite3.connect(Path(d) / "oracle.db")
        con.execute(f"CREATE TABLE t (c {decl})")
        con.execute("INSERT INTO t VALUES ('12')")
        con.execute("INSERT INTO t VALUES (12.5)")
        kinds = tuple(r[0] for r in con.execute("SELECT typeof(c) FROM t ORDER BY rowid"))
        con.close()
    code = type_code(decl or None)
    if kinds == ("integer", "real"):  # INTEGER or NUMERIC affinity
        assert code in (int, Decimal, dt.date, dt.datetime, dt.time)
        assert (code is int) == ("INT" in decl.upper())
    elif kinds == ("text", "text"):
        assert code is str
    elif kinds == ("text", "real"):  # BLOB affinity
        assert code is bytes
    else:
        assert kinds == ("real", "real")
        assert code is float


# -- result sets ----------------------------------------------------------------


def test_fetch_without_a_result_set_raises(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    with pytest.raises(dbapi.ProgrammingError, match="no result set"):
        cur.fetchone()  # nothing executed yet
    cur.execute("CREATE TABLE t (a)")
    for fetch in (cur.fetchone, cur.fetchall, cur.fetchmany):
        with pytest.raises(dbapi.ProgrammingError, match="no result set"):
            fetch()
    cur.execute("INSERT INTO t VALUES (1)")
    assert cur.description is None
    with pytest.raises(dbapi.ProgrammingError, match="no result set"):
        cur.fetchall()
    cur.executemany("INSERT INTO t VALUES (?)", [(2,), (3,)])
    with pytest.raises(dbapi.ProgrammingError, match="no result set"):
        cur.fetchone()
    cur.execute("SAVEPOINT s")
    with pytest.raises(dbapi.ProgrammingError, match="no result set"):
        cur.fetchone()
    cur.execute("RELEASE s")
    # An empty result set is a result set.
    cur.execute("SELECT a FROM t WHERE a > 10")
    assert cur.fetchall() == [] and cur.fetchone() is None and cur.fetchmany(3) == []
    cur.execute("INSERT INTO t VALUES (4) RETURNING a")
    assert cur.fetchall() == [(4,)]
    assert cur.fetchall() == []  # exhausted, still a result set
    with pytest.raises(dbapi.ProgrammingError, match="no result set"):
        conn.executescript("INSERT INTO t VALUES (5);").fetchall()
    conn.commit()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (5,)


def test_fetch_methods_hand_out_independent_lists(conn: dbapi.Connection) -> None:
    conn.execute("CREATE TABLE t (a)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5)])
    cur = conn.execute("SELECT a FROM t ORDER BY a")
    assert cur.fetchone() == (0,)
    first = cur.fetchmany(2)
    first.append(("x",))
    assert cur.fetchall() == [(3,), (4,)]
    rows = conn.execute("SELECT a FROM t ORDER BY a").fetchall()
    rows.clear()
    assert conn.execute("SELECT a FROM t ORDER BY a").fetchall() == [(i,) for i in range(5)]


# -- close, repr ----------------------------------------------------------------


def test_closing_twice_does_nothing_and_everything_else_raises(db_path: Path) -> None:
    c = dbapi.connect(db_path)
    db = c.database
    c.execute("CREATE TABLE t (a)")  # an open transaction: rolled back by close
    cur = c.cursor()
    c.close()
    c.close()
    assert c.closed and db.closed
    for call in (
        c.cursor,
        c.commit,
        c.rollback,
        c.begin,
        c.write_transaction,
        lambda: c.database,
        lambda: c.execute("SELECT 1"),
        lambda: c.executemany("INSERT INTO t VALUES (?)", [(1,)]),
        lambda: c.executescript("SELECT 1;"),
        lambda: cur.execute("SELECT 1"),
        lambda: cur.executemany("INSERT INTO t VALUES (?)", [(1,)]),
    ):
        with pytest.raises(dbapi.ProgrammingError, match="closed connection"):
            call()
    cur.close()
    cur.close()
    with dbapi.connect(db_path) as again:
        assert again.execute("SELECT count(*) FROM sqlite_schema WHERE name = 't'").fetchone() == (
            0,
        )
    again.close()


def test_repr(conn: dbapi.Connection, db_path: Path) -> None:
    assert repr(conn) == f"<alkdev_storage.dbapi.connection.Connection {str(db_path)!r} idle>"
    cur = conn.cursor()
    assert "no result set" in repr(cur)
    cur.execute("SELECT 1 UNION ALL SELECT 2")
    assert repr(cur) == "<alkdev_storage.dbapi.cursor.Cursor 2 rows to fetch, rowcount=-1>"
    cur.fetchone()
    assert "1 rows to fetch" in repr(cur)
    conn.execute("CREATE TABLE t (a)")
    assert repr(conn).endswith(" write transaction>")
    conn.rollback()
    conn.readonly = True
    conn.execute("SELECT 1")
    assert repr(conn).endswith(" read snapshot readonly>")
    conn.rollback()
    conn.readonly = False
    conn.autocommit = True
    assert repr(conn).endswith(" idle autocommit>")
    cur.close()
    assert repr(cur) == "<alkdev_storage.dbapi.cursor.Cursor closed>"
    conn.close()
    assert repr(conn) == "<alkdev_storage.dbapi.connection.Connection closed>"


def test_exception_classes_are_the_package_ones() -> None:
    for name in (
        "Warning Error InterfaceError DatabaseError DataError OperationalError "
        "IntegrityError InternalError ProgrammingError NotSupportedError"
    ).split():
        cls = getattr(alkdev_storage.errors, name)
        assert getattr(dbapi, name) is cls
        assert getattr(dbapi.Connection, name) is cls
        assert name in dbapi.__all__


def test_connect_takes_only_an_alkdev_storage_database(db: alkdev_storage.Database) -> None:
    bare = alkdev_storage._native.Database(db.path)
    try:
        with pytest.raises(TypeError, match=r"alkdev_storage\.open"):
            dbapi.connect(bare)  # type: ignore[arg-type]
    finally:
        bare.close()


# -- hooks for integrations ------------------------------------------------------


def test_run_prepared_joins_the_connection_state(conn: dbapi.Connection, db_path: Path) -> None:
    conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b)")
    conn.commit()
    db = conn.database
    ins = db.prepare("INSERT INTO t (b) VALUES (?)")
    sel = db.prepare("SELECT b FROM t ORDER BY a")
    other = dbapi.connect(db_path)
    try:
        assert conn.run_prepared(sel) == []
        assert conn.transaction is None  # a read outside a transaction: a reader
        r = conn.run_prepared(ins, ("x",), "exec")
        assert r.changes == 1 and r.lastrowid == 1
        assert conn.transaction is not None  # the write began the transaction
        assert conn.run_prepared(sel, None, "one") == ("x",)  # sees its own write
        assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)
        conn.rollback()
        with pytest.raises(dbapi.ProgrammingError, match=r"cursor\.execute"):
            conn.run_prepared(db.prepare("BEGIN"), None, "exec")
        conn.autocommit = True
        conn.run_prepared(ins, ("y",), "exec")
        assert conn.transaction is None
        assert other.execute("SELECT b FROM t").fetchall() == [("y",)]
        with pytest.raises(dbapi.IntegrityError):
            conn.autocommit = False
            conn.run_prepared(db.prepare("INSERT INTO t (a) VALUES (1)"), None, "exec")
        assert conn.transaction is None  # the failed first write gave the writer back
    finally:
        other.close()


def test_begin_writes_eagerly_is_a_plain_flag(conn: dbapi.Connection) -> None:
    assert conn.begin_writes_eagerly is False
    conn.begin_writes_eagerly = True
    assert conn.begin_writes_eagerly is True
    conn.execute("SELECT 1")
    assert conn.transaction is None  # the driver itself does not act on it
    conn.begin_writes_eagerly = False


# -- routing by the Statement's kind -------------------------------------------


def test_read_only_honker_functions_run_on_a_reader(conn: dbapi.Connection) -> None:
    """``honker_get_job`` only reads: no write transaction (the driver used
    to send every ``honker_*`` call to the writer)."""
    q = conn.database.queue("q")
    job_id = q.enqueue({"a": 1})
    row = conn.execute("SELECT honker_get_job(?)", (job_id,)).fetchone()
    assert row is not None and row[0] is not None
    assert conn.transaction is None
    conn.execute("SELECT honker_enqueue('q', '{}', NULL, NULL, 0, 3, NULL)")
    assert conn.transaction is not None  # a function that writes: the writer
    conn.rollback()


def test_connection_level_statements_on_the_shared_writer(
    db_path: Path, tmp_path: Path
) -> None:
    a, b = dbapi.connect(db_path), dbapi.connect(db_path)
    aux, other = str(tmp_path / "aux.db"), str(tmp_path / "other.db")
    try:
        assert a.execute("PRAGMA journal_mode = wal").fetchall() == [("wal",)]
        a.execute("PRAGMA user_version = 7")
        assert a.transaction is None  # outside any transaction, on the writer
        assert b.execute("PRAGMA user_version").fetchone() == (7,)
        a.execute("ATTACH ? AS aux", (aux,))
        # the same ATTACH by another connection: already there on the shared writer
        b.execute("ATTACH ? AS aux", (aux,))
        with pytest.raises(dbapi.OperationalError, match="already in use"):
            b.execute("ATTACH ? AS aux", (other,))  # another file under that name
        names = [r[1] for r in b.execute("PRAGMA database_list").fetchall()]
        assert names == ["main", "aux"]
        a.execute("CREATE TABLE aux.x (v)")
        a.execute("INSERT INTO aux.x VALUES (1)")
        a.commit()
        assert b.execute("SELECT v FROM aux.x").fetchall() == [(1,)]
        a.execute("BEGIN")
        with pytest.raises(dbapi.OperationalError):
            a.execute("DETACH aux")  # SQLite refuses it inside a transaction
        a.rollback()
        b.execute("DETACH aux")
        assert [r[1] for r in a.execute("PRAGMA database_list").fetchall()] == ["main"]
        a.execute("ATTACH ? AS aux", (aux,))  # attached again after the DETACH
        assert a.execute("SELECT v FROM aux.x").fetchall() == [(1,)]
        a.execute("VACUUM")
    finally:
        a.close()
        b.close()
