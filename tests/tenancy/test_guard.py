"""A tenant handle cannot reach another tenant's file or system.db: ATTACH,
DETACH, VACUUM [INTO] and unsafe PRAGMAs are refused on every way SQL
enters a handle (adversarial)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from alkdev_storage import dbapi
from alkdev_storage.errors import ScopeViolation
from alkdev_storage.sqlalchemy import create_engine
from alkdev_storage.tenancy import Hub
from alkdev_storage.tenancy.guard import first_keyword, split_script


@pytest.fixture
def two(hub: Hub, owner: str) -> tuple[str, str]:
    return (hub.create_organization("alpha", "A", owner),
            hub.create_organization("beta", "B", owner))


def attach_sqls(hub: Hub, other: str) -> list[str]:
    target = hub.tenant_path(other)
    system = os.path.join(hub.root, "system.db")
    return [
        f"ATTACH '{target}' AS other",
        f"attach database '{system}' as sys",
        f"  /* hi */ -- comment\n ATTACH '{target}' AS other",
        f"ATTACH 'file:{target}?mode=ro' AS other",
        "ATTACH ':memory:' AS mem",
        "DETACH main",
        f"VACUUM INTO '{hub.root}/copy.db'",
        "VACUUM",
        "PRAGMA journal_mode=DELETE",
        "PRAGMA main.journal_mode = DELETE",
        "PRAGMA foreign_keys=OFF",
        "PRAGMA query_only=1",
        "PRAGMA writable_schema=ON",
        "PRAGMA other.table_info(x)",
    ]


def _paths(hub: Hub) -> list[str]:
    """Files of the hub root, without SQLite's -wal/-shm side files."""
    return sorted(n for n in os.listdir(hub.root) if not n.endswith(("-wal", "-shm")))


def _ways(db: Any, sql: str) -> list[Any]:
    def in_tx(method: str) -> Any:
        def run() -> Any:
            with db.transaction() as tx:
                return getattr(tx, method)(sql)
        return run

    def in_snapshot() -> Any:
        with db.read() as snap:
            return snap.execute(sql)

    def begun() -> Any:
        tx = db.begin()
        try:
            return tx.execute(sql)
        finally:
            tx.rollback()

    def via_dbapi() -> Any:
        conn = dbapi.connect(db)
        try:
            return conn.cursor().execute(sql)
        finally:
            conn.close()

    def via_sqlalchemy() -> Any:
        eng = create_engine(db)
        try:
            with eng.begin() as c:
                return c.execute(sa.text(sql))
        finally:
            eng.dispose()

    return [
        lambda: db.execute(sql), lambda: db.fetchall(sql), lambda: db.fetchone(sql),
        lambda: db.query(sql), lambda: db.iterate(sql), lambda: db.prepare(sql),
        lambda: db.executemany(sql, [()]), lambda: db.executescript(f"SELECT 1; {sql}"),
        in_tx("execute"), in_tx("fetchall"), in_tx("query"), in_tx("prepare"),
        lambda: in_tx("executescript")(), begun, in_snapshot, via_dbapi, via_sqlalchemy,
    ]


def test_every_way_in_refuses_every_escape(hub: Hub, two: tuple[str, str]) -> None:
    a, b = two
    with hub.tenant(b) as other:
        other.execute("CREATE TABLE secret(v)")
        other.execute("INSERT INTO secret VALUES ('b-only')")
    before = _paths(hub)
    with hub.tenant(a) as db:
        for sql in attach_sqls(hub, b):
            for i, way in enumerate(_ways(db, sql)):
                with pytest.raises(ScopeViolation, match=r"not allowed|cannot be set"):
                    way()
                assert db.fetchall("PRAGMA database_list") == [(0, "main", db.path)], (sql, i)
        # still a working handle, and nothing else was created or reached
        assert db.fetchone("SELECT count(*) FROM graph_types")[0] >= 2
        with pytest.raises(Exception, match="no such table"):
            db.fetchall("SELECT * FROM secret")
    assert _paths(hub) == before


def test_allowed_statements_still_work(hub: Hub, org: str) -> None:
    with hub.tenant(org) as db:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        assert db.fetchone("PRAGMA journal_mode")[0] == "wal"
        assert db.fetchone("PRAGMA foreign_keys")[0] == 1
        db.execute("PRAGMA optimize")
        assert db.fetchall("PRAGMA integrity_check") == [("ok",)]
        assert db.fetchall("EXPLAIN QUERY PLAN SELECT * FROM graphs")
        # a string literal that mentions ATTACH is fine
        db.executescript(
            "CREATE TABLE notes(t TEXT); INSERT INTO notes VALUES ('ATTACH x; VACUUM');")
        assert db.fetchall("SELECT t FROM notes") == [("ATTACH x; VACUUM",)]
        with db.transaction() as tx:
            tx.execute("INSERT INTO notes VALUES ('--;/*')")
        q = db.queue("q")
        q.enqueue({"a": 1})
        assert db.fetchone("SELECT count(*) FROM notes")[0] == 2


_WS = st.sampled_from([" ", "\n", "\t", "/* c */", "-- c\n", "/**/"])


@settings(max_examples=150, deadline=None)
@given(pre=st.lists(_WS, max_size=4),
       word=st.sampled_from(["attach", "ATTACH", "Attach", "dEtAcH", "vacuum", "VACUUM"]),
       mid=st.lists(_WS, min_size=1, max_size=3))
def test_keyword_check_sees_through_case_whitespace_and_comments(
        pre: list[str], word: str, mid: list[str]) -> None:
    sql = "".join(pre) + word + "".join(mid) + "'x.db' AS x"
    assert first_keyword(sql) == word.upper()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["SELECT 1", "SELECT ';'", "SELECT \"a;b\"", "SELECT [x;y]",
                                 "SELECT 1 /* ; */", "SELECT 'it''s;'"]), min_size=1,
                max_size=6))
def test_script_splitting_respects_quotes_and_comments(stmts: list[str]) -> None:
    assert [s.strip() for s in split_script(";".join(stmts))] == stmts
