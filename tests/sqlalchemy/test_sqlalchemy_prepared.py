"""Prepared typed queries: compiled once into a native Statement plus result
processing, run with keyword parameters."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import registry
from sqlalchemy.engine import Row
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

import alkdev_storage
from alkdev_storage import dbapi
from alkdev_storage.sqlalchemy import PreparedQuery, honker_database, prepare

registry.register("sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect")


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40), unique=True)
    created: Mapped[dt.datetime] = mapped_column(default=lambda: dt.datetime(2024, 1, 1))
    active: Mapped[bool] = mapped_column(default=True)
    data: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    color: Mapped[Color] = mapped_column(default=Color.red)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2), default=Decimal("0"))
    day: Mapped[dt.date | None]
    parts: Mapped[list[Part]] = relationship(back_populates="thing")


class Part(Base):
    __tablename__ = "parts"
    id: Mapped[int] = mapped_column(primary_key=True)
    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("things.id"))
    label: Mapped[str]
    thing: Mapped[Thing] = relationship(back_populates="parts")


things = Thing.__table__
ID = sa.bindparam("id")


@pytest.fixture
def engine(db_path):
    eng = sa.create_engine(f"sqlite+honker:///{db_path}")
    Base.metadata.create_all(eng)
    with Session(eng) as s, s.begin():
        s.add_all(
            [
                Thing(
                    name="a",
                    created=dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
                    active=False,
                    data={"k": [1, 2]},
                    color=Color.blue,
                    amount=Decimal("12.50"),
                    day=dt.date(2024, 5, 6),
                ),
                Thing(name="b"),
                Thing(name="c"),
            ]
        )
        s.add(Part(thing_id=1, label="p1"))
    yield eng
    eng.dispose()


def test_select_returns_typed_rows_like_sqlalchemy(engine):
    stmt = sa.select(things).where(things.c.id == ID)
    q = prepare(stmt, engine)
    assert isinstance(q, PreparedQuery)
    row = q.one(id=1)
    assert isinstance(row, Row)
    with engine.connect() as c:
        expected = c.execute(stmt, {"id": 1}).one()
    assert row == expected
    assert row.created == dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
    assert row.active is False
    assert row.data == {"k": [1, 2]}
    assert row.color is Color.blue
    assert row.amount == Decimal("12.50")
    assert row.day == dt.date(2024, 5, 6)
    assert row._mapping["name"] == "a" and row._mapping[things.c.name] == "a"
    assert q.unique  # a primary-key lookup reads one row
    assert q.first(id=99) is None
    assert q.one_or_none(id=99) is None
    with pytest.raises(exc.NoResultFound):
        q.one(id=99)
    assert q.scalar(id=2) == 2


def test_multi_row_queries_and_scalars(engine):
    q = prepare(
        sa.select(Thing.name, Thing.active)
        .where(Thing.id >= sa.bindparam("lo"))
        .order_by(Thing.id),
        engine,
    )
    assert not q.unique
    assert [tuple(r) for r in q.all(lo=1)] == [("a", False), ("b", True), ("c", True)]
    assert q.scalars(lo=2) == ["b", "c"]
    assert q.first(lo=2) == ("b", True)
    with pytest.raises(exc.MultipleResultsFound):
        q.one(lo=1)
    with pytest.raises(exc.MultipleResultsFound):
        q.one_or_none(lo=1)
    assert q.one(lo=3) == ("c", True)
    limited = prepare(sa.select(Thing.name).order_by(Thing.id).limit(sa.bindparam("n")), engine)
    assert limited.scalars(n=2) == ["a", "b"]
    fixed = prepare(sa.select(Thing.name).where(Thing.name == "b"), engine)
    assert fixed.scalar() == "b"
    assert fixed.param_names == ()


def test_orm_entities_are_mapped_instances(engine):
    q = prepare(sa.select(Thing).where(Thing.id == ID), engine)
    t = q.one(id=1)
    assert isinstance(t, Thing)
    assert (t.name, t.color, t.data, t.amount) == ("a", Color.blue, {"k": [1, 2]}, Decimal("12.50"))
    assert sa.inspect(t).detached
    with Session(engine) as s:
        t2 = q.one(s, id=1)
        assert sa.inspect(t2).persistent
        assert s.get(Thing, 1) is t2  # in the identity map
        assert q.one(s, id=1) is t2
        assert [p.label for p in t2.parts] == ["p1"]  # lazy load works
        t2.name = "renamed"
        s.commit()
    with engine.connect() as c:
        assert c.scalar(sa.select(Thing.name).where(Thing.id == 1)) == "renamed"
    all_things = prepare(sa.select(Thing).order_by(Thing.id), engine)
    assert [x.name for x in all_things.all()] == ["renamed", "b", "c"]
    assert [x.name for x in all_things.scalars()] == ["renamed", "b", "c"]


def test_insert_update_delete_with_python_defaults(engine):
    ins = prepare(sa.insert(Thing).values(name=sa.bindparam("name")), engine)
    r = ins.execute(name="d")
    assert isinstance(r, alkdev_storage.ExecResult) and r.changes == 1 and r.lastrowid == 4
    got = prepare(sa.select(Thing).where(Thing.id == ID), engine).one(id=4)
    assert (got.created, got.active, got.color, got.data) == (
        dt.datetime(2024, 1, 1),
        True,
        Color.red,
        {},
    )
    upd = prepare(
        sa.update(Thing).where(Thing.id == sa.bindparam("tid")).values(active=sa.bindparam("on")),
        engine,
    )
    assert upd(tid=4, on=False).changes == 1
    returning = prepare(
        sa.update(Thing)
        .where(Thing.id == sa.bindparam("tid"))
        .values(name="D")
        .returning(Thing.name, Thing.active),
        engine,
    )
    assert returning.execute(tid=4) == [("D", False)]
    dele = prepare(sa.delete(Thing).where(Thing.name == sa.bindparam("n")), engine)
    assert dele.execute(n="D").changes == 1
    assert dele.execute(n="D").changes == 0


def test_runs_inside_a_session_or_connection_transaction(engine):
    ins = prepare(sa.insert(Thing).values(name=sa.bindparam("name")), engine)
    count = prepare(sa.select(sa.func.count()).select_from(Thing), engine)
    with Session(engine) as s:
        with s.begin():
            ins.execute(s, name="x")
            assert count.scalar(s) == 4  # sees its own transaction's write
            assert count.scalar() == 3  # others do not, yet
        with s.begin():
            ins.execute(s, name="y")
            s.rollback()
    assert count.scalar() == 4
    with engine.connect() as c:
        ins.execute(c, name="z")
        c.rollback()
        ins.execute(c, name="z")
        c.commit()
    assert count.scalar() == 5
    dconn = dbapi.connect(honker_database(engine))
    try:
        ins.execute(dconn, name="w")
        dconn.rollback()
    finally:
        dconn.close()
    assert count.scalar() == 5


def test_a_prepared_query_runs_on_other_files(engine, tmp_path):
    q = prepare(sa.select(Thing.name).where(Thing.id == ID), engine)
    other = sa.create_engine(f"sqlite+honker:///{tmp_path / 'tenant-2.db'}")
    Base.metadata.create_all(other)
    with other.begin() as c:
        c.execute(sa.insert(Thing).values(name="tenant-thing"))
    with other.connect() as c:
        assert q.scalar(c, id=1) == "tenant-thing"
    assert q.scalar(id=1) == "a"
    other.dispose()


def test_expanding_in_parameters(engine):
    q = prepare(
        sa.select(Thing.name).where(Thing.id.in_(sa.bindparam("ids"))).order_by(Thing.id), engine
    )
    assert q.scalars(ids=[1, 3]) == ["a", "c"]
    assert q.scalars(ids=[2]) == ["b"]
    assert q.scalars(ids=[]) == []


def test_bad_parameters_raise_argument_error_and_write_nothing(engine):
    q = prepare(sa.select(Thing.name).where(Thing.id == ID), engine)
    with pytest.raises(exc.ArgumentError, match=r"missing value for parameter.*id"):
        q.one()
    with pytest.raises(exc.ArgumentError, match=r"unknown parameter.*idd"):
        q.one(idd=1)
    with pytest.raises(exc.ArgumentError, match=r"unknown parameter.*extra"):
        q.one(id=1, extra=2)
    ins = prepare(sa.insert(Thing).values(name=sa.bindparam("name")), engine)
    with pytest.raises(alkdev_storage.IntegrityError):
        ins.execute(name="a")  # unique violation
    assert prepare(sa.select(sa.func.count()).select_from(Thing), engine).scalar() == 3
    with pytest.raises(exc.ResourceClosedError):
        ins.all(name="q")


def test_unsupported_statements_are_refused_at_prepare(engine):
    with pytest.raises(NotImplementedError):
        prepare(sa.select(Thing, Part.label).join(Part), engine)
    with pytest.raises(exc.ArgumentError, match="sqlite\\+honker"):
        prepare(sa.select(Thing), sa.create_engine("sqlite://"))


def test_prepare_on_a_database_or_driver_connection(engine):
    db = honker_database(engine)
    q = prepare(sa.select(things.c.name).where(things.c.id == ID), db)
    assert q.scalar(id=2) == "b"
    c = dbapi.connect(db)
    try:
        q2 = prepare(sa.text("SELECT name, active FROM things WHERE id = :id"), c)
        assert tuple(q2.one(id=1)) == ("a", 0)
    finally:
        c.close()


def test_reopens_after_the_pool_is_disposed(engine):
    q = prepare(sa.select(Thing.name).where(Thing.id == ID), engine)
    assert q.scalar(id=1) == "a"
    engine.dispose()  # closes the shared Database
    assert q.scalar(id=1) == "a"


def test_prepared_insert_without_values_omits_key_and_nullable_columns(db_path):
    md = sa.MetaData()
    t = sa.Table(
        "omit",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.String, nullable=True),
        sa.Column("kind", sa.String, nullable=False, server_default="plain"),
    )
    eng = sa.create_engine(f"sqlite+honker:///{db_path}")
    try:
        md.create_all(eng)
        ins = prepare(t.insert().returning(t.c.id), eng)
        first = ins.scalar(kind="a")  # id assigned by SQLite, note NULL
        second = ins.scalar(kind="b", note="n")
        assert second == first + 1
        # a NOT NULL column with a server default cannot be silently NULLed:
        # leaving it out is an error that names it, and writes nothing
        with pytest.raises(exc.ArgumentError, match="kind"):
            ins.scalar(note="x")
        with eng.connect() as c:
            assert c.execute(sa.select(t.c.id, t.c.note, t.c.kind).order_by(t.c.id)).all() == [
                (first, None, "a"),
                (second, "n", "b"),
            ]
    finally:
        eng.dispose()
