"""The native session (Rust, PyO3, over honker-core).

One ``Database`` per open file: a single writer connection (the writer
slot, ``BEGIN IMMEDIATE`` transactions) and a bounded pool of reader
connections (``PRAGMA query_only``) that open lazily. SQLite runs with the
GIL released while it steps a statement or waits for a lock, and threads
that wait for the writer slot or a reader wait with the GIL released too.
Errors are the PEP 249 classes below, chosen from SQLite's extended result
code the way the stdlib :mod:`sqlite3` module chooses them.

Parameters (``params``): a sequence for ``?``/``?NNN`` placeholders, a
mapping for ``:name``/``@name``/``$name``, or None for none. A str or bytes
is refused with ``ProgrammingError``; a wrong number of values or a missing
name raises ``ProgrammingError``. Values: see :data:`Value`. Rows are tuples
whose items are None, int, float, str or bytes.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from types import TracebackType
from typing import Any, Final, Literal, Self, final

Value = None | bool | int | float | str | bytes | bytearray | memoryview
"""A value that can be bound to a parameter: None, bool (stored as 0/1),
int (64-bit; larger raises ``OverflowError``), float, str, bytes, bytearray
or memoryview (stored as a BLOB). Anything else raises ``TypeError`` naming
the parameter."""

Params = Sequence[Value] | Mapping[str, Value] | None
"""Parameters of one statement: a sequence (positional ``?``), a mapping
(keys without the ``:``/``@``/``$`` prefix) or None."""

Row = tuple[Any, ...]
"""One result row: a tuple of None, int, float, str or bytes, in column
order. Text that is not valid UTF-8 raises ``DataError`` naming the column."""

StatementKind = Literal["read", "write", "read_writes", "transaction", "connection"]
"""Where a statement runs (see :attr:`Statement.kind`)."""

ControlAction = Literal["begin", "commit", "rollback", "savepoint", "release", "rollback_to"]
"""The action of a transaction-control statement (see :attr:`Statement.control`)."""

sqlite_version_number: Final[int]
"""Version of the bundled SQLite as a number, e.g. ``3045000`` for 3.45.0."""

def sqlite_version() -> str:
    """Version of the SQLite library compiled into this module, e.g.
    ``"3.45.0"`` (the bundled one, never the system library)."""

def _panic_for_tests() -> None:
    """Raise a Rust panic (for the tests: a panic surfaces as a Python
    exception and never aborts the process)."""

def cron_next_after(expr: str, from_unix: int) -> int:
    """Next fire time (unix seconds) of the cron expression ``expr`` strictly
    after ``from_unix``, in local time with DST handled (honker-core's
    parser: 5 or 6 fields, or ``@every <duration>``). Raises ``ValueError``
    naming an invalid expression."""

def encode_payload(obj: object, what: str = "payload") -> str:
    """JSON text of a payload: compact (``,`` and ``:`` separators) and
    strict (NaN and the infinities are refused). The one payload codec of
    the package. Raises ``TypeError`` naming ``what`` and the payload's
    type when it cannot be encoded (nothing is written)."""

@final
class Statement:
    """A prepared statement from ``prepare()``: SQL compiled once per
    connection of its Database (on first use there) and reused without
    re-parsing. Immutable and safe to share between threads; usable with
    the Database that prepared it and its transactions and snapshots
    (another Database raises ``ProgrammingError``)."""

    @property
    def sql(self) -> str:
        """The SQL text, as given to ``prepare()``."""
    @property
    def columns(self) -> tuple[str, ...]:
        """Result column names as prepared (empty for statements that
        return no rows)."""
    @property
    def param_count(self) -> int:
        """Number of parameters the statement takes."""
    @property
    def param_names(self) -> tuple[str | None, ...]:
        """Name of each parameter without its ``:``/``@``/``$`` prefix, None
        for positional ones, in parameter order."""
    @property
    def readonly(self) -> bool:
        """True when the statement only reads (``kind == "read"``)."""
    @property
    def kind(self) -> StatementKind:
        """Where the statement belongs, classified once when it was compiled
        (from what SQLite reports while compiling it, never from its text):
        ``"read"`` runs on a reader; ``"write"`` (DML, DDL) on the writer;
        ``"read_writes"`` (a read calling a function that writes, such as
        ``notify()``) on the writer inside ``BEGIN IMMEDIATE``;
        ``"transaction"`` (BEGIN, COMMIT, ROLLBACK [TO], SAVEPOINT, RELEASE)
        is never executed by the native layer; ``"connection"`` (ATTACH,
        DETACH, VACUUM, a PRAGMA setting) on the writer outside any
        transaction."""
    @property
    def control(self) -> tuple[ControlAction, str | None] | None:
        """For ``kind == "transaction"``: the action and the savepoint name
        as SQLite parsed it (dequoted; None for BEGIN/COMMIT/ROLLBACK).
        None for every other kind."""
    @property
    def is_ddl(self) -> bool:
        """True for CREATE, DROP, ALTER, REINDEX and ANALYZE statements."""
    @property
    def uses_temp(self) -> bool:
        """True when the statement creates, drops or names a TEMP object
        (those exist only on the writer connection)."""
    @property
    def decltypes(self) -> tuple[str | None, ...]:
        """Declared type of each result column (``CREATE TABLE`` text such as
        ``"INTEGER"``), None for a column that is an expression."""

@final
class ExecResult:
    """Result of ``execute``/``executemany``: ``ExecResult(changes,
    lastrowid)``. Unpacks as ``changes, lastrowid = result``; compares equal
    by value."""

    changes: Final[int]
    """Rows inserted, updated or deleted by the statement (summed over an
    ``executemany``); 0 for a statement that changed no rows."""
    lastrowid: Final[int]
    """``sqlite3_last_insert_rowid()`` of the connection that ran the
    statement, read right after it (after the last parameter set for
    ``executemany``). Only meaningful after an INSERT on the writer."""
    def __init__(self, changes: int, lastrowid: int) -> None:
        """Build a result (for tests and adapters)."""
    def __iter__(self) -> Iterator[int]:
        """Iterate ``changes`` then ``lastrowid``."""

@final
class RowIterator:
    """Streams the rows of one statement, one tuple at a time (bounded
    memory). From ``Database.iterate`` it holds a reader of its own until it
    is exhausted, closed or garbage collected; from a Transaction or Snapshot
    it reads on that session's connection and ends with it (a later
    ``next()`` raises ``InterfaceError``). Each ``next()`` steps SQLite with
    the GIL released."""

    def __iter__(self) -> Self:
        """The iterator itself."""
    def __next__(self) -> Row:
        """The next row; ``StopIteration`` when done (the connection is then
        given back)."""
    def close(self) -> None:
        """Stop early and give the connection back (idempotent)."""
    def __enter__(self) -> Self:
        """The iterator itself; leaving the block closes it."""
    def __exit__(self, *args: object) -> bool:
        """Close the iterator; never suppresses an exception."""

@final
class Savepoint:
    """A nested savepoint of a Transaction, from ``tx.savepoint()``:
    ``with tx.savepoint():`` runs SAVEPOINT, then RELEASE on success or
    ROLLBACK TO (and RELEASE) on an exception. Savepoints nest and must end
    innermost first."""

    @property
    def active(self) -> bool:
        """True between entering the savepoint and releasing or rolling it
        back."""
    def __enter__(self) -> Self:
        """Start the savepoint. Raises ``ProgrammingError`` if it is already
        active, ``InterfaceError`` if the transaction is not active."""
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        _exc: BaseException | None = None,
        _tb: TracebackType | None = None,
    ) -> bool:
        """RELEASE without an exception, ROLLBACK TO with one; nothing if it
        was already released or rolled back. Never suppresses the
        exception."""
    def release(self) -> None:
        """Keep the savepoint's changes (RELEASE). Raises ``InterfaceError``
        if it is not active or its transaction ended, ``ProgrammingError``
        if an inner savepoint is still active."""
    def rollback(self) -> None:
        """Undo the savepoint's changes (ROLLBACK TO, then RELEASE). Same
        errors as :meth:`release`."""

@final
class Transaction:
    """A write transaction on the writer slot (``BEGIN IMMEDIATE``), from
    ``db.transaction()`` (begins on ``with``) or ``db.begin()`` (already
    begun). ``with`` commits on success and rolls back on an exception;
    a transaction that is garbage collected while active rolls back.

    It holds the Database's single writer connection until it ends: other
    threads wait for the slot with the GIL released. A transaction belongs
    to one thread at a time (concurrent use raises ``ProgrammingError``).
    Its statements see its own uncommitted changes. After ``db.close()`` it
    can only end, rolling back (``commit()`` raises ``InterfaceError``)."""

    @property
    def active(self) -> bool:
        """True between begin and commit/rollback."""
    def __enter__(self) -> Self:
        """Begin (``BEGIN IMMEDIATE``, waiting for the writer slot with the
        GIL released) unless already begun. Raises ``InterfaceError`` if the
        transaction has ended."""
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        _exc: BaseException | None = None,
        _tb: TracebackType | None = None,
    ) -> bool:
        """Commit without an exception, roll back with one, and give the
        writer slot back; nothing if already ended. A failed COMMIT rolls
        back and raises. Never suppresses the exception."""
    def commit(self) -> None:
        """Commit and give the writer slot back. A failed COMMIT rolls back
        and raises. Raises ``InterfaceError`` if not active."""
    def rollback(self) -> None:
        """Roll back and give the writer slot back. Raises
        ``InterfaceError`` if not active."""
    def execute(self, stmt: Statement | str, params: Params = None) -> ExecResult:
        """Run one statement (a Statement or SQL text) in this transaction;
        rows it returns are discarded. Transaction control SQL (BEGIN,
        COMMIT, SAVEPOINT, ...) raises ``ProgrammingError``: use this object
        and :meth:`savepoint`."""
    def executemany(
        self, stmt: Statement | str, seq_of_params: Iterable[Params]
    ) -> ExecResult:
        """Run one statement for every parameter set, all or nothing (inside
        a savepoint: on an error nothing of this call remains and the error
        notes which parameter set failed). Returns the summed ``changes`` and
        the last ``lastrowid``."""
    def fetchone(self, stmt: Statement | str, params: Params = None) -> Row | None:
        """First row as a tuple, or None when there is none. A writing
        statement (``INSERT ... RETURNING``) still runs to completion."""
    def fetchall(self, stmt: Statement | str, params: Params = None) -> list[Row]:
        """All rows as a list of tuples."""
    def query(self, sql: Statement | str, params: Params = None) -> list[dict[str, Any]]:
        """All rows as dicts keyed by column name (honker-compatible)."""
    def iterate(self, stmt: Statement | str, params: Params = None) -> RowIterator:
        """Stream rows one at a time on this transaction's connection. The
        iterator ends when the transaction does."""
    def executescript(self, sql: str) -> None:
        """Run several statements (no parameters) in this transaction, all or
        nothing (inside a savepoint). Transaction control in the script
        raises ``ProgrammingError``."""
    def notify(self, channel: str, payload: Any) -> int:
        """honker's ``notify()`` inside this transaction: the notification is
        delivered only if the transaction commits. ``payload`` is encoded as
        strict compact JSON (``TypeError`` naming its type if it cannot be,
        nothing written); ``channel`` must be a non-empty str (``TypeError``
        / ``ValueError``). Returns the notification id."""
    def bootstrap_honker_schema(self) -> None:
        """Create honker's tables in this transaction (idempotent)."""
    def savepoint(self) -> Savepoint:
        """A nested savepoint: ``with tx.savepoint():``. It starts when
        entered."""
    def prepare(self, sql: str) -> Statement:
        """Compile ``sql`` on this transaction's connection, so it sees the
        schema this transaction changed. The Statement stays usable anywhere
        on the Database afterwards."""

@final
class Snapshot:
    """A consistent read snapshot on a reader (a deferred ``BEGIN``), from
    ``db.read()``: every statement inside ``with db.read() as snap:`` sees
    the same committed state. Never blocks the writer; writes inside it fail
    (the reader is ``query_only``). Holds one reader until it ends; belongs
    to one thread at a time."""

    @property
    def active(self) -> bool:
        """True between entering and closing the snapshot."""
    def __enter__(self) -> Self:
        """Take a reader (waiting with the GIL released if all are busy) and
        begin the snapshot. Raises ``ProgrammingError`` if already begun,
        ``InterfaceError`` if it has ended, and ``ProgrammingError`` if this
        thread already holds every reader."""
    def __exit__(self, *args: object) -> bool:
        """End the snapshot and give the reader back; never suppresses an
        exception."""
    def close(self) -> None:
        """End the snapshot early (idempotent)."""
    def prepare(self, sql: str) -> Statement:
        """Compile ``sql`` on this snapshot's reader. The Statement stays
        usable anywhere on the Database afterwards."""
    def execute(self, stmt: Statement | str, params: Params = None) -> ExecResult:
        """Run one statement in the snapshot (a write fails with
        ``OperationalError``: the reader is read-only)."""
    def fetchone(self, stmt: Statement | str, params: Params = None) -> Row | None:
        """First row as a tuple, or None when there is none."""
    def fetchall(self, stmt: Statement | str, params: Params = None) -> list[Row]:
        """All rows as a list of tuples."""
    def query(self, sql: Statement | str, params: Params = None) -> list[dict[str, Any]]:
        """All rows as dicts keyed by column name (honker-compatible)."""
    def iterate(self, stmt: Statement | str, params: Params = None) -> RowIterator:
        """Stream rows one at a time on this snapshot's reader. The iterator
        ends when the snapshot does."""

@final
class UpdateSubscription:
    """Wake-ups on every commit to the database file, from any process,
    through the process's one update watcher thread (it polls each watched
    file's WAL-index header, docs/0012-one-watcher.md). Ticks coalesce:
    after a wake-up, re-read the state you care about. A deleted or
    replaced file ends it with ``InterfaceError`` naming the path."""

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block with the GIL released until a commit is observed (True) or
        ``timeout_s`` seconds pass (False; None waits without limit).
        Raises ``ValueError`` for a negative or non-finite timeout and
        ``InterfaceError`` once the subscription or the Database is closed,
        or the file was deleted or replaced."""
    def forward_to(self, sink: WakeSink, key: int) -> None:
        """Also report ticks and the end of this subscription to ``sink`` as
        ``key`` (consume a tick with ``wait(0)``)."""
    def close(self) -> None:
        """Stop receiving ticks (idempotent); a thread blocked in
        :meth:`wait` wakes with ``InterfaceError``."""

class WakeSink:
    """One thread waiting on many subscriptions (the process's asyncio wake
    bridge): keys of forwarded subscriptions that got a tick or ended."""

    def __init__(self) -> None: ...
    def wait(self, timeout_s: float | None = None) -> list[int]:
        """Block with the GIL released for keys (an empty list on timeout);
        ``InterfaceError`` once closed."""
    def close(self) -> None:
        """Wake every waiter with ``InterfaceError`` (idempotent)."""

class Database:
    """An open database file: one writer slot and a bounded pool of reader
    connections, with honker-core's PRAGMA defaults (WAL,
    ``synchronous=NORMAL``, foreign keys on; waits bounded by ``timeout``,
    5 s by default), ``notify()`` and every ``honker_*`` SQL function. Safe to
    share between threads.

    Outside a transaction, reads run on a reader and see the latest
    committed state; writes run on the writer as their own short
    transaction. Where a statement runs is decided once, by its
    :attr:`Statement.kind` (a read whose SQL functions write,
    ``SELECT notify(...)``, runs on the writer inside ``BEGIN IMMEDIATE``).
    Transaction control SQL is refused with ``ProgrammingError``: use
    :meth:`transaction`, ``tx.savepoint()`` and :meth:`read`.

    Every Database object opened on the same file in one process is a
    handle on one shared engine (one writer slot, one reader pool, one
    watcher): statements and transactions of one handle work with the
    others; ``close()`` closes this handle, the engine closes with its last
    handle.
    """

    def __init__(
        self,
        path: str | bytes | PathLike[str] | PathLike[bytes],
        *,
        max_readers: int | None = None,
        watcher_poll_interval_ms: float | None = None,
        timeout: float | None = None,
    ) -> None:
        """Open (creating if needed) the file at ``path``; the writer opens
        now (GIL released), readers on demand. ``max_readers`` bounds the
        reader pool (at least 1); ``watcher_poll_interval_ms`` sets the poll
        period of the update watcher (positive; default 1 ms); ``timeout``
        (seconds, default 5.0) bounds every wait for the writer slot, a
        reader or another process's lock (``OperationalError`` naming the
        holder when it expires). Options apply when the file's engine is
        created; a different explicit value for an engine already open
        raises ``ValueError``. Raises
        ``ValueError`` for an empty path, an in-memory database
        (``":memory:"``, ``mode=memory``) or a path that is not UTF-8, and a
        database error (with a note naming the path) if the file cannot be
        opened."""
    @property
    def path(self) -> str:
        """Path of the database file, as given."""
    @property
    def timeout(self) -> float:
        """Seconds any wait for a connection may last (default 5.0)."""
    @property
    def shared_handles(self) -> int:
        """Open Database objects on this file's engine in this process."""
    @property
    def max_readers(self) -> int:
        """Upper bound of the reader pool."""
    @property
    def open_readers(self) -> int:
        """Reader connections currently open (they open lazily)."""
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
    def prepare(self, sql: str) -> Statement:
        """Compile one SQL statement into a reusable :class:`Statement`.
        Invalid SQL raises here with SQLite's message (``OperationalError``);
        an empty text or more than one statement raises
        ``ProgrammingError``. Compiled on a reader (on the writer when it
        names a TEMP or attached object only the writer sees)."""
    def execute(self, stmt: Statement | str, params: Params = None) -> ExecResult:
        """Run one statement; rows it returns are discarded. A write runs on
        the writer as its own transaction (waiting for the writer slot with
        the GIL released; a thread that holds the slot in an open
        transaction gets ``ProgrammingError`` instead of a deadlock). SQL
        text always runs on the writer; a read-only Statement runs on a
        reader."""
    def executemany(
        self, stmt: Statement | str, seq_of_params: Iterable[Params]
    ) -> ExecResult:
        """Run one statement for every parameter set in one ``BEGIN
        IMMEDIATE`` transaction on the writer: all rows or none (the error
        notes which parameter set failed). Returns the summed ``changes``
        and the last ``lastrowid``. Ctrl-C interrupts it and rolls back."""
    def fetchone(self, stmt: Statement | str, params: Params = None) -> Row | None:
        """First row as a tuple, or None. Runs on a reader (the writer if
        the statement writes, e.g. ``INSERT ... RETURNING``, which still runs
        to completion)."""
    def fetchall(self, stmt: Statement | str, params: Params = None) -> list[Row]:
        """All rows as a list of tuples, from a reader (the writer if the
        statement writes). Ctrl-C interrupts a long read."""
    def query(self, sql: Statement | str, params: Params = None) -> list[dict[str, Any]]:
        """All rows as dicts keyed by column name (honker-compatible), from
        a reader (the writer if the statement writes)."""
    def iterate(self, stmt: Statement | str, params: Params = None) -> Iterator[Row]:
        """Stream rows one at a time (bounded memory). A read gets a
        :class:`RowIterator` holding a reader of its own until it is
        exhausted or closed; a writing statement (``INSERT ... RETURNING``)
        runs on the writer first and its rows are then iterated."""
    def executescript(self, sql: str) -> None:
        """Run a script of several statements (no parameters) on the writer
        as one ``BEGIN IMMEDIATE`` transaction: a failing statement leaves
        nothing written. Transaction control in the script raises
        ``ProgrammingError``; VACUUM cannot run in a transaction (use
        ``execute("VACUUM")``)."""
    def transaction(self) -> Transaction:
        """A write transaction (honker-compatible) that begins on ``with``:
        ``with db.transaction() as tx:`` commits on success and rolls back
        on an exception."""
    def begin(self) -> Transaction:
        """A write transaction that has already begun (``BEGIN IMMEDIATE``,
        waiting for the writer slot with the GIL released), for explicit
        ``commit()``/``rollback()``."""
    def try_begin(self) -> Transaction | None:
        """A write transaction already begun, if beginning needs no wait:
        the writer slot is free and no other process holds the file's
        write lock. Otherwise None, at once (never waits, never sleeps);
        the fast path of the async writes (docs/0020)."""
    def read(self) -> Snapshot:
        """A consistent read snapshot that begins on ``with``:
        ``with db.read() as snap:``."""
    def bootstrap_honker_schema(self) -> None:
        """Create honker's tables in one write transaction (idempotent)."""
    def subscribe_updates(self) -> UpdateSubscription:
        """Subscribe to commit wake-ups on this file (from any process),
        through the one shared update watcher of this Database (started on
        first use)."""
    def create_function(
        self,
        name: str,
        narg: int,
        func: Callable[..., Value],
        *,
        deterministic: bool = False,
    ) -> None:
        """Register ``func`` as an SQL function on every connection of this
        Database (the writer and each reader, from its next statement on),
        like ``sqlite3.Connection.create_function``. ``narg`` is its number
        of arguments (-1: any, up to 127); ``deterministic`` lets SQLite use
        it in indexes and constant-fold it. Arguments arrive as None, int,
        float, str or bytes; return one of those (or bool, bytearray,
        memoryview). An exception in ``func`` fails the statement with
        ``OperationalError`` naming it. ``func`` runs in whichever thread
        steps the statement, with the GIL taken for the call. Registering
        the same name and ``narg`` again replaces it. Raises ``TypeError``
        for a name that is not a str or a ``func`` that is not callable,
        ``ValueError`` for an empty name (or over 255 bytes, or with NUL)
        or ``narg`` out of range."""
    def close(self) -> None:
        """Close every idle connection and stop the update watcher
        (idempotent; the GIL is released meanwhile). Connections still held
        by open transactions, snapshots or iterators close when those end;
        they can then only end (a transaction rolls back)."""
    def __enter__(self) -> Self:
        """The Database itself; leaving the block closes it."""
    def __exit__(self, *args: object) -> bool:
        """Close the Database; never suppresses an exception."""
