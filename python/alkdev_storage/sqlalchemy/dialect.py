"""The ``sqlite+honker`` SQLAlchemy dialect.

Built on SQLAlchemy's own SQLite dialect (:class:`SQLiteDialect`: SQL
compilation, DDL, types, reflection); only the driver layer differs. The
DB-API module is :mod:`alkdev_storage.dbapi`.

Decisions
---------

* **Transactions are writer-slot transactions.** SQLAlchemy's ``begin()``
  (explicit or autobegin) emits nothing; the driver takes the writer slot
  (``BEGIN IMMEDIATE``) at the first data-modifying statement and holds it
  until SQLAlchemy commits or rolls back. Reads that come before the first
  write in a SQLAlchemy transaction run on readers, each seeing the latest
  committed state (as with the stock pysqlite driver, whose transactions
  also begin at the first write); a transaction that must read and then
  write consistently takes the writer first with the
  ``honker_begin_write=True`` execution option (the writer slot is taken
  when the SQLAlchemy transaction begins) or by calling
  :func:`alkdev_storage.sqlalchemy.honker_tx`.
* ``begin_nested()`` is a SAVEPOINT inside the writer transaction (the
  driver maps ``SAVEPOINT``/``RELEASE``/``ROLLBACK TO`` onto native
  savepoints).
* ``execution_options(honker_readonly=True)`` runs the transaction in a
  consistent read snapshot on a reader (deferred ``BEGIN``): it never
  blocks and is never blocked by the writer; writes fail. It is reset when
  the connection returns to the pool.
* ``isolation_level="AUTOCOMMIT"`` switches the DB-API connection to
  autocommit: each statement commits on its own. The other level is
  ``SERIALIZABLE`` (the default: SQLite's transactions are serializable).
  ``READ UNCOMMITTED`` is accepted and reported back, as by the stock
  driver, but like SQLite's own setting it only changes anything with a
  shared cache, which the native session never uses: reads never see
  uncommitted data.
* **Pool.** All connections to a file share one Database, so a DB-API
  connection is a cheap view (no file handle of its own): the default pool
  is a :class:`~sqlalchemy.pool.QueuePool` of those views. Returning a
  connection to the pool rolls back, which frees the writer slot.
* URL: ``sqlite+honker:///relative.db`` or ``sqlite+honker:////abs/path.db``
  with optional query options ``max_readers`` (int >= 1),
  ``watcher_poll_interval_ms`` (float > 0) and ``timeout`` (seconds, > 0).
  Host, port, user, password, ``:memory:``, other query options or bad
  values raise ``ArgumentError`` naming the problem; so do unknown
  ``connect_args``.
* ``regexp_match``: as the stock driver does, a Python ``regexp()`` (``re``)
  is registered, here once on the shared Database
  (``Database.create_function``), so ``REGEXP`` works on every connection.
  ``regexp_replace`` is not offered (nor by the stock driver). The bundled
  SQLite has the math functions, so ``floor()`` (floor division) is native.
* honker's own tables, views and triggers (``_honker_*``) are hidden from
  reflection like SQLite's internal ``sqlite_*`` ones (so Alembic's
  autogenerate never proposes to drop them); ``sqlite_include_internal=True``
  shows them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import exc, pool, util
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler, SQLiteDialect
from sqlalchemy.engine import default
from sqlalchemy.engine.characteristics import ConnectionCharacteristic
from sqlalchemy.engine.url import URL
from sqlalchemy.sql import sqltypes

__all__ = ["HonkerDialect", "dialect"]

_URL_OPTIONS: dict[str, type] = {
    "max_readers": int,
    "watcher_poll_interval_ms": float,
    "timeout": float,
}
_CONNECT_OPTIONS = frozenset(
    {"max_readers", "watcher_poll_interval_ms", "timeout", "autocommit", "readonly", "database"}
)


class _ReadOnlyCharacteristic(ConnectionCharacteristic):
    """``honker_readonly``: the transaction runs in a reader snapshot."""

    __slots__ = ()
    transactional = True

    def reset_characteristic(self, dialect: Any, dbapi_conn: Any) -> None:
        if dbapi_conn.readonly:
            dbapi_conn.rollback()
            dbapi_conn.readonly = False

    def set_characteristic(self, dialect: Any, dbapi_conn: Any, value: Any) -> None:
        if dbapi_conn.in_transaction and bool(value) != dbapi_conn.readonly:
            dbapi_conn.rollback()
        dbapi_conn.readonly = bool(value)

    def get_characteristic(self, dialect: Any, dbapi_conn: Any) -> Any:
        return dbapi_conn.readonly


class _BeginWriteCharacteristic(ConnectionCharacteristic):
    """``honker_begin_write``: take the writer slot when the SQLAlchemy
    transaction begins, not at its first write."""

    __slots__ = ()
    transactional = True

    def reset_characteristic(self, dialect: Any, dbapi_conn: Any) -> None:
        dbapi_conn.begin_writes_eagerly = False

    def set_characteristic(self, dialect: Any, dbapi_conn: Any, value: Any) -> None:
        dbapi_conn.begin_writes_eagerly = bool(value)

    def get_characteristic(self, dialect: Any, dbapi_conn: Any) -> Any:
        return dbapi_conn.begin_writes_eagerly


class HonkerCompiler(SQLiteCompiler):
    """SQLite's compiler; ``a // b`` on non-integers without ``floor()``.

    The stock driver registers a Python ``floor()`` on every connection.
    When the SQLite library has the math functions (the bundled one does),
    its ``floor()`` is used, as SQLAlchemy does; otherwise floor division of
    non-integers is rendered with core SQL (the dividend expression is
    evaluated once, in a scalar subquery).
    """

    def visit_floordiv_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        if getattr(self.dialect, "_has_floor", False) or (
            binary.right.type._type_affinity is sqltypes.Integer
            and binary.left.type._type_affinity is sqltypes.Integer
        ):
            parent: Callable[..., Any] = super().visit_floordiv_binary  # untyped upstream
            return str(parent(binary, operator, **kw))
        quotient = self.process(binary.left, **kw) + " / " + self.process(binary.right, **kw)
        return (
            f"(SELECT CAST(v AS INTEGER) - (v < CAST(v AS INTEGER)) FROM (SELECT {quotient} AS v))"
        )


def _regexp(pattern: str, value: str | None) -> bool | None:
    if value is None:
        return None
    return re.search(pattern, value) is not None


class HonkerDialect(SQLiteDialect):
    """SQLAlchemy's SQLite dialect over the alkdev-storage native session."""

    driver = "honker"
    supports_statement_cache = True
    default_paramstyle = "qmark"
    returns_native_bytes = True
    description_encoding = None
    supports_server_side_cursors = False

    statement_compiler = HonkerCompiler
    #: Whether the SQLite library has ``floor()`` (math functions); set on
    #: first connect.
    _has_floor = False

    _isolation_lookup: Any = util.immutabledict(
        {"SERIALIZABLE": 0, "READ UNCOMMITTED": 1, "AUTOCOMMIT": None}
    )

    connection_characteristics = default.DefaultDialect.connection_characteristics.union(
        {
            "honker_readonly": _ReadOnlyCharacteristic(),
            "honker_begin_write": _BeginWriteCharacteristic(),
        }
    )

    def _sqlite_main_query(
        self, table: str, type_: str, schema: Any, sqlite_include_internal: bool
    ) -> str:
        # honker's own tables, views and triggers (``_honker_*``, created in
        # every honker file) are internal like ``sqlite_*`` ones: hidden from
        # reflection (and so from Alembic autogenerate) unless
        # ``sqlite_include_internal=True``.
        query = str(super()._sqlite_main_query(table, type_, schema, sqlite_include_internal))
        if not sqlite_include_internal:
            query = query.replace(
                " ORDER BY name", " AND name NOT LIKE '~_honker~_%' ESCAPE '~' ORDER BY name"
            )
        return query

    @classmethod
    def import_dbapi(cls) -> Any:
        from alkdev_storage import dbapi

        return dbapi

    @classmethod
    def _is_url_file_db(cls, url: URL) -> bool:
        return bool(url.database) and url.database != ":memory:"

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.QueuePool

    def _get_server_version_info(self, connection: Any) -> Any:
        return self.loaded_dbapi.sqlite_version_info

    def _get_default_schema_name(self, connection: Any) -> str:
        return "main"

    def initialize(self, connection: Any) -> None:
        super().initialize(connection)
        db = connection.connection.dbapi_connection.database
        row = db.fetchone("SELECT count(*) FROM pragma_function_list WHERE name = 'floor'")
        self._has_floor = bool(row and row[0])

    # -- connecting -------------------------------------------------------

    def create_connect_args(self, url: URL) -> Any:
        if url.username or url.password or url.host or url.port:
            raise exc.ArgumentError(
                f"Invalid sqlite+honker URL {url!r}: it takes no user, password, host or "
                "port. Valid forms: sqlite+honker:///relative/path.db, "
                "sqlite+honker:////absolute/path.db"
            )
        database = url.database
        if not database or database == ":memory:" or url.query.get("mode") == "memory":
            raise exc.ArgumentError(
                f"Invalid sqlite+honker URL {url!r}: a database file path is required; "
                "in-memory databases are not supported (every reader connection would see "
                "a different database)"
            )
        opts: dict[str, Any] = {}
        for key, raw in url.query.items():
            if key not in _URL_OPTIONS:
                raise exc.ArgumentError(
                    f"Unknown option {key!r} in sqlite+honker URL; accepted: "
                    + ", ".join(sorted(_URL_OPTIONS))
                )
            if isinstance(raw, tuple):
                raise exc.ArgumentError(f"Option {key!r} given more than once in the URL")
            typ = _URL_OPTIONS[key]
            try:
                value = typ(raw)
            except (TypeError, ValueError):
                raise exc.ArgumentError(
                    f"Invalid value {raw!r} for option {key!r}: expected {typ.__name__}"
                ) from None
            if value <= 0:
                raise exc.ArgumentError(
                    f"Invalid value {raw!r} for option {key!r}: must be positive"
                )
            opts[key] = value
        if not database.startswith("file:"):
            database = os.path.abspath(database)
        return ([database], opts)

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        unknown = set(cparams) - _CONNECT_OPTIONS
        if unknown:
            raise exc.ArgumentError(
                f"Unknown connect argument(s) {', '.join(sorted(map(repr, unknown)))} for "
                "sqlite+honker; accepted: " + ", ".join(sorted(_CONNECT_OPTIONS))
            )
        if "database" in cparams:
            cargs = (cparams.pop("database"),)
        for key in ("autocommit", "readonly"):
            if key in cparams and not isinstance(cparams[key], bool):
                raise exc.ArgumentError(f"Connect argument {key!r} must be a bool")
        for key, typ in _URL_OPTIONS.items():
            if key in cparams and cparams[key] is not None:
                v = cparams[key]
                if (
                    isinstance(v, bool)
                    or not isinstance(v, (int, float))
                    or v <= 0
                    or (typ is int and not isinstance(v, int))
                ):
                    raise exc.ArgumentError(
                        f"Invalid value {v!r} for connect argument {key!r}: expected a "
                        f"positive {typ.__name__}"
                    )
        try:
            return self.loaded_dbapi.connect(*cargs, **cparams)
        except (TypeError, ValueError) as e:
            raise exc.ArgumentError(f"sqlite+honker cannot connect: {e}") from e

    def on_connect(self) -> Any:
        def connect(dbapi_connection: Any) -> None:
            # As the stock driver: REGEXP backed by Python's re (registered
            # once per shared Database; later calls are no-ops).
            dbapi_connection.create_function("regexp", 2, _regexp, deterministic=True)

        return connect

    # -- transactions -------------------------------------------------------

    def do_begin(self, dbapi_connection: Any) -> None:
        if dbapi_connection.begin_writes_eagerly:
            dbapi_connection.write_transaction()

    def get_isolation_level_values(self, dbapi_connection: Any) -> list[Any]:
        return list(self._isolation_lookup)

    def set_isolation_level(self, dbapi_connection: Any, level: Any) -> None:
        if level not in self._isolation_lookup:
            raise exc.ArgumentError(
                f"Invalid value {level!r} for isolation_level. Valid isolation levels for "
                f"{self.name} are {', '.join(self._isolation_lookup)}"
            )
        if level == "AUTOCOMMIT":
            dbapi_connection.autocommit = True
        else:
            dbapi_connection.autocommit = False
            dbapi_connection.isolation_level = level

    def get_isolation_level(self, dbapi_connection: Any) -> Any:
        if dbapi_connection.autocommit:
            return "AUTOCOMMIT"
        return dbapi_connection.isolation_level

    def get_default_isolation_level(self, dbapi_conn: Any) -> Any:
        # The level below autocommit (SQLAlchemy handles AUTOCOMMIT apart).
        return dbapi_conn.isolation_level

    def detect_autocommit_setting(self, dbapi_conn: Any) -> bool:
        return bool(dbapi_conn.autocommit)

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        dbapi = self.loaded_dbapi
        msg = str(e)
        return (isinstance(e, dbapi.ProgrammingError) and "closed connection" in msg) or (
            isinstance(e, dbapi.InterfaceError) and "Database is closed" in msg
        )


dialect = HonkerDialect
