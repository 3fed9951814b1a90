"""PEP 249 (DB-API 2.0) driver on the native session.

``connect(path, **options)`` returns a :class:`Connection`. All connections
to the same file in one process share one :class:`alkdev_storage.Database`
(one writer slot, one reader pool), so opening a connection is cheap: a
dictionary lookup and an ``os.stat``.

Transactions
------------

* Outside a transaction, read-only statements (``SELECT``, read-only
  ``PRAGMA``...) run on a reader connection of the pool and see the latest
  committed state.
* The first data-modifying statement (``INSERT``/``UPDATE``/``DELETE``, DDL,
  ``SAVEPOINT``, a statement calling ``notify()`` or a ``honker_*``
  function), an explicit :meth:`Connection.begin` or a ``BEGIN`` statement
  takes the writer slot with ``BEGIN IMMEDIATE``. Statements then run on
  the writer and see the transaction's own writes, until ``commit()`` or
  ``rollback()``. Threads queue for the writer slot instead of getting
  ``SQLITE_BUSY``.
* A statement that fails leaves nothing behind: SQLite undoes the
  statement, and when that statement was the one that began the
  transaction, the (empty) transaction is rolled back and the writer slot
  released at once.
* ``autocommit=True`` (or setting ``conn.autocommit``): every statement
  outside an explicit ``BEGIN`` commits on its own (writes on the writer in
  their own short transaction). ``BEGIN``...``COMMIT`` and ``SAVEPOINT``
  still work; as in SQLite, releasing an outermost savepoint that started
  the transaction commits it.
* ``readonly=True`` (or setting ``conn.readonly`` between transactions):
  statements run in a consistent read snapshot on a reader (deferred
  ``BEGIN``), begun at the first statement and ended by commit/rollback;
  writes fail with ``OperationalError``.
* Transaction-control SQL (``BEGIN``, ``COMMIT``/``END``, ``ROLLBACK``,
  ``SAVEPOINT``, ``RELEASE``, ``ROLLBACK TO``) is intercepted and mapped
  onto the native :class:`~alkdev_storage.Transaction` and its
  :class:`~alkdev_storage.Savepoint` objects; savepoint names follow
  SQLite's rules (case-insensitive, ``ROLLBACK TO`` keeps the savepoint).
* :attr:`Connection.transaction` is the native Transaction while one is
  open: notify, queue enqueue and stream publish through it commit or roll
  back together with the DB-API writes.

Statements and rows
-------------------

Each SQL text is compiled once into a native :class:`~alkdev_storage.Statement`
and cached per Database (a dict lookup per execute). Row-returning
statements are read with one native ``fetchall`` call; rows are plain
tuples and ``description`` is precomputed per statement. DDL run through
the driver clears the cache (``SELECT *`` column lists change).

``paramstyle`` is ``"qmark"``; named parameters (``:name``, ``@name``,
``$name``) with a mapping work as well. ``datetime.date``/``time``/
``datetime`` parameters (the PEP 249 constructors) are stored as ISO-8601
text, as the stdlib ``sqlite3`` module's default adapters did.

Schema changes and connection-level statements
-----------------------------------------------

* After DDL commits through the driver, the open readers are made to load
  the new schema at once (each takes a short snapshot), and the statement
  cache is cleared. Inside a transaction that has run DDL, statements are
  compiled on the writer by SQL text (the readers cannot see the new
  schema); ``description`` then comes from the first row's column names
  (or, for an empty result, ``column1``... names).
* ``PRAGMA`` queries run by SQL text: in the open transaction or snapshot,
  else in a short read snapshot (a compiled PRAGMA keeps the schema it was
  compiled against). ``PRAGMA x = y``, ``VACUUM``, ``ATTACH`` and
  ``DETACH`` run on the writer outside any transaction: connection settings
  apply to the writer only (writes are where they matter).
* ``ATTACH`` and ``TEMP`` objects exist only on the writer connection
  (shared by every driver connection to the file). Once a Database has
  any, reads outside a transaction run on the writer, in a short
  transaction, so that they see them.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import threading
import time as _time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from alkdev_storage import _native
from alkdev_storage.errors import (
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
    "sqlite_version",
    "sqlite_version_info",
    "threadsafety",
]

# ---------------------------------------------------------------------------
# Module globals (PEP 249)
# ---------------------------------------------------------------------------

apilevel = "2.0"
#: Threads may share the module and the underlying Database, but not a
#: Connection or Cursor object (use one connection per thread; they are cheap).
threadsafety = 1
paramstyle = "qmark"

sqlite_version: str = _native.sqlite_version()
sqlite_version_info: tuple[int, int, int] = tuple(  # type: ignore[assignment]
    int(p) for p in sqlite_version.split(".")[:3]
)

Binary = bytes
Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime


def DateFromTicks(ticks: float) -> _dt.date:
    return Date(*_time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> _dt.time:
    return Time(*_time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> _dt.datetime:
    return Timestamp(*_time.localtime(ticks)[:6])


class _DBAPIType:
    """A PEP 249 type object: compares equal to the type codes it groups.

    SQLite has no column type codes in result sets, so ``description``
    carries ``None`` as type code (like the stdlib ``sqlite3`` module).
    """

    def __init__(self, name: str, *values: Any) -> None:
        self.name = name
        self.values = frozenset(values)

    def __eq__(self, other: object) -> bool:
        return other in self.values

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<DBAPITypeObject {self.name}>"


STRING = _DBAPIType("STRING", str)
BINARY = _DBAPIType("BINARY", bytes, bytearray, memoryview)
NUMBER = _DBAPIType("NUMBER", int, float)
DATETIME = _DBAPIType("DATETIME", _dt.datetime, _dt.date, _dt.time)
ROWID = _DBAPIType("ROWID", int)

# ---------------------------------------------------------------------------
# SQL classification (done once per SQL text, then cached)
# ---------------------------------------------------------------------------

_K_READ = 0  # read-only, returns rows: readers outside a transaction
_K_WRITE = 1  # modifies: begins the write transaction
_K_CONTROL = 2  # BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE
_K_SPECIAL = 3  # PRAGMA / ATTACH / DETACH / VACUUM: connection-level
_K_READ_W = 4  # read that must see writer-only objects (ATTACH/TEMP)

_F_DDL = 1
_F_DML = 2
_F_ROWS = 4
_F_ATTACH = 8
_F_DETACH = 16
_F_TEMP = 32
_F_ASSIGN = 64  # PRAGMA x = y
_F_TEXT = 128  # no Statement: run by SQL text
_F_SLOW = _F_ROWS | _F_DDL | _F_TEMP | _F_TEXT
_EMPTY: tuple[Any, ...] = ()
_new = object.__new__

_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z]*)", re.S)
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_DDL = frozenset({"CREATE", "DROP", "ALTER", "REINDEX", "ANALYZE"})
_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})
_SPECIAL = frozenset({"PRAGMA", "ATTACH", "DETACH", "VACUUM"})
# Statements whose functions write (honker's SQL API): never on a reader.
_WRITING_FUNCS = re.compile(r"\b(?:notify|honker_[a-z_]+)\s*\(", re.I)
_TEMP = re.compile(r"^\s*CREATE\s+(?:TEMP|TEMPORARY)\b|\btemp\s*\.|\"temp\"\s*\.", re.I)
_NAME = r"(?:\"(?:[^\"]|\"\")+\"|\[[^\]]+\]|`(?:[^`]|``)+`|'(?:[^']|'')+'|[^\s;]+)"
_CTRL_RE = [
    (
        re.compile(
            r"BEGIN(?:\s+(?:DEFERRED|IMMEDIATE|EXCLUSIVE))?(?:\s+TRANSACTION(?:\s+"
            + _NAME
            + r")?)?",
            re.I,
        ),
        "begin",
    ),
    (re.compile(r"(?:COMMIT|END)(?:\s+TRANSACTION(?:\s+" + _NAME + r")?)?", re.I), "commit"),
    (
        re.compile(r"ROLLBACK(?:\s+TRANSACTION)?\s+TO(?:\s+SAVEPOINT)?\s+(" + _NAME + ")", re.I),
        "rollback_to",
    ),
    (re.compile(r"ROLLBACK(?:\s+TRANSACTION(?:\s+" + _NAME + r")?)?", re.I), "rollback"),
    (re.compile(r"SAVEPOINT\s+(" + _NAME + ")", re.I), "savepoint"),
    (re.compile(r"RELEASE(?:\s+SAVEPOINT)?\s+(" + _NAME + ")", re.I), "release"),
]
_TRAILING = re.compile(r"(?:\s+|;|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_ATTACH_RE = re.compile(
    r"ATTACH(?:\s+DATABASE)?\s+(.+?)\s+AS\s+(" + _NAME + r")\s*;?\s*$", re.I | re.S
)
_DETACH_RE = re.compile(r"DETACH(?:\s+DATABASE)?\s+(" + _NAME + r")\s*;?\s*$", re.I | re.S)

_HOW = {"all": "fetchall", "one": "fetchone", "exec": "execute"}

#: Upper bound of the per-Database statement cache (cleared when exceeded).
STATEMENT_CACHE_SIZE = 1024


def _keyword(sql: str) -> str:
    m = _LEADING.match(sql)
    return m.group(1).upper() if m else ""


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] in "\"'`[":
        q = name[0]
        inner = name[1:-1]
        if q == "[":
            return inner.lower()
        return inner.replace(q + q, q).lower()
    return name.lower()


def _parse_control(sql: str) -> tuple[str, str | None]:
    m = _LEADING.match(sql)
    start = m.start(1) if m else 0
    for rx, action in _CTRL_RE:
        mm = rx.match(sql, start)
        if mm is None:
            continue
        end = _TRAILING.match(sql, mm.end())
        if end is not None and end.end() == len(sql):
            name = mm.group(1) if mm.groups() and mm.group(1) else None
            return action, (_unquote(name) if name else None)
    raise OperationalError(f"cannot parse transaction-control statement: {sql!r}")


def _description(columns: tuple[str, ...]) -> tuple[tuple[Any, ...], ...] | None:
    if not columns:
        return None
    return tuple((c, None, None, None, None, None, None) for c in columns)


def _adapt_value(v: Any) -> Any:
    if isinstance(v, _dt.datetime):
        return v.isoformat(" ")
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    return v


def _adapt(params: Any) -> Any:
    """Convert the PEP 249 date/time values of one parameter set."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {k: _adapt_value(v) for k, v in params.items()}
    if isinstance(params, (str, bytes, bytearray)):
        return params
    return tuple(_adapt_value(v) for v in params)


def _needs_adapt(params: Any) -> bool:
    if params is None:
        return False
    vals: Iterable[Any] = params.values() if isinstance(params, Mapping) else params
    if isinstance(params, (str, bytes, bytearray)):
        return False
    try:
        return any(isinstance(v, (_dt.date, _dt.time)) for v in vals)
    except TypeError:
        return False


def _bind_error(e: TypeError) -> ProgrammingError:
    err = ProgrammingError(f"error binding parameters: {e}")
    err.__cause__ = e
    return err


# ---------------------------------------------------------------------------
# Shared Databases
# ---------------------------------------------------------------------------


class _Shared:
    """One Database shared by every Connection to the same file."""

    __slots__ = (
        "attached",
        "db",
        "file_id",
        "key",
        "lock",
        "owned",
        "pinned",
        "refs",
        "stmts",
        "temp",
        "writer_thread",
    )

    def __init__(self, db: _native.Database, key: str | None, owned: bool) -> None:
        self.db = db
        self.key = key
        self.owned = owned
        self.refs = 0
        self.stmts: dict[str, tuple[Any, ...]] = {}
        self.attached: dict[str, str] = {}
        self.temp = False
        self.pinned = False  # reads must see writer-only objects
        self.lock = threading.Lock()
        self.file_id = _file_id(db.path) if key is not None else None
        self.writer_thread = 0  # thread holding the writer through this driver

    def invalidate(self) -> None:
        self.stmts = {}


_registry: dict[str, _Shared] = {}
_by_db: dict[int, _Shared] = {}
_registry_lock = threading.Lock()


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _key_for(path: str) -> str:
    if path.startswith("file:"):
        return path
    return os.path.realpath(os.path.abspath(path))


def connect(
    database: str | os.PathLike[str] | _native.Database,
    *,
    max_readers: int | None = None,
    autocommit: bool = False,
    readonly: bool = False,
    watcher_poll_interval_ms: float | None = None,
) -> Connection:
    """Open a connection to the database file ``database``.

    ``database`` is a path (``:memory:`` is rejected: every reader would see
    a different database) or an already open :class:`alkdev_storage.Database`
    (it is then shared, never closed by the driver). Connections to the same
    file share one Database; it is closed when its last connection closes
    (unless it was passed in).

    Options: ``max_readers`` (reader pool bound, for the first connection to
    a file; a conflicting value for an already open file raises
    ``ValueError``), ``autocommit`` (every statement commits on its own),
    ``readonly`` (statements run in a read snapshot), and
    ``watcher_poll_interval_ms`` (update watcher period).
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
        if database.closed:
            raise InterfaceError("the Database passed to connect() is closed")
        with _registry_lock:
            shared = _by_db.get(id(database))
            if shared is None or shared.db is not database:
                shared = _Shared(database, None, owned=False)
                _by_db[id(database)] = shared
            shared.refs += 1
        return Connection(shared, autocommit=autocommit, readonly=readonly)
    if not isinstance(database, (str, os.PathLike)):
        raise TypeError(
            f"database must be a path or an alkdev_storage.Database, not {type(database).__name__}"
        )
    path = os.fspath(database)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    key = _key_for(path) if path.strip() and path != ":memory:" else path
    with _registry_lock:
        shared = _registry.get(key)
        if shared is not None and (
            shared.db.closed or (shared.file_id is not None and _file_id(key) != shared.file_id)
        ):
            # Closed, or the file was deleted/replaced underneath: start over.
            _registry.pop(key, None)
            shared = None
        if shared is None:
            from alkdev_storage.database import Database

            db = Database(
                path,
                max_readers=8 if max_readers is None else max_readers,
                watcher_poll_interval_ms=watcher_poll_interval_ms,
            )
            shared = _Shared(db, key, owned=True)
            _registry[key] = shared
            _by_db[id(db)] = shared
        elif max_readers is not None and max_readers != shared.db.max_readers:
            raise ValueError(
                f"max_readers={max_readers} conflicts with the Database already open for "
                f"{path!r} (max_readers={shared.db.max_readers})"
            )
        shared.refs += 1
    return Connection(shared, autocommit=autocommit, readonly=readonly)


def _release(shared: _Shared) -> None:
    with _registry_lock:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if shared.key is not None and _registry.get(shared.key) is shared:
            del _registry[shared.key]
        if _by_db.get(id(shared.db)) is shared:
            del _by_db[id(shared.db)]
        owned = shared.owned
    if owned:
        shared.db.close()


def shared_database(path: str | os.PathLike[str]) -> _native.Database | None:
    """The Database that driver connections to ``path`` share, if one is open."""
    with _registry_lock:
        s = _registry.get(_key_for(os.fsdecode(path)))
        return None if s is None or s.db.closed else s.db


# ---------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------


class Connection:
    """A DB-API connection: a view of a shared Database with its own
    transaction state. Use one per thread."""

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, shared: _Shared, *, autocommit: bool, readonly: bool) -> None:
        self._shared = shared
        self._db: _native.Database | None = shared.db
        self._tx: _native.Transaction | None = None
        self._snap: _native.Snapshot | None = None
        self._sps: list[list[Any]] = []  # [name, Savepoint]
        self._autocommit = autocommit
        self._readonly = readonly
        self._sp_began = False  # the transaction was begun by a SAVEPOINT (autocommit)
        self._tx_ddl = False  # DDL ran in this transaction: compile on the writer
        self._begin_write_eagerly = False  # set by the SQLAlchemy dialect
        self._isolation_level = "SERIALIZABLE"

    # -- state -------------------------------------------------------------

    def _check(self) -> _native.Database:
        db = self._db
        if db is None:
            raise ProgrammingError("Cannot operate on a closed connection.")
        return db

    @property
    def closed(self) -> bool:
        return self._db is None

    @property
    def database(self) -> _native.Database:
        """The shared :class:`alkdev_storage.Database` (for queue(), stream()...)."""
        return self._check()

    @property
    def transaction(self) -> _native.Transaction | None:
        """The native write Transaction while one is open, else None."""
        return self._tx

    @property
    def in_transaction(self) -> bool:
        return self._tx is not None or self._snap is not None

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"autocommit must be a bool, not {type(value).__name__}")
        self._check()
        if value and not self._autocommit:
            self.commit()  # as sqlite3 does: switching on commits the open transaction
        self._autocommit = value

    @property
    def isolation_level(self) -> str:
        """``"SERIALIZABLE"`` (SQLite's behaviour) or ``"READ UNCOMMITTED"``
        (accepted for compatibility; like SQLite's ``read_uncommitted``
        pragma it has no effect without a shared cache, which is never used).
        Autocommit is the separate :attr:`autocommit` flag."""
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str) -> None:
        if value not in ("SERIALIZABLE", "READ UNCOMMITTED"):
            raise ValueError(
                f"isolation_level must be 'SERIALIZABLE' or 'READ UNCOMMITTED', not {value!r}"
            )
        self._check()
        self._isolation_level = value

    @property
    def readonly(self) -> bool:
        return self._readonly

    @readonly.setter
    def readonly(self, value: bool) -> None:
        self._check()
        value = bool(value)
        if value != self._readonly and self.in_transaction:
            raise ProgrammingError(
                "readonly cannot change inside a transaction; commit or roll back first"
            )
        self._readonly = value

    def write_transaction(self) -> _native.Transaction:
        """Begin the write transaction now if none is open (``BEGIN
        IMMEDIATE`` on the writer slot) and return the native Transaction."""
        self._check()
        if self._tx is None:
            self._begin_write()
        assert self._tx is not None
        return self._tx

    def begin(self) -> None:
        """Begin a write transaction explicitly (``BEGIN IMMEDIATE``).

        In read-only mode, begins the read snapshot instead."""
        self._check()
        if self._tx is not None or self._snap is not None:
            raise OperationalError("cannot start a transaction within a transaction")
        if self._readonly:
            self._snapshot()
        else:
            self._begin_write()

    def _begin_write(self) -> _native.Transaction:
        if self._readonly:
            raise OperationalError(
                "attempt to write a readonly database (the connection is in read-only mode)"
            )
        tx = self._db.begin()  # type: ignore[union-attr]
        self._tx = tx
        self._shared.writer_thread = threading.get_ident()
        return tx

    def _write_target(self) -> tuple[Any, bool]:
        """Where a write runs, and whether a write transaction began for it:
        the open transaction; else the read snapshot (read-only connection:
        the write then fails there); the Database itself (autocommit); or a
        write transaction begun now."""
        if self._tx is not None:
            return self._tx, False
        if self._readonly:
            return self._snapshot(), False
        if self._autocommit:
            return self._db, False
        return self._begin_write(), True

    def _snapshot(self) -> _native.Snapshot:
        snap = self._snap
        if snap is None:
            snap = self._db.read()  # type: ignore[union-attr]
            snap.__enter__()
            self._snap = snap
        return snap

    def _end(self, commit: bool) -> None:
        tx, snap = self._tx, self._snap
        self._tx = self._snap = None
        self._sps.clear()
        self._sp_began = False
        self._tx_ddl = False
        if snap is not None:
            snap.close()
        if tx is not None:
            if self._shared.writer_thread == threading.get_ident():
                self._shared.writer_thread = 0
            if commit:
                tx.commit()  # a failed COMMIT rolls back and frees the writer
            else:
                tx.rollback()

    def commit(self) -> None:
        self._check()
        self._end(True)

    def rollback(self) -> None:
        self._check()
        self._end(False)

    def create_function(
        self, name: str, narg: int, func: Any, *, deterministic: bool = False
    ) -> None:
        """Register an SQL function written in Python (``sqlite3``'s
        signature). It is registered on the shared Database, so every
        connection to the file sees it; registering the same function again
        is a no-op."""
        self._check()
        assert self._db is not None
        self._db.create_function(name, narg, func, deterministic=deterministic)

    def close(self) -> None:
        """Roll back any open transaction and release the shared Database
        (closed with its last connection). Idempotent."""
        if self._db is None:
            return
        try:
            self._end(False)
        finally:
            self._db = None
            _release(self._shared)

    def __del__(self) -> None:
        try:
            if self._db is not None:
                self.close()
        except Exception:
            pass

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # sqlite3 semantics: commit on success, roll back on error; stay open.
        if self._db is None:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def cursor(self) -> Cursor:
        if self._db is None:
            self._check()
        cur: Cursor = _new(Cursor)  # skips __init__: one attribute to set
        cur._conn = self
        return cur

    # sqlite3-style shortcuts
    def execute(self, sql: str, parameters: Any = None) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql: str) -> Cursor:
        """Run a script of several statements inside the write transaction
        (begun if needed; committed at once in autocommit mode)."""
        db = self._check()
        if not isinstance(sql, str):
            raise TypeError("executescript expects a str")
        began = self._tx is None
        tx = self._tx if self._tx is not None else self._begin_write()
        try:
            tx.executescript(sql)
        except BaseException:
            if began:
                self._end(False)
            raise
        self._shared.invalidate()
        self._tx_ddl = True  # the script may have changed the schema
        if began and self._autocommit:
            self._end(True)
        del db
        return self.cursor()

    # -- compilation ----------------------------------------------------------

    def _compile(self, sql: str) -> tuple[Any, ...]:
        """Classify ``sql`` and prepare its Statement: (kind, stmt, description, flags)."""
        if not isinstance(sql, str):
            raise TypeError(f"SQL must be a str, not {type(sql).__name__}")
        db = self._check()
        kw = _keyword(sql)
        if kw in _CONTROL:
            action, name = _parse_control(sql)
            entry: tuple[Any, ...] = (_K_CONTROL, action, None, name)
            self._cache(sql, entry)
            return entry
        flags = 0
        if kw in _DDL:
            flags |= _F_DDL
            if kw == "CREATE" and _TEMP.search(sql):
                flags |= _F_TEMP
        elif kw in _DML:
            flags |= _F_DML
        if kw in _SPECIAL:
            if kw == "ATTACH":
                flags |= _F_ATTACH
            elif kw == "DETACH":
                flags |= _F_DETACH
            elif kw == "PRAGMA" and "=" in sql:
                flags |= _F_ASSIGN
            try:
                stmt = db.prepare(sql)
                desc = _description(stmt.columns)
            except Error:
                if kw != "PRAGMA":
                    raise
                stmt, desc = None, None
            if desc is not None:
                flags |= _F_ROWS
            entry = (_K_SPECIAL, stmt, desc, flags)
            if stmt is not None:
                self._cache(sql, entry)
            return entry
        if self._tx_ddl and self._tx is not None:
            return self._compile_in_tx(sql, kw, flags)
        try:
            stmt = db.prepare(sql)
        except Error:
            if self._tx is not None:
                # Objects only this transaction sees (created in it, or
                # writer-only ones): compile on the writer by SQL text.
                return self._compile_in_tx(sql, kw, flags)
            if not self._shared.pinned:
                raise
            # Only the writer knows the objects (an attached schema): run
            # by SQL text on the writer.
            entry = self._text_entry(sql, kw, flags)
            self._cache(sql, entry)
            return entry
        cols = stmt.columns
        desc = _description(cols)
        if desc is not None:
            flags |= _F_ROWS
        if stmt.readonly and not _WRITING_FUNCS.search(sql) and not flags & (_F_DDL | _F_DML):
            kind = _K_READ_W if self._shared.pinned else _K_READ
        else:
            kind = _K_WRITE
        entry = (kind, stmt, desc, flags)
        self._cache(sql, entry)
        return entry

    def _compile_in_tx(self, sql: str, kw: str, flags: int) -> tuple[Any, ...]:
        # Compiled on the transaction's connection (it sees the schema the
        # transaction changed); not cached: valid only inside it.
        assert self._tx is not None
        stmt = self._tx.prepare(sql)
        desc = _description(stmt.columns)
        if desc is not None:
            flags |= _F_ROWS
        return (_K_WRITE, stmt, desc, flags)

    @staticmethod
    def _text_entry(sql: str, kw: str, flags: int) -> tuple[Any, ...]:
        if kw in ("SELECT", "WITH", "VALUES", "EXPLAIN") or re.search(r"\bRETURNING\b", sql, re.I):
            flags |= _F_ROWS
        if flags & (_F_DDL | _F_DML) or _WRITING_FUNCS.search(sql) or not flags & _F_ROWS:
            return (_K_WRITE, sql, None, flags | _F_TEXT)
        return (_K_READ_W, sql, None, flags | _F_TEXT)

    def _cache(self, sql: str, entry: tuple[Any, ...]) -> None:
        stmts = self._shared.stmts
        if len(stmts) >= STATEMENT_CACHE_SIZE:
            self._shared.stmts = stmts = {}
        stmts[sql] = entry

    # -- execution helpers -------------------------------------------------

    def _writer_read(self, target: Any, params: Any) -> list[tuple[Any, ...]]:
        """A read outside any transaction of ours that must see writer-only
        objects: run it in a short write transaction."""
        db = self._db
        if self._shared.writer_thread == threading.get_ident():
            # This thread holds the writer through another connection: the
            # readers are the only option left.
            return db.fetchall(target, params)  # type: ignore[union-attr]
        tx = db.begin()  # type: ignore[union-attr]
        try:
            rows = tx.fetchall(target, params)
        except BaseException:
            tx.rollback()
            raise
        tx.commit()
        return rows

    def _run_prepared(self, stmt: Any, args: Any, how: str, write: bool) -> Any:
        """Run a native Statement the way ``cursor.execute`` would route it
        (used by prepared queries). ``how``: "all", "one" or "exec"."""
        self._check()
        tx = self._tx
        if tx is not None:
            return getattr(tx, _HOW[how])(stmt, args)
        if self._readonly or self._snap is not None:
            return getattr(self._snapshot(), _HOW[how])(stmt, args)
        if not write:
            if self._shared.pinned:
                rows = self._writer_read(stmt, args)
                if how == "one":
                    return rows[0] if rows else None
                return rows
            return getattr(self._db, _HOW[how])(stmt, args)
        if self._autocommit:
            return getattr(self._db, _HOW[how])(stmt, args)
        tx = self._begin_write()
        try:
            return getattr(tx, _HOW[how])(stmt, args)
        except BaseException:
            self._end(False)
            raise

    def _control(self, action: str, name: str | None) -> None:
        if action == "begin":
            self.begin()
        elif action == "commit":
            if self._tx is None and self._snap is None:
                raise OperationalError("cannot commit - no transaction is active")
            self._end(True)
        elif action == "rollback":
            if self._tx is None and self._snap is None:
                raise OperationalError("cannot rollback - no transaction is active")
            self._end(False)
        elif action == "savepoint":
            if self._snap is not None:
                raise OperationalError("SAVEPOINT in a read-only snapshot is not supported")
            if self._tx is None:
                self._begin_write()
                self._sp_began = self._autocommit
            sp = self._tx.savepoint()  # type: ignore[union-attr]
            sp.__enter__()
            self._sps.append([name, sp])
        elif action in ("release", "rollback_to"):
            sps = self._sps
            idx = next((i for i in range(len(sps) - 1, -1, -1) if sps[i][0] == name), None)
            if idx is None:
                raise OperationalError(f"no such savepoint: {name}")
            if action == "release":
                for _ in range(len(sps) - idx):
                    sps.pop()[1].release()
                if not sps and self._sp_began:
                    self._end(True)
            else:
                for _ in range(len(sps) - idx):
                    sps.pop()[1].rollback()
                # SQLite keeps the savepoint after ROLLBACK TO.
                sp = self._tx.savepoint()  # type: ignore[union-attr]
                sp.__enter__()
                sps.append([name, sp])

    def _after_special(self, flags: int, sql: str) -> None:
        sh = self._shared
        if flags & _F_ATTACH:
            m = _ATTACH_RE.match(sql.strip())
            if m:
                sh.attached[_unquote(m.group(2))] = m.group(1)
            self._pin()
        elif flags & _F_DETACH:
            m = _DETACH_RE.match(sql.strip())
            if m:
                sh.attached.pop(_unquote(m.group(1)), None)

    def _pin(self) -> None:
        sh = self._shared
        if not sh.pinned:
            sh.pinned = True
            sh.invalidate()


# ---------------------------------------------------------------------------
# Cursor
# ---------------------------------------------------------------------------


class Cursor:
    """A DB-API cursor. Results are read completely by the execute call
    (one native call); fetch methods then slice the list of tuples."""

    # Class-level defaults: creating a cursor sets one attribute.
    _closed = False
    _rows: Sequence[tuple[Any, ...]] = ()
    _pos = 0
    description: tuple[tuple[Any, ...], ...] | None = None
    rowcount = -1
    lastrowid: int | None = None
    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    @property
    def connection(self) -> Connection:
        return self._conn

    def close(self) -> None:
        self._closed = True
        self._rows = _EMPTY
        self.description = None

    def _fail_closed(self) -> None:
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed cursor.")
        self._conn._check()

    # -- execute -------------------------------------------------------------

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        conn = self._conn
        if self._closed or conn._db is None:
            self._fail_closed()
        entry = None if conn._tx_ddl else conn._shared.stmts.get(operation)
        if entry is None:
            entry = conn._compile(operation)
        kind, stmt, desc, flags = entry
        if kind == _K_READ:
            tx = conn._tx
            try:
                if tx is not None:
                    rows = tx.fetchall(stmt, parameters)
                elif conn._readonly:
                    rows = conn._snapshot().fetchall(stmt, parameters)
                else:
                    rows = conn._db.fetchall(stmt, parameters)  # type: ignore[union-attr]
            except TypeError as e:
                if not _needs_adapt(parameters):
                    raise _bind_error(e) from None
                return self.execute(operation, _adapt(parameters))
            if rows and len(rows[0]) != len(desc):
                desc = self._refresh(operation, len(rows[0]))
            self._rows = rows
            self._pos = 0
            self.description = desc
            self.rowcount = -1
            return self
        if kind == _K_WRITE:
            tx = conn._tx
            if tx is not None and not flags & _F_SLOW:
                # The hot write: a compiled DML statement inside the transaction.
                try:
                    r = tx.execute(stmt, parameters)
                except TypeError:
                    return self._write(operation, stmt, desc, flags, parameters)
                self._rows = _EMPTY
                self.description = None
                self.rowcount = r.changes if flags & _F_DML else -1
                self.lastrowid = r.lastrowid
                return self
            return self._write(operation, stmt, desc, flags, parameters)
        if kind == _K_CONTROL:
            if parameters:
                raise ProgrammingError("transaction-control statements take no parameters")
            conn._control(stmt, flags)
            self._rows = _EMPTY
            self._pos = 0
            self.description = None
            self.rowcount = -1
            return self
        if kind == _K_READ_W:
            return self._read_writer(stmt, desc, parameters, operation)
        return self._special(operation, stmt, desc, flags, parameters)

    def _refresh(self, operation: str, ncols: int) -> Any:
        """The rows do not match the cached description: the schema changed
        under a cached Statement (``SELECT *`` after DDL by another process).
        Recompile once; positional names if that does not help."""
        self._conn._shared.stmts.pop(operation, None)
        try:
            desc = self._conn._compile(operation)[2]
        except Error:
            desc = None
        if desc is None or len(desc) != ncols:
            desc = _description(tuple(f"column{i + 1}" for i in range(ncols)))
        return desc

    def _set_rows(self, rows: Sequence[tuple[Any, ...]], desc: Any) -> None:
        if desc is None:
            desc = (
                _description(tuple(f"column{i + 1}" for i in range(len(rows[0])))) if rows else None
            )
        self._rows = rows
        self._pos = 0
        self.description = desc

    def _read_writer(self, stmt: Any, desc: Any, parameters: Any, operation: str) -> Cursor:
        conn = self._conn
        if isinstance(stmt, str):
            # SQL text that only the writer can compile.
            if conn._tx is not None:
                self._text_rows(conn._tx, stmt, parameters)
            else:
                tx = conn._db.begin()  # type: ignore[union-attr]
                try:
                    self._text_rows(tx, stmt, parameters)
                finally:
                    tx.commit()
            return self
        try:
            if conn._tx is not None:
                rows = conn._tx.fetchall(stmt, parameters)
            elif conn._readonly:
                rows = conn._snapshot().fetchall(stmt, parameters)
            else:
                rows = conn._writer_read(stmt, parameters)
        except TypeError as e:
            if not _needs_adapt(parameters):
                raise _bind_error(e) from None
            return self._read_writer(stmt, desc, _adapt(parameters), operation)
        if rows and desc is not None and len(rows[0]) != len(desc):
            desc = self._refresh(operation, len(rows[0]))
        self._rows = rows
        self._pos = 0
        self.description = desc
        self.rowcount = -1
        return self

    def _write(self, operation: str, stmt: Any, desc: Any, flags: int, parameters: Any) -> Cursor:
        conn = self._conn
        target, began = conn._write_target()
        try:
            if isinstance(stmt, str) and flags & _F_ROWS:
                self._text_rows(target, stmt, parameters)
            elif flags & _F_ROWS:
                rows = target.fetchall(stmt, parameters)
                if rows and len(rows[0]) != len(desc):
                    desc = self._refresh(operation, len(rows[0]))
                self._rows = rows
                self._pos = 0
                self.description = desc
                self.rowcount = len(rows) if flags & _F_DML else -1
            else:
                r = target.execute(stmt, parameters)
                self._rows = _EMPTY
                self._pos = 0
                self.description = None
                self.rowcount = r.changes if flags & _F_DML else -1
                self.lastrowid = r.lastrowid
        except TypeError as e:
            if began:
                conn._end(False)
            if not _needs_adapt(parameters):
                raise _bind_error(e) from None
            return self.execute(operation, _adapt(parameters))
        except BaseException:
            if began:
                conn._end(False)  # nothing was written: give the writer back
            raise
        if flags & (_F_DDL | _F_TEMP):
            sh = conn._shared
            sh.invalidate()
            if flags & _F_TEMP:
                sh.temp = True
                conn._pin()
            if conn._tx is not None:
                conn._tx_ddl = True
        return self

    def _text_rows(self, target: Any, sql: str, parameters: Any) -> None:
        """Run SQL text returning rows where no Statement could be compiled
        (inside a transaction that changed the schema)."""
        dicts = target.query(sql, parameters)
        if dicts:
            names = tuple(dicts[0].keys())
            rows = [tuple(d.values()) for d in dicts]
            desc = _description(names)
        else:
            rows = []
            desc = self._explain_description(target, sql, parameters)
        self._rows = rows
        self._pos = 0
        self.description = desc
        self.rowcount = -1

    @staticmethod
    def _explain_description(target: Any, sql: str, parameters: Any) -> Any:
        try:
            ops = target.fetchall("EXPLAIN " + sql, parameters)
        except Error:
            return None
        n = 0
        for op in ops:
            if op[1] == "ResultRow":
                n = max(n, int(op[3]))
        if n == 0:
            return None
        return _description(tuple(f"column{i + 1}" for i in range(n)))

    def _special(self, operation: str, stmt: Any, desc: Any, flags: int, parameters: Any) -> Cursor:
        """PRAGMA / ATTACH / DETACH / VACUUM.

        PRAGMA queries run by SQL text (a compiled PRAGMA keeps the schema
        it was compiled against): inside the transaction or snapshot if one
        is open, else in a short read snapshot, whose ``BEGIN`` makes the
        reader reload a schema changed by the writer.
        """
        conn = self._conn
        db = conn._db
        if conn._tx is not None or conn._snap is not None or conn._readonly:
            t = conn._tx if conn._tx is not None else conn._snapshot()
            if stmt is None:
                self._text_rows(t, operation, parameters)
            elif flags & _F_ROWS:
                self._set_rows(t.fetchall(operation, parameters), desc)
            else:
                t.execute(operation, parameters)
                self._set_rows(_EMPTY, None)
        elif flags & (_F_ATTACH | _F_DETACH):
            if flags & _F_ATTACH:
                m = _ATTACH_RE.match(operation.strip())
                if m and conn._shared.attached.get(_unquote(m.group(2))) == m.group(1):
                    # Already attached on the shared writer.
                    self._set_rows(_EMPTY, None)
                    self.rowcount = -1
                    return self
            db.execute(operation, parameters)  # type: ignore[union-attr]  # SQL text: the writer
            conn._after_special(flags, operation)
            self._set_rows(_EMPTY, None)
        elif flags & _F_ASSIGN or (stmt is not None and not flags & _F_ROWS):
            # Settings and VACUUM: on the writer, outside any transaction.
            if flags & _F_ROWS and not stmt.readonly:
                rows = db.fetchall(stmt, parameters)  # type: ignore[union-attr]
            else:
                db.execute(operation, parameters)  # type: ignore[union-attr]
                rows = []
            self._set_rows(rows, desc if rows else None)
        elif stmt is not None and not stmt.readonly:
            # journal_mode, wal_checkpoint, optimize...: the writer.
            self._set_rows(db.fetchall(stmt, parameters), desc)  # type: ignore[union-attr]
        elif stmt is None or conn._shared.pinned:
            if stmt is not None:
                self._set_rows(conn._writer_read(operation, parameters), desc)
            else:
                tx = db.begin()  # type: ignore[union-attr]
                try:
                    self._text_rows(tx, operation, parameters)
                finally:
                    tx.commit()
        else:
            with db.read() as snap:  # type: ignore[union-attr]
                rows = snap.fetchall(operation, parameters)
            self._set_rows(rows, desc)
        self.rowcount = -1
        return self

    def executemany(self, operation: str, seq_of_parameters: Iterable[Any]) -> Cursor:
        conn = self._conn
        if self._closed or conn._db is None:
            self._fail_closed()
        entry = None if conn._tx_ddl else conn._shared.stmts.get(operation)
        if entry is None:
            entry = conn._compile(operation)
        kind, stmt, _desc, flags = entry
        if kind != _K_WRITE or flags & _F_ROWS:
            raise ProgrammingError(
                "executemany() can only execute DML statements without RETURNING"
            )
        if not isinstance(seq_of_parameters, (list, tuple)):
            seq_of_parameters = list(seq_of_parameters)
        if conn._tx is None and conn._readonly:
            raise OperationalError("attempt to write a readonly database (read-only connection)")
        target, began = conn._write_target()
        try:
            r = target.executemany(stmt, seq_of_parameters)
        except TypeError as e:
            if began:
                conn._end(False)
            if not any(_needs_adapt(p) for p in seq_of_parameters):
                raise _bind_error(e) from None
            return self.executemany(operation, [_adapt(p) for p in seq_of_parameters])
        except BaseException:
            if began:
                conn._end(False)
            raise
        self._rows = _EMPTY
        self._pos = 0
        self.description = None
        self.rowcount = r.changes if flags & _F_DML else -1
        self.lastrowid = r.lastrowid
        if flags & (_F_DDL | _F_TEMP):
            conn._shared.invalidate()
        return self

    # -- fetch ---------------------------------------------------------------

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._closed:
            self._fail_closed()
        pos = self._pos
        rows = self._rows
        if pos < len(rows):
            self._pos = pos + 1
            return rows[pos]
        return None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        if self._closed:
            self._fail_closed()
        if size is None:
            size = self.arraysize
        pos = self._pos
        out = self._rows[pos : pos + size]
        if not out:
            return []
        self._pos = pos + len(out)
        return list(out)

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._closed:
            self._fail_closed()
        pos = self._pos
        rows = self._rows
        self._rows = _EMPTY
        self._pos = 0
        if not rows:
            return []
        return rows if pos == 0 else list(rows[pos:])  # type: ignore[return-value]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self

    def __next__(self) -> tuple[Any, ...]:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def setinputsizes(self, sizes: Sequence[Any]) -> None:
        pass

    def setoutputsize(self, size: int, column: int | None = None) -> None:
        pass

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
