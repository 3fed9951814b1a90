"""Operations generated from a table (ADR-048; docs/0023-operation-specs.md).

:func:`generate` turns a :class:`TableConfig` into the specs
``<resource>.create``, ``.get``, ``.list``, ``.update``, ``.patch`` and
``.delete``; ``include``/``exclude`` pick verbs, ``rename`` renames ids,
``add`` appends custom specs (built with :func:`custom`, declared the same
way: id, kind, models, scope, handler, statements).

What the generated handlers do (all SQL compiled once per spec and access
shape, see :mod:`alkdev_storage.operations.sqlc`):

* ``create``: the input model is the table's insert model without the
  server-set columns (``id``, ``created_at``, ``updated_at``); presets fill
  columns from the caller (``owner_id``...); the table's ``create`` rule is
  checked in SQL (``SELECT CASE WHEN <rule> ...``), then
  ``INSERT ... RETURNING``.
* ``get``: ``SELECT ... WHERE <key> AND <read rule>``; ``NotFound`` when the
  row is missing or hidden (the same error).
* ``list``: equality filters on indexed columns, ``order_by`` one of the
  allowed columns (then the key), ``descending``, ``limit`` (1 to the
  table's hard maximum), and keyset pagination: ``(sort, key) > (?, ?)``
  from an HMAC-authenticated cursor, stable under concurrent inserts.
* ``update`` (the insert model's required columns must be given) and
  ``patch`` (any subset): ``UPDATE ... WHERE <key> AND <write rule> AND
  <column rules of the columns set> RETURNING ...``; no row changed: one
  more read tells "not found" (missing or hidden) from "not allowed"
  (visible, not writable) without revealing hidden rows.
* ``delete``: ``DELETE ... WHERE <key> AND <delete rule> RETURNING ...``.

Hooks (:class:`Hooks`) let a table validate and transform values (graph-
typed attributes), publish its catalogued events and shape its output
(secrets redacted) inside the call's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Optional, cast

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from alkdev_storage.domain.models import model_for, row_values
from alkdev_storage.errors import IntegrityError, NotFound, ScopeViolation, ValidationFailed
from alkdev_storage.operations.context import AccessView
from alkdev_storage.operations.rules import TableRules
from alkdev_storage.operations.spec import (
    Handler,
    Invocation,
    OperationKind,
    OperationSpec,
    StatementBuilder,
)
from alkdev_storage.schema.types import new_id, utcnow

__all__ = ["VERBS", "Hooks", "TableConfig", "custom", "fail", "generate"]

VERBS = ("create", "get", "list", "update", "patch", "delete")
Verb = Literal["create", "get", "list", "update", "patch", "delete"]
_KEY = Annotated[str, Field(min_length=1, max_length=128)]


def fail(where: str, message: str, kind: str = "value_error") -> ValidationFailed:
    """A ``ValidationFailed`` on field ``where``."""
    return ValidationFailed(f"{where}: {message}", [{"loc": tuple(where.split(".")),
                                                     "msg": message, "type": kind}], where)


@dataclass(frozen=True)
class Hooks:
    """Per-table behaviour inside the call's transaction.

    ``check_create(inv, values)``: replaces the generic SQL create check
    (it must refuse what the caller may not create) and returns a context
    passed to ``prepare``. ``prepare(inv, verb, values, current, context)``:
    validate/transform the column values to write (``current``: the row as
    stored, for update/patch when ``needs_current``). ``after(inv, verb,
    row, changed)``: publish events (``row``: the row written or deleted;
    ``changed``: the columns set). ``present(inv, row)``: the output form of
    a row (e.g. secrets redacted)."""

    check_create: Callable[[Invocation, dict[str, Any]], Any] | None = None
    prepare: Callable[[Invocation, str, dict[str, Any], dict[str, Any] | None, Any],
                      dict[str, Any]] | None = None
    after: Callable[[Invocation, str, dict[str, Any], frozenset[str]], None] | None = None
    present: Callable[[Invocation, dict[str, Any]], dict[str, Any]] | None = None
    needs_current: bool = False


Preset = Callable[[Invocation, dict[str, Any]], Any]


@dataclass(frozen=True)
class TableConfig:
    """How a table becomes operations.

    ``table``: the SQLAlchemy Table; ``rules``: its :class:`TableRules`;
    ``resource``: the id prefix and scope resource (the table name by
    default). ``hidden``: columns never returned (e.g. ``key_hash``: a
    write-only column, still accepted by ``create``; make it ``immutable``
    too so update/patch do not take it). ``immutable``: columns
    update/patch do not take. ``server_set``:
    columns the server fills (ids, timestamps). ``filters``: columns ``list``
    may filter on (default: the columns of the table's indexes and keys).
    ``orderings``: columns ``list`` may order by (NOT NULL ones; default:
    the key, ``created_at``). ``presets``: column -> function of the call
    giving the value when the input leaves it out (None: leave it out).
    ``refine``: model_for refinements. ``create_model``: another create
    input model (``hooks.prepare`` turns it into column values).
    ``page_size``/``max_page_size``: list's default and hard limit."""

    table: sa.Table
    rules: TableRules
    resource: str = ""
    hidden: frozenset[str] = frozenset()
    immutable: frozenset[str] = frozenset()
    server_set: frozenset[str] = frozenset({"id", "created_at", "updated_at"})
    filters: tuple[str, ...] | None = None
    orderings: tuple[str, ...] | None = None
    presets: Mapping[str, Preset] = field(default_factory=dict)
    refine: Mapping[str, Any] = field(default_factory=dict)
    create_model: type[BaseModel] | None = None
    hooks: Hooks = Hooks()
    page_size: int = 50
    max_page_size: int = 500
    description: str = ""

    def __post_init__(self) -> None:
        if not self.resource:
            object.__setattr__(self, "resource", self.table.name)
        cols = set(self.table.c.keys())
        for name in (*self.hidden, *self.immutable, *self.presets, *(self.filters or ()),
                     *(self.orderings or ())):
            if name not in cols:
                raise ValueError(f"{self.table.name}: no column {name!r}")
        if self.filters is None:
            indexed: list[str] = []
            for idx in self.table.indexes:
                indexed.extend(c.key for c in idx.columns)
            for con in self.table.constraints:
                if isinstance(con, (sa.UniqueConstraint, sa.PrimaryKeyConstraint,
                                    sa.ForeignKeyConstraint)):
                    indexed.extend(c.key for c in con.columns)
            object.__setattr__(self, "filters", tuple(
                dict.fromkeys(c for c in indexed if c not in self.hidden)))
        if self.orderings is None:
            order = [c for c in self.key if len(self.key) == 1]
            if "created_at" in cols:
                order.append("created_at")
            object.__setattr__(self, "orderings", tuple(order) or (self.key[0],))
        for name in self.orderings or ():
            if self.table.c[name].nullable:
                raise ValueError(f"{self.table.name}.{name}: a nullable column cannot order a "
                                 "keyset listing")
        if not 1 <= self.page_size <= self.max_page_size:
            raise ValueError("page_size must be between 1 and max_page_size")

    @property
    def key(self) -> tuple[str, ...]:
        """The primary-key column names."""
        return tuple(c.key for c in self.table.primary_key.columns)

    @property
    def out_columns(self) -> list[sa.Column[Any]]:
        """The columns an output row holds."""
        return [c for c in self.table.c if c.key not in self.hidden]


# ---------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------

_FORBID = ConfigDict(extra="forbid")


def _stem(cfg: TableConfig) -> str:
    return "".join(p.capitalize() for p in cfg.resource.replace(".", "_").split("_"))


def _key_fields(cfg: TableConfig) -> dict[str, Any]:
    return {k: (_KEY, ...) for k in cfg.key}


def _insert_model(cfg: TableConfig) -> type[BaseModel]:
    base = model_for(cfg.table, "insert", exclude=cfg.server_set & set(cfg.table.c.keys()),
                     refine=cfg.refine or None, name=f"{_stem(cfg)}CreateFields")
    # A preset column may be left out (the preset fills it from the caller).
    optional: dict[str, Any] = {
        name: (Optional[f.annotation], Field(None, description=f.description))  # noqa: UP045 - a run-time type
                for name, f in base.model_fields.items()
        if name in cfg.presets and f.is_required()}
    return create_model(f"{_stem(cfg)}CreateInput", __base__=base, **optional)


def _models(cfg: TableConfig) -> dict[str, Any]:
    stem = _stem(cfg)
    out = model_for(cfg.table, "select", exclude=cfg.hidden or None, refine=cfg.refine or None,
                    name=f"{stem}")
    skip = (cfg.server_set | cfg.immutable | set(cfg.key)) & set(cfg.table.c.keys())
    patch_base = model_for(cfg.table, "patch", exclude=skip or None, refine=cfg.refine or None,
                           name=f"{stem}PatchFields")
    insert = _insert_model(cfg)
    required = {n: f for n, f in insert.model_fields.items()
                if f.is_required() and n not in skip}
    update_fields: dict[str, Any] = {}
    for name, f in patch_base.model_fields.items():
        src = required.get(name, f)
        update_fields[name] = (src.annotation, src)
    filters = {c: (_filter_type(cfg, c), None) for c in cfg.filters or ()}
    orderings = cast(Any, Literal.__getitem__(tuple(cfg.orderings or ())))
    loose = {c.key: Any for c in cfg.table.c if isinstance(c.type, sa.JSON)
             and c.key not in cfg.hidden}
    check = model_for(cfg.table, "select", exclude=cfg.hidden or None,
                      refine={**cfg.refine, **loose} or None, name=f"{stem}Checked")
    page_check = TypeAdapter(list[check])  # type: ignore[valid-type]  # a generated model class
    return {
        "check": check.__pydantic_validator__.validate_python,
        "page_check": lambda page: page_check.validate_python(page["items"]),
        "out": out,
        "create": cfg.create_model or insert,
        "key": create_model(f"{stem}Key", __config__=_FORBID, **_key_fields(cfg)),
        "patch": create_model(f"{stem}PatchInput", __base__=patch_base, **_key_fields(cfg)),
        "update": create_model(f"{stem}UpdateInput", __config__=_FORBID,
                               **_key_fields(cfg), **update_fields),
        "list": create_model(  # type: ignore[call-overload]  # fields built at run time
            f"{stem}ListInput", __config__=_FORBID, **filters,
            order_by=(orderings, (cfg.orderings or ("id",))[0]),
            descending=(bool, False),
            limit=(Annotated[int, Field(ge=1, le=cfg.max_page_size)], cfg.page_size),
            cursor=(Annotated[str, Field(min_length=1, max_length=4096)] | None, None)),
        "page": create_model(f"{stem}Page", items=(list[out], ...),  # type: ignore[valid-type]  # a generated model class
                             next_cursor=(str | None, None)),
    }


def _filter_type(cfg: TableConfig, column: str) -> Any:
    col = cfg.table.c[column]
    py: Any = str
    try:
        py = col.type.python_type
    except NotImplementedError:
        pass
    if py not in (str, int, bool):
        py = str
    return py | None


# ---------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------


def _bind(col: sa.Column[Any], prefix: str = "p_") -> sa.BindParameter[Any]:
    return sa.bindparam(f"{prefix}{col.key}", type_=col.type)


def _key_where(cfg: TableConfig) -> list[sa.ColumnElement[bool]]:
    return [cfg.table.c[k] == _bind(cfg.table.c[k]) for k in cfg.key]


def _statements(cfg: TableConfig) -> dict[str, StatementBuilder]:
    t, rules, out = cfg.table, cfg.rules, cfg.out_columns

    def select_one(v: AccessView, _: Any) -> sa.Executable:
        return sa.select(*out).where(*_key_where(cfg), rules.read(v, t))

    def current(v: AccessView, _: Any) -> sa.Executable:
        return sa.select(*t.c).where(*_key_where(cfg), rules.write(v, t))

    def create_check(v: AccessView, _: Any) -> sa.Executable:
        binds = {c.key: _bind(c) for c in t.c}
        return sa.select(sa.case((rules.create(v, binds), 1), else_=0))

    def insert(v: AccessView, cols: frozenset[str]) -> sa.Executable:
        return sa.insert(t).values({c: _bind(t.c[c]) for c in sorted(cols)}).returning(*out)

    def update(v: AccessView, cols: frozenset[str]) -> sa.Executable:
        where = [*_key_where(cfg), rules.write(v, t)]
        where += [rules.columns[c].protected(v, t) for c in sorted(cols) if c in rules.columns]
        return (sa.update(t).where(*where)
                .values({c: _bind(t.c[c], "v_") for c in sorted(cols)}).returning(*out))

    def delete(v: AccessView, _: Any) -> sa.Executable:
        return sa.delete(t).where(*_key_where(cfg), rules.deleting(v, t)).returning(*out)

    def listing(v: AccessView, variant: tuple[tuple[str, ...], str, bool, bool]
                ) -> sa.Executable:
        filters, order, desc, after = variant
        sort = [t.c[order], *(t.c[k] for k in cfg.key if k != order)]
        q = sa.select(*out).where(rules.read(v, t))
        for f in filters:
            q = q.where(t.c[f] == _bind(t.c[f], "f_"))
        if after:
            # the cursor holds the values as stored (datetimes as their text)
            pos = sa.tuple_(*(sa.bindparam(f"p_c{i}", type_=sa.Text()) for i in range(len(sort))))
            q = q.where(sa.tuple_(*sort) < pos if desc else sa.tuple_(*sort) > pos)
        return (q.order_by(*(c.desc() if desc else c for c in sort))
                .limit(sa.bindparam("p_limit", type_=sa.Integer)))

    return {"select_one": select_one, "current": current, "create_check": create_check,
            "insert": insert, "update": update, "delete": delete, "list": listing}


# ---------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------


def _present(cfg: TableConfig, inv: Invocation, row: dict[str, Any]) -> dict[str, Any]:
    present = cfg.hooks.present
    return present(inv, row) if present is not None else row


def _label(cfg: TableConfig, key: Mapping[str, Any]) -> str:
    return f"{cfg.resource} " + ", ".join(f"{k}={key[k]!r}" for k in cfg.key)


def _integrity(cfg: TableConfig, exc: IntegrityError) -> ValidationFailed:
    msg = str(exc)
    where = cfg.key[0]
    if "UNIQUE" in msg or "PRIMARY KEY" in msg:
        cols = [c.split(".")[-1].strip() for c in msg.split(":", 1)[-1].split(",")]
        where = next((c for c in reversed(cols) if c in cfg.table.c), where)
        return fail(where, f"a {cfg.resource} row with this {where} already exists", "exists")
    if "FOREIGN KEY" in msg:
        return fail(where, f"{cfg.resource}: refers to a row that does not exist, or is still "
                    "referred to by other rows", "foreign_key")
    return fail(where, f"{cfg.resource}: refused by the database ({msg.splitlines()[0]})",
                "constraint")


def _denied_or_missing(cfg: TableConfig, inv: Invocation, key: Mapping[str, Any],
                       verb: str, cols: Iterable[str] = ()) -> Exception:
    """After a write changed no row: NotFound when the row is missing or
    hidden from the caller (the same error), ScopeViolation when it is
    visible but the caller may not change it (or those columns)."""
    params = {**inv.view.params, **{f"p_{k}": key[k] for k in cfg.key}}
    if inv.sql("select_one").row(inv.session, params) is None:
        return NotFound(f"{_label(cfg, key)}: not found")
    which = sorted(c for c in cols if c in cfg.rules.columns)
    extra = f" ({', '.join(which)})" if which else ""
    return ScopeViolation(f"{inv.spec.id}: this caller may not {verb} {_label(cfg, key)}{extra}")


def _create(cfg: TableConfig) -> Handler:
    t = cfg.table
    server = cfg.server_set & set(t.c.keys())

    def handler(inv: Invocation, data: BaseModel) -> Any:
        # A custom create model's defaults are values to use; a generated
        # one's unset fields are left to the database's defaults.
        values = data.model_dump() if cfg.create_model is not None else row_values(data)
        for col, preset in cfg.presets.items():
            if col not in values:
                v = preset(inv, values)
                if v is not None:
                    values[col] = v
        now = utcnow()
        if "id" in server and cfg.key == ("id",):
            values["id"] = new_id()
        for c in ("created_at", "updated_at"):
            if c in server:
                values[c] = now
        context = None
        if cfg.hooks.check_create is not None:
            context = cfg.hooks.check_create(inv, values)
        else:
            params = {**inv.view.params, **{f"p_{c}": values.get(c) for c in t.c.keys()}}
            if not inv.sql("create_check").scalar(inv.session, params):
                raise ScopeViolation(f"{inv.spec.id}: this caller may not create this "
                                     f"{cfg.resource} row")
        if cfg.hooks.prepare is not None:
            values = cfg.hooks.prepare(inv, "create", values, None, context)
        try:
            row = inv.sql("insert", frozenset(values)).row(
                inv.session, {f"p_{k}": v for k, v in values.items()})
        except IntegrityError as exc:
            raise _integrity(cfg, exc) from None
        assert row is not None
        if cfg.hooks.after is not None:
            cfg.hooks.after(inv, "create", row, frozenset(values))
        return _present(cfg, inv, row)
    return handler


def _get(cfg: TableConfig) -> Handler:
    keys = cfg.key

    def handler(inv: Invocation, data: BaseModel) -> Any:
        params = dict(inv.view.params)
        for k in keys:
            params[f"p_{k}"] = getattr(data, k)
        row = inv.sql("select_one").row(inv.session, params)
        if row is None:
            raise NotFound(f"{_label(cfg, params_key(keys, params))}: not found")
        return _present(cfg, inv, row)
    return handler


def params_key(keys: Sequence[str], params: Mapping[str, Any]) -> dict[str, Any]:
    """The key values of a ``p_``-prefixed parameter dict."""
    return {k: params[f"p_{k}"] for k in keys}


def _filters_fingerprint(filters: Mapping[str, Any]) -> str:
    text = json.dumps(sorted(filters.items()), separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _list(cfg: TableConfig) -> Handler:
    filter_names = tuple(cfg.filters or ())

    def handler(inv: Invocation, data: BaseModel) -> Any:
        given = {f: getattr(data, f) for f in filter_names if getattr(data, f) is not None}
        order: str = data.order_by  # type: ignore[attr-defined]  # generated field
        desc: bool = data.descending  # type: ignore[attr-defined]  # generated field
        limit: int = data.limit  # type: ignore[attr-defined]  # generated field
        cursor: str | None = data.cursor  # type: ignore[attr-defined]  # generated field
        sort = [order, *(k for k in cfg.key if k != order)]
        fp = _filters_fingerprint(given)
        params = {**inv.view.params, "p_limit": limit + 1}
        params.update({f"f_{k}": v for k, v in given.items()})
        if cursor is not None:
            pos = inv.services.cursors.decode(cursor, inv.spec.id, order, desc, fp, len(sort))
            params.update({f"p_c{i}": v for i, v in enumerate(pos)})
        rows = inv.sql("list", (tuple(sorted(given)), order, desc, cursor is not None)).rows(
            inv.session, params)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = inv.services.cursors.encode(inv.spec.id, order, desc, fp,
                                                      [last[c] for c in sort])
        present = cfg.hooks.present
        if present is not None:
            rows = [present(inv, r) for r in rows]
        return {"items": rows, "next_cursor": next_cursor}
    return handler


def _write(cfg: TableConfig, verb: str) -> Handler:
    keys = cfg.key

    def handler(inv: Invocation, data: BaseModel) -> Any:
        values = row_values(data)
        key = {k: values.pop(k) for k in keys}
        if not values:
            raise fail("input", f"{inv.spec.id}: no column to change was given", "missing")
        if "updated_at" in cfg.table.c and "updated_at" in cfg.server_set:
            values["updated_at"] = utcnow()
        params = {**inv.view.params, **{f"p_{k}": v for k, v in key.items()}}
        if cfg.hooks.prepare is not None:
            current = None
            if cfg.hooks.needs_current:
                current = inv.sql("current").row(inv.session, params)
                if current is None:
                    raise _denied_or_missing(cfg, inv, key, "change", values)
            values = cfg.hooks.prepare(inv, verb, values, current, None)
        params.update({f"v_{k}": v for k, v in values.items()})
        for col in cfg.rules.columns:  # column rules may read the new value as p_<column>
            if col in values and col not in key:
                params[f"p_{col}"] = values[col]
        try:
            row = inv.sql("update", frozenset(values)).row(inv.session, params)
        except IntegrityError as exc:
            raise _integrity(cfg, exc) from None
        if row is None:
            raise _denied_or_missing(cfg, inv, key, "change", values)
        if cfg.hooks.after is not None:
            cfg.hooks.after(inv, verb, row, frozenset(values) - {"updated_at"})
        return _present(cfg, inv, row)
    return handler


def _delete(cfg: TableConfig) -> Handler:
    keys = cfg.key

    def handler(inv: Invocation, data: BaseModel) -> Any:
        key = {k: getattr(data, k) for k in keys}
        params = {**inv.view.params, **{f"p_{k}": v for k, v in key.items()}}
        try:
            row = inv.sql("delete").row(inv.session, params)
        except IntegrityError as exc:
            raise _integrity(cfg, exc) from None
        if row is None:
            raise _denied_or_missing(cfg, inv, key, "delete")
        if cfg.hooks.after is not None:
            cfg.hooks.after(inv, "delete", row, frozenset())
        return _present(cfg, inv, row)
    return handler


# ---------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------


def custom(id: str, kind: OperationKind, handler: Handler, *, input: type[BaseModel],
           output: type[BaseModel] | None, scope: str, description: str = "",
           access: str = "", statements: Mapping[str, StatementBuilder] | None = None,
           events: Sequence[str] = (), table: str | None = None,
           output_is_list: bool = False) -> OperationSpec:
    """A custom operation, declared like the generated ones (the handler
    gets the :class:`Invocation` and the validated input model)."""
    return OperationSpec(id=id, kind=kind, description=description or id, input_model=input,
                         output_model=output, scope=scope, access=access or "custom",
                         handler=handler, statements=statements or {}, events=tuple(events),
                         table=table, output_is_list=output_is_list)


def generate(cfg: TableConfig, *, include: Iterable[str] | None = None,
             exclude: Iterable[str] = (), rename: Mapping[str, str] | None = None,
             add: Iterable[OperationSpec] = (),
             events: Mapping[str, Sequence[str]] | None = None) -> list[OperationSpec]:
    """The specs of ``cfg``'s table: the verbs of :data:`VERBS` (or
    ``include``) minus ``exclude``; ``rename``: verb or generated id -> new
    id; ``add``: custom specs appended; ``events``: verb -> the catalogued
    names its hooks publish (documentation in the spec)."""
    chosen = list(VERBS if include is None else include)
    for v in (*chosen, *exclude):
        if v not in VERBS:
            raise ValueError(f"unknown verb {v!r}: expected one of {', '.join(VERBS)}")
    chosen = [v for v in chosen if v not in set(exclude)]
    models = _models(cfg)
    stmts = _statements(cfg)
    r = cfg.resource
    rules = cfg.rules.description
    table_doc = cfg.description or f"the {cfg.table.name} table"
    handlers: dict[str, tuple[OperationKind, Handler, Any, Any, str]] = {
        "create": ("mutation", _create(cfg), models["create"], models["out"],
                   f"Create a row of {table_doc}."),
        "get": ("query", _get(cfg), models["key"], models["out"],
                f"One row of {table_doc} by key (not found when missing or hidden)."),
        "list": ("query", _list(cfg), models["list"], models["page"],
                 f"A page of rows of {table_doc}: equality filters on indexed columns, "
                 f"ordering, at most {cfg.max_page_size} rows, keyset cursor."),
        "update": ("mutation", _write(cfg, "update"), models["update"], models["out"],
                   f"Replace the writable columns of a row of {table_doc}."),
        "patch": ("mutation", _write(cfg, "patch"), models["patch"], models["out"],
                  f"Change some columns of a row of {table_doc}."),
        "delete": ("mutation", _delete(cfg), models["key"], models["out"],
                   f"Delete a row of {table_doc}; returns it."),
    }
    rename = dict(rename or {})
    specs = []
    for verb in chosen:
        kind, handler, inp, out, doc = handlers[verb]
        check = models["page_check"] if verb == "list" else models["check"]
        op_id = rename.get(verb, rename.get(f"{r}.{verb}", f"{r}.{verb}"))
        action = "read" if kind == "query" else "write"
        specs.append(OperationSpec(
            id=op_id, kind=kind, description=doc, input_model=inp, output_model=out,
            scope=f"{r}:{action}", access=rules, handler=handler, statements=stmts,
            events=tuple((events or {}).get(verb, ())), table=cfg.table.name,
            output_check=check))
    specs.extend(add)
    return specs
