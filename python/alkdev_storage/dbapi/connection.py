"""The DB-API :class:`Connection`: a view of a shared Database with its own
transaction state (the write Transaction, the read snapshot, the
savepoints mapped from SQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Literal

from alkdev_storage import _native
from alkdev_storage.database import Database
from alkdev_storage.dbapi import _registry
from alkdev_storage.dbapi._statements import Entry, entry_for
from alkdev_storage.dbapi.cursor import Cursor
from alkdev_storage.errors import Error, OperationalError, ProgrammingError

__all__ = ["Connection"]

How = Literal["all", "one", "exec"]
_HOW = {"all": "fetchall", "one": "fetchone", "exec": "execute"}
_new = object.__new__


class Connection:
    """A DB-API connection: a view of a shared Database with its own
    transaction state. Use one per thread (they are cheap); see
    :mod:`alkdev_storage.dbapi` for the transaction rules."""

    def __init__(self, shared: _registry.Shared, *, autocommit: bool, readonly: bool) -> None:
        self._shared = shared
        self._open_db: Database | None = shared.db
        self._tx: _native.Transaction | None = None
        self._snap: _native.Snapshot | None = None
        self._sps: list[tuple[str | None, _native.Savepoint]] = []
        self._autocommit = autocommit
        self._readonly = readonly
        self._sp_began = False  # the transaction was begun by a SAVEPOINT (autocommit)
        self._tx_ddl = False  # DDL ran in this transaction: compile on the writer
        self._begin_writes_eagerly = False
        self._isolation_level = "SERIALIZABLE"

    def __repr__(self) -> str:
        db = self._open_db
        if db is None:
            return f"<{type(self).__module__}.Connection closed>"
        state = (
            "write transaction"
            if self._tx is not None
            else ("read snapshot" if self._snap is not None else "idle")
        )
        mode = " autocommit" if self._autocommit else ""
        mode += " readonly" if self._readonly else ""
        return f"<{type(self).__module__}.Connection {db.path!r} {state}{mode}>"

    # -- state ---------------------------------------------------------------

    def _check(self) -> Database:
        db = self._open_db
        if db is None:
            raise ProgrammingError("Cannot operate on a closed connection.")
        return db

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._open_db is None

    @property
    def database(self) -> Database:
        """The shared :class:`alkdev_storage.Database` (for ``queue()``,
        ``stream()``, ``listen()``...)."""
        return self._check()

    @property
    def transaction(self) -> _native.Transaction | None:
        """The native write Transaction while one is open, else None."""
        return self._tx

    @property
    def in_transaction(self) -> bool:
        """True while a write transaction or a read snapshot is open."""
        return self._tx is not None or self._snap is not None

    @property
    def autocommit(self) -> bool:
        """Every statement outside an explicit ``BEGIN`` commits on its own.
        Switching it on commits the open transaction (as ``sqlite3``)."""
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"autocommit must be a bool, not {type(value).__name__}")
        self._check()
        if value and not self._autocommit:
            self.commit()
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
        """Statements run in a consistent read snapshot (writes fail). Only
        changes between transactions."""
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

    @property
    def begin_writes_eagerly(self) -> bool:
        """A hint for integrations (the SQLAlchemy dialect's
        ``honker_begin_write`` option): when True, a transaction the
        integration begins takes the writer slot at once (it calls
        :meth:`write_transaction`) instead of at its first write. The
        driver itself does not read it."""
        return self._begin_writes_eagerly

    @begin_writes_eagerly.setter
    def begin_writes_eagerly(self, value: bool) -> None:
        self._begin_writes_eagerly = bool(value)

    # -- transactions ------------------------------------------------------------

    def write_transaction(self) -> _native.Transaction:
        """Begin the write transaction now if none is open (``BEGIN
        IMMEDIATE`` on the writer slot) and return the native Transaction."""
        self._check()
        tx = self._tx
        if tx is None:
            tx = self._begin_write()
        return tx

    def begin(self) -> None:
        """Begin a write transaction explicitly (``BEGIN IMMEDIATE``); in
        read-only mode, begin the read snapshot instead."""
        self._check()
        if self._tx is not None or self._snap is not None:
            raise OperationalError("cannot start a transaction within a transaction")
        if self._readonly:
            self._snapshot()
        else:
            self._begin_write()

    def commit(self) -> None:
        """Commit the open transaction (end the read snapshot); a no-op
        when none is open."""
        self._check()
        self._end_tx(True)

    def rollback(self) -> None:
        """Roll back the open transaction (end the read snapshot); a no-op
        when none is open."""
        self._check()
        self._end_tx(False)

    def _begin_write(self) -> _native.Transaction:
        if self._readonly:
            raise OperationalError(
                "attempt to write a readonly database (the connection is in read-only mode)"
            )
        tx = self._check().begin()
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
            return self._open_db, False
        return self._begin_write(), True

    def _snapshot(self) -> _native.Snapshot:
        snap = self._snap
        if snap is None:
            snap = self._check().read()
            snap.__enter__()
            self._snap = snap
        return snap

    def _end_tx(self, commit: bool) -> None:
        tx, snap, ddl = self._tx, self._snap, self._tx_ddl
        self._tx = self._snap = None
        self._sps.clear()
        self._sp_began = False
        self._tx_ddl = False
        if snap is not None:
            snap.close()
        if tx is not None:
            shared = self._shared
            if shared.writer_thread == threading.get_ident():
                shared.writer_thread = 0
            if commit:
                tx.commit()  # a failed COMMIT rolls back and frees the writer
                if ddl:
                    shared.schema_committed()
            else:
                tx.rollback()

    def _control(self, action: str, name: str | None) -> None:
        """Transaction-control SQL mapped onto the native objects. Savepoint
        names compare as in SQLite (case-insensitively)."""
        if name is not None:
            name = name.lower()
        if action == "begin":
            self.begin()
        elif action in ("commit", "rollback"):
            if self._tx is None and self._snap is None:
                raise OperationalError(f"cannot {action} - no transaction is active")
            self._end_tx(action == "commit")
        elif action == "savepoint":
            if self._snap is not None:
                raise OperationalError("SAVEPOINT in a read-only snapshot is not supported")
            tx = self._tx
            if tx is None:
                tx = self._begin_write()
                self._sp_began = self._autocommit
            self._push_savepoint(tx, name)
        else:  # release, rollback_to
            sps = self._sps
            idx = next((i for i in range(len(sps) - 1, -1, -1) if sps[i][0] == name), None)
            if idx is None or self._tx is None:
                raise OperationalError(f"no such savepoint: {name}")
            release = action == "release"
            for _ in range(len(sps) - idx):
                sp = sps.pop()[1]
                if release:
                    sp.release()
                else:
                    sp.rollback()
            if release:
                if not sps and self._sp_began:
                    self._end_tx(True)
            else:
                self._push_savepoint(self._tx, name)  # SQLite keeps it after ROLLBACK TO

    def _push_savepoint(self, tx: _native.Transaction, name: str | None) -> None:
        sp = tx.savepoint()
        sp.__enter__()
        self._sps.append((name, sp))

    # -- statements --------------------------------------------------------------

    def _compile(self, sql: str) -> Entry:
        """Prepare ``sql`` and build its entry (cached per Database, except
        inside a transaction that changed the schema)."""
        if not isinstance(sql, str):
            raise TypeError(f"SQL must be a str, not {type(sql).__name__}")
        db = self._check()
        tx = self._tx
        if tx is not None and self._tx_ddl:
            # The readers cannot see this transaction's schema: compile on
            # its connection; valid only inside it, so not cached.
            return entry_for(tx.prepare(sql), False)
        try:
            stmt = db.prepare(sql)
        except Error:
            if tx is None:
                raise
            # Objects only this transaction sees.
            return entry_for(tx.prepare(sql), False)
        shared = self._shared
        entry = entry_for(stmt, shared.pinned)
        shared.cache(sql, entry)
        return entry

    def _schema_changed(self, temp: bool) -> None:
        """DDL or TEMP objects ran through this connection."""
        shared = self._shared
        if temp:
            shared.pin()
        if self._tx is not None:
            shared.invalidate()
            self._tx_ddl = True
        else:  # autocommit: committed already
            shared.schema_committed()

    def _writer_read(self, stmt: Any, params: Any) -> list[Any]:
        """A read outside any transaction of ours that must see writer-only
        objects: run it in a short write transaction."""
        db = self._check()
        if self._shared.writer_thread == threading.get_ident():
            # This thread holds the writer through another connection: the
            # readers are the only option left.
            return db.fetchall(stmt, params)
        tx = db.begin()
        try:
            rows = tx.fetchall(stmt, params)
        except BaseException:
            tx.rollback()
            raise
        tx.commit()
        return rows

    def run_prepared(self, stmt: _native.Statement, params: Any = None, how: How = "all") -> Any:
        """Run a native Statement of this connection's file the way
        :meth:`Cursor.execute` routes it, joining this connection's
        transaction (the hook prepared SQLAlchemy queries use).

        ``how`` is ``"all"`` (``fetchall``: a list of tuples), ``"one"``
        (``fetchone``: a tuple or None) or ``"exec"`` (``execute``: an
        ``ExecResult``). Reads run in the open transaction or snapshot, else
        on a reader; writes (also reads whose functions write) run in the
        open write transaction, beginning it if needed (in autocommit mode:
        on their own). Transaction-control and connection-level statements
        raise ``ProgrammingError``: run them with :meth:`Cursor.execute`.
        """
        db = self._check()
        method = _HOW[how]
        tx = self._tx
        if tx is not None:
            return getattr(tx, method)(stmt, params)
        if self._readonly or self._snap is not None:
            return getattr(self._snapshot(), method)(stmt, params)
        kind = stmt.kind
        if kind == "read":
            if not self._shared.pinned:
                return getattr(db, method)(stmt, params)
            rows = self._writer_read(stmt, params)
            if how == "one":
                return rows[0] if rows else None
            return rows
        if kind not in ("write", "read_writes"):
            raise ProgrammingError(
                f"run_prepared() runs reads and writes, not a {kind!r} statement: "
                "use cursor.execute()"
            )
        if self._autocommit:
            return getattr(db, method)(stmt, params)
        tx = self._begin_write()
        try:
            return getattr(tx, method)(stmt, params)
        except BaseException:
            self._end_tx(False)
            raise

    def create_function(
        self, name: str, narg: int, func: Any, *, deterministic: bool = False
    ) -> None:
        """Register an SQL function written in Python (``sqlite3``'s
        signature). It is registered on the shared Database, so every
        connection to the file sees it; registering the same function again
        is a no-op."""
        self._check().create_function(name, narg, func, deterministic=deterministic)

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Roll back any open transaction and release the shared Database
        (the driver's handle closes with its last connection). Closing a
        closed connection does nothing (docs/0009-dbapi-close.md)."""
        if self._open_db is None:
            return
        try:
            self._end_tx(False)
        finally:
            self._open_db = None
            _registry.release(self._shared)

    def __del__(self) -> None:
        try:
            if self._open_db is not None:
                self.close()
        except Exception:
            pass

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """As ``sqlite3``: commit on success, roll back on error; stay open."""
        if self._open_db is None:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def cursor(self) -> Cursor:
        """A new :class:`Cursor` on this connection."""
        if self._open_db is None:
            self._check()
        cur: Cursor = _new(Cursor)  # skips __init__: one attribute to set
        cur._conn = self
        return cur

    # -- sqlite3-style shortcuts ---------------------------------------------

    def execute(self, sql: str, parameters: Any = None) -> Cursor:
        """``cursor().execute(sql, parameters)``."""
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> Cursor:
        """``cursor().executemany(sql, seq_of_parameters)``."""
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql: str) -> Cursor:
        """Run a script of several statements inside the write transaction
        (begun if needed; committed at once in autocommit mode)."""
        self._check()
        if not isinstance(sql, str):
            raise TypeError("executescript expects a str")
        began = self._tx is None
        tx = self._tx if self._tx is not None else self._begin_write()
        try:
            tx.executescript(sql)
        except BaseException:
            if began:
                self._end_tx(False)
            raise
        self._shared.invalidate()
        self._tx_ddl = True  # the script may have changed the schema
        if began and self._autocommit:
            self._end_tx(True)
        return self.cursor()
