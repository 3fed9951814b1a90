"""Validation models generated from table definitions (ADR-046, the seeds'
"drizzlebox"): one pydantic model per table and mode, with the column
constraints the table declares.

    >>> NodeInsert = model_for(nodes, "insert", refine={"attributes": CallAttrs})
    >>> payload = validate(NodeInsert, request_json)      # ValidationFailed naming the field
    >>> session.execute(sa.insert(nodes).values(**row_values(payload)))

``model_for(table, mode)`` takes a SQLAlchemy ``Table`` or an ORM mapped
class (field names are then the mapped attribute names) and returns a plain
``pydantic.BaseModel`` subclass, generated once and cached: the same
arguments give the same class object.

Modes (docs/0016-generated-models.md):

* ``"select"``: every column, every field required; a nullable column is
  ``X | None``. Unknown keys are ignored and attributes are read
  (``from_attributes``), so ``Model.model_validate(row._mapping)`` and
  ``Model.model_validate(orm_object)`` both work.
* ``"insert"``: leaves out the autoincrement key (an ``INTEGER PRIMARY KEY``)
  and generated (``Computed``) columns. A column with a default (Python-side
  such as ``new_id``/``utcnow``, or a server default) or a nullable column
  is optional; every other column is required.
* ``"update"``: the SET clause of an UPDATE: every writable column, keys
  included, all optional; a field left out means "unchanged".
* ``"patch"``: a partial update of one row identified elsewhere (an HTTP
  PATCH body): like ``"update"`` but without the primary-key columns, so a
  key in the body is refused as an unknown field.

Write models (insert, update, patch) refuse unknown keys
(``extra="forbid"``). An optional field that is left out is *unset*: write
what was given with :func:`row_values` (``model_dump(exclude_unset=True,
by_alias=True)``) so the database applies its defaults. A NOT NULL column
never accepts ``None``; a nullable one does (``None`` is SQL NULL).

Column types carry their constraints: ``String(n)`` -> ``max_length`` (also
where SQLite itself does not enforce it: model_for enforces
``String(length)``, the database only if a CHECK exists), ``Enum`` and
``CHECK (col IN (...))`` -> ``Literal``, ``CHECK (length(col) <= n)`` and
friends -> lengths, ``Integer``/``BigInteger`` -> the 64-bit range,
``SmallInteger`` -> the 16-bit range, ``Float`` -> finite floats,
``Numeric(p, s)`` -> ``Decimal`` digits, ``DateTime(timezone=True)`` and
datetime TypeDecorators (``UTCDateTime``) -> aware datetimes, plain
``DateTime`` -> naive ones, ``LargeBinary`` -> bytes (base64 in JSON),
``JSON`` -> any JSON value with finite numbers (not null for a NOT NULL
column). Strings are valid Unicode (no lone surrogates).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import functools
import inspect
import keyword
import math
import re
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import sqlalchemy as sa
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    JsonValue,
    NaiveDatetime,
    Tag,
    TypeAdapter,
    WithJsonSchema,
    create_model,
)
from pydantic import ValidationError as _PydanticValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, core_schema
from sqlalchemy.dialects import sqlite as _sqlite_dialect

from alkdev_storage.errors import ValidationFailed

__all__ = [
    "MODES",
    "JsonAny",
    "JsonNotNull",
    "Mode",
    "model_for",
    "row_values",
    "validate",
    "validation_failed",
]

Mode = Literal["select", "insert", "update", "patch"]
MODES: tuple[Mode, ...] = ("select", "insert", "update", "patch")
"""The modes :func:`model_for` generates, in the order of the docs."""

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I16_MIN, I16_MAX = -(2**15), 2**15 - 1



def _json_tag(v: Any) -> str | None:
    if isinstance(v, dict):
        return "dict"
    if isinstance(v, list):
        return "list"
    if isinstance(v, str):
        return "str"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return None


_TaggedNotNull = Annotated[
    Annotated[dict[str, JsonValue], Tag("dict")]
    | Annotated[list[JsonValue], Tag("list")]
    | Annotated[str, Tag("str")]
    | Annotated[bool, Tag("bool")]
    | Annotated[int, Tag("int")]
    | Annotated[float, Tag("float")],
    Discriminator(
        _json_tag,
        custom_error_type="json_not_null",
        custom_error_message="Input should be a JSON value other than null",
    ),
]

_INF = (math.inf, -math.inf)


def _nonfinite_at(v: Any) -> str | None:
    """Where a NaN or infinity is in a decoded JSON value ("" for the value
    itself), or None."""
    t = type(v)
    if t is float:
        return "" if (v != v or v in _INF) else None
    if t is dict:
        items: Iterable[tuple[Any, Any]] = v.items()
    elif t is list:
        items = enumerate(v)
    else:
        return None
    for k, x in items:
        if type(x) in (float, dict, list):
            at = _nonfinite_at(x)
            if at is not None:
                return f"{k}.{at}" if at else str(k)
    return None


def _finite_json(v: Any) -> Any:
    at = _nonfinite_at(v)
    if at is not None:
        raise PydanticCustomError(
            "finite_number",
            "Input should be JSON with finite numbers (NaN or infinity at {at})",
            {"at": at or "the top"},
        )
    return v


def _finite_json_not_null(v: Any) -> Any:
    if v is None:
        raise PydanticCustomError("json_not_null", "Input should be a JSON value other than null")
    return _finite_json(v)


def _json_field(python: Any, json_check: Callable[[Any], Any]) -> GetPydanticSchema:
    """Python input: ``python`` (a type-tagged union, all in Rust). JSON
    input is JSON already: any value, then ``json_check`` (pydantic's JSON
    parser reads NaN and Infinity literals, which JSON cannot hold)."""

    def build(_source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.json_or_python_schema(
            json_schema=core_schema.no_info_after_validator_function(
                json_check, core_schema.any_schema()
            ),
            python_schema=handler.generate_schema(python),
        )

    return GetPydanticSchema(build)


JsonNotNull = Annotated[
    Any,
    _json_field(_TaggedNotNull, _finite_json_not_null),
    WithJsonSchema({"type": ["object", "array", "string", "number", "boolean"]}),
]
"""Any JSON value but null, numbers finite: the field type of a NOT NULL
``JSON`` column (built like pydantic's ``JsonValue``: one branch chosen by
type, so an error names the field once)."""

JsonAny = Annotated[Any, _json_field(JsonValue, _finite_json), WithJsonSchema({})]
"""Any JSON value, null included, numbers finite: the field type of a
nullable ``JSON`` column."""

M = TypeVar("M", bound=BaseModel)

# Field(exclude_if=...) exists from pydantic 2.11: with it a plain
# model_dump() leaves out unset NOT NULL fields (never a null the column
# cannot hold). row_values() does not depend on it.
_HAS_EXCLUDE_IF = "exclude_if" in inspect.signature(Field).parameters


# ---------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Checks:
    """What the CHECK constraints of a table say about one column."""

    values: frozenset[str | int] | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class _Col:
    """One column as model_for sees it (no reference to the Table kept)."""

    key: str  # the field's key: column key, or mapped attribute name
    name: str  # the SQL column name (for CHECK lookups and errors)
    base: Any  # field type without nullability
    nullable: bool
    has_default: bool
    autoincrement: bool
    computed: bool
    primary_key: bool
    schema_default: Any  # JSON value shown as "default" in insert schemas, or _NONE
    comment: str | None


_NONE: Any = object()


def _annotated(tp: Any, **constraints: Any) -> Any:
    given = {k: v for k, v in constraints.items() if v is not None}
    return Annotated[tp, Field(**given)] if given else tp


def _overrides_python_type(t: sa.types.TypeDecorator[Any]) -> bool:
    return type(t).python_type is not sa.types.TypeDecorator.python_type


def _python_type(t: sa.types.TypeEngine[Any]) -> Any:
    try:
        return t.python_type
    except NotImplementedError:
        return None


def _literal(values: Iterable[str | int]) -> Any:
    return Literal[tuple(sorted(values, key=lambda v: (str(type(v)), v)))]


def _str_type(length: int | None, checks: _Checks, what: str) -> Any:
    max_len = length
    if checks.max_length is not None:
        max_len = checks.max_length if max_len is None else min(max_len, checks.max_length)
    if checks.values is not None:
        allowed = {
            v
            for v in checks.values
            if isinstance(v, str)
            and (max_len is None or len(v) <= max_len)
            and (checks.min_length is None or len(v) >= checks.min_length)
        }
        if not allowed:
            raise ValueError(f"{what}: no value of its CHECK ... IN (...) fits its length")
        return _literal(allowed)
    # min_length=0 at least: pydantic checks a constrained str is valid
    # Unicode (no lone surrogates, which cannot be stored as UTF-8).
    return _annotated(str, min_length=checks.min_length or 0, max_length=max_len)


def _int_type(lo: int, hi: int, checks: _Checks) -> Any:
    if checks.values is not None:
        ints = {v for v in checks.values if isinstance(v, int) and lo <= v <= hi}
        if ints and len(ints) == len(checks.values):
            return _literal(ints)
    return _annotated(int, ge=lo, le=hi)


def _datetime(aware: bool) -> Any:
    return AwareDatetime if aware else NaiveDatetime


_SIMPLE: dict[type, Any] = {
    bool: bool,
    float: float,
    decimal.Decimal: decimal.Decimal,
    _dt.date: _dt.date,
    _dt.time: _dt.time,
    _dt.timedelta: _dt.timedelta,
    uuid.UUID: uuid.UUID,
    dict: JsonAny,
    list: JsonAny,
}


def _pydantic_knows(tp: Any) -> bool:
    return isinstance(tp, type) and (
        issubclass(tp, (BaseModel, enum.Enum)) or hasattr(tp, "__get_pydantic_core_schema__")
    )


def _base_type(t: sa.types.TypeEngine[Any], nullable: bool, checks: _Checks, what: str) -> Any:
    """The field type of a column type, constraints included (not None)."""
    if isinstance(t, sa.Interval):
        return _dt.timedelta
    if isinstance(t, sa.types.TypeDecorator):
        impl = t.impl_instance
        if not _overrides_python_type(t):
            return _base_type(impl, nullable, checks, what)
        py = _python_type(t)
        if py is _dt.datetime:
            # A datetime decorator over SQLite exists to fix the zone
            # (UTCDateTime): aware unless it says `timezone = False`.
            return _datetime(bool(getattr(t, "timezone", True)))
        if py is not None and py is _python_type(impl):
            return _base_type(impl, nullable, checks, what)
        if py in (str, bytes, int):
            stand_in: sa.types.TypeEngine[Any] = (
                sa.String() if py is str else sa.LargeBinary() if py is bytes else sa.BigInteger()
            )
            return _base_type(stand_in, nullable, checks, what)
        if py in _SIMPLE:
            return _SIMPLE[py]
        return py if _pydantic_knows(py) else Any
    if isinstance(t, sa.Enum):
        if t.enum_class is not None:
            return t.enum_class
        values = frozenset(t.enums)
        if checks.values is not None:
            values &= {v for v in checks.values if isinstance(v, str)}
        if not values:
            raise ValueError(f"{what}: its Enum and CHECK ... IN (...) allow no common value")
        return _literal(values)
    if isinstance(t, sa.JSON):
        return JsonAny if nullable else JsonNotNull
    if isinstance(t, sa.Boolean):
        return bool
    if isinstance(t, sa.SmallInteger):
        return _int_type(I16_MIN, I16_MAX, checks)
    if isinstance(t, sa.Integer):
        return _int_type(I64_MIN, I64_MAX, checks)
    if isinstance(t, sa.Float):
        return decimal.Decimal if t.asdecimal else float
    if isinstance(t, sa.Numeric):
        if not t.asdecimal:
            return float
        digits = t.precision
        places = t.scale
        return _annotated(decimal.Decimal, max_digits=digits, decimal_places=places)
    if isinstance(t, sa.String):
        return _str_type(t.length, checks, what)
    if isinstance(t, sa.DateTime):
        return _datetime(bool(t.timezone))
    if isinstance(t, sa.Date):
        return _dt.date
    if isinstance(t, sa.Time):
        return _dt.time
    if isinstance(t, sa.Uuid):
        return uuid.UUID if t.as_uuid else _annotated(str, max_length=36)
    py = _python_type(t)
    if py is bytes:
        length = getattr(t, "length", None)
        max_len = length
        if checks.max_length is not None:
            max_len = checks.max_length if max_len is None else min(max_len, checks.max_length)
        return _annotated(bytes, min_length=checks.min_length, max_length=max_len)
    if py in (str, int):
        return _base_type(sa.String() if py is str else sa.BigInteger(), nullable, checks, what)
    if py in _SIMPLE:
        return _SIMPLE[py]
    return py if _pydantic_knows(py) else Any


def _schema_default(col: sa.Column[Any]) -> Any:
    """The column default as a JSON value for the insert schema, if it is a
    plain scalar; else _NONE."""
    d = col.default
    if isinstance(d, sa.ColumnDefault) and d.is_scalar:
        v = d.arg
        if isinstance(v, enum.Enum):
            v = v.value
        if v is None or isinstance(v, (str, int, float, bool)):
            return v
        return _NONE
    sd = col.server_default
    if isinstance(sd, sa.DefaultClause) and isinstance(sd.arg, str):
        if isinstance(col.type, sa.String) and not isinstance(col.type, sa.Enum):
            return sd.arg
    return _NONE


def _columns(table: sa.Table, keys: Mapping[sa.Column[Any], str]) -> list[_Col]:
    checks = _table_checks(table)
    auto = table.autoincrement_column
    found = []
    for col in table.columns:
        key = keys.get(col)
        if key is None:
            continue
        what = f"column {table.name}.{col.name}"
        c = checks.get(col.name, _Checks())
        found.append(
            _Col(
                key=key,
                name=col.name,
                base=_base_type(col.type, bool(col.nullable), c, what),
                nullable=bool(col.nullable),
                has_default=col.default is not None
                or col.server_default is not None
                or col.identity is not None,
                autoincrement=col is auto,
                computed=col.computed is not None,
                primary_key=col.primary_key,
                schema_default=_schema_default(col),
                comment=col.comment,
            )
        )
    return found


# ---------------------------------------------------------------------
# CHECK constraints: `col IN (...)` and `length(col) <op> n`, alone or in
# a top-level AND; anything else is left to the database.
# ---------------------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|`(?:[^`]|``)+`|\[[^\]]+\]|[A-Za-z_][\w$]*)'
_QIDENT = rf"(?:{_IDENT}\s*\.\s*)?({_IDENT})"
_LIT = r"(?:'(?:[^']|'')*'|[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_IN_RE = re.compile(
    rf"^{_QIDENT}\s+IN\s*\(\s*({_LIT}(?:\s*,\s*{_LIT})*)\s*\)$", re.IGNORECASE | re.DOTALL
)
_LIT_RE = re.compile(_LIT)
_LEN_RE = re.compile(
    rf"^length\s*\(\s*{_QIDENT}\s*\)\s*(<=|<|>=|>|==|=)\s*(\d+)$", re.IGNORECASE | re.DOTALL
)
_LEN_BETWEEN_RE = re.compile(
    rf"^length\s*\(\s*{_QIDENT}\s*\)\s+BETWEEN\s+(\d+)\s+AND\s+(\d+)$", re.IGNORECASE | re.DOTALL
)


def _unquote(ident: str) -> str:
    if ident[0] == '"':
        return ident[1:-1].replace('""', '"')
    if ident[0] == "`":
        return ident[1:-1].replace("``", "`")
    if ident[0] == "[":
        return ident[1:-1]
    return ident


def _literal_value(tok: str) -> str | int | None:
    if tok.startswith("'"):
        return tok[1:-1].replace("''", "'")
    try:
        return int(tok)
    except ValueError:
        return None  # a real literal: not used


def _strip_parens(s: str) -> str:
    s = s.strip()
    while s.startswith("(") and s.endswith(")") and _depth_ok(s[1:-1]):
        s = s[1:-1].strip()
    return s


def _depth_ok(s: str) -> bool:
    depth, quote = 0, ""
    for ch in s:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _conjuncts(sql: str) -> list[str] | None:
    """The top-level AND terms of ``sql``; None if a top-level OR makes
    them insufficient on their own."""
    sql = _strip_parens(sql)
    terms: list[str] = []
    depth, quote, start, i = 0, "", 0, 0
    n = len(sql)
    pending_between = False
    while i < n:
        ch = sql[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            word = re.match(r"(?i)(AND|OR|BETWEEN)\b", sql[i:])
            if word:
                w = word.group(1).upper()
                if w == "OR":
                    return None
                if w == "BETWEEN":
                    pending_between = True
                elif pending_between:
                    pending_between = False
                else:
                    terms.append(sql[start:i])
                    start = i + 3
                i += len(w)
                continue
        i += 1
    terms.append(sql[start:])
    return [_strip_parens(t) for t in terms]


def _check_sql(check: sa.CheckConstraint) -> str | None:
    text = check.sqltext
    if isinstance(text, sa.TextClause):
        return text.text
    try:
        return str(
            text.compile(dialect=_sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True})
        )
    except sa.exc.SQLAlchemyError:
        return None


def _merge(old: _Checks, new: _Checks) -> _Checks:
    values = old.values
    if new.values is not None:
        values = new.values if values is None else values & new.values
    lo = max((x for x in (old.min_length, new.min_length) if x is not None), default=None)
    hi = min((x for x in (old.max_length, new.max_length) if x is not None), default=None)
    return _Checks(values, lo, hi)


def _term_checks(term: str) -> tuple[str, _Checks] | None:
    m = _IN_RE.match(term)
    if m:
        vals = [_literal_value(t) for t in _LIT_RE.findall(m.group(2))]
        if any(v is None for v in vals):
            return None
        return _unquote(m.group(1)), _Checks(values=frozenset(v for v in vals if v is not None))
    m = _LEN_RE.match(term)
    if m:
        op, n = m.group(2), int(m.group(3))
        bounds = {
            "<=": (None, n),
            "<": (None, n - 1),
            ">=": (n, None),
            ">": (n + 1, None),
            "=": (n, n),
            "==": (n, n),
        }[op]
        return _unquote(m.group(1)), _Checks(min_length=bounds[0], max_length=bounds[1])
    m = _LEN_BETWEEN_RE.match(term)
    if m:
        return _unquote(m.group(1)), _Checks(
            min_length=int(m.group(2)), max_length=int(m.group(3))
        )
    return None


def _table_checks(table: sa.Table) -> dict[str, _Checks]:
    found: dict[str, _Checks] = {}
    constraints: dict[int, sa.CheckConstraint] = {}
    for c in table.constraints:
        if isinstance(c, sa.CheckConstraint):
            constraints[id(c)] = c
    for col in table.columns:
        for c in col.constraints:
            if isinstance(c, sa.CheckConstraint):
                constraints[id(c)] = c
    for check in constraints.values():
        sql = _check_sql(check)
        terms = _conjuncts(sql) if sql else None
        for term in terms or ():
            parsed = _term_checks(term)
            if parsed is not None:
                name, checks = parsed
                found[name] = _merge(found.get(name, _Checks()), checks)
    return found


# ---------------------------------------------------------------------
# model_for
# ---------------------------------------------------------------------

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], type[BaseModel]]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.RLock()  # a refinement may itself call model_for
_RESERVED = frozenset(dir(BaseModel))


def _source(obj: Any) -> tuple[sa.Table, dict[sa.Column[Any], str], str]:
    """(table, column -> field key, default model name stem)."""
    if isinstance(obj, sa.Table):
        return obj, {c: c.key for c in obj.columns}, obj.name
    if isinstance(obj, type):
        mapper: Any
        try:
            mapper = sa.inspect(obj)
        except sa.exc.NoInspectionAvailable:
            mapper = None
        if isinstance(mapper, sa.orm.Mapper):
            table = mapper.local_table
            if not isinstance(table, sa.Table):
                raise TypeError(f"{obj.__name__} is not mapped to a Table")
            keys: dict[sa.Column[Any], str] = {}
            for prop in mapper.column_attrs:
                for col in prop.columns:
                    if isinstance(col, sa.Column) and col.table is table and col not in keys:
                        keys[col] = prop.key
            return table, keys, obj.__name__
    raise TypeError(
        f"model_for() needs a SQLAlchemy Table or an ORM mapped class, not {obj!r}"
    )


def _names(arg: str | Iterable[str] | None, what: str) -> frozenset[str] | None:
    if arg is None:
        return None
    if isinstance(arg, str):
        return frozenset((arg,))
    names = frozenset(arg)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"{what} must name columns (str), got {bad[0]!r}")
    return names


def _refine_key(refine: Mapping[str, Any] | None) -> tuple[Any, ...]:
    if not refine:
        return ()
    items = []
    for col, r in sorted(refine.items()):
        try:
            hash(r)
            items.append((col, r))
        except TypeError:
            # Unhashable (an Annotated with an unhashable argument, say):
            # cached by identity; the generated model keeps it alive.
            items.append((col, ("id", id(r))))
    return tuple(items)


def _is_callable_refinement(r: Any) -> bool:
    return (
        inspect.isfunction(r)
        or inspect.ismethod(r)
        or inspect.isbuiltin(r)
        or isinstance(r, functools.partial)
    )


def _camel(stem: str) -> str:
    parts = re.split(r"[^0-9A-Za-z]+", stem)
    out = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return out if out and not out[0].isdigit() else f"T{out}"


def _field_name(key: str, taken: set[str]) -> tuple[str, str | None]:
    """(python field name, alias or None): a column whose name is not a
    plain identifier, is a keyword, starts with ``_``/``model_`` or shadows
    a BaseModel attribute gets a safe field name and its key as alias."""
    if (
        key.isidentifier()
        and not keyword.iskeyword(key)
        and not key.startswith(("_", "model_"))
        and key not in _RESERVED
    ):
        return key, None
    base = "f_" + re.sub(r"\W", "_", key).strip("_")
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name, key


def _hide_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _show_default(value: Any) -> Callable[[dict[str, Any]], None]:
    def extra(schema: dict[str, Any]) -> None:
        schema["default"] = value

    return extra


def _field(
    col: _Col, mode: Mode, annotation: Any, alias: str | None
) -> tuple[Any, FieldInfo]:
    kw: dict[str, Any] = {}
    if alias is not None:
        kw["alias"] = alias
    if col.comment:
        kw["description"] = col.comment
    if mode == "select":
        return (annotation | None if col.nullable else annotation), Field(**kw)
    if mode == "insert" and not (col.nullable or col.has_default or col.autoincrement):
        return annotation, Field(**kw)
    # Optional. None is the "unset" default: never a value a NOT NULL
    # column can take, so it cannot be confused with one given.
    if col.nullable:
        tp = annotation | None
    else:
        tp = annotation
        if _HAS_EXCLUDE_IF:
            kw["exclude_if"] = _is_none
    if mode == "insert" and col.has_default and col.schema_default is not _NONE:
        kw["json_schema_extra"] = _show_default(col.schema_default)
    elif mode != "insert" or not col.nullable or col.has_default:
        kw["json_schema_extra"] = _hide_default
    return tp, Field(default=None, **kw)


def _is_none(v: Any) -> bool:
    return v is None


def _apply_refinement(col: _Col, r: Any, table: str) -> Any:
    what = f"refine[{col.key!r}] of {table}"
    if _is_callable_refinement(r):
        try:
            tp = r(col.base)
        except Exception as exc:
            raise ValueError(f"{what}: the refinement raised {type(exc).__name__}: {exc}") from exc
    else:
        tp = r
    try:
        TypeAdapter(tp)
    except Exception as exc:
        raise ValueError(f"{what}: not a type pydantic can validate ({exc})") from exc
    return tp


def model_for(
    table: sa.Table | type[Any],
    mode: Mode,
    *,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    refine: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> type[BaseModel]:
    """The pydantic model of ``table`` (a ``Table`` or an ORM mapped class)
    for ``mode`` ("select", "insert", "update" or "patch"; see the module
    docstring for what each one holds).

    ``include``: only these columns (may bring back a key the mode leaves
    out: the autoincrement key in insert, the primary key in patch).
    ``exclude``: leave these out (wins over ``include``). ``refine``: per
    column, a type or typing form that replaces the generated field type
    (``{"attributes": CallAttributes}``, ``Annotated[str, Field(pattern=...)]``)
    or a function taking the generated type and returning the new one
    (``lambda t: Annotated[t, AfterValidator(check)]``); nullability and
    optionality still come from the column. ``name``: the class name
    (default: ``<Table><Mode>``, e.g. ``NodesInsert``, or ``<Class><Mode>``
    for a mapped class).

    Cached: the same arguments give the same class object (refinements are
    compared by equality, unhashable ones by identity). Raises
    ``ValueError`` naming an unknown mode or column, a refinement pydantic
    cannot use, or a generated column named in a write mode's include;
    ``TypeError`` for something that is neither a Table nor a mapped class.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    inc = _names(include, "include")
    exc = _names(exclude, "exclude")
    if refine is not None and not isinstance(refine, Mapping):
        raise TypeError(f"refine must be a mapping of column -> type, not {type(refine).__name__}")
    key = (mode, inc, exc, _refine_key(refine), name)
    with _LOCK:
        try:
            per = _CACHE[table]
        except KeyError:
            per = None
        except TypeError as err:
            raise TypeError(
                f"model_for() needs a SQLAlchemy Table or an ORM mapped class, not {table!r}"
            ) from err
        if per is not None and key in per:
            return per[key]
        model = _build(table, mode, inc, exc, refine or {}, name)
        _CACHE.setdefault(table, {})[key] = model
        return model


def _build(
    source: Any,
    mode: Mode,
    inc: frozenset[str] | None,
    exc: frozenset[str] | None,
    refine: Mapping[str, Any],
    name: str | None,
) -> type[BaseModel]:
    table, keys, stem = _source(source)
    cols = _columns(table, keys)
    known = {c.key for c in cols}
    for what, names in (("include", inc), ("exclude", exc), ("refine", refine)):
        for n in sorted(names or ()):
            if n not in known:
                raise ValueError(
                    f"{what} names {n!r}, which is not a column of {table.name} "
                    f"(columns: {', '.join(sorted(known))})"
                )
    fields: dict[str, Any] = {}
    taken: set[str] = set()
    for col in cols:
        if exc is not None and col.key in exc:
            continue
        named = inc is not None and col.key in inc
        if inc is not None and not named:
            continue
        if mode != "select":
            if col.computed:
                if named:
                    raise ValueError(
                        f"column {table.name}.{col.name} is generated and cannot be written "
                        f"({mode} model)"
                    )
                continue
            if mode == "insert" and col.autoincrement and not named:
                continue
            if mode == "patch" and col.primary_key and not named:
                continue
        annotation = col.base
        if col.key in refine:
            annotation = _apply_refinement(col, refine[col.key], table.name)
        fname, alias = _field_name(col.key, taken | set(keys.values()))
        taken.add(fname)
        fields[fname] = _field(col, mode, annotation, alias)
    title = name or f"{_camel(stem)}{mode.capitalize()}"
    config = ConfigDict(
        title=title,
        extra="ignore" if mode == "select" else "forbid",
        from_attributes=True,
        allow_inf_nan=False,
        ser_json_bytes="base64",
        val_json_bytes="base64",
        # Aliased fields (columns named like keywords or BaseModel
        # attributes) dump under their column names (pydantic >= 2.11).
        serialize_by_alias=True,
    )
    model: type[BaseModel] = create_model(
        title,
        __config__=config,
        __doc__=f"{mode.capitalize()} model of table {table.name} (generated by model_for).",
        **fields,
    )
    model.__table_name__ = table.name  # type: ignore[attr-defined]  # informative class attribute
    model.__mode__ = mode  # type: ignore[attr-defined]  # informative class attribute
    return model


# ---------------------------------------------------------------------
# Validation and values
# ---------------------------------------------------------------------


def _loc(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc)


def validation_failed(error: _PydanticValidationError, what: str) -> ValidationFailed:
    """A :class:`~alkdev_storage.errors.ValidationFailed` from a pydantic
    ``ValidationError``: ``errors`` keeps each error's ``loc``, ``msg`` and
    ``type`` (never the input, which may be a secret), ``field`` is the
    dotted location of the first one, and the message names it."""
    errors: list[dict[str, object]] = [
        {"loc": tuple(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_input=False)
    ]
    raw = error.errors(include_url=False, include_input=False)
    field = _loc(raw[0]["loc"]) if raw and raw[0]["loc"] else None
    msg = f"{what}: {field or 'value'}: {raw[0]['msg'] if raw else 'invalid'}"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return ValidationFailed(msg, errors, field)


def validate(model: type[M], data: Any) -> M:
    """``model.model_validate(data)`` (``model_validate_json`` for str or
    bytes), raising :class:`~alkdev_storage.errors.ValidationFailed` (with
    ``.field`` and ``.errors``) instead of pydantic's ``ValidationError``."""
    try:
        if isinstance(data, (str, bytes, bytearray)):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except _PydanticValidationError as e:
        raise validation_failed(e, model.__name__) from None


def row_values(instance: BaseModel) -> dict[str, Any]:
    """The column values a write model was given, by column key (or mapped
    attribute name): ``model_dump(exclude_unset=True, by_alias=True)``.
    Fields left out stay out, so the database applies its defaults (insert)
    or keeps the current value (update, patch)."""
    return instance.model_dump(exclude_unset=True, by_alias=True)
