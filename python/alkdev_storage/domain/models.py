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

import enum
import functools
import inspect
import keyword
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pydantic import ValidationError as _PydanticValidationError
from pydantic.fields import FieldInfo

from alkdev_storage.domain.column_types import (
    Checks,
    JsonAny,
    JsonNotNull,
    field_type,
    table_checks,
)
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

M = TypeVar("M", bound=BaseModel)

# Field(exclude_if=...) exists from pydantic 2.11: with it a plain
# model_dump() leaves out unset NOT NULL fields (never a null the column
# cannot hold). row_values() does not depend on it.
_HAS_EXCLUDE_IF = "exclude_if" in inspect.signature(Field).parameters


# ---------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------


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
    checks = table_checks(table)
    auto = table.autoincrement_column
    found = []
    for col in table.columns:
        key = keys.get(col)
        if key is None:
            continue
        what = f"column {table.name}.{col.name}"
        c = checks.get(col.name, Checks())
        found.append(
            _Col(
                key=key,
                name=col.name,
                base=field_type(col.type, bool(col.nullable), c, what),
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
