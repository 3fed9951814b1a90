"""Statement classification: every prepared statement knows where it runs
(``Statement.kind``), from what SQLite reports while compiling it.

Oracle for generated statements: stdlib ``sqlite3`` on a ``query_only``
connection to the same file (a read runs there; a write is refused).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alkdev_storage import ProgrammingError

SCHEMA = """
CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c REAL);
CREATE TABLE log (msg TEXT);
CREATE VIEW v AS SELECT a, upper(b) AS ub FROM t;
CREATE TRIGGER t_notify AFTER INSERT ON log BEGIN SELECT notify('log', new.msg); END;
"""

R, W, RW, TX, CONN = "read", "write", "read_writes", "transaction", "connection"

# (sql, kind, control, is_ddl, uses_temp)
CASES: list[tuple[str, str, tuple[str, str | None] | None, bool, bool]] = [
    # reads, whatever the spelling
    ("SELECT * FROM t", R, None, False, False),
    ("  -- leading comment\n /* block */ select a FROM t", R, None, False, False),
    ("sElEcT b FrOm T WhErE a = ?", R, None, False, False),
    ('SELECT "a", [b], `c` FROM "t"', R, None, False, False),
    ("SELECT 'BEGIN; DELETE FROM t; -- notify(1)' AS s", R, None, False, False),
    ("WITH x AS (SELECT a FROM t) SELECT * FROM x", R, None, False, False),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 3) SELECT i FROM n",
        R,
        None,
        False,
        False,
    ),
    ("VALUES (1), (2)", R, None, False, False),
    ("SELECT ub FROM v", R, None, False, False),
    ("SELECT count(*) FROM t;  -- trailing comment", R, None, False, False),
    ("EXPLAIN QUERY PLAN SELECT * FROM t", R, None, False, False),
    ("EXPLAIN DELETE FROM t", R, None, False, False),
    ("SELECT * FROM pragma_table_info('t')", R, None, False, False),
    # writes
    ("INSERT INTO t (b) VALUES (?) RETURNING a", W, None, False, False),
    ("insert into T (b) values ('x')", W, None, False, False),
    ("UPDATE t SET b = ? WHERE a = ?", W, None, False, False),
    ("DELETE FROM t", W, None, False, False),
    ("REPLACE INTO t (a, b) VALUES (1, 'x')", W, None, False, False),
    ("WITH x(v) AS (SELECT 1) INSERT INTO t (b) SELECT v FROM x", W, None, False, False),
    ("INSERT INTO log VALUES ('fires a trigger calling notify')", W, None, False, False),
    ("DROP TABLE IF EXISTS missing", W, None, False, False),
    # DDL
    ("CREATE TABLE u (x)", W, None, True, False),
    ("create table if not exists t (a)", W, None, True, False),
    ("ALTER TABLE t ADD COLUMN d", W, None, True, False),
    ("CREATE INDEX t_b ON t (b)", W, None, True, False),
    ("CREATE VIEW v2 AS SELECT 1", W, None, True, False),
    (
        "CREATE TRIGGER tr AFTER DELETE ON t BEGIN SELECT notify('d', old.b); END",
        W,
        None,
        True,
        False,
    ),
    ("DROP VIEW v", W, None, True, False),
    ("REINDEX", W, None, True, False),
    ("ANALYZE", W, None, True, False),
    # TEMP objects
    ("CREATE TEMP TABLE tt (x)", W, None, True, True),
    ("CREATE TEMPORARY VIEW tv AS SELECT 1", W, None, True, True),
    ("CREATE TABLE temp.t3 (x)", W, None, True, True),
    ("SELECT * FROM temp.sqlite_master", R, None, False, True),
    ("PRAGMA temp.table_info(x)", R, None, False, True),
    # transaction control: prepares fine, never runs
    ("BEGIN", TX, ("begin", None), False, False),
    ("begin immediate transaction", TX, ("begin", None), False, False),
    ("BEGIN DEFERRED", TX, ("begin", None), False, False),
    ("COMMIT", TX, ("commit", None), False, False),
    ("END TRANSACTION", TX, ("commit", None), False, False),
    ("ROLLBACK", TX, ("rollback", None), False, False),
    ("SAVEPOINT sp", TX, ("savepoint", "sp"), False, False),
    ('SAVEPOINT "my sp"', TX, ("savepoint", "my sp"), False, False),
    ("RELEASE sp", TX, ("release", "sp"), False, False),
    ("release savepoint [sp]", TX, ("release", "sp"), False, False),
    ("ROLLBACK TO sp", TX, ("rollback_to", "sp"), False, False),
    ("ROLLBACK TRANSACTION TO SAVEPOINT 'sp'", TX, ("rollback_to", "sp"), False, False),
    # PRAGMA: a query reads, a setting is connection-level
    ("PRAGMA user_version", R, None, False, False),
    ("PRAGMA table_info(t)", R, None, False, False),
    ("pragma main.table_info = t", R, None, False, False),
    ("PRAGMA integrity_check(5)", R, None, False, False),
    ("PRAGMA foreign_key_check", R, None, False, False),
    ("PRAGMA user_version = 5", CONN, None, False, False),
    ("PRAGMA foreign_keys = ON", CONN, None, False, False),
    ("PRAGMA query_only = 0", CONN, None, False, False),
    ("PRAGMA busy_timeout(100)", CONN, None, False, False),
    ("PRAGMA journal_mode", CONN, None, False, False),
    ("PRAGMA journal_mode = WAL", CONN, None, False, False),
    ("PRAGMA wal_checkpoint(PASSIVE)", CONN, None, False, False),
    # ATTACH / DETACH / VACUUM
    ("ATTACH ? AS aux", CONN, None, False, False),
    ("attach database 'x.db' as aux", CONN, None, False, False),
    ("DETACH aux", CONN, None, False, False),
    ("VACUUM", CONN, None, False, False),
    ("vacuum main", CONN, None, False, False),
    ("VACUUM INTO ?", CONN, None, False, False),
    # SQL functions
    ("SELECT upper(b) FROM t", R, None, False, False),
    ("SELECT notify('c', '1')", RW, None, False, False),
    ("SELECT NOTIFY(?, ?) AS id", RW, None, False, False),
    ("SELECT a FROM t WHERE a IN (SELECT notify('c', b) FROM t)", RW, None, False, False),
]

# honker-core 0.5's SQL functions: (name, arity, writes)
HONKER_FUNCTIONS = [
    ("honker_bootstrap", 0, True),
    ("honker_claim_batch", 4, True),
    ("honker_ack_batch", 2, True),
    ("honker_sweep_expired", 1, True),
    ("honker_lock_acquire", 3, True),
    ("honker_lock_release", 2, True),
    ("honker_lock_renew", 3, True),
    ("honker_rate_limit_try", 3, True),
    ("honker_rate_limit_sweep", 1, True),
    ("honker_scheduler_register", 6, True),
    ("honker_scheduler_register", 7, True),
    ("honker_scheduler_unregister", 1, True),
    ("honker_scheduler_tick", 1, True),
    ("honker_scheduler_pause", 1, True),
    ("honker_scheduler_resume", 1, True),
    ("honker_scheduler_update", 6, True),
    ("honker_scheduler_update", 8, True),
    ("honker_result_save", 3, True),
    ("honker_result_sweep", 0, True),
    ("honker_enqueue", 7, True),
    ("honker_ack", 2, True),
    ("honker_retry", 4, True),
    ("honker_fail", 3, True),
    ("honker_heartbeat", 3, True),
    ("honker_cancel", 1, True),
    ("honker_stream_publish", 3, True),
    ("honker_stream_save_offset", 3, True),
    ("honker_get_job", 1, False),
    ("honker_result_get", 1, False),
    ("honker_queue_next_claim_at", 1, False),
    ("honker_scheduler_soonest", 0, False),
    ("honker_scheduler_list", 0, False),
    ("honker_cron_next_after", 2, False),
    ("honker_stream_read_since", 3, False),
    ("honker_stream_get_offset", 2, False),
]


@pytest.fixture
def sdb(db):
    db.bootstrap_honker_schema()
    db.executescript(SCHEMA)
    return db


@pytest.mark.parametrize(("sql", "kind", "control", "is_ddl", "uses_temp"), CASES)
def test_classification_table(sdb, sql, kind, control, is_ddl, uses_temp):
    stmt = sdb.prepare(sql)
    assert (stmt.kind, stmt.control, stmt.is_ddl, stmt.uses_temp) == (
        kind,
        control,
        is_ddl,
        uses_temp,
    ), sql
    assert stmt.readonly is (kind == "read")
    assert kind in repr(stmt)


@pytest.mark.parametrize(("name", "arity", "writes"), HONKER_FUNCTIONS)
def test_honker_functions(sdb, name, arity, writes):
    args = ", ".join("NULL" for _ in range(arity))
    stmt = sdb.prepare(f"SELECT {name}({args})")
    assert stmt.kind == ("read_writes" if writes else "read")


def test_reads_of_temp_objects_run_on_the_writer(sdb):
    sdb.execute("CREATE TEMP TABLE tt (x)")
    sdb.execute("INSERT INTO tt VALUES (1)")
    stmt = sdb.prepare("SELECT x FROM tt")  # only the writer knows tt
    assert (stmt.kind, stmt.uses_temp) == ("read", True)
    assert sdb.fetchall(stmt) == [(1,)]
    assert list(sdb.iterate(stmt)) == [(1,)]


def test_classified_once_even_when_the_schema_changes(sdb):
    stmt = sdb.prepare("SELECT * FROM t")
    sdb.execute("ALTER TABLE t ADD COLUMN d")
    assert stmt.kind == "read"
    assert sdb.fetchall(stmt) == []


def test_transaction_control_prepares_but_never_runs(sdb):
    for sql in ("BEGIN", "COMMIT", "SAVEPOINT x", "ROLLBACK TO x"):
        stmt = sdb.prepare(sql)
        for run in (sdb.execute, sdb.fetchall, sdb.fetchone, sdb.iterate):
            with pytest.raises(ProgrammingError, match=r"db\.transaction\(\)"):
                run(stmt)
            with pytest.raises(ProgrammingError, match=r"db\.transaction\(\)"):
                run(sql)
        with sdb.transaction() as tx:
            assert tx.prepare(sql).control == stmt.control
            with pytest.raises(ProgrammingError, match=r"tx\.savepoint\(\)"):
                tx.execute(sql)
        with sdb.read() as snap:
            with pytest.raises(ProgrammingError):
                snap.fetchall(stmt)


def test_preparing_a_setting_changes_no_reader(sdb):
    """SQLite applies most PRAGMA settings while compiling them: preparing
    one on a reader (Database.prepare, fetch* of SQL text) must not switch
    that reader's query_only guard off."""
    stmt = sdb.prepare("PRAGMA query_only = 0")
    assert stmt.kind == "connection"
    assert sdb.fetchall("PRAGMA query_only = 0") == []  # runs on the writer
    assert sdb.fetchone("PRAGMA query_only") == (1,)  # read on a reader
    with sdb.read() as snap:
        assert snap.fetchone("PRAGMA query_only") == (1,)
    with pytest.raises(Exception, match="readonly"):
        with sdb.read() as snap:
            snap.execute("INSERT INTO t (b) VALUES ('x')")


def test_a_read_snapshot_refuses_settings(sdb):
    """A setting in a read snapshot would change a pooled reader (and could
    switch its query_only guard off): refused, whichever way it arrives."""
    on_writer = sdb.transaction()
    with on_writer as tx:
        prepared_on_writer = tx.prepare("PRAGMA query_only = 0")
    with sdb.read() as snap:
        prepared_on_reader = snap.prepare("PRAGMA query_only = 0")
        assert prepared_on_reader.kind == "connection"
        for target in ("PRAGMA query_only = 0", prepared_on_reader, prepared_on_writer):
            for run in (snap.execute, snap.fetchall, snap.iterate):
                with pytest.raises(ProgrammingError, match="read snapshot"):
                    run(target)
        assert snap.fetchone("PRAGMA query_only") == (1,)
        assert snap.fetchall("PRAGMA table_info(t)")  # a query pragma is fine
    # In a write transaction a setting runs on the writer, as SQLite does.
    with sdb.transaction() as tx:
        tx.execute("PRAGMA user_version = 9")
    assert sdb.fetchone("PRAGMA user_version") == (9,)


def test_settings_run_on_the_writer_with_their_result(sdb):
    stmt = sdb.prepare("PRAGMA journal_mode = WAL")
    assert stmt.columns == ("journal_mode",)
    assert sdb.fetchall(stmt) == [("wal",)]
    sdb.execute("PRAGMA user_version = 7")
    assert sdb.fetchone("PRAGMA user_version") == (7,)


def test_vacuum_and_attach_run_outside_a_transaction(sdb, tmp_path):
    sdb.execute("INSERT INTO t (b) VALUES ('x')")
    sdb.execute("VACUUM")
    out = tmp_path / "copy.db"
    sdb.execute(sdb.prepare("VACUUM INTO ?"), (str(out),))
    assert sqlite3.connect(out).execute("SELECT b FROM t").fetchall() == [("x",)]
    sdb.execute("ATTACH ? AS aux", (str(out),))
    try:
        stmt = sdb.prepare("SELECT b FROM aux.t")  # only the writer knows aux
        assert stmt.kind == "read"
        assert sdb.fetchall(stmt) == [("x",)]
    finally:
        sdb.execute("DETACH aux")


def test_select_notify_runs_on_the_writer_once(sdb):
    stmt = sdb.prepare("SELECT notify(?, ?)")
    assert stmt.kind == "read_writes"
    for run in (sdb.fetchone, sdb.fetchall, sdb.execute):
        run(stmt, ("c", '"x"'))
    assert list(sdb.iterate(stmt, ("c", '"y"')))
    assert sdb.fetchone("SELECT count(*) FROM _honker_notifications WHERE channel = 'c'") == (4,)


def test_decltypes(sdb):
    stmt = sdb.prepare("SELECT a, b, c, a + 1, ub FROM t JOIN v USING (a)")
    assert stmt.decltypes == ("INTEGER", "TEXT", "REAL", None, None)
    assert sdb.prepare("DELETE FROM t").decltypes == ()


# ---------------------------------------------------------------------
# Property: generated statements against stdlib sqlite3 as the oracle
# ---------------------------------------------------------------------

_case = st.sampled_from([str.upper, str.lower, str.title])
_space = st.sampled_from([" ", "  ", "\n", "\t", " /* c */ ", " -- c\n"])
_lead = st.sampled_from(["", "  ", "-- lead\n", "/* lead */ ", "\n\t"])
_trail = st.sampled_from(["", ";", " ;  ", "; -- end", " /* end */"])
_col = st.sampled_from(["a", "b", "c", '"b"', "[c]", "a + 1", "upper(b)", "count(*)"])
_table = st.sampled_from(["t", "T", '"t"', "v"])
_value = st.sampled_from(["1", "'x'", "NULL", "2.5", "?"])


@st.composite
def statements(draw: Any) -> tuple[str, str]:
    """(sql, expected kind) for a generated read or write."""
    k = draw(_case)
    sp = draw(_space)
    shape = draw(st.sampled_from(["select", "with", "values", "insert", "update", "delete"]))
    if shape == "select":
        col = draw(_col)
        table = draw(_table)
        if table == "v" and col not in ("a", "count(*)", "a + 1"):
            col = "ub"
        sql = f"{k('select')}{sp}{col}{sp}{k('from')}{sp}{table}"
        if draw(st.booleans()):
            sql += f"{sp}{k('where')} a > {draw(_value)}"
        kind = "read"
    elif shape == "with":
        cte = f"{k('with')} x {k('as')} ({k('select')} a {k('from')} t)"
        sql = f"{cte}{sp}{k('select')} * {k('from')} x"
        kind = "read"
    elif shape == "values":
        sql = f"{k('values')}{sp}({draw(_value)})"
        kind = "read"
    elif shape == "insert":
        sql = f"{k('insert into')}{sp}t (b){sp}{k('values')} ({draw(_value)})"
        if draw(st.booleans()):
            sql += f"{sp}{k('returning')} a"
        kind = "write"
    elif shape == "update":
        sql = f"{k('update')} t {k('set')} b = {draw(_value)}{sp}{k('where')} a = {draw(_value)}"
        kind = "write"
    else:
        sql = f"{k('delete from')}{sp}t"
        if draw(st.booleans()):
            sql += f" {k('where')} b {k('is')} {draw(_value)}"
        kind = "write"
    return draw(_lead) + sql + draw(_trail), kind


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(statements())
def test_generated_statements_against_stdlib(sdb, db_path, generated):
    sql, expected = generated
    stmt = sdb.prepare(sql)
    assert stmt.kind == expected, sql
    params = (1,) * stmt.param_count
    oracle = sqlite3.connect(db_path, isolation_level=None)
    try:
        oracle.execute("PRAGMA query_only = 1")
        oracle.create_function("notify", 2, lambda c, p: 0)
        if stmt.kind == "read":
            oracle.execute(sql, params).fetchall()  # must not raise
            sdb.fetchall(stmt, params)  # and runs on one of our readers
        else:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                oracle.execute(sql, params).fetchall()
    finally:
        oracle.close()
