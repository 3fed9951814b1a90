"""PEP 249 (DB-API 2.0) driver on the native session.

``connect(path, **options)`` returns a :class:`Connection`. All connections
to the same file in one process share one :class:`alkdev_storage.Database`
(one writer slot, one reader pool), so opening a connection is cheap: a
dictionary lookup and an ``os.stat``.

Modules: this one (module globals, ``connect``), :mod:`._types` (type
objects, constructors, ``description`` type codes), :mod:`._registry` (the
shared Databases), :mod:`._statements` (what is cached per SQL text),
:mod:`.connection` and :mod:`.cursor`.

Transactions
------------

Where a statement runs is decided by the native Statement's own
classification (``Statement.kind``); the driver parses no SQL.

* Outside a transaction, reads (``SELECT``, read-only ``PRAGMA``...) run on
  a reader connection of the pool and see the latest committed state.
* The first write (DML, DDL, a read whose SQL functions write such as
  ``SELECT notify(...)``), ``SAVEPOINT``, an explicit
  :meth:`Connection.begin` or a ``BEGIN`` statement takes the writer slot
  with ``BEGIN IMMEDIATE``. Statements then run on the writer and see the
  transaction's own writes, until ``commit()`` or ``rollback()``. Threads
  queue for the writer slot instead of getting ``SQLITE_BUSY``.
* A statement that fails leaves nothing behind: SQLite undoes the
  statement, and when that statement was the one that began the
  transaction, the (empty) transaction is rolled back and the writer slot
  released at once.
* ``autocommit=True`` (or setting ``conn.autocommit``): every statement
  outside an explicit ``BEGIN`` commits on its own. ``BEGIN``...``COMMIT``
  and ``SAVEPOINT`` still work; as in SQLite, releasing an outermost
  savepoint that started the transaction commits it.
* ``readonly=True`` (or setting ``conn.readonly`` between transactions):
  statements run in a consistent read snapshot on a reader (deferred
  ``BEGIN``), begun at the first statement and ended by commit/rollback;
  writes fail with ``OperationalError``.
* Transaction-control SQL (``BEGIN``, ``COMMIT``/``END``, ``ROLLBACK``,
  ``SAVEPOINT``, ``RELEASE``, ``ROLLBACK TO``) is mapped onto the native
  :class:`~alkdev_storage.Transaction` and its
  :class:`~alkdev_storage.Savepoint` objects; savepoint names follow
  SQLite's rules (case-insensitive, ``ROLLBACK TO`` keeps the savepoint).
* :attr:`Connection.transaction` is the native Transaction while one is
  open: notify, queue enqueue and stream publish through it commit or roll
  back together with the DB-API writes.

Statements and rows
-------------------

Each SQL text is compiled once into a native :class:`~alkdev_storage.Statement`
and cached per Database (a dict lookup per execute). Results are read with
one native ``fetchall`` call; rows are plain tuples. ``description`` is
precomputed per statement; its type codes come from the declared column
types (see :mod:`alkdev_storage.dbapi._types`). ``fetch*()`` after a
statement that produced no result set raises ``ProgrammingError``.

``paramstyle`` is ``"qmark"``; named parameters (``:name``, ``@name``,
``$name``) with a mapping work as well. ``datetime.date``/``time``/
``datetime`` parameters (the PEP 249 constructors) are stored as ISO-8601
text, as the stdlib ``sqlite3`` module's default adapters did.

Closing a closed connection does nothing (the stdlib ``sqlite3``
behaviour; see ``docs/0009-dbapi-close.md``); every other call on it raises
``ProgrammingError``.

Schema changes and connection-level statements
-----------------------------------------------

* After DDL commits through the driver the statement cache is cleared.
  Inside a transaction that has run DDL, statements are compiled on the
  writer (the readers cannot see the new schema) and not cached.
* Connection-level statements (``ATTACH``, ``DETACH``, ``VACUUM``,
  ``PRAGMA x = y``) run on the writer outside any transaction (inside an
  open one, SQLite decides: ``ATTACH`` and ``VACUUM`` fail there).
  Connection settings apply to the writer only, where writes happen.
* Attached databases and ``TEMP`` objects exist only on the writer
  connection, which every driver connection to the file shares (so an
  identical ``ATTACH`` run again by another connection succeeds without
  attaching twice). Once a Database has any, reads outside a transaction
  run on the writer, in a short transaction, so that they see them.

Hooks for integrations
----------------------

:attr:`Connection.begin_writes_eagerly` and :meth:`Connection.run_prepared`
are the public hooks the SQLAlchemy dialect and its prepared queries use.
"""

from __future__ import annotations

import os

from alkdev_storage import _native
from alkdev_storage.database import Database
from alkdev_storage.dbapi import _registry
from alkdev_storage.dbapi._registry import shared_database
from alkdev_storage.dbapi._statements import STATEMENT_CACHE_SIZE
from alkdev_storage.dbapi._types import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
)
from alkdev_storage.dbapi.connection import Connection
from alkdev_storage.dbapi.cursor import Cursor
from alkdev_storage.errors import (
    PEP249,
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STATEMENT_CACHE_SIZE",
    "STRING",
    "Binary",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "shared_database",
    "sqlite_version",
    "sqlite_version_info",
    "threadsafety",
]

# PEP 249's optional extension: the exception classes as Connection attributes.
for _exc in PEP249:
    setattr(Connection, _exc.__name__, _exc)
del _exc

apilevel = "2.0"
#: Threads may share the module and the underlying Database, but not a
#: Connection or Cursor object (use one connection per thread; they are cheap).
threadsafety = 1
paramstyle = "qmark"

sqlite_version: str = _native.sqlite_version()
_major, _minor, _patch = (int(p) for p in sqlite_version.split(".")[:3])
sqlite_version_info: tuple[int, int, int] = (_major, _minor, _patch)
del _major, _minor, _patch


def connect(
    database: str | os.PathLike[str] | Database,
    *,
    max_readers: int | None = None,
    autocommit: bool = False,
    readonly: bool = False,
    watcher_poll_interval_ms: float | None = None,
    timeout: float | None = None,
) -> Connection:
    """Open a connection to the database file ``database``.

    ``database`` is a path (``:memory:`` is rejected: every reader would see
    a different database) or an open :class:`alkdev_storage.Database` (from
    :func:`alkdev_storage.open`; it is then shared, never closed by the
    driver). Connections to the same file share one Database; the driver's
    own handle on it closes with its last connection.

    Options: ``max_readers`` (reader pool bound, for the first connection to
    a file; a conflicting value for an already open file raises
    ``ValueError``), ``autocommit`` (every statement commits on its own),
    ``readonly`` (statements run in a read snapshot),
    ``watcher_poll_interval_ms`` (update watcher period) and ``timeout``
    (seconds any wait for the writer slot, a reader or another process's
    lock may last; default 5.0). The file's engine is shared with every
    other entry point in the process (:func:`alkdev_storage.open`).
    """
    if not isinstance(autocommit, bool):
        raise TypeError(f"autocommit must be a bool, not {type(autocommit).__name__}")
    if not isinstance(readonly, bool):
        raise TypeError(f"readonly must be a bool, not {type(readonly).__name__}")
    if max_readers is not None and (
        isinstance(max_readers, bool) or not isinstance(max_readers, int) or max_readers < 1
    ):
        raise ValueError(f"max_readers must be a positive int, got {max_readers!r}")
    if isinstance(database, _native.Database):
        if not isinstance(database, Database):
            raise TypeError(
                "connect() takes an alkdev_storage.Database (from alkdev_storage.open()), "
                "not a bare native Database"
            )
        if database.closed:
            raise InterfaceError("the Database passed to connect() is closed")
        shared = _registry.acquire_database(database)
    elif isinstance(database, (str, os.PathLike)):
        path = os.fspath(database)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        shared = _registry.acquire_path(path, max_readers, watcher_poll_interval_ms, timeout)
    else:
        raise TypeError(
            f"database must be a path or an alkdev_storage.Database, not {type(database).__name__}"
        )
    return Connection(shared, autocommit=autocommit, readonly=readonly)
