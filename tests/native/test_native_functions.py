"""User-defined SQL functions (Database.create_function) on every connection
of a Database, checked against the stdlib sqlite3 module's create_function."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alkdev_storage
from alkdev_storage import OperationalError, ProgrammingError, dbapi


def regexp(pattern: str, value: str | None) -> bool | None:
    return None if value is None else re.search(pattern, value) is not None


@pytest.fixture
def fdb(tmp_path: Path) -> Any:
    db = alkdev_storage.open(tmp_path / "f.db", max_readers=3)
    db.executescript(
        "CREATE TABLE t(s TEXT); INSERT INTO t VALUES ('abc'), ('xyz'), (NULL), ('bcd')"
    )
    yield db
    db.close()


def test_function_runs_on_readers_writer_transactions_and_snapshots(fdb: Any) -> None:
    fdb.create_function("regexp", 2, regexp, deterministic=True)
    q = "SELECT s FROM t WHERE s REGEXP 'b' ORDER BY s"
    assert fdb.fetchall(q) == [("abc",), ("bcd",)]  # a reader
    stmt = fdb.prepare(q)
    assert fdb.fetchall(stmt) == [("abc",), ("bcd",)]
    with fdb.transaction() as tx:  # the writer
        tx.execute("INSERT INTO t VALUES ('b!')")
        assert tx.fetchall(q) == [("abc",), ("b!",), ("bcd",)]
        tx.execute("DELETE FROM t WHERE s REGEXP '!'")
    with fdb.read() as snap:
        assert snap.fetchall(q) == [("abc",), ("bcd",)]
    # usable in an expression index (deterministic)
    fdb.execute("CREATE INDEX t_has_b ON t (regexp('b', s))")
    assert fdb.fetchone("SELECT count(*) FROM t WHERE regexp('b', s)") == (2,)


def test_functions_from_many_threads(fdb: Any) -> None:
    fdb.create_function("regexp", 2, regexp, deterministic=True)
    counts: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(100):
                counts.append(fdb.fetchone("SELECT count(*) FROM t WHERE s REGEXP 'a|x'")[0])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == [] and counts == [2] * 400


def test_argument_and_result_types(fdb: Any) -> None:
    seen: list[tuple[Any, ...]] = []

    def echo(*args: Any) -> Any:
        seen.append(args)
        return args[0]

    fdb.create_function("echo", -1, echo)
    row = fdb.fetchone("SELECT echo(1), echo(2.5), echo('x'), echo(x'00ff'), echo(NULL)")
    assert row == (1, 2.5, "x", b"\x00\xff", None)
    fdb.create_function("two", 2, lambda a, b: [True, bytearray(b"ab")][a])
    assert fdb.fetchone("SELECT two(0, 0), two(1, 0)") == (1, b"ab")
    with pytest.raises(OperationalError, match="wrong number of arguments"):
        fdb.fetchone("SELECT two(1)")


def test_errors_inside_functions_fail_the_statement_and_write_nothing(fdb: Any) -> None:
    fdb.create_function("boom", 1, lambda x: 1 / 0)
    fdb.create_function("huge", 0, lambda: 2**70)
    fdb.create_function("weird", 0, lambda: object())
    with pytest.raises(OperationalError, match=r"boom\(\) raised ZeroDivisionError"):
        fdb.execute("INSERT INTO t VALUES (boom(1))")
    with pytest.raises(OperationalError, match="too large"):
        fdb.execute("INSERT INTO t SELECT huge()")
    with pytest.raises(OperationalError, match="unsupported type 'object'"):
        with fdb.transaction() as tx:
            tx.execute("INSERT INTO t VALUES ('in tx')")
            tx.execute("INSERT INTO t SELECT weird()")
    assert fdb.fetchone("SELECT count(*) FROM t") == (4,)


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        (("", 1, len), ValueError, "invalid function name"),
        (("x" * 256, 1, len), ValueError, "invalid function name"),
        ((1, 1, len), TypeError, "name must be a str"),
        (("f", 128, len), ValueError, "narg"),
        (("f", -2, len), ValueError, "narg"),
        (("f", 1, "not callable"), TypeError, "callable"),
    ],
)
def test_bad_registrations_raise_and_register_nothing(
    fdb: Any, args: tuple[Any, ...], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        fdb.create_function(*args)
    with pytest.raises(OperationalError, match="no such function"):
        fdb.fetchone("SELECT f(1)")


def test_closed_database_refuses_registration(tmp_path: Path) -> None:
    db = alkdev_storage.open(tmp_path / "c.db")
    db.close()
    with pytest.raises(alkdev_storage.InterfaceError):
        db.create_function("f", 1, len)


def test_dbapi_create_function_is_shared_and_idempotent(tmp_path: Path) -> None:
    path = str(tmp_path / "d.db")
    a, b = dbapi.connect(path), dbapi.connect(path)
    try:
        a.create_function("regexp", 2, regexp, deterministic=True)
        a.create_function("regexp", 2, regexp, deterministic=True)  # no-op
        cur = b.cursor()
        cur.execute("SELECT 'abc' REGEXP 'b', 'abc' REGEXP 'z'")
        assert cur.fetchall() == [(1, 0)]
    finally:
        a.close()
        b.close()
    with pytest.raises(ProgrammingError):
        a.create_function("f", 1, len)


values = (
    st.none()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(blacklist_categories=["Cs"]))
    | st.binary()
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(vals=st.lists(values, min_size=1, max_size=5))
def test_identity_function_matches_stdlib(fdb: Any, tmp_path: Path, vals: list[Any]) -> None:
    oracle = sqlite3.connect(":memory:")  # the oracle only; ours uses a file
    try:
        for conn in (fdb, oracle):
            conn.create_function("ident", 1, lambda v: v, deterministic=True)
        sql = "SELECT " + ", ".join("ident(?), typeof(ident(?))" for _ in vals)
        params = [v for v in vals for _ in (0, 1)]
        assert fdb.fetchone(sql, params) == oracle.execute(sql, params).fetchone()
    finally:
        oracle.close()
