"""Honker inside ORM transactions (the seeds' ``tx.$honkerTx``): notify,
queue enqueue and stream publish commit together with the ORM's writes and
vanish on rollback."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import registry
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import alkdev_storage
from alkdev_storage.sqlalchemy import honker_database, honker_tx

registry.register("sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect")


class Base(DeclarativeBase):
    pass


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    graph_id: Mapped[str]
    key: Mapped[str] = mapped_column(unique=True)


@pytest.fixture
def engine(db_path):
    eng = sa.create_engine(f"sqlite+honker:///{db_path}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def state(engine) -> dict[str, int]:
    db = honker_database(engine)

    def n(sql: str) -> int:
        return db.fetchone(sql)[0]

    return {
        "nodes": n("SELECT count(*) FROM nodes"),
        "notifications": n("SELECT count(*) FROM _honker_notifications"),
        "jobs": n("SELECT count(*) FROM _honker_live"),
        "events": n("SELECT count(*) FROM _honker_stream"),
    }


def write_everything(session: Session, key: str) -> alkdev_storage.Transaction:
    session.add(Node(graph_id="g1", key=key))
    session.flush()
    tx = honker_tx(session)
    db = honker_database(session)
    tx.notify("graph:updated", {"graphId": "g1", "key": key})
    db.queue("graph-maintenance").enqueue({"graph": "g1"}, tx=tx)
    db.stream("session-events").publish({"node": key}, tx=tx)
    return tx


def test_session_commit_commits_honker_writes_too(engine):
    with Session(engine) as s, s.begin():
        tx = write_everything(s, "call-1")
        assert isinstance(tx, alkdev_storage.Transaction) and tx.active
        # nothing is visible outside the transaction yet
        assert state(engine) == {"nodes": 0, "notifications": 0, "jobs": 0, "events": 0}
    assert state(engine) == {"nodes": 1, "notifications": 1, "jobs": 1, "events": 1}
    db = honker_database(engine)
    job = db.queue("graph-maintenance").claim_one("w1")
    assert job is not None and job.payload == {"graph": "g1"}
    job.ack()


def test_session_rollback_removes_honker_writes(engine):
    with Session(engine) as s:
        with s.begin():
            write_everything(s, "call-1")
        with pytest.raises(RuntimeError), s.begin():
            write_everything(s, "call-2")
            raise RuntimeError("abort")
        s.begin()
        write_everything(s, "call-3")
        s.rollback()
    assert state(engine) == {"nodes": 1, "notifications": 1, "jobs": 1, "events": 1}


def test_failed_flush_rolls_back_the_honker_writes(engine):
    with Session(engine) as s, s.begin():
        write_everything(s, "dup")
    with pytest.raises(exc.IntegrityError), Session(engine) as s, s.begin():
        tx = honker_tx(s)
        tx.notify("graph:updated", {"x": 1})
        s.add(Node(graph_id="g1", key="dup"))
        s.flush()
    assert state(engine) == {"nodes": 1, "notifications": 1, "jobs": 1, "events": 1}


def test_core_connection_and_savepoints(engine):
    with engine.connect() as conn:
        conn.execute(sa.insert(Node).values(graph_id="g", key="a"))
        tx = honker_tx(conn)
        tx.notify("ch", "kept")
        nested = conn.begin_nested()
        honker_tx(conn).notify("ch", "dropped")
        conn.execute(sa.insert(Node).values(graph_id="g", key="b"))
        nested.rollback()
        assert honker_tx(conn) is tx
        conn.commit()
    db = honker_database(engine)
    assert db.fetchall("SELECT payload FROM _honker_notifications") == [('"kept"',)]
    assert db.fetchall("SELECT key FROM nodes") == [("a",)]


def test_raw_honker_sql_on_the_handle(engine):
    with engine.begin() as conn:
        tx = honker_tx(conn)
        tx.fetchone(
            "SELECT honker_enqueue(?, ?, ?, ?, ?, ?, ?)", ("q", '{"a": 1}', None, None, 0, 3, None)
        )
        tx.fetchone("SELECT honker_stream_publish(?, ?, ?)", ("s", None, '{"b": 2}'))
    assert state(engine)["jobs"] == 1 and state(engine)["events"] == 1


def test_handle_takes_the_writer_at_once(engine):
    with Session(engine) as s, s.begin():
        s.execute(sa.select(Node)).all()  # reads only: no writer yet
        tx = honker_tx(s)  # BEGIN IMMEDIATE now
        assert tx.active
        tx.notify("ch", 1)
    assert state(engine)["notifications"] == 1


def test_handle_needs_a_write_transaction(engine):
    with pytest.raises(exc.InvalidRequestError, match="inside a transaction"):
        honker_tx(Session(engine))
    with engine.connect() as c:
        with pytest.raises(exc.InvalidRequestError, match="inside a transaction"):
            honker_tx(c)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c, c.begin():
        with pytest.raises(exc.InvalidRequestError, match="AUTOCOMMIT"):
            honker_tx(c)
    with engine.connect().execution_options(honker_readonly=True) as c, c.begin():
        with pytest.raises(exc.InvalidRequestError, match="read-only"):
            honker_tx(c)
    with pytest.raises(exc.ArgumentError):
        honker_tx(object())
