"""The surface a user touches: reprs, one error per mistake, NUL in SQL,
executemany of a statement that does not write, bytes paths."""

from __future__ import annotations

import os
import sqlite3

import pytest

import alkdev_storage
from alkdev_storage import ProgrammingError, _native


@pytest.fixture
def t(db):
    db.executescript("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
    return db


# -- repr ---------------------------------------------------------------


def test_reprs_show_state_and_path(t):
    path = f'"{t.path}"'
    tx = t.transaction()
    assert repr(tx) == f"<Transaction new {path}>"
    with tx:
        assert repr(tx) == f"<Transaction active {path}>"
        sp = tx.savepoint()
        assert repr(sp) == f"<Savepoint inactive {path}>"
        with sp:
            assert repr(sp) == f"<Savepoint active depth=1 of transaction active depth=1 {path}>"
            it = tx.iterate("SELECT 1")
            assert repr(it) == f"<RowIterator active on its session {path}>"
            assert list(it) == [(1,)]
            assert repr(it) == f"<RowIterator done on its session {path}>"
    assert repr(tx) == f"<Transaction ended {path}>"
    snap = t.read()
    assert repr(snap) == f"<Snapshot new {path}>"
    with snap:
        assert repr(snap) == f"<Snapshot active {path}>"
    assert repr(snap) == f"<Snapshot ended {path}>"
    t.execute("INSERT INTO t (b) VALUES ('x')")
    it = t.iterate("SELECT b FROM t")
    assert repr(it) == f"<RowIterator active on its own reader {path}>"
    it.close()
    assert "done" in repr(it)
    sub = t.subscribe_updates()
    assert repr(sub).startswith("<UpdateSubscription ") and repr(sub).endswith(f" open {path}>")
    sub.close()
    assert repr(sub).endswith(f" closed {path}>")


def test_savepoint_repr_after_its_transaction_ended(t):
    tx = t.begin()
    sp = tx.savepoint()
    sp.__enter__()
    tx.rollback()
    assert repr(sp).startswith("<Savepoint ended")


# -- one error for one mistake -----------------------------------------


BAD_PARAMS = ["ab", b"ab", bytearray(b"ab"), 5, 2.5, {1, 2}, frozenset({1}), object()]


@pytest.mark.parametrize("bad", BAD_PARAMS, ids=lambda v: type(v).__name__)
def test_params_that_are_not_a_sequence_or_mapping(t, bad):
    tname = type(bad).__name__
    msg = rf"^parameters must be a sequence or a mapping, not {tname}(\n|$)"
    stmt = t.prepare("SELECT ?")
    calls = [
        lambda: t.execute("INSERT INTO t (b) VALUES (?)", bad),
        lambda: t.fetchall(stmt, bad),
        lambda: t.fetchone("SELECT ?", bad),
        lambda: t.query("SELECT ?", bad),
        lambda: t.iterate(stmt, bad),
        lambda: t.iterate("SELECT ?", bad),
        lambda: t.executemany("INSERT INTO t (b) VALUES (?)", [bad]),
    ]
    for call in calls:
        with pytest.raises(ProgrammingError, match=msg):
            call()
    with t.transaction() as tx:
        for call in (
            lambda: tx.execute("INSERT INTO t (b) VALUES (?)", bad),
            lambda: tx.fetchall(stmt, bad),
            lambda: tx.iterate(stmt, bad),
        ):
            with pytest.raises(ProgrammingError, match=msg):
                call()
    with t.read() as snap, pytest.raises(ProgrammingError, match=msg):
        snap.iterate(stmt, bad)
    assert t.fetchall("SELECT * FROM t") == []
    # The engine is still usable afterwards (iterators gave their reader back).
    assert list(t.iterate("SELECT ?", ["ok"])) == [("ok",)]


def test_sequences_and_mappings_still_bind(t):
    class Seq:
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> str:
            if i:
                raise IndexError(i)
            return "s"

    class Map:
        def keys(self) -> list[str]:
            return ["x"]

        def __getitem__(self, k: str) -> str:
            return "m"

    assert t.fetchone("SELECT ?", Seq()) == ("s",)
    assert t.fetchone("SELECT :x", Map()) == ("m",)
    assert t.fetchone("SELECT ?", range(7, 8)) == (7,)
    assert list(t.iterate("SELECT :x", Map())) == [("m",)]
    assert list(t.iterate("SELECT ?", Seq())) == [("s",)]


# -- NUL in SQL ----------------------------------------------------------


def test_nul_in_sql_is_a_programming_error_naming_its_position(t):
    # stdlib sqlite3 raises ProgrammingError too.
    with pytest.raises(sqlite3.ProgrammingError):
        sqlite3.connect(":memory:").execute("SELECT 1\x00")
    sql = "SELECT 'é'\x00, 2"
    for call in (
        lambda: t.prepare(sql),
        lambda: t.execute(sql),
        lambda: t.fetchall(sql),
        lambda: t.iterate(sql),
    ):
        with pytest.raises(ProgrammingError, match=r"NUL character at position 10\b"):
            call()
    with pytest.raises(ProgrammingError, match=r"script contains a NUL character at position 8"):
        t.executescript("SELECT 1\x00; SELECT 2")
    with t.transaction() as tx, pytest.raises(ProgrammingError, match="NUL character"):
        tx.execute(sql)


# -- executemany ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT ?", "read"),
        ("SELECT notify('c', ?)", "read_writes"),
        ("PRAGMA user_version = 3", "connection"),
    ],
)
def test_executemany_requires_a_write(t, sql, kind):
    t.bootstrap_honker_schema()
    msg = rf"executemany\(\) requires a statement that writes.*kind '{kind}'"
    params = [] if kind == "connection" else [(1,), (2,)]
    with pytest.raises(ProgrammingError, match=msg):
        t.executemany(sql, params)
    with pytest.raises(ProgrammingError, match=msg):
        t.executemany(t.prepare(sql), params)
    with t.transaction() as tx, pytest.raises(ProgrammingError, match=msg):
        tx.executemany(sql, params)
    assert t.fetchone("SELECT count(*) FROM _honker_notifications") == (0,)
    with pytest.raises(ProgrammingError, match=r"db\.transaction\(\)"):
        t.executemany("BEGIN", [])


def test_executemany_of_a_write_still_works(t):
    r = t.executemany("INSERT INTO t (b) VALUES (?)", [("x",), ("y",)])
    assert (r.changes, r.lastrowid) == (2, 2)


# -- paths ---------------------------------------------------------------


def test_bytes_paths_are_accepted(tmp_path):
    p = tmp_path / "b.db"
    with alkdev_storage.open(os.fsencode(p)) as db:  # type: ignore[arg-type]
        assert db.path == str(p)
        db.execute("CREATE TABLE x (a)")
    with _native.Database(os.fsencode(p)) as db:
        assert ("x",) in db.fetchall("SELECT name FROM sqlite_master")


def test_invalid_paths_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="valid UTF-8"):
        _native.Database(os.fsencode(str(tmp_path)) + b"/\xff.db")
    with pytest.raises(TypeError, match=r"str, bytes or os\.PathLike, not int"):
        _native.Database(5)  # type: ignore[arg-type]
