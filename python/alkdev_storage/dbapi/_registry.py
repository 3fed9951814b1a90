"""The shared Databases: one :class:`alkdev_storage.Database` per file for
every driver connection of the process, and what the connections to it
share (the statement cache, the writer-only objects).

Reference counting: each :class:`Connection` holds one reference to its
:class:`Shared`. The driver opens its own handle on a file
(``alkdev_storage.Database(path)``) with the first connection and closes
that handle with the last one. Closing the handle never closes anything
another part of the process still uses: handles opened on the same file
(``alkdev_storage.open(path)``) share one native engine, which closes with
its last handle. A Database passed to ``connect()`` belongs to the caller
and is never closed by the driver.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from alkdev_storage.database import Database
from alkdev_storage.dbapi._statements import STATEMENT_CACHE_SIZE, Entry

__all__ = ["Shared", "acquire_database", "acquire_path", "release", "shared_database"]


class Shared:
    """One Database shared by every driver connection to the same file."""

    __slots__ = (
        "attached",
        "db",
        "file_id",
        "key",
        "owned",
        "pinned",
        "refs",
        "stmts",
        "writer_thread",
    )

    def __init__(self, db: Database, key: str | None, owned: bool) -> None:
        self.db = db
        self.key = key
        self.owned = owned
        self.refs = 0
        #: SQL text -> entry (see :mod:`alkdev_storage.dbapi._statements`).
        self.stmts: dict[str, Entry] = {}
        #: (connection-level SQL, parameters) -> (schema name, file) it attached.
        self.attached: dict[tuple[str, str], tuple[str, str]] = {}
        #: Writer-only objects exist (an attached database, TEMP objects):
        #: reads outside a transaction run on the writer.
        self.pinned = False
        self.file_id = _file_id(db.path) if key is not None else None
        #: Thread holding the writer slot through a driver connection (0: none).
        self.writer_thread = 0

    def invalidate(self) -> None:
        """Forget every cached entry (the schema changed)."""
        self.stmts = {}

    def cache(self, sql: str, entry: Entry) -> None:
        stmts = self.stmts
        if len(stmts) >= STATEMENT_CACHE_SIZE:
            self.stmts = stmts = {}
        stmts[sql] = entry

    def schema_committed(self) -> None:
        """DDL committed through the driver: forget the cached entries and
        make a reader load the new schema now. A reader reloads the schema
        when it next begins a read, but some statements (PRAGMAs such as
        ``foreign_key_list``) read the schema while they are *compiled*, so
        a reader that compiles one first would answer from the old schema."""
        self.invalidate()
        self.db.fetchall(_LOAD_SCHEMA)

    def pin(self) -> None:
        """Reads must from now on see the writer-only objects."""
        if not self.pinned:
            self.pinned = True
            self.invalidate()

    def _schemas(self) -> dict[str, str]:
        """Schema name -> file of the writer connection (``PRAGMA
        database_list``, read on the writer where attachments live)."""
        with self.db.transaction() as tx:
            rows = tx.fetchall("PRAGMA database_list")
        return {str(r[1]): str(r[2]) for r in rows}

    def run_connection_level(self, stmt: Any, params: Any) -> list[Any]:
        """Run a connection-level statement (``ATTACH``, ``DETACH``,
        ``VACUUM``, ``PRAGMA x = y``) on the writer outside any transaction.

        The writer is shared by every driver connection to the file, so an
        ``ATTACH`` that another connection already ran identically (same
        SQL, same parameters, still attached to the same file) is not run
        again: it succeeds, as it would on a connection of its own. Which
        schema a statement attached or detached is read from ``PRAGMA
        database_list`` before and after it, never parsed from the SQL.
        """
        db = self.db
        sql = stmt.sql
        key = (sql, repr(params))
        before = self._schemas()
        known = self.attached.get(key)
        if known is not None and before.get(known[0]) == known[1]:
            return []
        out: list[Any] = []
        if stmt.columns:
            out = db.fetchall(stmt, params)
        else:
            db.execute(stmt, params)
        after = self._schemas()
        added = [name for name in after if name not in before]
        if added:
            self.attached[key] = (added[0], after[added[0]])
        for k, (name, _file) in list(self.attached.items()):
            if name not in after:
                del self.attached[k]
        if any(name != "main" for name in after):
            self.pin()
        return out


#: Any statement that reads the schema table makes the reader check the
#: schema cookie (and reload a changed schema) when it runs.
_LOAD_SCHEMA = "SELECT 1 FROM sqlite_schema LIMIT 0"

_registry: dict[str, Shared] = {}
_by_db: dict[int, Shared] = {}
_lock = threading.Lock()


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


def acquire_database(database: Database) -> Shared:
    """A reference to the Shared of a caller's open Database (never closed
    by the driver)."""
    with _lock:
        shared = _by_db.get(id(database))
        if shared is None or shared.db is not database:
            shared = Shared(database, None, owned=False)
            _by_db[id(database)] = shared
        shared.refs += 1
    return shared


def acquire_path(
    path: str,
    max_readers: int | None,
    watcher_poll_interval_ms: float | None,
    timeout: float | None = None,
) -> Shared:
    """A reference to the Shared of the file at ``path``, opening the
    driver's Database for it if none is open (or the file was replaced)."""
    key = _key_for(path) if path.strip() and path != ":memory:" else path
    with _lock:
        shared = _registry.get(key)
        if shared is not None and (
            shared.db.closed or (shared.file_id is not None and _file_id(key) != shared.file_id)
        ):
            # Closed, or the file was deleted/replaced underneath: start over.
            _registry.pop(key, None)
            shared = None
        if shared is None:
            # Options left out (None) use the engine already open for the
            # file, if any (alkdev_storage.open() shares it); an explicit
            # conflicting value raises ValueError natively.
            db = Database(
                path,
                max_readers=max_readers,
                watcher_poll_interval_ms=watcher_poll_interval_ms,
                timeout=timeout,
            )
            shared = Shared(db, key, owned=True)
            _registry[key] = shared
            _by_db[id(db)] = shared
        else:
            for name, given, in_force in (
                ("max_readers", max_readers, shared.db.max_readers),
                ("timeout", timeout, shared.db.timeout),
            ):
                if given is not None and given != in_force:
                    raise ValueError(
                        f"{name}={given} conflicts with the Database already open for "
                        f"{path!r} ({name}={in_force}); leave it out to share that one"
                    )
        shared.refs += 1
    return shared


def release(shared: Shared) -> None:
    """Drop one reference; the driver's own Database handle closes with
    the last one."""
    with _lock:
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


def shared_database(path: str | os.PathLike[str]) -> Database | None:
    """The Database that driver connections to ``path`` share, if one is open."""
    with _lock:
        s = _registry.get(_key_for(os.fsdecode(path)))
        return None if s is None or s.db.closed else s.db
