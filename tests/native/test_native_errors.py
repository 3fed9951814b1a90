"""Bad input raises the documented error and changes nothing; error classes
and their SQLite codes."""

from __future__ import annotations

import decimal
import json

import pytest

import alkdev_storage
from alkdev_storage import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
    _native,
)


@pytest.fixture
def t(db):
    db.executescript(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, x UNIQUE);INSERT INTO t (x) VALUES ('seed');"
    )
    db.notify("seed", 0)
    return db


def state(db):
    """Everything a bad call could have changed."""
    return (
        db.fetchall("SELECT id, x FROM t ORDER BY id"),
        db.fetchall("SELECT id, channel, payload FROM _honker_notifications ORDER BY id"),
        db.fetchall("SELECT name FROM sqlite_schema ORDER BY name"),
    )


INS = "INSERT INTO t (x) VALUES (?)"
INS_NAMED = "INSERT INTO t (x) VALUES (:a)"
INS_RET = "INSERT INTO t (x) VALUES (?) RETURNING x"

# (id, sql, params, good params for the same SQL or None, expected exception)
BAD_PARAMS = [
    ("object", INS, (object(),), (1,), TypeError),
    ("decimal", INS, (decimal.Decimal("1.5"),), (1,), TypeError),
    ("list_value", INS, ([1, 2],), (1,), TypeError),
    ("dict_value", INS, ({"a": 1},), (1,), TypeError),
    ("set_value", INS, ({1},), (1,), TypeError),
    ("overflow_pos", INS, (2**63,), (1,), OverflowError),
    ("overflow_neg", INS, (-(2**63) - 1,), (1,), OverflowError),
    ("overflow_huge", INS, (10**100,), (1,), OverflowError),
    ("too_few", INS, (), (1,), ProgrammingError),
    ("too_many", INS, (1, 2), (1,), ProgrammingError),
    ("none_params", INS, None, (1,), ProgrammingError),
    ("missing_named", INS_NAMED, {"b": 1}, {"a": 1}, ProgrammingError),
    ("empty_mapping", INS_NAMED, {}, {"a": 1}, ProgrammingError),
    ("mapping_for_positional", INS, {"a": 1}, (1,), ProgrammingError),
    ("str_params", INS, "a", (1,), ProgrammingError),
    ("bytes_params", INS, b"a", (1,), ProgrammingError),
    ("int_params", INS, 5, (1,), ProgrammingError),
    ("surrogate", INS, ("\ud800",), (1,), DataError),
    ("noncontiguous", INS, (memoryview(b"abcdef")[::2],), (1,), TypeError),
    ("named_object", INS_NAMED, {"a": object()}, {"a": 1}, TypeError),
]

BAD_SQL = [
    ("syntax", "INSERT INTO t (x) VALUE (1)", OperationalError),
    ("no_such_table", "INSERT INTO nope VALUES (1)", OperationalError),
    (
        "two_statements",
        "INSERT INTO t (x) VALUES (1); INSERT INTO t (x) VALUES (2)",
        ProgrammingError,
    ),
    ("two_statements_select", "SELECT 1; DELETE FROM t", ProgrammingError),
    ("empty", "", ProgrammingError),
    ("blank", "   \n\t ", ProgrammingError),
    ("comment_only", "-- nothing here\n/* or here */", ProgrammingError),
    ("begin", "BEGIN", ProgrammingError),
    ("begin_immediate", "begin immediate", ProgrammingError),
    ("commit", "COMMIT", ProgrammingError),
    ("commented_commit", "/* x */ -- y\n commit", ProgrammingError),
    ("end", "END", ProgrammingError),
    ("rollback", "ROLLBACK", ProgrammingError),
    ("savepoint", "SAVEPOINT s", ProgrammingError),
    ("release", "RELEASE s", ProgrammingError),
    ("rollback_to", "ROLLBACK TO s", ProgrammingError),
]


def _in_tx(db, fn):
    """Call fn(tx) after a good write in the same transaction; the error must
    propagate and take the good write with it."""
    with db.transaction() as tx:
        tx.execute(INS, ("in-tx",))
        fn(tx)


CALLERS = {
    "execute": lambda db, sql, p: db.execute(sql, p),
    "execute_prepared": lambda db, sql, p: db.execute(db.prepare(sql), p),
    "fetchone": lambda db, sql, p: db.fetchone(sql, p),
    "fetchall": lambda db, sql, p: db.fetchall(sql, p),
    "query": lambda db, sql, p: db.query(sql, p),
    "iterate": lambda db, sql, p: list(db.iterate(sql, p)),
    "iterate_prepared": lambda db, sql, p: list(db.iterate(db.prepare(sql), p)),
    "tx_execute": lambda db, sql, p: _in_tx(db, lambda tx: tx.execute(sql, p)),
    "tx_execute_prepared": lambda db, sql, p: _in_tx(db, lambda tx: tx.execute(db.prepare(sql), p)),
    "tx_fetchall": lambda db, sql, p: _in_tx(db, lambda tx: tx.fetchall(sql, p)),
    "tx_iterate": lambda db, sql, p: _in_tx(db, lambda tx: list(tx.iterate(sql, p))),
    "tx_query": lambda db, sql, p: _in_tx(db, lambda tx: tx.query(sql, p)),
}


def returning(sql):
    return sql + " RETURNING x" if sql.startswith("INSERT INTO t") and ";" not in sql else sql


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("case", BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
def test_bad_parameters_raise_and_change_nothing(t, caller, case):
    _, sql, params, _good, exc = case
    if caller in (
        "fetchone",
        "fetchall",
        "query",
        "iterate",
        "iterate_prepared",
        "tx_fetchall",
        "tx_iterate",
        "tx_query",
    ):
        sql = returning(sql)
    before = state(t)
    with pytest.raises(exc):
        CALLERS[caller](t, sql, params)
    assert state(t) == before
    # and the database still works
    t.execute(INS, ("after",))
    assert t.fetchone("SELECT count(*) FROM t WHERE x = 'after'") == (1,)


@pytest.mark.parametrize(
    "params", ["ab", b"ab", bytearray(b"ab")], ids=["str", "bytes", "bytearray"]
)
def test_str_or_bytes_as_params_rejected_by_every_read_method(t, params):
    # A str/bytes is not a parameter sequence, even though it is iterable:
    # the same ProgrammingError as db.execute / db.fetchall, from iterate too.
    sql = "SELECT ?, ?"
    with pytest.raises(ProgrammingError):
        t.fetchall(sql, params)
    with pytest.raises(ProgrammingError):
        t.fetchone(sql, params)
    with pytest.raises(ProgrammingError):
        list(t.iterate(sql, params))
    with pytest.raises(ProgrammingError):
        list(t.iterate(t.prepare(sql), params))
    with t.read() as snap:
        with pytest.raises(ProgrammingError):
            list(snap.iterate(sql, params))
    with t.transaction() as tx:
        with pytest.raises(ProgrammingError):
            list(tx.iterate(sql, params))


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("case", BAD_SQL, ids=[c[0] for c in BAD_SQL])
def test_bad_sql_raises_and_changes_nothing(t, caller, case):
    _, sql, exc = case
    before = state(t)
    with pytest.raises(exc):
        CALLERS[caller](t, sql, None)
    assert state(t) == before


@pytest.mark.parametrize("case", BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
@pytest.mark.parametrize("where", ["db", "tx", "prepared"])
def test_bad_parameters_in_executemany_write_nothing(t, case, where):
    _, sql, params, good, exc = case
    before = state(t)
    named = isinstance(good, dict)
    # Two good parameter sets before the bad one: they must not be written either.
    seq = [{"a": "first"}, {"a": "second"}] if named else [("first",), ("second",)]
    seq += [params, {"a": "last"} if named else ("last",)]
    with pytest.raises(exc):
        if where == "db":
            t.executemany(sql, seq)
        elif where == "prepared":
            t.executemany(t.prepare(sql), seq)
        else:
            with t.transaction() as tx:
                tx.executemany(sql, seq)
    assert state(t) == before


@pytest.mark.parametrize("case", BAD_SQL, ids=[c[0] for c in BAD_SQL])
def test_bad_sql_in_executemany_writes_nothing(t, case):
    _, sql, exc = case
    before = state(t)
    with pytest.raises(exc):
        t.executemany(sql, [()])
    assert state(t) == before


@pytest.mark.parametrize("where", ["db", "tx"])
def test_constraint_violation_halfway_through_executemany(t, where):
    before = state(t)
    seq = [(f"row{i}",) for i in range(50)] + [("seed",)] + [(f"late{i}",) for i in range(5)]
    with pytest.raises(IntegrityError) as ei:
        if where == "db":
            t.executemany(INS, seq)
        else:
            with t.transaction() as tx:
                tx.executemany(INS, seq)
    assert ei.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
    assert state(t) == before
    # Same thing, caught inside the transaction: the earlier write stays.
    with t.transaction() as tx:
        tx.execute(INS, ("kept",))
        with pytest.raises(IntegrityError):
            tx.executemany(INS, seq)
    assert t.fetchall("SELECT x FROM t ORDER BY id") == [("seed",), ("kept",)]


def test_executemany_generator_raising_writes_nothing(t):
    before = state(t)

    def gen():
        yield ("a",)
        yield ("b",)
        raise LookupError("from the generator")

    with pytest.raises(LookupError, match="from the generator"):
        t.executemany(INS, gen())
    assert state(t) == before
    with pytest.raises(TypeError):
        t.executemany(INS, 5)
    with pytest.raises(ProgrammingError, match="not int"):
        t.executemany(INS, [5])
    assert state(t) == before


def test_executemany_generator_writing_through_db_is_programming_error(t):
    before = state(t)

    def gen():
        yield ("a",)
        t.execute(INS, ("sneaky",))  # this thread holds the writer
        yield ("b",)

    with pytest.raises(ProgrammingError):
        t.executemany(INS, gen())
    assert state(t) == before


def test_prepare_errors(t):
    with pytest.raises(OperationalError, match="syntax error") as ei:
        t.prepare("SELEC 1")
    assert ei.value.sqlite_errorcode == 1
    assert ei.value.sqlite_errorname == "SQLITE_ERROR"
    with pytest.raises(OperationalError, match="no such table: nope"):
        t.prepare("SELECT * FROM nope")
    with pytest.raises(OperationalError, match="no such column"):
        t.prepare("SELECT nope FROM t")
    with pytest.raises(ProgrammingError):
        t.prepare("SELECT 1; SELECT 2")
    with pytest.raises(ProgrammingError):
        t.prepare("")
    with pytest.raises(TypeError):
        t.prepare(5)


@pytest.mark.parametrize("sql", [5, None, b"SELECT 1", 1.5, ["SELECT 1"]])
def test_sql_of_wrong_type_is_type_error(t, sql):
    before = state(t)
    for call in (
        lambda: t.execute(sql),
        lambda: t.executemany(sql, []),
        lambda: t.fetchone(sql),
        lambda: t.fetchall(sql),
        lambda: t.query(sql),
        lambda: t.iterate(sql),
    ):
        with pytest.raises(TypeError):
            call()
    with t.transaction() as tx:
        with pytest.raises(TypeError):
            tx.execute(sql)
        with pytest.raises(TypeError):
            tx.fetchall(sql)
    assert state(t) == before


def test_statement_from_another_database(t, tmp_path):
    with alkdev_storage.open(tmp_path / "other.db") as other:
        other.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, x)")
        foreign = other.prepare(INS)
        foreign_select = other.prepare("SELECT 1")
        before = state(t)
        for call in (
            lambda: t.execute(foreign, (1,)),
            lambda: t.executemany(foreign, [(1,)]),
            lambda: t.fetchone(foreign_select),
            lambda: t.fetchall(foreign_select),
            lambda: t.query(foreign_select),
            lambda: list(t.iterate(foreign_select)),
        ):
            with pytest.raises(ProgrammingError, match="another Database"):
                call()
        with t.transaction() as tx:
            with pytest.raises(ProgrammingError):
                tx.execute(foreign, (1,))
        with t.read() as snap:
            with pytest.raises(ProgrammingError):
                snap.fetchall(foreign_select)
        assert state(t) == before
        assert other.fetchall("SELECT x FROM t") == []


# ---------------------------------------------------------------------------
# notify()
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "channel,payload,exc",
    [
        ("", 1, ValueError),
        (5, 1, TypeError),
        (None, 1, TypeError),
        (b"ch", 1, TypeError),
        ("ch", object(), TypeError),
        ("ch", {1, 2}, TypeError),
        ("ch", {"a": object()}, TypeError),
    ],
)
def test_bad_notify_raises_and_writes_nothing(t, channel, payload, exc):
    before = state(t)
    with pytest.raises(exc):
        t.notify(channel, payload)
    assert state(t) == before
    with t.transaction() as tx:
        tx.execute(INS, ("kept",))
        with pytest.raises(exc):
            tx.notify(channel, payload)
        ok = tx.notify("fine", [1])
    assert t.fetchone("SELECT channel, payload FROM _honker_notifications WHERE id = ?", (ok,)) == (
        "fine",
        "[1]",
    )
    assert t.fetchone("SELECT count(*) FROM _honker_notifications") == (len(before[1]) + 1,)


# ---------------------------------------------------------------------------
# open()
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [":memory:", "", "   ", "file::memory:", "file:x?mode=memory"])
def test_open_rejects_memory_and_empty_paths(path):
    with pytest.raises(ValueError):
        alkdev_storage.open(path)


@pytest.mark.parametrize("n", [0, -1])
def test_open_rejects_max_readers_below_one(db_path, n):
    with pytest.raises(ValueError):
        alkdev_storage.open(db_path, max_readers=n)


@pytest.mark.parametrize("ms", [0, -5, float("nan"), float("inf")])
def test_open_rejects_bad_poll_interval(db_path, ms):
    with pytest.raises(ValueError):
        alkdev_storage.open(db_path, watcher_poll_interval_ms=ms)


def test_open_in_missing_directory_is_operational_error(tmp_path):
    with pytest.raises(OperationalError) as ei:
        alkdev_storage.open(tmp_path / "missing" / "dir" / "x.db")
    assert ei.value.sqlite_errorname.startswith("SQLITE_CANTOPEN")
    assert not (tmp_path / "missing").exists()


def test_open_accepts_pathlike_and_str(tmp_path):
    with (
        alkdev_storage.open(str(tmp_path / "a.db")) as a,
        alkdev_storage.open(tmp_path / "b.db", max_readers=3) as b,
    ):
        assert a.path == str(tmp_path / "a.db")
        assert b.path == str(tmp_path / "b.db")
        assert b.max_readers == 3
        assert a.max_readers == 8
        assert isinstance(a, alkdev_storage.Database)
        assert isinstance(a, _native.Database)


# ---------------------------------------------------------------------------
# Error classes and SQLite codes
# ---------------------------------------------------------------------------


def test_exception_hierarchy():
    assert issubclass(Error, Exception)
    assert issubclass(Warning, Exception)
    assert not issubclass(Warning, Error)
    for cls in (InterfaceError, DatabaseError):
        assert issubclass(cls, Error)
    for cls in (
        DataError,
        OperationalError,
        IntegrityError,
        InternalError,
        ProgrammingError,
        NotSupportedError,
    ):
        assert issubclass(cls, DatabaseError)
    # one set of classes, wherever they are imported from
    for name in (
        "Error",
        "Warning",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert getattr(alkdev_storage, name) is getattr(alkdev_storage.errors, name)
        # defined in Python, raised by the native module: none in _native
        assert not hasattr(_native, name)


@pytest.fixture
def rel(db):
    db.executescript(
        """
        CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id),
                            n INTEGER CHECK (n >= 0));
        INSERT INTO parent (id, name) VALUES (1, 'a');
        """
    )
    return db


@pytest.mark.parametrize(
    "sql,name,code",
    [
        ("INSERT INTO parent (name) VALUES ('a')", "SQLITE_CONSTRAINT_UNIQUE", 2067),
        ("INSERT INTO parent (name) VALUES (NULL)", "SQLITE_CONSTRAINT_NOTNULL", 1299),
        ("INSERT INTO child (pid, n) VALUES (99, 1)", "SQLITE_CONSTRAINT_FOREIGNKEY", 787),
        ("INSERT INTO parent (id, name) VALUES (1, 'b')", "SQLITE_CONSTRAINT_PRIMARYKEY", 1555),
        ("INSERT INTO child (pid, n) VALUES (1, -1)", "SQLITE_CONSTRAINT_CHECK", 275),
        ("DELETE FROM parent", None, None),  # no child rows yet: fine
    ],
)
def test_integrity_errors_carry_extended_codes(rel, sql, name, code):
    if name is None:
        rel.execute(sql)
        return
    for run in (
        lambda: rel.execute(sql),
        lambda: rel.execute(rel.prepare(sql)),
        lambda: rel.executemany(sql, [()]),
        lambda: rel.fetchall(sql + " RETURNING 1"),
    ):
        with pytest.raises(IntegrityError) as ei:
            run()
        assert ei.value.sqlite_errorname == name
        assert ei.value.sqlite_errorcode == code
        assert isinstance(ei.value, DatabaseError)
    with pytest.raises(IntegrityError) as ei:
        with rel.transaction() as tx:
            tx.execute(sql)
    assert ei.value.sqlite_errorname == name
    assert rel.fetchall("SELECT id, name FROM parent") == [(1, "a")]
    assert rel.fetchall("SELECT * FROM child") == []


def test_foreign_keys_are_enforced_on_delete(rel):
    rel.execute("INSERT INTO child (pid, n) VALUES (1, 0)")
    with pytest.raises(IntegrityError) as ei:
        rel.execute("DELETE FROM parent WHERE id = 1")
    assert ei.value.sqlite_errorname == "SQLITE_CONSTRAINT_FOREIGNKEY"
    assert rel.fetchone("PRAGMA foreign_keys") == (1,)


def test_operational_errors(t):
    with pytest.raises(OperationalError) as ei:
        t.fetchall("SELECT * FROM nope")
    assert "no such table" in str(ei.value)
    assert ei.value.sqlite_errorcode == 1 and ei.value.sqlite_errorname == "SQLITE_ERROR"
    with pytest.raises(OperationalError, match="syntax error"):
        t.execute("CREAT TABLE z (x)")
    with pytest.raises(OperationalError, match="syntax error"):
        with t.transaction() as tx:
            tx.fetchone("SELEC 1")
    with pytest.raises(OperationalError, match="no such table"):
        t.executescript("CREATE TABLE ok1 (x); INSERT INTO nope VALUES (1)")
    with pytest.raises(OperationalError):
        with t.read() as snap:
            snap.fetchall("SELECT * FROM nope")


@pytest.mark.parametrize(
    "run",
    [
        lambda db, sql: db.fetchone(sql),
        lambda db, sql: db.fetchall(sql),
        lambda db, sql: db.query(sql),
        lambda db, sql: list(db.iterate(sql)),
        lambda db, sql: db.fetchall(db.prepare(sql)),
    ],
    ids=["fetchone", "fetchall", "query", "iterate", "prepared"],
)
def test_invalid_utf8_text_is_data_error(t, run):
    with pytest.raises(DataError) as ei:
        run(t, "SELECT 1, CAST(x'ff' AS TEXT)")
    assert isinstance(ei.value, DatabaseError)
    # the same bytes read as a BLOB are fine
    assert run(t, "SELECT CAST(CAST(x'ff' AS TEXT) AS BLOB)") in (
        (b"\xff",),
        [(b"\xff",)],
        [{"CAST(CAST(x'ff' AS TEXT) AS BLOB)": b"\xff"}],
    )


def test_invalid_utf8_in_stored_rows_inside_transaction_and_snapshot(t):
    t.execute("INSERT INTO t (x) VALUES (CAST(x'c328' AS TEXT))")
    with pytest.raises(DataError):
        t.fetchall("SELECT x FROM t")
    with t.transaction() as tx:
        with pytest.raises(DataError):
            tx.fetchall("SELECT x FROM t")
        with pytest.raises(DataError):
            list(tx.iterate("SELECT x FROM t"))
        assert tx.fetchone("SELECT count(*) FROM t") == (2,)
    with t.read() as snap:
        with pytest.raises(DataError):
            snap.fetchone("SELECT x FROM t WHERE id = 2")
        assert snap.fetchone("SELECT x FROM t WHERE id = 1") == ("seed",)


def test_errors_without_sqlite_code_are_still_error_instances(t):
    with pytest.raises(Error):
        t.execute("BEGIN")
    with pytest.raises(Error):
        t.execute(INS, ())


def catch_panic():
    """Call the panicking function; return what it raised (None if nothing)."""
    try:
        _native._panic_for_tests()
    except BaseException as e:
        return e
    return None


def test_panic_surfaces_as_python_exception():
    exc = catch_panic()
    assert exc is not None
    assert type(exc).__name__ == "PanicException"
    assert isinstance(exc, BaseException)
    assert "deliberate panic" in str(exc)
    # the process and the module keep working
    assert type(catch_panic()).__name__ == "PanicException"


def test_panic_does_not_break_open_databases(db):
    db.executescript("CREATE TABLE p (x)")
    with db.transaction() as tx:
        tx.execute("INSERT INTO p VALUES (1)")
        assert type(catch_panic()).__name__ == "PanicException"
    assert db.fetchall("SELECT x FROM p") == [(1,)]


def test_notify_payload_roundtrip_is_json(t):
    nid = t.notify("ch", {"k": [1, 2.5, None, "x"]})
    assert json.loads(
        t.fetchone("SELECT payload FROM _honker_notifications WHERE id = ?", (nid,))[0]
    ) == {"k": [1, 2.5, None, "x"]}
