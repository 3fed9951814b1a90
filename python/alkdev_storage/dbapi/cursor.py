"""The DB-API :class:`Cursor`: runs statements where their kind says and
holds the result (read completely by the execute call)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from alkdev_storage.dbapi._statements import (
    CONNECTION,
    F_DDL,
    F_DML,
    F_ROWS,
    F_SLOW,
    F_TEMP,
    PINNED_READ,
    READ,
    TRANSACTION,
    WRITE,
    Entry,
)
from alkdev_storage.dbapi._types import Description, positional_description
from alkdev_storage.errors import Error, OperationalError, ProgrammingError

if TYPE_CHECKING:
    from alkdev_storage.dbapi.connection import Connection

__all__ = ["Cursor"]

Row = tuple[Any, ...]
#: The exhausted result set (never handed out: ``fetchall`` returns a new list).
_EMPTY: list[Row] = []


def _adapt_value(v: Any) -> Any:
    if isinstance(v, _dt.datetime):
        return v.isoformat(" ")
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    return v


def _adapt(params: Any) -> Any:
    """The PEP 249 date/time values of one parameter set as ISO-8601 text
    (the stdlib ``sqlite3`` module's former default adapters)."""
    if params is None or isinstance(params, (str, bytes, bytearray)):
        return params
    if isinstance(params, Mapping):
        return {k: _adapt_value(v) for k, v in params.items()}
    return tuple(_adapt_value(v) for v in params)


def _needs_adapt(params: Any) -> bool:
    if params is None or isinstance(params, (str, bytes, bytearray)):
        return False
    vals: Iterable[Any] = params.values() if isinstance(params, Mapping) else params
    try:
        return any(isinstance(v, (_dt.date, _dt.time)) for v in vals)
    except TypeError:
        return False


def _bind_error(e: TypeError) -> ProgrammingError:
    err = ProgrammingError(f"error binding parameters: {e}")
    err.__cause__ = e
    return err


class Cursor:
    """A DB-API cursor. The execute call reads the whole result (one native
    call); the fetch methods then slice the list of tuples. Fetching after
    a statement that produced no result set raises ``ProgrammingError``."""

    # Class-level defaults: creating a cursor sets one attribute.
    _closed = False
    _rows: list[Row] | None = None  # None: no result set
    _pos = 0
    description: Description | None = None
    rowcount = -1
    lastrowid: int | None = None
    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def __repr__(self) -> str:
        if self._closed:
            return f"<{type(self).__module__}.Cursor closed>"
        if self._rows is None:
            result = "no result set"
        else:
            result = f"{len(self._rows) - self._pos} rows to fetch"
        return f"<{type(self).__module__}.Cursor {result}, rowcount={self.rowcount}>"

    @property
    def connection(self) -> Connection:
        """The :class:`Connection` this cursor belongs to."""
        return self._conn

    def close(self) -> None:
        """Drop the result; later calls raise ``ProgrammingError``."""
        self._closed = True
        self._rows = None
        self.description = None

    def _fail_closed(self) -> NoReturn:
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed cursor.")
        raise ProgrammingError("Cannot operate on a closed connection.")

    # -- results -------------------------------------------------------------

    def _result(self, rows: list[Row], desc: Description | None, rowcount: int) -> None:
        """A result set (possibly empty)."""
        self._rows = rows
        self._pos = 0
        self.description = desc
        self.rowcount = rowcount

    def _no_result(self, rowcount: int = -1, lastrowid: int | None = None) -> None:
        """A statement that produced no result set."""
        self._rows = None
        self._pos = 0
        self.description = None
        self.rowcount = rowcount
        if lastrowid is not None:
            self.lastrowid = lastrowid

    def _checked(self, operation: str, rows: list[Row], desc: Description | None) -> Any:
        """``desc``, or a fresh one when the rows no longer match it: the
        schema changed under a cached Statement (``SELECT *`` after DDL by
        another process). Recompile once; positional names if that does
        not help."""
        if not rows or (desc is not None and len(rows[0]) == len(desc)):
            return desc
        ncols = len(rows[0])
        conn = self._conn
        conn._shared.stmts.pop(operation, None)
        try:
            desc = conn._compile(operation)[2]
        except Error:
            desc = None
        if desc is None or len(desc) != ncols:
            desc = positional_description(ncols)
        return desc

    # -- execute -------------------------------------------------------------

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        """Run one statement (``?`` or named parameters). Reads run in the
        open transaction or snapshot, else on a reader; writes begin the
        write transaction; transaction-control SQL drives the native
        Transaction; see :mod:`alkdev_storage.dbapi`."""
        conn = self._conn
        db = conn._open_db
        if self._closed or db is None:
            self._fail_closed()
        entry = None if conn._tx_ddl else conn._shared.stmts.get(operation)
        if entry is None:
            entry = conn._compile(operation)
        kind, stmt, desc, flags = entry
        try:
            if kind == READ:  # the hot read
                tx = conn._tx
                if tx is not None:
                    rows = tx.fetchall(stmt, parameters)
                elif conn._readonly:
                    rows = conn._snapshot().fetchall(stmt, parameters)
                else:
                    rows = db.fetchall(stmt, parameters)
                if rows and len(rows[0]) != len(desc):
                    desc = self._checked(operation, rows, desc)
                self._rows = rows
                self._pos = 0
                self.description = desc
                self.rowcount = -1
                return self
            tx = conn._tx
            if kind == WRITE and tx is not None and not flags & F_SLOW:
                # The hot write: DML without RETURNING inside the transaction.
                r = tx.execute(stmt, parameters)
                self._rows = None
                self.description = None
                self.rowcount = r.changes if flags & F_DML else -1
                self.lastrowid = r.lastrowid
                return self
            self._route(entry, operation, parameters)
        except TypeError as e:
            if not _needs_adapt(parameters):
                raise _bind_error(e) from None
            return self.execute(operation, _adapt(parameters))
        return self

    def _route(self, entry: Entry, operation: str, parameters: Any) -> None:
        """Run ``entry`` where its kind and flags say (every case but the two
        inline in :meth:`execute`)."""
        kind, stmt, desc, flags = entry
        conn = self._conn
        if kind == TRANSACTION:
            if parameters:
                raise ProgrammingError("transaction-control statements take no parameters")
            action, name = stmt.control
            conn._control(action, name)
            self._no_result()
            return
        open_tx = conn._tx if conn._tx is not None else conn._snap
        if open_tx is None and conn._readonly:
            open_tx = conn._snapshot()
        if kind == PINNED_READ:
            if open_tx is not None:
                rows = open_tx.fetchall(stmt, parameters)
            else:
                rows = conn._writer_read(stmt, parameters)
            self._result(rows, self._checked(operation, rows, desc), -1)
        elif kind == CONNECTION:
            if open_tx is not None:
                # In the transaction (or snapshot): SQLite refuses what
                # cannot run there (ATTACH, VACUUM) with a clear error.
                rows = open_tx.fetchall(stmt, parameters)
            else:
                rows = conn._shared.run_connection_level(stmt, parameters)
            if flags & F_ROWS:
                self._result(rows, desc, -1)
            else:
                self._no_result()
        else:  # WRITE, READ_WRITES
            self._write(entry, operation, parameters)

    def _write(self, entry: Entry, operation: str, parameters: Any) -> None:
        _kind, stmt, desc, flags = entry
        conn = self._conn
        target, began = conn._write_target()
        try:
            if flags & F_ROWS:
                rows = target.fetchall(stmt, parameters)
                rowcount = len(rows) if flags & F_DML else -1
                self._result(rows, self._checked(operation, rows, desc), rowcount)
            else:
                r = target.execute(stmt, parameters)
                self._no_result(r.changes if flags & F_DML else -1, r.lastrowid)
        except BaseException:
            if began:
                conn._end_tx(False)  # nothing was written: give the writer back
            raise
        if flags & (F_DDL | F_TEMP):
            conn._schema_changed(bool(flags & F_TEMP))

    def executemany(self, operation: str, seq_of_parameters: Iterable[Any]) -> Cursor:
        """Run a DML statement (without ``RETURNING``) once per parameter
        set, all in the write transaction: every row or none."""
        conn = self._conn
        if self._closed or conn._open_db is None:
            self._fail_closed()
        entry = None if conn._tx_ddl else conn._shared.stmts.get(operation)
        if entry is None:
            entry = conn._compile(operation)
        kind, stmt, _desc, flags = entry
        if kind != WRITE or flags & F_ROWS:
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
        except BaseException as e:
            if began:
                conn._end_tx(False)
            if not isinstance(e, TypeError):
                raise
            if not any(_needs_adapt(p) for p in seq_of_parameters):
                raise _bind_error(e) from None
            return self.executemany(operation, [_adapt(p) for p in seq_of_parameters])
        self._no_result(r.changes if flags & F_DML else -1, r.lastrowid)
        if flags & (F_DDL | F_TEMP):
            conn._schema_changed(bool(flags & F_TEMP))
        return self

    # -- fetch ---------------------------------------------------------------

    def _no_result_set(self) -> ProgrammingError:
        if self._closed:
            return ProgrammingError("Cannot operate on a closed cursor.")
        return ProgrammingError(
            "no result set: the last statement returned no rows (or nothing was executed)"
        )

    def fetchone(self) -> Row | None:
        """The next row, or None when the result set is exhausted."""
        rows = self._rows
        if rows is None:
            raise self._no_result_set()
        pos = self._pos
        if pos < len(rows):
            self._pos = pos + 1
            return rows[pos]
        return None

    def fetchmany(self, size: int | None = None) -> list[Row]:
        """The next ``size`` rows (default :attr:`arraysize`)."""
        rows = self._rows
        if rows is None:
            raise self._no_result_set()
        if size is None:
            size = self.arraysize
        pos = self._pos
        out = rows[pos : pos + size]
        if not out:
            return []
        self._pos = pos + len(out)
        return list(out)

    def fetchall(self) -> list[Row]:
        """Every remaining row."""
        rows = self._rows
        if rows is None:
            raise self._no_result_set()
        pos = self._pos
        self._rows = _EMPTY
        self._pos = 0
        if not rows:
            return []
        return rows if pos == 0 else rows[pos:]

    def __iter__(self) -> Iterator[Row]:
        return self

    def __next__(self) -> Row:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def setinputsizes(self, sizes: Sequence[Any]) -> None:
        """Accepted and ignored (PEP 249)."""

    def setoutputsize(self, size: int, column: int | None = None) -> None:
        """Accepted and ignored (PEP 249)."""

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
