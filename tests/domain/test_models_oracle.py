"""model_for against the database: random tables, random payloads.

Hypothesis builds a table (random column names, odd ones included; types
among those model_for maps; nullable or not; Python or server defaults;
String lengths; CHECK IN; an INTEGER autoincrement key or a TEXT key with a
Python default), creates it in a real file through the ``sqlite+honker``
dialect, then draws payloads that are valid or break one constraint the
database enforces. The database is the oracle:

* the insert (patch) model accepts a payload exactly when the database
  accepts it (the same payload inserted, or applied to a row, raw);
* what the model accepts, written with ``row_values``, inserts (updates)
  fine and reads back through the select model unchanged.

SQLite does not enforce VARCHAR lengths or SMALLINT ranges: model_for
enforces ``String(length)`` and ``SmallInteger`` always, the database only
when a CHECK says so, so these random tables carry such CHECKs (the rule
is documented in docs/0016-generated-models.md). Payloads never break a
rule only the model enforces (a NOT NULL JSON column given ``None`` is
stored as JSON ``null`` by SQLAlchemy but refused by the model; strings
with NUL characters, which SQLite's ``length()`` counts only up to the NUL),
since the database cannot judge those. Strings with a lone surrogate are
drawn as invalid: the driver cannot encode them and the model refuses
them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from alkdev_storage.domain import model_for, row_values
from alkdev_storage.sqlalchemy import create_engine

UTC = dt.UTC
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class UTCText(sa.types.TypeDecorator[dt.datetime]):
    """Aware datetimes stored as TEXT (like the schema's UTCDateTime)."""

    impl = sa.String(40)
    cache_ok = True

    @property
    def python_type(self) -> type[dt.datetime]:
        return dt.datetime

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError("an aware datetime is required")
        return str(value.astimezone(UTC).isoformat(timespec="microseconds"))

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        return None if value is None else dt.datetime.fromisoformat(value)


KINDS = [
    "string", "text", "in", "enum", "int", "bigint", "small", "bool", "float",
    "date", "datetime", "aware", "blob", "json",
]
ODD_NAMES = ["class", "json", "model_x", "my col", "_under", "key", "type", "select", "f_class"]


@dataclass(frozen=True)
class ColSpec:
    name: str
    kind: str
    nullable: bool
    length: int
    values: tuple[str, ...]
    default: str  # "none", "python", "callable", "server"
    expr_checks: bool  # CHECKs as SQLAlchemy expressions (else SQL text)


@dataclass(frozen=True)
class TableSpec:
    int_key: bool
    cols: tuple[ColSpec, ...]


names = st.one_of(st.from_regex(r"c_[a-z0-9]{1,6}", fullmatch=True), st.sampled_from(ODD_NAMES))


@st.composite
def col_specs(draw: st.DrawFn, name: str) -> ColSpec:
    kind = draw(st.sampled_from(KINDS))
    length = draw(st.integers(1, 12))
    values: tuple[str, ...] = ()
    if kind in ("in", "enum"):
        values = tuple(
            draw(st.lists(st.text("abcxyz'", min_size=1, max_size=length), min_size=1,
                          max_size=4, unique=True))
        )
    defaults = ["none", "python", "callable"]
    if kind in ("string", "text", "in", "int", "bigint", "small"):
        defaults.append("server")
    return ColSpec(
        name=name,
        kind=kind,
        nullable=draw(st.booleans()),
        length=length,
        values=values,
        default=draw(st.sampled_from(defaults)),
        expr_checks=draw(st.booleans()),
    )


@st.composite
def table_specs(draw: st.DrawFn) -> TableSpec:
    cols = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    return TableSpec(
        int_key=draw(st.booleans()),
        cols=tuple(draw(col_specs(n)) for n in cols),
    )


def default_value(c: ColSpec) -> Any:
    return {
        "string": "d"[: c.length],
        "text": "dflt",
        "in": c.values[0] if c.values else None,
        "enum": c.values[0] if c.values else None,
        "int": 7,
        "bigint": -7,
        "small": 7,
        "bool": True,
        "float": 1.5,
        "date": dt.date(2020, 1, 2),
        "datetime": dt.datetime(2020, 1, 2, 3, 4, 5),
        "aware": dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
        "blob": b"d",
        "json": {"d": [1]},
    }[c.kind]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def build(spec: TableSpec, md: sa.MetaData, table_name: str) -> sa.Table:
    items: list[Any] = []
    if spec.int_key:
        items.append(sa.Column("id", sa.Integer, primary_key=True))
    else:
        items.append(sa.Column("id", sa.String(32), primary_key=True,
                               default=lambda: uuid.uuid4().hex))
    for c in spec.cols:
        col = sa.column(c.name)
        q = quote(c.name)
        check: Any = None
        type_: Any
        if c.kind == "string":
            type_ = sa.String(c.length)
            check = (sa.func.length(col) <= c.length) if c.expr_checks else \
                f"length({q}) <= {c.length}"
        elif c.kind == "text":
            type_ = sa.Text()
        elif c.kind == "in":
            type_ = sa.String(c.length)
            check = col.in_(c.values) if c.expr_checks else \
                f"{q} IN ({', '.join(sql_literal(v) for v in c.values)})"
        elif c.kind == "enum":
            type_ = sa.Enum(*c.values, name=f"e_{table_name}_{len(items)}",
                            create_constraint=True)
        elif c.kind == "small":
            type_ = sa.SmallInteger()
            check = col.between(-(2**15), 2**15 - 1) if c.expr_checks else \
                f"{q} BETWEEN -32768 AND 32767"
        elif c.kind == "blob":
            type_ = sa.LargeBinary(c.length)
            check = f"length({q}) <= {c.length}"
        else:
            type_ = {
                "int": sa.Integer, "bigint": sa.BigInteger, "bool": sa.Boolean,
                "float": sa.Float, "date": sa.Date, "datetime": sa.DateTime,
                "aware": UTCText, "json": sa.JSON,
            }[c.kind]()
        kw: dict[str, Any] = {"nullable": c.nullable}
        if c.default == "python":
            kw["default"] = default_value(c)
        elif c.default == "callable":
            value = default_value(c)
            kw["default"] = lambda v=value: v
        elif c.default == "server":
            v = default_value(c)
            kw["server_default"] = sa.text(sql_literal(v) if isinstance(v, str) else str(v))
        items.append(sa.Column(c.name, type_, **kw))
        if check is not None:
            items.append(sa.CheckConstraint(check))
    return sa.Table(table_name, md, *items)


# ---------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------

text_chars = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(I64_MIN, I64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(text_chars, max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(text_chars, max_size=4),
                                                                inner, max_size=3),
    max_leaves=8,
)


def valid_values(c: ColSpec) -> st.SearchStrategy[Any]:
    return {
        "string": st.text(text_chars, max_size=c.length),
        "text": st.text(text_chars, max_size=30),
        "in": st.sampled_from(c.values or ("",)),
        "enum": st.sampled_from(c.values or ("",)),
        "int": st.integers(I64_MIN, I64_MAX),
        "bigint": st.integers(I64_MIN, I64_MAX),
        "small": st.integers(-(2**15), 2**15 - 1),
        "bool": st.booleans(),
        "float": st.floats(allow_nan=False, allow_infinity=False),
        "date": st.dates(),
        "datetime": st.datetimes(),
        "aware": st.datetimes(
            min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1),
            timezones=st.builds(dt.timezone, st.timedeltas(dt.timedelta(hours=-23),
                                                           dt.timedelta(hours=23))),
        ),
        "blob": st.binary(max_size=c.length),
        "json": json_values.filter(lambda v: v is not None) if not c.nullable else json_values,
    }[c.kind]


# Not valid Unicode: the driver cannot encode it as UTF-8.
lone_surrogate = st.builds(lambda a, b: a + "\ud800" + b, st.text(text_chars, max_size=2),
                           st.text(text_chars, max_size=2))


def invalid_values(c: ColSpec) -> st.SearchStrategy[Any] | None:
    """Values of the right type that break a constraint the DB enforces."""
    if c.kind == "string":
        return st.text(text_chars, min_size=c.length + 1, max_size=c.length + 5) | lone_surrogate
    if c.kind == "text":
        return lone_surrogate
    if c.kind in ("in", "enum"):
        return st.text("abcxyz'", min_size=1, max_size=c.length).filter(
            lambda v: v not in c.values
        )
    if c.kind in ("int", "bigint"):
        return st.integers(I64_MAX + 1, 2**70) | st.integers(-(2**70), I64_MIN - 1)
    if c.kind == "small":
        return st.integers(2**15, 2**20) | st.integers(-(2**20), -(2**15) - 1)
    if c.kind == "blob":
        return st.binary(min_size=c.length + 1, max_size=c.length + 5)
    return None


@st.composite
def payloads(draw: st.DrawFn, spec: TableSpec, mode: str) -> tuple[dict[str, Any], bool]:
    """(payload, whether it breaks a constraint the database enforces)."""
    payload: dict[str, Any] = {}
    broken = False
    for c in spec.cols:
        has_default = c.default != "none"
        actions = ["valid", "omit"]
        if invalid_values(c) is not None:
            actions.append("invalid")
        if c.kind != "json" or c.nullable:  # JSON null in NOT NULL: the model's rule only
            actions.append("null")
        action = draw(st.sampled_from(actions))
        if action == "omit":
            if mode == "insert" and not (c.nullable or has_default):
                broken = True  # a missing NOT NULL column
            continue
        if action == "null":
            payload[c.name] = None
            broken |= not c.nullable
        elif action == "invalid":
            strategy = invalid_values(c)
            assert strategy is not None
            payload[c.name] = draw(strategy)
            broken = True
        else:
            payload[c.name] = draw(valid_values(c))
    return payload, broken


# ---------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------

_counter = itertools.count()


@pytest.fixture
def engine(tmp_path: Any) -> Any:
    e = create_engine(tmp_path / "oracle.db")
    try:
        yield e
    finally:
        e.dispose()


def accepted(model: type[BaseModel], payload: dict[str, Any]) -> BaseModel | None:
    try:
        return model.model_validate(payload)
    except ValidationError:
        return None


def db_accepts(engine: sa.Engine, stmt: Any) -> bool:
    """Run ``stmt`` in a transaction that is rolled back; True if the
    database took it."""
    conn = engine.connect()
    try:
        conn.begin()
        try:
            conn.execute(stmt)
            return True
        except Exception:
            return False
        finally:
            conn.rollback()
    finally:
        conn.close()


def check_row(engine: sa.Engine, table: sa.Table, key: Any, given: dict[str, Any]) -> None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == key)).mappings().one()
    got = model_for(table, "select").model_validate(dict(row))
    dumped = row_values(got)
    for name, value in given.items():
        assert dumped[name] == value, (name, dumped[name], value)


def insert_values(table: sa.Table, values: dict[str, Any]) -> Any:
    stmt = table.insert()
    return stmt.values(**values) if values else stmt


def new_table(engine: sa.Engine, spec: TableSpec) -> sa.Table:
    table = build(spec, sa.MetaData(), f"t_{next(_counter)}")
    table.metadata.create_all(engine)
    return table


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=table_specs(), data=st.data())
def test_insert_model_agrees_with_the_database(engine: Any, spec: TableSpec, data: Any) -> None:
    table = new_table(engine, spec)
    model = model_for(table, "insert")
    for _ in range(4):
        payload, broken = data.draw(payloads(spec, "insert"))
        got = accepted(model, payload)
        assert (got is not None) == (not broken), payload
        assert db_accepts(engine, insert_values(table, payload)) == (not broken), payload
        if got is None:
            continue
        with engine.begin() as conn:
            key = conn.execute(insert_values(table, row_values(got))).inserted_primary_key[0]
        check_row(engine, table, key, row_values(got))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=table_specs(), data=st.data())
def test_patch_model_agrees_with_the_database(engine: Any, spec: TableSpec, data: Any) -> None:
    table = new_table(engine, spec)
    full = {c.name: default_value(c) for c in spec.cols}
    with engine.begin() as conn:
        key = conn.execute(table.insert().values(**full)).inserted_primary_key[0]
    model = model_for(table, "patch")
    for _ in range(4):
        payload, broken = data.draw(payloads(spec, "patch"))
        got = accepted(model, payload)
        assert (got is not None) == (not broken), payload
        if payload:
            stmt = table.update().where(table.c.id == key).values(**payload)
            assert db_accepts(engine, stmt) == (not broken), payload
        if got is None or not row_values(got):
            continue
        with engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == key).values(**row_values(got)))
        check_row(engine, table, key, row_values(got))
