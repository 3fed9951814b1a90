"""What a column means as a pydantic field type: SQLAlchemy types, the
CHECK constraints SQLite enforces that model_for can read, and the JSON
value types (docs/0016-generated-models.md). Used by
:mod:`alkdev_storage.domain.models`."""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import math
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import (
    AwareDatetime,
    BaseModel,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    JsonValue,
    NaiveDatetime,
    Tag,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema
from sqlalchemy.dialects import sqlite as _sqlite_dialect

__all__ = [
    "I16_MAX",
    "I16_MIN",
    "I64_MAX",
    "I64_MIN",
    "Checks",
    "JsonAny",
    "JsonNotNull",
    "field_type",
    "table_checks",
]

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I16_MIN, I16_MAX = -(2**15), 2**15 - 1


# ---------------------------------------------------------------------
# JSON values
# ---------------------------------------------------------------------


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


# ---------------------------------------------------------------------
# Column types
# ---------------------------------------------------------------------


@dataclass(frozen=True)
class Checks:
    """What the CHECK constraints of a table say about one column: allowed
    values (``IN``) and text/blob length bounds."""

    values: frozenset[str | int] | None = None
    min_length: int | None = None
    max_length: int | None = None


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


def _str_type(length: int | None, checks: Checks, what: str) -> Any:
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


def _int_type(lo: int, hi: int, checks: Checks) -> Any:
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


def field_type(t: sa.types.TypeEngine[Any], nullable: bool, checks: Checks, what: str) -> Any:
    """The field type of column type ``t`` with its ``checks`` (without
    ``| None``; ``nullable`` picks the JSON type). ``what`` names the
    column in errors (``ValueError`` when no value can satisfy its Enum,
    CHECK IN and length together)."""
    if isinstance(t, sa.Interval):
        return _dt.timedelta
    if isinstance(t, sa.types.TypeDecorator):
        impl = t.impl_instance
        if not _overrides_python_type(t):
            return field_type(impl, nullable, checks, what)
        py = _python_type(t)
        if py is _dt.datetime:
            # A datetime decorator over SQLite exists to fix the zone
            # (UTCDateTime): aware unless it says `timezone = False`.
            return _datetime(bool(getattr(t, "timezone", True)))
        if py is not None and py is _python_type(impl):
            return field_type(impl, nullable, checks, what)
        if py in (str, bytes, int):
            stand_in: sa.types.TypeEngine[Any] = (
                sa.String() if py is str else sa.LargeBinary() if py is bytes else sa.BigInteger()
            )
            return field_type(stand_in, nullable, checks, what)
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
        return field_type(sa.String() if py is str else sa.BigInteger(), nullable, checks, what)
    if py in _SIMPLE:
        return _SIMPLE[py]
    return py if _pydantic_knows(py) else Any


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


def _merge(old: Checks, new: Checks) -> Checks:
    values = old.values
    if new.values is not None:
        values = new.values if values is None else values & new.values
    lo = max((x for x in (old.min_length, new.min_length) if x is not None), default=None)
    hi = min((x for x in (old.max_length, new.max_length) if x is not None), default=None)
    return Checks(values, lo, hi)


def _term_checks(term: str) -> tuple[str, Checks] | None:
    m = _IN_RE.match(term)
    if m:
        vals = [_literal_value(t) for t in _LIT_RE.findall(m.group(2))]
        if any(v is None for v in vals):
            return None
        return _unquote(m.group(1)), Checks(values=frozenset(v for v in vals if v is not None))
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
        return _unquote(m.group(1)), Checks(min_length=bounds[0], max_length=bounds[1])
    m = _LEN_BETWEEN_RE.match(term)
    if m:
        return _unquote(m.group(1)), Checks(
            min_length=int(m.group(2)), max_length=int(m.group(3))
        )
    return None


def table_checks(table: sa.Table) -> dict[str, Checks]:
    """Column name -> what the table's CHECK constraints (table- and
    column-level) say about it, for the terms model_for reads."""
    found: dict[str, Checks] = {}
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
                found[name] = _merge(found.get(name, Checks()), checks)
    return found
