"""SQLAlchemy's pool with the driver's close semantics (closing twice does
nothing, docs/0009-dbapi-close.md): dispose, invalidate, reset-on-return
and pre-ping on DB-API connections that are already closed."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import registry

from alkdev_storage import dbapi
from alkdev_storage.sqlalchemy import dbapi_connection, honker_database

registry.register("sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect")


@pytest.fixture
def pool_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.pool")
    return caplog


def pool_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def make_engine(db_path: Path, **kw: object) -> sa.Engine:
    eng = sa.create_engine(f"sqlite+honker:///{db_path}", **kw)
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (a)")
    return eng


def test_dispose_closes_every_pooled_connection_once(db_path: Path, pool_log) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(db_path, pool_size=3)
    conns = [eng.connect() for _ in range(3)]
    raws = [dbapi_connection(c) for c in conns]
    db = honker_database(eng)
    for c in conns:
        c.close()  # back to the pool
    raws[0].close()  # the application closed one behind the pool's back
    eng.dispose()
    assert all(r.closed for r in raws)
    assert db.closed  # the driver's handle closed with its last connection
    assert pool_errors(pool_log) == []
    with eng.connect() as c:  # the engine reopens
        assert c.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    eng.dispose()


def test_invalidate_after_the_raw_connection_was_closed(db_path: Path, pool_log) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(db_path)
    with eng.connect() as c:
        raw = dbapi_connection(c)
        raw.close()
        c.invalidate()  # closes the DB-API connection again: no error
        assert c.invalidated
    assert pool_errors(pool_log) == []
    with eng.connect() as c:
        assert dbapi_connection(c) is not raw
        c.exec_driver_sql("INSERT INTO t VALUES (1)")
        c.commit()
    eng.dispose()


def test_reset_on_return_of_a_closed_connection_discards_it(db_path: Path, pool_log) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(db_path, pool_size=1, max_overflow=0)
    fairy = eng.raw_connection()
    raw = fairy.dbapi_connection
    assert isinstance(raw, dbapi.Connection)
    raw.execute("INSERT INTO t VALUES (1)")  # a write transaction is open
    raw.close()  # rolls it back and frees the writer slot
    fairy.close()  # reset-on-return: rollback() on a closed connection raises...
    # ...which the pool logs and answers by discarding the connection
    assert any("reset" in m for m in pool_errors(pool_log))
    with eng.connect() as c2:
        assert dbapi_connection(c2) is not raw
        assert c2.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
        c2.exec_driver_sql("INSERT INTO t VALUES (2)")
        c2.commit()
    # A SQLAlchemy Connection whose transaction ends on a closed DB-API
    # connection: a disconnect error, the connection is invalidated.
    c = eng.connect()
    c.exec_driver_sql("INSERT INTO t VALUES (3)")
    dbapi_connection(c).close()
    with pytest.raises(sa.exc.ProgrammingError, match="closed connection") as info:
        c.rollback()
    assert info.value.connection_invalidated
    c.close()
    with eng.begin() as c3:  # nothing is left holding the writer
        c3.exec_driver_sql("INSERT INTO t VALUES (4)")
        assert c3.exec_driver_sql("SELECT a FROM t ORDER BY a").scalars().all() == [2, 4]
    eng.dispose()


def test_pre_ping_replaces_a_closed_connection(db_path: Path, pool_log) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(db_path, pool_pre_ping=True, pool_size=1, max_overflow=0)
    with eng.connect() as c:
        raw = dbapi_connection(c)
    raw.close()  # closed while it sits in the pool
    with eng.connect() as c:
        assert dbapi_connection(c) is not raw
        assert c.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    assert eng.dialect.is_disconnect(
        dbapi.ProgrammingError("Cannot operate on a closed connection."), None, None
    )
    assert pool_errors(pool_log) == []
    eng.dispose()


def test_honker_database_types_check_with_mypy(tmp_path: Path) -> None:
    """``honker_database(session)`` is an ``alkdev_storage.Database``: its
    primitives type-check (mypy --strict on a usage sample)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from sqlalchemy import create_engine, text\n"
        "from sqlalchemy.orm import Session\n"
        "from alkdev_storage import Database, Queue, Transaction, dbapi\n"
        "from alkdev_storage.sqlalchemy import honker_database, honker_tx\n"
        "engine = create_engine('sqlite+honker:///x.db')\n"
        "with Session(engine) as session, session.begin():\n"
        "    db: Database = honker_database(session)\n"
        "    q: Queue = db.queue('emails')\n"
        "    tx: Transaction = honker_tx(session)\n"
        "    q.enqueue({'to': 'a'}, tx=tx)\n"
        "    session.execute(text('SELECT 1'))\n"
        "honker_database(engine).stream('s').publish({'n': 1})\n"
        "conn = dbapi.connect('x.db')\n"
        "d: Database = conn.database\n"
        "row = conn.run_prepared(d.prepare('SELECT 1'), None, 'one')\n"
        "conn.begin_writes_eagerly = True\n"
        "conn.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(sample)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
