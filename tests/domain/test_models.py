"""model_for: one test per rule, JSON Schema validity, caching, errors.

The database-as-oracle property tests are in test_models_oracle.py."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import gc
import json
import math
import weakref
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from schema_check import check_schema, draft_2020_12_check
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from alkdev_storage.domain import model_for, row_values, validate
from alkdev_storage.domain.models import MODES
from alkdev_storage.errors import ValidationFailed
from alkdev_storage.sqlalchemy import create_engine

UTC = dt.UTC


class UTCText(sa.types.TypeDecorator[dt.datetime]):
    """Like the schema's UTCDateTime: TEXT on disk, aware datetimes in Python."""

    impl = sa.String(32)
    cache_ok = True

    @property
    def python_type(self) -> type[dt.datetime]:
        return dt.datetime

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return str(value.astimezone(UTC).isoformat(timespec="microseconds"))

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        return None if value is None else dt.datetime.fromisoformat(value)


class Short(sa.types.TypeDecorator[str]):
    """A decorator that does not override python_type: follows its impl."""

    impl = sa.String(10)
    cache_ok = True


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


def new_id() -> str:
    import uuid

    return uuid.uuid4().hex


md = sa.MetaData()
nodes = sa.Table(
    "nodes",
    md,
    sa.Column("id", sa.String, primary_key=True, default=new_id),
    sa.Column("graph_id", sa.String, nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("attributes", sa.JSON, nullable=False, default=dict),
    sa.Column("key_version", sa.Integer, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, default="active"),
    sa.Column("created_at", UTCText, nullable=False, default=lambda: dt.datetime.now(UTC)),
    sa.CheckConstraint("status IN ('active', 'archived')"),
)
counters = sa.Table(
    "counters",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("small", sa.SmallInteger, nullable=False),
    sa.Column("big", sa.BigInteger, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=False, server_default=sa.text("0")),
    sa.Column("ratio", sa.Float, nullable=True),
    sa.Column("price", sa.Numeric(6, 2), nullable=True),
    sa.Column("day", sa.Date, nullable=True),
    sa.Column("naive", sa.DateTime, nullable=True),
    sa.Column("aware", sa.DateTime(timezone=True), nullable=True),
    sa.Column("blob", sa.LargeBinary(4), nullable=True),
    sa.Column("color", sa.Enum(Color), nullable=True),
    sa.Column("size", sa.Enum("s", "m", "l", name="size"), nullable=True),
    sa.Column("short", Short, nullable=True),
    sa.Column("doubled", sa.Integer, sa.Computed("small * 2")),
)


# ---------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------


def fields(model: type[BaseModel]) -> dict[str, bool]:
    """field name -> required."""
    return {n: f.is_required() for n, f in model.model_fields.items()}


def test_select_has_every_column_required_and_nullable_ones_accept_none() -> None:
    m = model_for(counters, "select")
    assert set(fields(m)) == {c.key for c in counters.columns}
    assert all(fields(m).values())
    row = {c.key: None for c in counters.columns}
    row |= {"id": 1, "small": 1, "flag": True, "doubled": 2}
    assert m.model_validate(row).big is None  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as e:
        m.model_validate(row | {"small": None})
    assert e.value.errors()[0]["loc"] == ("small",)


def test_select_ignores_unknown_keys_and_reads_attributes() -> None:
    m = model_for(nodes, "select", include=["id", "key"])

    class Obj:
        id = "x"
        key = "k"
        other = 1

    assert m.model_validate(Obj()).model_dump() == {"id": "x", "key": "k"}
    got = m.model_validate({"id": "x", "key": "k", "extra": 1})
    assert got.model_dump() == {"id": "x", "key": "k"}


def test_insert_leaves_out_the_autoincrement_key_and_computed_columns() -> None:
    m = model_for(counters, "insert")
    assert "id" not in fields(m) and "doubled" not in fields(m)
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"small": 1, "id": 5})
    assert e.value.field == "id"
    assert e.value.errors[0]["type"] == "extra_forbidden"


def test_insert_include_brings_back_the_autoincrement_key_as_optional() -> None:
    m = model_for(counters, "insert", include=["id", "small"])
    assert fields(m) == {"id": False, "small": True}
    assert row_values(validate(m, {"id": 7, "small": 1})) == {"id": 7, "small": 1}
    with pytest.raises(ValueError, match="doubled"):
        model_for(counters, "insert", include=["doubled"])


def test_insert_requires_not_null_columns_without_defaults_only() -> None:
    m = model_for(nodes, "insert")
    assert fields(m) == {
        "id": False,  # key with a Python-side default
        "graph_id": True,
        "key": True,
        "type": True,
        "attributes": False,  # default
        "key_version": False,  # nullable
        "status": False,  # default
        "created_at": False,  # default
    }
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"graph_id": "g", "type": "t"})
    assert e.value.field == "key" and e.value.errors[0]["type"] == "missing"


def test_insert_defaulted_not_null_column_refuses_an_explicit_none() -> None:
    m = model_for(nodes, "insert")
    base = {"graph_id": "g", "key": "k", "type": "t"}
    for col in ("id", "status", "created_at", "attributes"):
        with pytest.raises(ValidationFailed) as e:
            validate(m, base | {col: None})
        assert e.value.field == col
    assert validate(m, base | {"key_version": None}).key_version is None  # type: ignore[attr-defined]


def test_insert_row_values_hold_only_what_was_given(tmp_path: Any) -> None:
    m = model_for(nodes, "insert")
    payload = validate(m, {"graph_id": "g", "key": "k", "type": "t", "key_version": None})
    assert row_values(payload) == {"graph_id": "g", "key": "k", "type": "t", "key_version": None}
    # A plain dump never holds a null a NOT NULL column cannot take.
    assert "status" not in payload.model_dump()
    assert "status" not in json.loads(payload.model_dump_json())
    engine = create_engine(tmp_path / "t.db")
    try:
        md.create_all(engine, tables=[nodes])
        with engine.begin() as conn:
            conn.execute(nodes.insert().values(**row_values(payload)))
            row = conn.execute(sa.select(nodes)).mappings().one()
        got = validate(model_for(nodes, "select"), dict(row))
        assert got.status == "active" and got.attributes == {}  # type: ignore[attr-defined]
        assert got.created_at.tzinfo is not None and len(got.id) == 32  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_update_has_every_writable_column_optional_keys_included() -> None:
    m = model_for(nodes, "update")
    assert set(fields(m)) == {c.key for c in nodes.columns}
    assert not any(fields(m).values())
    assert row_values(validate(m, {})) == {}
    assert row_values(validate(m, {"id": "new", "key_version": None})) == {
        "id": "new",
        "key_version": None,
    }
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"key": None})
    assert e.value.field == "key"
    assert "doubled" not in fields(model_for(counters, "update"))


def test_patch_leaves_out_the_key_and_refuses_it() -> None:
    m = model_for(nodes, "patch")
    assert set(fields(m)) == {c.key for c in nodes.columns} - {"id"}
    assert not any(fields(m).values())
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"id": "x", "type": "t"})
    assert e.value.field == "id" and e.value.errors[0]["type"] == "extra_forbidden"
    assert row_values(validate(m, {"type": "t"})) == {"type": "t"}


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="'upsert'"):
        model_for(nodes, "upsert")  # type: ignore[arg-type]


# ---------------------------------------------------------------------
# Types and constraints
# ---------------------------------------------------------------------


def accepts(model: type[BaseModel], data: dict[str, Any]) -> bool:
    try:
        model.model_validate(data)
        return True
    except ValidationError:
        return False


def test_string_length_and_check_in() -> None:
    m = model_for(nodes, "insert")
    base = {"graph_id": "g", "type": "t"}
    assert accepts(m, base | {"key": "k" * 255})
    assert not accepts(m, base | {"key": "k" * 256})
    assert accepts(m, base | {"key": "k", "status": "archived"})
    assert not accepts(m, base | {"key": "k", "status": "deleted"})


def test_strings_must_be_valid_unicode() -> None:
    m = model_for(odd, "insert")  # "my col" is TEXT, unbounded
    assert accepts(m, {"class": "a", "my col": "x" * 10_000})
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"class": "a", "my col": "bad \ud800"})
    assert e.value.field == "my col"


def test_integer_ranges() -> None:
    m = model_for(counters, "insert")
    assert accepts(m, {"small": 32767, "big": 2**63 - 1})
    assert accepts(m, {"small": -32768, "big": -(2**63)})
    assert not accepts(m, {"small": 32768})
    assert not accepts(m, {"small": 1, "big": 2**63})
    assert not accepts(m, {"small": 1, "big": -(2**63) - 1})
    assert not accepts(m, {"small": "x"})


def test_float_numeric_bool_date_time_types() -> None:
    m = model_for(counters, "insert")
    assert accepts(m, {"small": 1, "ratio": 1.5, "flag": True, "price": "1234.56"})
    assert not accepts(m, {"small": 1, "ratio": math.nan})
    assert not accepts(m, {"small": 1, "ratio": math.inf})
    assert not accepts(m, {"small": 1, "price": "12345.6"})  # Numeric(6, 2)
    assert not accepts(m, {"small": 1, "price": "1.234"})
    got = m.model_validate({"small": 1, "price": "1.5"})
    assert got.price == decimal.Decimal("1.5")  # type: ignore[attr-defined]
    assert accepts(m, {"small": 1, "day": "2024-02-29"})
    assert not accepts(m, {"small": 1, "day": "2023-02-29"})


def test_naive_and_aware_datetimes() -> None:
    m = model_for(counters, "insert")
    naive = dt.datetime(2024, 1, 1, 12)
    aware = naive.replace(tzinfo=UTC)
    assert accepts(m, {"small": 1, "naive": naive, "aware": aware})
    assert not accepts(m, {"small": 1, "naive": aware})
    assert not accepts(m, {"small": 1, "aware": naive})
    n = model_for(nodes, "insert")  # UTCText: a datetime TypeDecorator over TEXT
    base = {"graph_id": "g", "key": "k", "type": "t"}
    assert accepts(n, base | {"created_at": "2024-01-01T00:00:00Z"})
    assert not accepts(n, base | {"created_at": "2024-01-01T00:00:00"})


def test_type_decorator_without_python_type_follows_its_impl() -> None:
    m = model_for(counters, "insert")
    assert accepts(m, {"small": 1, "short": "x" * 10})
    assert not accepts(m, {"small": 1, "short": "x" * 11})


def test_enums() -> None:
    m = model_for(counters, "insert")
    assert m.model_validate({"small": 1, "color": "red"}).color is Color.RED  # type: ignore[attr-defined]
    assert accepts(m, {"small": 1, "size": "m"})
    assert not accepts(m, {"small": 1, "size": "xl"})
    assert not accepts(m, {"small": 1, "color": "blue"})


def test_bytes_are_base64_in_json_and_length_bounded() -> None:
    m = model_for(counters, "insert")
    got = m.model_validate({"small": 1, "blob": b"\xff\xfe\x00"})
    text = got.model_dump_json()
    assert b"\xff" not in text.encode() and json.loads(text)["blob"] != "\xff\xfe\x00"
    assert m.model_validate_json(text).blob == b"\xff\xfe\x00"  # type: ignore[attr-defined]
    assert not accepts(m, {"small": 1, "blob": b"12345"})


def test_json_columns() -> None:
    m = model_for(nodes, "insert")
    base = {"graph_id": "g", "key": "k", "type": "t"}
    assert accepts(m, base | {"attributes": {"a": [1, 2.5, None, "x", {"b": True}]}})
    assert accepts(m, base | {"attributes": [1]})
    assert not accepts(m, base | {"attributes": None})  # NOT NULL: no JSON null
    assert not accepts(m, base | {"attributes": {"a": {1, 2}}})  # not JSON
    assert not accepts(m, base | {"attributes": {"a": math.nan}})  # not JSON
    nullable = sa.Table("j", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("doc", sa.JSON, nullable=True))
    assert accepts(model_for(nullable, "insert"), {"doc": None})


def test_json_columns_from_json_text() -> None:
    """pydantic's JSON parser reads NaN/Infinity literals: refused anyway."""
    m = model_for(nodes, "insert")
    base = '{"graph_id": "g", "key": "k", "type": "t", "attributes": %s}'
    got = validate(m, base % '{"a": [1, 2.5, null, {"b": true}]}')
    assert got.attributes == {"a": [1, 2.5, None, {"b": True}]}  # type: ignore[attr-defined]
    for bad, where in (('{"a": [1, NaN]}', "a.1"), ("-Infinity", "the top")):
        with pytest.raises(ValidationFailed) as e:
            validate(m, base % bad)
        assert e.value.field == "attributes" and where in str(e.value)
    with pytest.raises(ValidationFailed) as e:
        validate(m, base % "null")
    assert e.value.errors[0]["type"] == "json_not_null"
    nullable = sa.Table("j2", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("doc", sa.JSON, nullable=True))
    n = model_for(nullable, "insert")
    assert validate(n, '{"doc": null}').doc is None  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed):
        validate(n, '{"doc": [NaN]}')


# ---------------------------------------------------------------------
# CHECK parsing
# ---------------------------------------------------------------------


def checked(*checks: Any, col_type: Any = None, name: str = "v") -> type[BaseModel]:
    t = sa.Table(
        "checked",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(name, col_type if col_type is not None else sa.Text, nullable=False),
        *checks,
    )
    return model_for(t, "insert")


@pytest.mark.parametrize(
    ("check", "ok", "bad"),
    [
        (sa.CheckConstraint("length(v) <= 3"), ["", "abc"], ["abcd"]),
        (sa.CheckConstraint("length(v) < 3"), ["ab"], ["abc"]),
        (sa.CheckConstraint("length(v) >= 2"), ["ab"], ["a"]),
        (sa.CheckConstraint("length(v) > 2"), ["abc"], ["ab"]),
        (sa.CheckConstraint("LENGTH(v) BETWEEN 2 AND 3"), ["ab", "abc"], ["a", "abcd"]),
        (sa.CheckConstraint("(length(v) >= 2) AND (length(v) <= 3) AND v <> 'zz'"), ["ab"], ["a"]),
        (sa.CheckConstraint("v IN ('a', 'it''s')"), ["a", "it's"], ["b"]),
        (sa.CheckConstraint('"checked"."v" in (\'a\')'), ["a"], ["b"]),
        (sa.CheckConstraint(sa.column("v").in_(["x", "y"])), ["x", "y"], ["z"]),
        (sa.CheckConstraint(sa.func.length(sa.column("v")) <= 2), ["ab"], ["abc"]),
        # A top-level OR cannot be enforced term by term: left to the database.
        (sa.CheckConstraint("v IN ('a') OR length(v) > 5"), ["b", "abcdef"], []),
        (sa.CheckConstraint("v NOT IN ('a')"), ["a", "b"], []),
    ],
)
def test_check_constraints(check: Any, ok: list[str], bad: list[str]) -> None:
    m = checked(check)
    for v in ok:
        assert accepts(m, {"v": v}), v
    for v in bad:
        assert not accepts(m, {"v": v}), v


def test_check_in_with_quoted_odd_column_name_and_ints() -> None:
    m = checked(sa.CheckConstraint(sa.column("my col").in_(["p", "q"])), name="my col")
    assert accepts(m, {"my col": "p"}) and not accepts(m, {"my col": "r"})
    m = checked(sa.CheckConstraint("v IN (1, 2, 3)"), col_type=sa.Integer)
    assert accepts(m, {"v": 2}) and not accepts(m, {"v": 4})


def test_check_in_values_longer_than_the_column_are_dropped() -> None:
    m = checked(sa.CheckConstraint("v IN ('ab', 'abcdef')"), col_type=sa.String(3))
    assert accepts(m, {"v": "ab"}) and not accepts(m, {"v": "abcdef"})
    with pytest.raises(ValueError, match=r"checked\.v"):
        checked(sa.CheckConstraint("v IN ('abcdef')"), col_type=sa.String(3))


# ---------------------------------------------------------------------
# include / exclude / refine
# ---------------------------------------------------------------------


class CallAttributes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout_ms: Annotated[int, Field(ge=0)]
    target: str


def test_refine_a_json_column_with_a_module_model() -> None:
    m = model_for(nodes, "insert", refine={"attributes": CallAttributes})
    base = {"graph_id": "g", "key": "k", "type": "t"}
    got = validate(m, base | {"attributes": {"timeout_ms": 5, "target": "x"}})
    assert row_values(got)["attributes"] == {"timeout_ms": 5, "target": "x"}
    with pytest.raises(ValidationFailed) as e:
        validate(m, base | {"attributes": {"timeout_ms": -1, "target": "x"}})
    assert e.value.field == "attributes.timeout_ms"
    assert "attributes.timeout_ms" in str(e.value)
    assert "-1" not in str(e.value)  # the input is never in the message
    assert all("input" not in err for err in e.value.errors)
    assert fields(m)["attributes"] is False  # still optional: the column has a default


def test_refine_with_annotated_and_with_a_function() -> None:
    m = model_for(
        nodes,
        "insert",
        refine={
            "key": Annotated[str, Field(pattern=r"^[a-z]+$")],
            "type": lambda t: Annotated[t, AfterValidator(str.upper)],
        },
    )
    got = validate(m, {"graph_id": "g", "key": "abc", "type": "call"})
    assert got.type == "CALL"  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"graph_id": "g", "key": "ABC", "type": "call"})
    assert e.value.field == "key"
    # The function got the generated type: String(64) still applies.
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"graph_id": "g", "key": "abc", "type": "x" * 65})
    assert e.value.field == "type"


def test_refine_keeps_nullability() -> None:
    m = model_for(nodes, "select", refine={"key_version": Annotated[int, Field(ge=1)]})
    assert m.model_fields["key_version"].is_required()
    row = {c.key: "x" for c in nodes.columns} | {
        "attributes": {}, "key_version": None, "status": "active",
        "created_at": dt.datetime.now(UTC),
    }
    assert m.model_validate(row).key_version is None  # type: ignore[attr-defined]
    assert not accepts(m, row | {"key_version": 0})


def test_unknown_columns_are_named() -> None:
    for kw in ({"include": ["key", "nope"]}, {"exclude": "nope"}, {"refine": {"nope": int}}):
        with pytest.raises(ValueError, match=r"'nope'.*nodes"):
            model_for(nodes, "insert", **kw)  # type: ignore[arg-type]


def test_bad_refinements_are_named() -> None:
    with pytest.raises(ValueError, match=r"refine\['key'\]"):
        model_for(nodes, "insert", refine={"key": object()})
    with pytest.raises(ValueError, match=r"refine\['key'\].*ZeroDivisionError"):
        model_for(nodes, "insert", refine={"key": lambda t: 1 / 0})


def test_include_exclude() -> None:
    m = model_for(nodes, "insert", include=["key", "type"])
    assert set(fields(m)) == {"key", "type"}
    m = model_for(nodes, "insert", include=["key", "type"], exclude=["type"])
    assert set(fields(m)) == {"key"}
    m = model_for(nodes, "insert", exclude="created_at")
    assert "created_at" not in fields(m)
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"graph_id": "g", "key": "k", "type": "t", "created_at": "2024-01-01T00:00Z"})
    assert e.value.field == "created_at"


def test_not_a_table() -> None:
    with pytest.raises(TypeError, match="Table or an ORM mapped class"):
        model_for(dict, "insert")
    with pytest.raises(TypeError, match="Table or an ORM mapped class"):
        model_for("nodes", "insert")  # type: ignore[arg-type]


# ---------------------------------------------------------------------
# Names: aliases for awkward columns; ORM attribute names
# ---------------------------------------------------------------------

odd = sa.Table(
    "odd",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("class", sa.String(5), nullable=False),
    sa.Column("json", sa.Integer, nullable=True),
    sa.Column("model_config", sa.Text, nullable=True),
    sa.Column("_hidden", sa.Text, nullable=True),
    sa.Column("my col", sa.Text, nullable=True),
    sa.Column("f_class", sa.Text, nullable=True),
)


def test_awkward_column_names_validate_and_dump_by_column_name(tmp_path: Any) -> None:
    m = model_for(odd, "insert")
    data = {"class": "a", "json": 1, "model_config": "m", "_hidden": "h", "my col": "c"}
    data["f_class"] = "f"  # the name an alias would take: the alias picks another
    got = validate(m, data)
    assert row_values(got) == data
    assert json.loads(got.model_dump_json(exclude_unset=True)) == data
    props = m.model_json_schema()["properties"]
    assert set(props) == set(data)
    with pytest.raises(ValidationFailed) as e:
        validate(m, data | {"class": "toolong"})
    assert e.value.field == "class"
    engine = create_engine(tmp_path / "t.db")
    try:
        odd.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(odd.insert().values(**row_values(got)))
            row = conn.execute(sa.select(odd)).mappings().one()
        assert row_values(validate(model_for(odd, "select"), dict(row))) == data | {"id": 1}
    finally:
        engine.dispose()


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column("label_text", sa.String(8))
    note: Mapped[str | None]


def test_orm_class_uses_attribute_names() -> None:
    m = model_for(Item, "insert")
    assert fields(m) == {"label": True, "note": False}
    assert m.__name__ == "ItemInsert"
    assert not accepts(m, {"label": "x" * 9})
    sel = model_for(Item, "select")
    got = sel.model_validate(Item(id=1, label="a", note=None))
    assert got.model_dump() == {"id": 1, "label": "a", "note": None}
    assert model_for(Item.__table__, "insert") is not m  # type: ignore[arg-type]
    assert "label_text" in fields(model_for(Item.__table__, "insert"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------


def test_same_arguments_same_class() -> None:
    assert model_for(nodes, "insert") is model_for(nodes, "insert")
    assert model_for(nodes, "insert", include=["key", "type"]) is model_for(
        nodes, "insert", include=("type", "key")
    )
    assert model_for(nodes, "insert", include=["key"]) is not model_for(nodes, "insert")
    assert model_for(nodes, "insert", refine={"attributes": CallAttributes}) is model_for(
        nodes, "insert", refine={"attributes": CallAttributes}
    )
    assert model_for(nodes, "insert", refine={"attributes": CallAttributes}) is not model_for(
        nodes, "insert"
    )
    assert model_for(nodes, "insert", name="X") is not model_for(nodes, "insert")
    assert model_for(nodes, "insert", name="X").__name__ == "X"
    assert model_for(nodes, "insert").__name__ == "NodesInsert"
    assert len({model_for(nodes, m) for m in MODES}) == 4


def test_unhashable_refinements_are_cached_by_identity() -> None:
    unhashable = Annotated[str, {"not": "hashable"}]
    with pytest.raises(TypeError):
        hash(unhashable)
    a = model_for(nodes, "insert", refine={"key": unhashable})
    assert model_for(nodes, "insert", refine={"key": unhashable}) is a
    assert model_for(nodes, "insert", refine={"key": Annotated[str, {"not": "hashable"}]}) is not a


def test_the_cache_does_not_keep_tables_alive() -> None:
    meta = sa.MetaData()
    t = sa.Table("gone", meta, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("v", sa.String(3)))
    models = [model_for(t, m) for m in MODES]
    ref = weakref.ref(t)
    del t, meta
    gc.collect()
    assert ref() is None
    assert models[1].model_validate({"v": "abc"}).v == "abc"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------
# validate()
# ---------------------------------------------------------------------


def test_validate_raises_validation_failed_naming_the_first_field() -> None:
    m = model_for(nodes, "insert")
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"key": "k" * 300, "type": 5})
    err = e.value
    assert isinstance(err, ValueError)
    assert err.field in {"graph_id", "key", "type"}
    assert {tuple(x["loc"]) for x in err.errors} == {("graph_id",), ("key",), ("type",)}
    assert "NodesInsert" in str(err) and "2 more errors" in str(err)


def test_validate_json_text() -> None:
    m = model_for(nodes, "insert")
    got = validate(m, '{"graph_id": "g", "key": "k", "type": "t"}')
    assert row_values(got) == {"graph_id": "g", "key": "k", "type": "t"}
    with pytest.raises(ValidationFailed):
        validate(m, b"{not json")


# ---------------------------------------------------------------------
# JSON Schema
# ---------------------------------------------------------------------

def leaf(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an ``X | None`` property."""
    if "anyOf" in prop:
        branches = [b for b in prop["anyOf"] if b != {"type": "null"}]
        if len(branches) == 1:
            return dict(branches[0])
    return prop


@pytest.mark.parametrize("table", [nodes, counters, odd], ids=lambda t: t.name)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("schema_mode", ["validation", "serialization"])
def test_json_schema_is_valid(table: sa.Table, mode: Any, schema_mode: Any) -> None:
    schema = model_for(table, mode).model_json_schema(mode=schema_mode)
    json.dumps(schema, allow_nan=False)
    check_schema(schema)
    draft_2020_12_check(schema)
    assert schema["type"] == "object"


@pytest.mark.parametrize("schema_mode", ["validation", "serialization"])
def test_json_schema_shapes(schema_mode: Any) -> None:
    props = model_for(counters, "select").model_json_schema(mode=schema_mode)["properties"]
    for col in ("naive", "aware"):
        assert {k: leaf(props[col])[k] for k in ("type", "format")} == {
            "type": "string",
            "format": "date-time",
        }
    blob = leaf(props["blob"])
    assert blob["type"] == "string" and blob["format"].startswith("base64")
    assert blob["maxLength"] == 4 or schema_mode == "serialization"
    assert leaf(props["big"])["minimum"] == -(2**63) and leaf(props["big"])["maximum"] == 2**63 - 1
    assert leaf(props["small"])["maximum"] == 2**15 - 1
    assert props["id"]["minimum"] == -(2**63)
    assert leaf(props["size"])["enum"] == ["l", "m", "s"]
    nprops = model_for(nodes, "insert").model_json_schema(mode=schema_mode)["properties"]
    assert {k: nprops["created_at"][k] for k in ("type", "format")} == {
        "type": "string",
        "format": "date-time",
    }
    assert nprops["key"]["maxLength"] == 255


def test_json_schema_required_and_defaults() -> None:
    schema = model_for(nodes, "insert").model_json_schema()
    assert sorted(schema["required"]) == ["graph_id", "key", "type"]
    props = schema["properties"]
    assert props["status"]["default"] == "active"
    assert "default" not in props["id"] and "default" not in props["created_at"]
    assert props["key_version"]["default"] is None
    assert schema["additionalProperties"] is False
    upd = model_for(nodes, "update").model_json_schema()
    assert "required" not in upd
    assert all("default" not in p for p in upd["properties"].values())
    assert sorted(model_for(nodes, "select").model_json_schema()["required"]) == sorted(
        c.key for c in nodes.columns
    )


# ---------------------------------------------------------------------
# TypeDecorators with their own python_type; concurrent generation
# ---------------------------------------------------------------------


class Envelope(str):
    """A str subclass pydantic can validate (like the secrets' EncryptedData)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls._check, core_schema.str_schema()
        )

    @classmethod
    def _check(cls, v: str) -> Envelope:
        if not v.startswith("v1:"):
            raise ValueError("not an envelope")
        return cls(v)


class EnvelopeColumn(sa.types.TypeDecorator[Envelope]):
    impl = sa.Text
    cache_ok = True

    @property
    def python_type(self) -> type[Envelope]:
        return Envelope


class NaiveUTC(UTCText):
    timezone = False


def test_type_decorators_with_their_own_python_type() -> None:
    t = sa.Table("dec", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("secret", EnvelopeColumn, nullable=False),
                 sa.Column("at", NaiveUTC, nullable=True))
    m = model_for(t, "insert")
    assert isinstance(validate(m, {"secret": "v1:abc"}).secret, Envelope)  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed) as e:
        validate(m, {"secret": "plain"})
    assert e.value.field == "secret"
    assert accepts(m, {"secret": "v1:x", "at": dt.datetime(2024, 1, 1)})
    assert not accepts(m, {"secret": "v1:x", "at": dt.datetime(2024, 1, 1, tzinfo=UTC)})


def test_concurrent_callers_get_one_class() -> None:
    import threading

    t = sa.Table("conc", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("v", sa.String(3)))
    got: list[type[BaseModel]] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        got.append(model_for(t, "insert", exclude=["id"]))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == 8 and len({id(m) for m in got}) == 1
