"""The sqlite+honker SQLAlchemy dialect: URLs, transactions, pool, options."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import registry
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import alkdev_storage
from alkdev_storage import dbapi
from alkdev_storage.sqlalchemy import (
    HonkerDialect,
    create_engine,
    dbapi_connection,
    honker_database,
)
from alkdev_storage.sqlalchemy.dialect import HonkerDialect as DialectInSubmodule

registry.register("sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)


@pytest.fixture
def engine(db_path):
    eng = sa.create_engine(f"sqlite+honker:///{db_path}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def names(conn_or_engine) -> list[str]:
    if isinstance(conn_or_engine, sa.Engine):
        with conn_or_engine.connect() as c:
            return names(c)
    return list(conn_or_engine.execute(sa.select(User.name).order_by(User.id)).scalars())


def test_url_selects_the_dialect_built_on_sqlalchemys_sqlite(engine, db_path):
    assert isinstance(engine.dialect, HonkerDialect)
    assert HonkerDialect is DialectInSubmodule
    assert engine.dialect.name == "sqlite" and engine.dialect.driver == "honker"
    assert isinstance(engine.dialect, sa.dialects.sqlite.base.SQLiteDialect)
    assert "supports_statement_cache" in HonkerDialect.__dict__
    assert engine.dialect.dbapi is dbapi
    assert engine.dialect.server_version_info == dbapi.sqlite_version_info
    assert isinstance(engine.pool, sa.pool.QueuePool)
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT 1").scalar() == 1
        assert dbapi_connection(c).database.path == str(db_path)


@pytest.mark.parametrize(
    "url, message",
    [
        ("sqlite+honker://", "a database file path is required"),
        ("sqlite+honker:///:memory:", "in-memory"),
        ("sqlite+honker://user@host/x.db", "no user, password, host or port"),
        ("sqlite+honker:///x.db?busy=3", "Unknown option 'busy'"),
        ("sqlite+honker:///x.db?max_readers=lots", "option 'max_readers'"),
        ("sqlite+honker:///x.db?max_readers=0", "option 'max_readers'"),
        ("sqlite+honker:///x.db?watcher_poll_interval_ms=-1", "option 'watcher_poll_interval_ms'"),
    ],
)
def test_invalid_urls_raise_argument_error_naming_the_problem(url, message):
    with pytest.raises(exc.ArgumentError, match=message):
        sa.create_engine(url)


def test_url_options_and_connect_args(db_path):
    eng = sa.create_engine(
        f"sqlite+honker:///{db_path}?max_readers=3&watcher_poll_interval_ms=5&timeout=2.5"
    )
    with eng.connect() as c:
        assert honker_database(c).max_readers == 3
        assert honker_database(c).timeout == 2.5
    eng.dispose()
    for bad, message in [
        ({"busy": 1}, "Unknown connect argument"),
        ({"timeout": "1"}, "connect argument 'timeout'"),
        ({"max_readers": "4"}, "connect argument 'max_readers'"),
        ({"autocommit": 1}, "'autocommit' must be a bool"),
    ]:
        eng = sa.create_engine(f"sqlite+honker:///{db_path}", connect_args=bad)
        with pytest.raises(exc.ArgumentError, match=message):
            eng.connect()
        eng.dispose()
    with pytest.raises(exc.ArgumentError, match="isolation_level"):
        sa.create_engine(f"sqlite+honker:///{db_path}", isolation_level="REPEATABLE READ").connect()


def test_engine_over_an_open_database(db):
    eng = create_engine(db)
    Base.metadata.create_all(eng)
    with eng.begin() as c:
        c.execute(sa.insert(User).values(name="a"))
        assert honker_database(c) is db
    eng.dispose()
    assert not db.closed
    assert db.fetchall("SELECT name FROM users") == [("a",)]


def test_pool_connections_share_one_database_closed_on_dispose(engine):
    with engine.connect() as a, engine.connect() as b:
        assert dbapi_connection(a) is not dbapi_connection(b)
        assert honker_database(a) is honker_database(b)
        db = honker_database(a)
    engine.dispose()
    assert db.closed
    assert names(engine) == []  # reopened on demand


def test_engine_transaction_is_a_writer_slot_transaction(engine):
    with engine.connect() as conn:
        conn.execute(sa.select(User)).all()  # a read: no writer yet
        assert dbapi_connection(conn).transaction is None
        conn.execute(sa.insert(User).values(name="a"))
        tx = dbapi_connection(conn).transaction
        assert isinstance(tx, alkdev_storage.Transaction) and tx.active
        assert names(engine) == []  # other connections read committed state
        conn.commit()
        assert not tx.active
    assert names(engine) == ["a"]


def test_writers_queue_for_the_slot(engine):
    order: list[str] = []

    with engine.connect() as first:
        first.execute(sa.insert(User).values(name="first"))

        def second() -> None:
            with engine.begin() as c:
                c.execute(sa.insert(User).values(name="second"))
                order.append("second wrote")

        th = threading.Thread(target=second)
        th.start()
        th.join(0.2)
        assert th.is_alive() and order == []  # waiting for the writer slot
        order.append("first commits")
        first.commit()
        th.join(10)
    assert order == ["first commits", "second wrote"]
    assert names(engine) == ["first", "second"]


def test_reads_do_not_wait_for_an_open_write_transaction(engine):
    with engine.connect() as writer:
        writer.execute(sa.insert(User).values(name="pending"))
        seen: list[list[str]] = []
        th = threading.Thread(target=lambda: seen.append(names(engine)))
        th.start()
        th.join(10)
        assert seen == [[]]
        writer.rollback()


def test_begin_nested_is_a_savepoint(engine):
    with engine.begin() as conn:
        conn.execute(sa.insert(User).values(name="outer"))
        sp = conn.begin_nested()
        conn.execute(sa.insert(User).values(name="inner"))
        sp.rollback()
        with conn.begin_nested():
            conn.execute(sa.insert(User).values(name="kept"))
        with pytest.raises(exc.IntegrityError), conn.begin_nested():
            conn.execute(sa.insert(User).values(name="kept"))  # unique violation
        assert names(conn) == ["outer", "kept"]
    assert names(engine) == ["outer", "kept"]


def test_session_transactions_and_nested(engine):
    with Session(engine) as s:
        with s.begin():
            s.add(User(name="a"))
            with s.begin_nested() as nested:
                s.add(User(name="b"))
                s.flush()
                nested.rollback()
            s.add(User(name="c"))
        assert [u.name for u in s.scalars(sa.select(User).order_by(User.id))] == ["a", "c"]
    with pytest.raises(exc.IntegrityError), Session(engine) as s, s.begin():
        s.add(User(name="d"))
        s.flush()
        s.add(User(name="a"))
    assert names(engine) == ["a", "c"]


def test_readonly_execution_option_reads_a_stable_snapshot(engine):
    with engine.begin() as c:
        c.execute(sa.insert(User).values(name="a"))
    ro_engine = engine.execution_options(honker_readonly=True)
    with ro_engine.connect() as ro:
        assert names(ro) == ["a"]
        assert dbapi_connection(ro).readonly
        with engine.begin() as c:  # not blocked by the snapshot
            c.execute(sa.insert(User).values(name="b"))
        assert names(ro) == ["a"]  # same snapshot until the transaction ends
        with pytest.raises(exc.OperationalError, match="readonly"):
            ro.execute(sa.insert(User).values(name="c"))
        ro.rollback()
        assert names(ro) == ["a", "b"]
    with engine.connect() as c:  # reset when returned to the pool
        assert not dbapi_connection(c).readonly
        conn = c.execution_options(honker_readonly=True)
        assert names(conn) == ["a", "b"]
        conn.rollback()
    with Session(ro_engine) as s:
        assert [u.name for u in s.scalars(sa.select(User))] == ["a", "b"]


def test_begin_write_execution_option_takes_the_writer_at_begin(engine):
    eng = engine.execution_options(honker_begin_write=True)
    with eng.begin() as c:
        assert dbapi_connection(c).transaction is not None
        c.execute(sa.insert(User).values(name="a"))
    with engine.begin() as c:
        c.execute(sa.select(User)).all()
        assert dbapi_connection(c).transaction is None


def test_autocommit_isolation_level(engine):
    ac = engine.execution_options(isolation_level="AUTOCOMMIT")
    with ac.connect() as c:
        assert c.get_isolation_level() == "AUTOCOMMIT"
        c.execute(sa.insert(User).values(name="a"))
        assert dbapi_connection(c).transaction is None
        assert names(engine) == ["a"]  # committed at once
        c.rollback()
    assert names(engine) == ["a"]
    with engine.connect() as c:
        assert c.get_isolation_level() == "SERIALIZABLE"
        assert engine.dialect.get_isolation_level_values(dbapi_connection(c)) == [
            "SERIALIZABLE",
            "READ UNCOMMITTED",
            "AUTOCOMMIT",
        ]


def test_failed_statement_writes_nothing(engine):
    with engine.connect() as c:
        c.execute(sa.insert(User).values(name="a"))
        c.commit()
        with pytest.raises(exc.IntegrityError):
            c.execute(sa.insert(User).values(name="a"))
        c.rollback()
        with pytest.raises(exc.IntegrityError):
            c.execute(sa.insert(User), [{"name": "x"}, {"name": "y"}, {"name": "a"}])
        c.rollback()
    assert names(engine) == ["a"]


def test_reflection_hides_honkers_own_tables(engine):
    insp = sa.inspect(engine)
    assert insp.get_table_names() == ["users"]
    assert insp.get_view_names() == []
    with engine.connect() as c:
        internal = engine.dialect.get_table_names(c, sqlite_include_internal=True)
    assert "_honker_live" in internal
    m = sa.MetaData()
    m.reflect(engine)
    assert list(m.tables) == ["users"]
    assert [c["name"] for c in insp.get_columns("users")] == ["id", "name"]


def test_types_round_trip(engine):
    import datetime as dt
    from decimal import Decimal

    t = sa.Table(
        "typed",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.DateTime),
        sa.Column("d", sa.Date),
        sa.Column("flag", sa.Boolean),
        sa.Column("data", sa.JSON),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("kind", sa.Enum("a", "b", name="kind")),
    )
    t.create(engine)
    row = {
        "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 6),
        "d": dt.date(2024, 1, 2),
        "flag": True,
        "data": {"x": [1, 2]},
        "amount": Decimal("12.34"),
        "blob": b"\x00\xff",
        "kind": "b",
    }
    with engine.begin() as c:
        c.execute(t.insert(), row)
    with engine.connect() as c:
        got = c.execute(sa.select(t)).one()._asdict()
    assert {k: got[k] for k in row} == row


def test_floor_division(engine):
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.literal(5.52) // sa.literal(2.4))) == 2
        assert c.scalar(sa.select(sa.literal(-5.5) // sa.literal(2.0))) == -3
        assert c.scalar(sa.select(sa.literal(7) // sa.literal(2))) == 3


def test_threads_share_the_engine(engine):
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(25):
                with Session(engine) as s, s.begin():
                    s.add(User(name=f"t{t}-{i}"))
                with engine.connect() as c:
                    assert c.scalar(sa.select(sa.func.count()).select_from(User)) >= i + 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    assert len(names(engine)) == 100
