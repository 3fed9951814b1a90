"""SQLAlchemy statements compiled once into native prepared statements
(docs/0023-operation-specs.md, "Prepared SQL").

:func:`compile_statement` renders a Core statement with SQLite's dialect
(positional ``?`` parameters) and keeps, per position, the bound name, the
type's bind processor (``UTCDateTime``, ``JSON``, ...) and any constant;
:class:`Compiled` then binds a dict of values into the positional tuple
and runs it on a native Transaction or Snapshot with the Statement the
Database prepared once. Result columns of JSON type are decoded; every
other value is returned as stored (``UTCDateTime`` as its ISO 8601 text,
which is also its JSON form).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from alkdev_storage.database import Database

__all__ = ["Compiled", "compile_statement", "dialect"]

_DIALECT = sqlite.dialect(paramstyle="qmark")
_DIALECT.server_version_info = (3, 45, 0)
_DIALECT.insert_returning = True
_DIALECT.update_returning = True
_DIALECT.delete_returning = True


def dialect() -> Any:
    """The SQLite dialect statements are rendered with."""
    return _DIALECT


_MISSING = object()


class _Default:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


class Compiled:
    """One statement: ``sql`` (the text), its native ``Statement`` on a
    Database, how to bind a dict of values, and how to read its rows
    (``columns``: result column names; JSON columns decoded)."""

    __slots__ = ("_decode", "_plan", "_stmt", "columns", "json_columns", "sql")

    def __init__(self, sql: str, plan: Sequence[tuple[str, Any, Callable[[Any], Any] | None]],
                 columns: tuple[str, ...], json_columns: frozenset[int], db: Database) -> None:
        self.sql = sql
        self._plan = tuple(plan)
        self.columns = columns
        self.json_columns = json_columns
        self._stmt = db.prepare(sql)
        self._decode = _decoder(columns, json_columns)

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for ``values`` (bind processors
        applied; constants of the statement filled in)."""
        out = []
        for name, const, proc in self._plan:
            if const is _MISSING:
                v = values[name]
            elif type(const) is _Default:
                v = values[name] if name in values else const.fn(None)
            else:
                v = values.get(name, const)
            out.append(proc(v) if proc is not None and v is not None else v)
        return tuple(out)

    def rows(self, session: Any, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run it on ``session`` (Transaction or Snapshot); rows as dicts."""
        decode = self._decode
        return [decode(r) for r in session.fetchall(self._stmt, self.args(values))]

    def row(self, session: Any, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        r = session.fetchone(self._stmt, self.args(values))
        return None if r is None else self._decode(r)

    def scalar(self, session: Any, values: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        r = session.fetchone(self._stmt, self.args(values))
        return None if r is None else r[0]

    def execute(self, session: Any, values: Mapping[str, Any]) -> int:
        """Run a statement without rows; the number of rows changed."""
        changes: int = session.execute(self._stmt, self.args(values)).changes
        return changes


def _decoder(columns: tuple[str, ...], json_columns: frozenset[int]
             ) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """A function row -> dict for these columns (generated once: a dict
    display is faster than ``dict(zip(...))``); JSON text decoded."""
    items = []
    for i, name in enumerate(columns):
        value = f"r[{i}]"
        if i in json_columns:
            value = f"(_loads(r[{i}]) if r[{i}].__class__ is str else r[{i}])"
        items.append(f"{name!r}: {value}")
    ns: dict[str, Any] = {"_loads": json.loads}
    exec(f"def decode(r):\n    return {{{', '.join(items)}}}\n", ns)
    fn: Callable[[tuple[Any, ...]], dict[str, Any]] = ns["decode"]
    return fn


def compile_statement(statement: sa.Executable, db: Database) -> Compiled:
    """Compile ``statement`` once for ``db`` (see the module docstring)."""
    compiled: Any = cast(Any, statement).compile(dialect=_DIALECT)
    plan: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
    # Columns SQLAlchemy fills from Python-side defaults when the statement
    # does not set them (an INSERT's status='active', attributes={}, an
    # UPDATE's updated_at): the default applies when the values leave the
    # column out.
    inserts = {c.key: c.default for c in compiled.insert_prefetch}
    updates = {c.key: c.onupdate for c in compiled.update_prefetch}
    defaults = {**inserts, **updates}
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        const: Any = _MISSING
        if name in defaults:
            default = defaults[name]
            if default is not None and getattr(default, "is_callable", False):
                const = _Default(default.arg)
            elif default is not None and not getattr(default, "is_clause_element", False):
                const = default.arg
        elif (not bind.required and bind.callable is None
              and not name.startswith(("acl_", "p_", "v_", "f_"))):
            const = bind.value
        proc = bind.type.bind_processor(_DIALECT)
        if isinstance(bind.type, sa.JSON):
            proc = _json_dumps
        plan.append((name, const, proc))
    json_cols: set[int] = set()
    names = []
    for i, col in enumerate(getattr(statement, "exported_columns", ())):
        names.append(col.key)
        if isinstance(col.type, sa.JSON):
            json_cols.add(i)
    columns = tuple(names)
    return Compiled(compiled.string, plan, columns, frozenset(json_cols), db)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
