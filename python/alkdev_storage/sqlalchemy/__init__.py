"""SQLAlchemy integration: the ``sqlite+honker`` dialect, the honker
transaction handle inside ORM/Core transactions, and prepared typed queries.

* ``sqlalchemy.create_engine("sqlite+honker:///path.db")`` works once the
  package is installed (entry point ``sqlalchemy.dialects``: ``sqlite.honker``);
  :func:`create_engine` here also accepts an open
  :class:`alkdev_storage.Database`.
* :func:`honker_tx` gives the native :class:`alkdev_storage.Transaction` of a
  SQLAlchemy ``Connection`` or ``Session`` inside a transaction (the seeds'
  ``tx.$honkerTx``): ``notify``, queue enqueue and stream publish through it
  commit together with the ORM's writes and vanish on rollback.
* :func:`honker_database` gives the shared :class:`alkdev_storage.Database`
  (for ``queue()``, ``stream()``, ``listen()``...).
* :func:`prepare` compiles a statement once into a native Statement plus
  its result processing (see :mod:`alkdev_storage.sqlalchemy.prepared`).

* :func:`foreign_keys_disabled` wraps an Alembic migration run: honker
  enforces foreign keys, and Alembic's batch mode (SQLite ALTERs) copies and
  drops tables, so enforcement is turned off for the run and the result is
  checked with ``PRAGMA foreign_key_check`` before it is turned back on.

Alembic ``env.py``::

    with engine.connect() as connection, foreign_keys_disabled(connection):
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

Example::

    with Session(engine) as session, session.begin():
        session.add(Node(graph_id=g, key="call-1"))
        tx = honker_tx(session)
        tx.notify("graph:updated", {"graphId": g})
        honker_database(session).queue("graph-maintenance").enqueue({"g": g}, tx=tx)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import sqlalchemy as _sa
from sqlalchemy import exc as _exc
from sqlalchemy.orm import Session as _Session

from alkdev_storage import _native
from alkdev_storage import dbapi as _dbapi
from alkdev_storage.database import Database
from alkdev_storage.sqlalchemy.dialect import HonkerDialect
from alkdev_storage.sqlalchemy.prepared import PreparedQuery, prepare

__all__ = [
    "HonkerDialect",
    "PreparedQuery",
    "create_engine",
    "dbapi_connection",
    "foreign_keys_disabled",
    "honker_database",
    "honker_tx",
    "prepare",
]


def create_engine(database: str | os.PathLike[str] | Database, **kwargs: Any) -> _sa.Engine:
    """``sqlalchemy.create_engine`` for a database file path or an open
    :class:`alkdev_storage.Database` (which the engine then shares and never
    closes). Keyword arguments go to :func:`sqlalchemy.create_engine`."""
    if isinstance(database, Database):
        connect_args = dict(kwargs.pop("connect_args", {}) or {})
        connect_args["database"] = database
        return _sa.create_engine(
            _sa.engine.URL.create("sqlite+honker", database=database.path),
            connect_args=connect_args,
            **kwargs,
        )
    return _sa.create_engine(
        _sa.engine.URL.create("sqlite+honker", database=os.fspath(database)), **kwargs
    )


def dbapi_connection(conn: Any) -> _dbapi.Connection:
    """The :mod:`alkdev_storage.dbapi` connection behind a SQLAlchemy
    ``Connection`` or ``Session`` (the Session's connection for its default
    bind, autobeginning its transaction)."""
    if isinstance(conn, _dbapi.Connection):
        return conn
    if isinstance(conn, _Session):
        conn = conn.connection()
    if isinstance(conn, _sa.engine.Connection):
        dc = conn.connection.dbapi_connection
        if isinstance(dc, _dbapi.Connection):
            return dc
        raise _exc.ArgumentError(
            f"not a sqlite+honker connection ({conn.dialect.name}+{conn.dialect.driver})"
        )
    raise _exc.ArgumentError(
        f"expected a SQLAlchemy Connection or Session, not {type(conn).__name__}"
    )


def honker_tx(conn: Any) -> _native.Transaction:
    """The native honker Transaction of a SQLAlchemy ``Connection`` or
    ``Session`` that is inside a transaction.

    Takes the writer slot now (``BEGIN IMMEDIATE``) if the transaction has
    not written yet. Everything done through the handle (``notify``,
    ``queue(...).enqueue(..., tx=)``, ``stream(...).publish(..., tx=)``, raw
    ``honker_*`` SQL) commits with the SQLAlchemy transaction and is rolled
    back with it. Raises ``InvalidRequestError`` outside a transaction, in
    ``AUTOCOMMIT`` mode or on a ``honker_readonly`` connection.
    """
    if isinstance(conn, _Session):
        if not conn.in_transaction():
            raise _exc.InvalidRequestError(
                "honker_tx() needs a Session inside a transaction (session.begin())"
            )
        conn = conn.connection()
    if isinstance(conn, _sa.engine.Connection):
        if not conn.in_transaction():
            raise _exc.InvalidRequestError(
                "honker_tx() needs a Connection inside a transaction (conn.begin(), or "
                "after a first statement)"
            )
    dc = dbapi_connection(conn)
    if dc.autocommit:
        raise _exc.InvalidRequestError(
            "honker_tx() needs a transaction: this connection is in AUTOCOMMIT mode"
        )
    if dc.readonly:
        raise _exc.InvalidRequestError(
            "honker_tx() needs a write transaction: this connection is read-only (honker_readonly)"
        )
    return dc.write_transaction()


def honker_database(obj: Any) -> Database:
    """The shared :class:`alkdev_storage.Database` behind an Engine,
    Connection, Session or DB-API connection (for ``queue()``, ``stream()``,
    ``listen()``, ``notify()``...). It stays open while the engine's pool
    holds connections to it; a Database from :func:`alkdev_storage.open` on
    the same file works with it interchangeably (Statements, Transactions)."""
    if isinstance(obj, Database):
        return obj
    if isinstance(obj, _dbapi.Connection):
        return obj.database
    if isinstance(obj, _Session):
        obj = obj.get_bind()
    if isinstance(obj, _sa.engine.Connection):
        return dbapi_connection(obj).database
    if isinstance(obj, _sa.engine.Engine):
        raw = obj.raw_connection()
        try:
            dc = raw.dbapi_connection
            if not isinstance(dc, _dbapi.Connection):
                raise _exc.ArgumentError("not a sqlite+honker engine")
            return dc.database
        finally:
            raw.close()
    raise _exc.ArgumentError(
        f"expected an Engine, Connection, Session or Database, not {type(obj).__name__}"
    )


@contextlib.contextmanager
def foreign_keys_disabled(conn: _sa.engine.Connection) -> Iterator[_sa.engine.Connection]:
    """Turn foreign-key enforcement off on the writer for a migration run.

    ``PRAGMA foreign_keys`` only changes outside a transaction, so ``conn``
    must not have written yet; the pragma applies to the shared writer, so
    other writes of this process during the block are not checked either.
    On a clean exit ``PRAGMA foreign_key_check`` must find no violation
    (else ``IntegrityError`` naming the tables is raised); enforcement is
    restored in every case.
    """
    dc = dbapi_connection(conn)
    if dc.transaction is not None:
        raise _exc.InvalidRequestError(
            "foreign_keys_disabled() needs a connection outside a write transaction "
            "(PRAGMA foreign_keys is a no-op inside one)"
        )
    conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    if conn.in_transaction():
        conn.commit()
    try:
        yield conn
        problems = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        if conn.in_transaction():
            conn.commit()
        if problems:
            from alkdev_storage.errors import IntegrityError

            tables = sorted({str(p[0]) for p in problems})
            raise IntegrityError(
                f"foreign key violations after the migration in: {', '.join(tables)}"
            )
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        if conn.in_transaction():
            conn.commit()
