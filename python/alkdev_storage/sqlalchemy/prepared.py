"""Prepared typed queries (Drizzle's ``.prepare()``).

:func:`prepare` compiles a SQLAlchemy Core ``select``/``insert``/``update``/
``delete`` (or ``text()``), or an ORM ``select(Entity)``, **once** against
the ``sqlite+honker`` dialect into:

* a native :class:`alkdev_storage.Statement` (compiled once per native
  connection, reused with no SQL-text hashing),
* a generated binder that turns keyword parameters into the positional
  tuple, applying SQLAlchemy's bind processors (DateTime, Boolean, JSON,
  Enum, Numeric, ...), bind-parameter defaults and Python-side column
  defaults/onupdates, and
* the result processing: SQLAlchemy :class:`~sqlalchemy.engine.Row`
  objects built by SQLAlchemy's compiled Row class with the types' result
  processors, or mapped instances for ``select(Entity)``.

Running it bypasses SQLAlchemy's execution machinery entirely (no
compilation cache lookup, execution context, cursor wrapper or result
object): one native ``fetchall``/``fetchone``/``execute`` call.

Usage::

    q = prepare(select(User.id, User.name).where(User.id == bindparam("id")), engine)
    row = q.one(id=5)                 # runs on a reader, outside any transaction
    with Session(engine) as s, s.begin():
        q.all(s, id=5)                # inside the session's transaction
        ins.execute(s, name="x")      # commits or rolls back with the session

Decisions
---------

* Without a connection argument a query runs on the Database like
  :meth:`alkdev_storage.Database.fetchall`: reads on a reader, writes in
  their own short transaction. With a SQLAlchemy ``Connection`` or
  ``Session`` (or a DB-API connection) it joins that connection's
  transaction exactly as a statement run through the driver would: reads
  before the first write run on readers, writes take the writer slot and
  commit with the SQLAlchemy transaction.
* ``select(Entity)`` returns instances of the mapped class. With a Session
  they are added to its identity map (an instance already there is returned
  as is, like SQLAlchemy's default loading); without one they are detached
  instances with every selected column loaded. Only plain single-table
  mappers are supported (no inheritance, polymorphic loading, eager loads
  or column-level deferral options): anything else raises
  ``NotImplementedError`` at prepare time. ORM ``load`` events are not
  fired.
* Unknown or missing parameters raise ``sqlalchemy.exc.ArgumentError``
  naming them. Callable column defaults are called with no execution
  context (``None``).
* Expanding (``IN``) and literal-execute parameters are supported on a
  slower path that renders the SQL for each call (cached by SQL text).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.engine.row import Row
from sqlalchemy.orm import Session
from sqlalchemy.orm import attributes as orm_attributes
from sqlalchemy.sql.elements import _anonymous_label

from alkdev_storage import dbapi as _dbapi
from alkdev_storage.database import Database
from alkdev_storage.dbapi.connection import How
from alkdev_storage.errors import InterfaceError

__all__ = ["PreparedQuery", "prepare"]

_MISSING = object()


def _dialect_for(bind: Any) -> tuple[Any, Any]:
    """(dialect, source of the Database) for an Engine, Connection, Session,
    Database or DB-API connection."""
    from alkdev_storage.sqlalchemy.dialect import HonkerDialect

    if isinstance(bind, Session):
        bind = bind.get_bind()
    if isinstance(bind, (sa.engine.Engine, sa.engine.Connection)):
        if not isinstance(bind.dialect, HonkerDialect):
            raise exc.ArgumentError(
                f"prepared queries need a sqlite+honker engine, not {bind.dialect.name}+"
                f"{bind.dialect.driver}"
            )
        return bind.dialect, bind
    if isinstance(bind, (Database, _dbapi.Connection)):
        return _default_dialect(), bind
    raise exc.ArgumentError(
        "prepare() needs an Engine, Connection or Session of sqlite+honker, a Database "
        f"or a DB-API connection, not {type(bind).__name__}"
    )


_default = None


def _default_dialect() -> Any:
    global _default
    if _default is None:
        from alkdev_storage.sqlalchemy.dialect import HonkerDialect

        d = HonkerDialect(dbapi=_dbapi)
        d.server_version_info = _dbapi.sqlite_version_info
        d.default_schema_name = "main"
        _default = d
    return _default


def _database_of(source: Any) -> Database:
    from alkdev_storage.sqlalchemy import honker_database

    return honker_database(source)


def _dbapi_conn(conn: Any) -> tuple[_dbapi.Connection, Session | None]:
    """The driver connection behind a Session / Connection, joined to (and
    autobeginning) its SQLAlchemy transaction."""
    if isinstance(conn, _dbapi.Connection):
        return conn, None
    session = None
    if isinstance(conn, Session):
        session = conn
        conn = conn.connection()
    if isinstance(conn, sa.engine.Connection):
        if not conn.in_transaction():
            conn._autobegin()
        dc = conn.connection.dbapi_connection
        if not isinstance(dc, _dbapi.Connection):
            raise exc.ArgumentError("the connection is not a sqlite+honker connection")
        return dc, session
    raise exc.ArgumentError(
        f"expected a Session, Connection or DB-API connection, not {type(conn).__name__}"
    )


class _EntityLoader:
    """Builds mapped instances from processed rows (single-table mappers)."""

    def __init__(self, mapper: Any, col_keys: list[str]) -> None:
        self.mapper = mapper
        self.cls = mapper.class_
        self.manager = mapper.class_manager
        self.keys = tuple(col_keys)
        pk_keys = []
        for col in mapper.primary_key:
            prop = mapper._columntoproperty[col]
            if prop.key not in col_keys:
                raise NotImplementedError(
                    f"prepared select({self.cls.__name__}) must load the primary key column "
                    f"{prop.key!r}"
                )
            pk_keys.append(col_keys.index(prop.key))
        self.pk_index = tuple(pk_keys)

    def load(self, rows: list[tuple[Any, ...]], procs: Any, session: Session | None) -> list[Any]:
        keys = self.keys
        pk_index = self.pk_index
        cls = self.cls
        new_instance = self.manager.new_instance
        instance_state = orm_attributes.instance_state
        if session is not None:
            idmap = session.identity_map
            session_id = session.hash_key
        else:
            idmap = None
            session_id = None
        out: list[Any] = []
        for raw in rows:
            values = (
                [p(v) if p is not None else v for p, v in zip(procs, raw, strict=True)]
                if procs
                else raw
            )
            ident = tuple(values[i] for i in pk_index)
            if None in ident:
                out.append(None)
                continue
            key = (cls, ident, None)
            if idmap is not None:
                existing = idmap.get(key)
                if existing is not None:
                    out.append(existing)
                    continue
            obj = new_instance()
            state = instance_state(obj)
            d = state.dict
            for k, v in zip(keys, values, strict=True):
                d[k] = v
            state.key = key
            state.identity_token = None
            if idmap is not None:
                state.session_id = session_id
                idmap._add_unpresent(state, key)
                state._commit_all(d, idmap)
            else:
                state._commit_all(d)
            out.append(obj)
        return out


class PreparedQuery:
    """A statement compiled once into a native Statement plus its bind and
    result processing. Thread-safe; see the module documentation."""

    def __init__(self, statement: Any, bind: Any) -> None:
        dialect, source = _dialect_for(bind)
        self.statement = statement
        self._dialect = dialect
        self._source = source
        self._lock = threading.Lock()
        compiled = statement.compile(dialect=dialect)
        self._compiled = compiled
        self.sql: str = compiled.string
        self._expanding = bool(compiled.post_compile_params or compiled.literal_execute_params)
        self._build_binder(compiled)
        self._build_results(statement, compiled)
        db = _database_of(source)
        self._db: Database = db
        self._stmt: Any = None if self._expanding else db.prepare(self.sql)
        self._others: dict[int, tuple[Database, Any]] = {}
        self._expanded: dict[str, Any] = {}
        if self._stmt is not None:
            self._returns_rows = bool(self._stmt.columns)
        else:
            self._returns_rows = bool(compiled._result_columns) or compiled.isselect
        if self._returns_rows and not self._keys:
            cols = self._stmt.columns if self._stmt is not None else ()
            self._set_meta(list(cols), None, [None] * len(cols))
        #: At most one row (equality on a primary key or unique constraint of
        #: the only table): ``one()`` then reads one row, not all.
        self.unique: bool = self._returns_rows and _at_most_one_row(statement)
        self._install_fast_paths()

    # -- compilation ----------------------------------------------------------

    def _build_binder(self, compiled: Any) -> None:
        escaped = {v: k for k, v in (compiled.escaped_bind_names or {}).items()}
        procs = compiled._bind_processors or {}
        prefetch = {
            c.key: c for c in list(compiled.insert_prefetch) + list(compiled.update_prefetch)
        }
        is_update = bool(compiled.isupdate)
        plan = []
        names: list[str] = []
        for name in compiled.positiontup or ():
            orig = escaped.get(name, name)
            bp = compiled.binds[orig]
            key = bp.key
            col = prefetch.get(key)
            if col is not None:
                dflt = col.onupdate if is_update else col.default
                if dflt is None:
                    default = None
                elif dflt.is_scalar:
                    default = dflt.arg
                elif dflt.is_callable:
                    default = _Call(dflt.arg)
                else:
                    raise NotImplementedError(
                        f"column {col.key!r} has a SQL-expression default; prepared "
                        "queries support scalar and callable Python defaults"
                    )
            elif bp.callable is not None:
                default = _Call(lambda _ctx, f=bp.callable: f())
            elif bp.required:
                default = _omittable(compiled, key)
            else:
                default = bp.effective_value
            plan.append((key, default, procs.get(orig) or procs.get(name)))
            # Anonymous parameters (literal values in the statement) are not
            # part of the query's signature.
            if key not in names and not isinstance(key, _anonymous_label):
                names.append(key)
        self.param_names: tuple[str, ...] = tuple(names)
        self._param_set = frozenset(names)
        self._required = frozenset(k for k, d, _ in plan if d is _MISSING)
        self._plan = plan
        self._binder: Callable[[dict[str, Any]], tuple[Any, ...]] = _codegen_binder(plan)

    def _build_results(self, statement: Any, compiled: Any) -> None:
        dialect = self._dialect
        result_columns = compiled._result_columns
        keys = [e[0] for e in result_columns]
        extra = [e[2] for e in result_columns]
        procs = [e[3]._cached_result_processor(dialect, None) for e in result_columns]
        self._entity: _EntityLoader | None = None
        self._keys: list[str] = []
        descs = getattr(statement, "column_descriptions", None)
        if descs and len(descs) == 1 and isinstance(descs[0].get("expr"), type):
            mapper = sa.inspect(descs[0]["entity"])
            if (
                mapper.inherits is not None
                or mapper.polymorphic_on is not None
                or mapper.with_polymorphic
                or descs[0].get("aliased")
            ):
                raise NotImplementedError(
                    "prepared queries load plain single-table mapped classes only; run "
                    "this statement with session.execute()"
                )
            col_keys = []
            for objs in extra:
                prop = None
                for o in objs or ():
                    if isinstance(o, sa.Column) and o in mapper._columntoproperty:
                        prop = mapper._columntoproperty[o]
                        break
                if prop is None:
                    raise NotImplementedError(
                        "prepared select(Entity) supports the entity's own columns only"
                    )
                col_keys.append(prop.key)
            self._entity = _EntityLoader(mapper, col_keys)
        elif descs is not None and any(isinstance(d.get("expr"), type) for d in descs):
            raise NotImplementedError(
                "prepared queries return Rows of columns or instances of one entity; "
                "select(Entity, ...) with other columns is not supported"
            )
        if keys:
            self._set_meta(keys, extra, procs)

    def _set_meta(self, keys: list[str], extra: Any, procs: list[Any]) -> None:
        self._keys = keys
        self._meta = SimpleResultMetaData(keys, extra=extra or None)
        self._k2i = self._meta._key_to_index
        self._procs = procs if any(p is not None for p in procs) else None
        self._proc0 = procs[0] if procs else None

    # -- binding ------------------------------------------------------------------

    def _bind(self, params: dict[str, Any]) -> tuple[Any, ...]:
        try:
            if params.keys() <= self._param_set:
                return self._binder(params)
        except KeyError:
            pass
        unknown = sorted(params.keys() - self._param_set)
        if unknown:
            raise exc.ArgumentError(
                f"unknown parameter(s) {', '.join(unknown)} for prepared query; it takes: "
                + (", ".join(self.param_names) or "no parameters")
            )
        missing = sorted(self._required - params.keys())
        raise exc.ArgumentError(
            f"missing value for parameter(s) {', '.join(missing)} of prepared query"
        )

    def _target(self, db: Database, args: Any) -> tuple[Any, Any]:
        """(native Statement or SQL text, positional args) for ``db``."""
        if self._expanding:
            return self._expand(db, args)
        if db is self._db:
            return self._stmt, args
        hit = self._others.get(id(db))
        if hit is None or hit[0] is not db:
            with self._lock:
                hit = (db, db.prepare(self.sql))
                self._others[id(db)] = hit
        return hit[1], args

    def _expand(self, db: Database, args: Any) -> tuple[Any, Any]:
        compiled = self._compiled
        params = dict(zip(compiled.positiontup, args, strict=True))
        state = compiled.construct_expanded_state(params)
        sql = state.statement
        st = self._expanded.get(sql)
        if st is None or st[0] is not db:
            st = (db, db.prepare(sql))
            if len(self._expanded) > 256:
                self._expanded.clear()
            self._expanded[sql] = st
        return st[1], tuple(state.positional_parameters)

    def _database(self) -> Database:
        db = self._db
        if db.closed:
            db = _database_of(self._source)
            with self._lock:
                self._db = db
                self._stmt = None if self._expanding else db.prepare(self.sql)
                self._install_fast_paths()
        return db

    # -- running ---------------------------------------------------------------

    def _run(self, conn: Any, params: dict[str, Any], how: How) -> tuple[Any, Session | None]:
        args = self._bind(params)
        if conn is None:
            db = self._database()
            stmt, args = self._target(db, args)
            if how == "exec":
                return db.execute(stmt, args), None
            if how == "one":
                return db.fetchone(stmt, args), None
            return db.fetchall(stmt, args), None
        dc, session = _dbapi_conn(conn)
        db = dc.database
        stmt, args = self._target(db, args)
        return dc.run_prepared(stmt, args, how), session

    def _rows(self, raw: list[tuple[Any, ...]], session: Session | None) -> list[Any]:
        if self._entity is not None:
            return self._entity.load(raw, self._procs, session)
        meta, procs, k2i = self._meta, self._procs, self._k2i
        return [Row(meta, procs, k2i, r) for r in raw]

    def all(self, conn: Any = None, /, **params: Any) -> list[Any]:
        """Every result row (Rows, or mapped instances for ``select(Entity)``)."""
        if not self._returns_rows:
            raise exc.ResourceClosedError("this prepared statement does not return rows")
        raw, session = self._run(conn, params, "all")
        return self._rows(raw, session)

    def first(self, conn: Any = None, /, **params: Any) -> Any:
        """The first row, or None (only the first row is read)."""
        if not self._returns_rows:
            raise exc.ResourceClosedError("this prepared statement does not return rows")
        raw, session = self._run(conn, params, "one")
        if raw is None:
            return None
        if self._entity is not None:
            return self._entity.load([raw], self._procs, session)[0]
        return Row(self._meta, self._procs, self._k2i, raw)

    def one(self, conn: Any = None, /, **params: Any) -> Any:
        """Exactly one row: ``NoResultFound`` / ``MultipleResultsFound`` otherwise."""
        if self.unique:
            row = self.first(conn, **params)
            if row is None:
                raise exc.NoResultFound("No row was found when one was required")
            return row
        rows = self.all(conn, **params)
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise exc.NoResultFound("No row was found when one was required")
        raise exc.MultipleResultsFound("Multiple rows were found when exactly one was required")

    def one_or_none(self, conn: Any = None, /, **params: Any) -> Any:
        """One row or None: ``MultipleResultsFound`` for more."""
        if self.unique:
            return self.first(conn, **params)
        rows = self.all(conn, **params)
        if len(rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return rows[0] if rows else None

    def scalar(self, conn: Any = None, /, **params: Any) -> Any:
        """First column of the first row, or None."""
        if not self._returns_rows:
            raise exc.ResourceClosedError("this prepared statement does not return rows")
        raw, session = self._run(conn, params, "one")
        if raw is None:
            return None
        if self._entity is not None:
            return self._entity.load([raw], self._procs, session)[0]
        p = self._proc0
        return p(raw[0]) if p is not None else raw[0]

    def scalars(self, conn: Any = None, /, **params: Any) -> list[Any]:
        """First column of every row (mapped instances for ``select(Entity)``)."""
        if not self._returns_rows:
            raise exc.ResourceClosedError("this prepared statement does not return rows")
        raw, session = self._run(conn, params, "all")
        if self._entity is not None:
            return self._entity.load(raw, self._procs, session)
        p = self._proc0
        if p is None:
            return [r[0] for r in raw]
        return [p(r[0]) for r in raw]

    def execute(self, conn: Any = None, /, **params: Any) -> Any:
        """Run the statement. Returns the native ``ExecResult(changes,
        lastrowid)`` for statements without result rows, else the rows (as
        :meth:`all`)."""
        if self._returns_rows:
            return self.all(conn, **params)
        res, _ = self._run(conn, params, "exec")
        return res

    __call__ = execute

    # -- generated fast paths ---------------------------------------------------

    def _install_fast_paths(self) -> None:
        """Specialised ``one``/``first``/``all``/``scalar`` for the common
        call: no connection argument, exactly the required parameters. They
        are instance attributes shadowing the methods, and fall back to them
        (which handle everything else and raise the errors) on any other
        call."""
        for name in ("one", "first", "all", "scalar", "one_or_none"):
            self.__dict__.pop(name, None)
        if self._expanding or not self._returns_rows or self._stmt is None:
            return
        plan = self._plan
        ns: dict[str, Any] = {
            "_self": self,
            "_cls": type(self),
            "_stmt": self._stmt,
            "_fetchone": self._db.fetchone,
            "_fetchall": self._db.fetchall,
            "_InterfaceError": InterfaceError,
            "_Row": Row,
            "_meta": self._meta,
            "_procs": self._procs,
            "_k2i": self._k2i,
            "_p0": self._proc0,
            "_entity": self._entity.load if self._entity is not None else None,
            "_NoResultFound": exc.NoResultFound,
            "_Multiple": exc.MultipleResultsFound,
        }
        args = []
        for i, (key, default, proc) in enumerate(plan):
            if default is _MISSING:
                expr = f"p[{key!r}]"
            elif isinstance(default, _Call):
                ns[f"_d{i}"] = default.fn
                expr = f"_d{i}(None)"
            else:
                ns[f"_d{i}"] = default
                expr = f"_d{i}"
            if proc is not None:
                ns[f"_f{i}"] = proc
                expr = f"_f{i}({expr})"
            args.append(expr)
        tup = "(" + "".join(a + ", " for a in args) + ")"
        nreq = len(self._required)
        if self._entity is not None:
            one_row = "_entity([raw], _procs, None)[0]"
            many_rows = "_entity(raw, _procs, None)"
            scalar_row = one_row
        else:
            one_row = "_Row(_meta, _procs, _k2i, raw)"
            many_rows = "[_Row(_meta, _procs, _k2i, r) for r in raw]"
            scalar_row = "(_p0(raw[0]) if _p0 is not None else raw[0])"
        src = []

        def fn(name: str, fetch: str, body: list[str]) -> None:
            src.append(f"def {name}(conn=None, /, **p):")
            src.append(f"    if conn is not None or len(p) != {nreq}:")
            src.append(f"        return _cls.{name}(_self, conn, **p)")
            src.append("    try:")
            src.append(f"        raw = {fetch}(_stmt, {tup})")
            src.append("    except (KeyError, _InterfaceError):")
            src.append(f"        return _cls.{name}(_self, conn, **p)")
            src.extend("    " + line for line in body)

        fn("first", "_fetchone", ["if raw is None:", "    return None", f"return {one_row}"])
        fn("scalar", "_fetchone", ["if raw is None:", "    return None", f"return {scalar_row}"])
        fn("all", "_fetchall", [f"return {many_rows}"])
        if self.unique:
            fn(
                "one",
                "_fetchone",
                [
                    "if raw is None:",
                    "    raise _NoResultFound('No row was found when one was required')",
                    f"return {one_row}",
                ],
            )
            fn(
                "one_or_none",
                "_fetchone",
                ["if raw is None:", "    return None", f"return {one_row}"],
            )
        else:
            fn(
                "one",
                "_fetchall",
                [
                    "if len(raw) != 1:",
                    "    return _cls.one(_self, None, **p)",
                    "raw = raw[0]",
                    f"return {one_row}",
                ],
            )
        exec("\n".join(src), ns)
        for name in ("one", "first", "all", "scalar", "one_or_none"):
            if name in ns:
                self.__dict__[name] = ns[name]

    def __repr__(self) -> str:
        return f"<PreparedQuery {self.sql!r}>"


class _Call:
    __slots__ = ("fn",)

    def __init__(self, fn: Any) -> None:
        self.fn = fn


def _codegen_binder(plan: list[tuple[str, Any, Any]]) -> Any:
    """A function params -> positional tuple, specialised for this plan."""
    ns: dict[str, Any] = {}
    lines = ["def _binder(p):"]
    outs = []
    for i, (key, default, proc) in enumerate(plan):
        k = repr(key)
        if default is _MISSING:
            lines.append(f"    v{i} = p[{k}]")
        elif isinstance(default, _Call):
            ns[f"d{i}"] = default.fn
            lines.append(f"    v{i} = p[{k}] if {k} in p else d{i}(None)")
        else:
            ns[f"d{i}"] = default
            lines.append(f"    v{i} = p.get({k}, d{i})")
        if proc is not None:
            ns[f"f{i}"] = proc
            outs.append(f"f{i}(v{i})")
        else:
            outs.append(f"v{i}")
    if not plan:
        lines.append("    return ()")
    else:
        lines.append("    return (" + ", ".join(outs) + ",)")
    exec("\n".join(lines), ns)
    return ns["_binder"]


def _omittable(compiled: Any, key: str) -> Any:
    """Default for an INSERT column parameter the caller leaves out: ``None``
    where inserting NULL is what leaving the column out of the INSERT would
    do (the INTEGER PRIMARY KEY, which SQLite then assigns; a nullable column
    with no server default), else required (``_MISSING``)."""
    if not compiled.isinsert:
        return _MISSING
    table = compiled.statement.table
    col = table.c.get(key)
    if col is None:
        return _MISSING
    if col is table._autoincrement_column:
        return None
    if col.nullable and col.server_default is None and col.default is None:
        return None
    return _MISSING


def _at_most_one_row(statement: Any) -> bool:
    """True for a SELECT from one table whose WHERE clause (an AND of
    terms) sets every column of its primary key, or of a unique
    constraint, equal to a parameter or constant."""
    from sqlalchemy.sql import operators
    from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList
    from sqlalchemy.sql.selectable import Select

    if not isinstance(statement, Select):
        return False
    froms = statement.get_final_froms()
    if len(froms) != 1 or not isinstance(froms[0], sa.Table):
        return False
    if statement._group_by_clauses or getattr(statement, "_setup_joins", ()):
        return False
    table = froms[0]
    where = statement.whereclause
    if where is None:
        return False
    terms = (
        list(where.clauses)
        if (isinstance(where, BooleanClauseList) and where.operator is operators.and_)
        else [where]
    )
    fixed = set()
    for t in terms:
        if not isinstance(t, BinaryExpression) or t.operator is not operators.eq:
            continue
        for col, other in ((t.left, t.right), (t.right, t.left)):
            if (
                isinstance(col, sa.Column)
                and col.table is table
                and isinstance(other, BindParameter)
            ):
                fixed.add(col.key)
    keys = [set(c.key for c in table.primary_key.columns)]
    keys += [
        set(c.key for c in uc.columns)
        for uc in table.constraints
        if isinstance(uc, sa.UniqueConstraint)
    ]
    keys += [set(c.key for c in ix.columns) for ix in table.indexes if ix.unique]
    return any(k and k <= fixed for k in keys)


def prepare(statement: Any, bind: Any) -> PreparedQuery:
    """Compile ``statement`` once for ``bind`` (an Engine, Connection or
    Session of ``sqlite+honker``, a Database, or a DB-API connection)."""
    return PreparedQuery(statement, bind)
