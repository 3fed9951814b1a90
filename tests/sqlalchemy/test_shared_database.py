"""One Database per file per process: ``alkdev_storage.open(path)`` and an
engine on the same file share one engine (writer slot, reader pool), so
their Statements and Transactions work together, their writes queue for
one writer slot, and disposing of the engine never closes the Database
someone else opened."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import registry
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import alkdev_storage
from alkdev_storage import dbapi
from alkdev_storage.sqlalchemy import honker_database, honker_tx

registry.register("sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str]


@pytest.fixture
def engine(db_path: Path):  # type: ignore[no-untyped-def]
    eng = sa.create_engine(f"sqlite+honker:///{db_path}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def test_job_from_open_acks_inside_an_engine_session(
    db: alkdev_storage.Database, engine: sa.Engine
) -> None:
    q = db.queue("orders")
    q.enqueue({"order": 1})
    job = q.claim_one("w1")
    assert job is not None
    with Session(engine) as s, s.begin():
        s.add(Order(id=1, status="shipped"))
        s.flush()
        assert job.ack(tx=honker_tx(s))  # a Statement of db, a Transaction of the engine
        # not committed yet: the open() Database does not see either write
        assert db.fetchone("SELECT count(*) FROM orders") == (0,)
        assert db.fetchone("SELECT count(*) FROM _honker_live") == (1,)
    assert db.fetchone("SELECT status FROM orders") == ("shipped",)
    assert db.fetchone("SELECT count(*) FROM _honker_live") == (0,)
    # and the other way round: the engine's Database and db are one file's handles
    assert honker_database(engine).path == db.path


def test_job_ack_rolls_back_with_the_session(
    db: alkdev_storage.Database, engine: sa.Engine
) -> None:
    q = db.queue("orders")
    q.enqueue({"order": 2})
    job = q.claim_one("w1")
    assert job is not None
    with Session(engine) as s:
        with pytest.raises(RuntimeError, match="boom"), s.begin():
            s.add(Order(id=2, status="shipped"))
            job.ack(tx=honker_tx(s))
            raise RuntimeError("boom")
    assert db.fetchone("SELECT count(*) FROM orders") == (0,)
    assert db.fetchone("SELECT count(*) FROM _honker_live") == (1,)  # still claimed, not acked


def test_engine_write_waits_for_an_open_transaction_of_open(
    db: alkdev_storage.Database, engine: sa.Engine
) -> None:
    holding = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with db.transaction() as tx:
                tx.execute("INSERT INTO orders (id, status) VALUES (1, 'held')")
                holding.set()
                release.wait(10)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=hold)
    t.start()
    assert holding.wait(10)
    done: list[float] = []

    def write() -> None:
        try:
            start = time.monotonic()
            with Session(engine) as s, s.begin():
                s.add(Order(id=2, status="engine"))
            done.append(time.monotonic() - start)
        except BaseException as e:
            errors.append(e)

    w = threading.Thread(target=write)
    w.start()
    w.join(0.5)
    assert w.is_alive() and not errors  # queued for the one writer slot
    release.set()
    t.join(10)
    w.join(10)
    assert errors == []
    assert len(done) == 1 and done[0] < 5  # no 5 s busy timeout, no "database is locked"
    assert db.fetchall("SELECT id, status FROM orders ORDER BY id") == [
        (1, "held"),
        (2, "engine"),
    ]


def test_engine_dispose_leaves_open_database_working(
    db: alkdev_storage.Database, engine: sa.Engine
) -> None:
    with Session(engine) as s, s.begin():
        s.add(Order(id=1, status="new"))
    engine_db = honker_database(engine)
    engine.dispose()
    assert engine_db.closed  # the driver's own handle
    assert not db.closed
    assert db.fetchone("SELECT status FROM orders") == ("new",)
    with db.transaction() as tx:
        tx.execute("UPDATE orders SET status = 'paid'")
    q = db.queue("after-dispose")
    q.enqueue({"n": 1})
    job = q.claim_one("w")
    assert job is not None and job.ack()
    # and the engine reopens on demand, seeing db's writes
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT status FROM orders").scalar() == "paid"


def test_dbapi_connection_close_leaves_open_database_working(
    db: alkdev_storage.Database, db_path: Path
) -> None:
    c = dbapi.connect(db_path)
    c.execute("CREATE TABLE x (a)")
    c.commit()
    assert c.database is not db  # the driver's own handle on the same file
    c.close()
    assert not db.closed
    db.execute("INSERT INTO x VALUES (1)")
    assert db.fetchone("SELECT a FROM x") == (1,)


def test_open_database_passed_to_connect_is_shared_and_never_closed(
    db: alkdev_storage.Database, engine: sa.Engine
) -> None:
    c = dbapi.connect(db)
    assert c.database is db
    c.execute("INSERT INTO orders (id, status) VALUES (7, 'x')")
    c.commit()
    c.close()
    assert not db.closed
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT status FROM orders WHERE id = 7").scalar() == "x"
