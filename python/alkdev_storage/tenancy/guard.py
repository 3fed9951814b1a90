"""Tenant handles that cannot reach other files (docs/0025-hub-and-tenants.md).

:class:`TenantDatabase` is the :class:`~alkdev_storage.Database` the hub
hands out for a tenant file. SQLite lets ``ATTACH`` run anywhere (inside a
write transaction and inside a read snapshot too), and the native layer has
no authorizer hook, so the refusal is done here, at the lowest layer Python
reaches: every way SQL enters a tenant handle goes through a check.

* SQL text: SQLite decides what a statement is by its first token (after
  whitespace and comments). Text whose first keyword is ``ATTACH``,
  ``DETACH`` or ``VACUUM`` (``VACUUM INTO '<path>'`` writes a copy
  anywhere) is refused with ``ScopeViolation``; so is a ``PRAGMA`` not in
  :data:`ALLOWED_PRAGMAS` (or, for :data:`READ_ONLY_PRAGMAS`, given a
  value). Scripts (``executescript``) are split at top-level semicolons
  (quotes, brackets and comments respected) and every statement checked.
* Prepared Statements: refused when SQLite classified them
  ``"connection"`` (``Statement.kind``) and their text fails the check.
* Transactions and snapshots of a tenant handle are :class:`GuardedTransaction`
  / :class:`GuardedSnapshot` proxies applying the same checks (the native
  ``Transaction`` is reachable as ``.native`` for code that needs it).
* ``load_extension()`` is refused by SQLite itself ("not authorized") on
  every connection of the native layer.

A read-only handle (archived tenants) also refuses write transactions and
every statement SQLite does not classify as a read.

What remains possible (out of scope: it needs Python code, not SQL): code
running in the process can open any file with :func:`alkdev_storage.open`
or call the native base class's methods unbound. The guard is against SQL
that comes from requests, not against the process's own code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from alkdev_storage import _native
from alkdev_storage.database import Database
from alkdev_storage.errors import ScopeViolation

__all__ = [
    "ALLOWED_PRAGMAS",
    "FORBIDDEN_KEYWORDS",
    "READ_ONLY_PRAGMAS",
    "GuardedSnapshot",
    "GuardedTransaction",
    "TenantDatabase",
    "first_keyword",
    "split_script",
]

FORBIDDEN_KEYWORDS = frozenset({"ATTACH", "DETACH", "VACUUM"})
"""Statements a tenant handle never runs."""

ALLOWED_PRAGMAS = frozenset({
    "analysis_limit", "busy_timeout", "cache_size", "collation_list", "compile_options",
    "data_version", "foreign_key_check", "foreign_key_list", "freelist_count",
    "function_list", "index_info", "index_list", "index_xinfo", "integrity_check",
    "optimize", "page_count", "pragma_list", "quick_check", "schema_version", "table_info",
    "table_list", "table_xinfo", "user_version", "wal_checkpoint",
})
"""PRAGMAs a tenant handle may run with or without a value."""

READ_ONLY_PRAGMAS = frozenset({
    "application_id", "auto_vacuum", "database_list", "encoding", "foreign_keys",
    "journal_mode", "journal_size_limit", "page_size", "query_only", "recursive_triggers",
    "secure_delete", "synchronous", "temp_store",
})
"""PRAGMAs a tenant handle may read but not set."""

_CHECK_CACHE_MAX = 1024
_STATEMENT = _native.Statement


def _skip(sql: str, i: int) -> int:
    """Index of the first character at or after ``i`` that is neither
    whitespace nor inside a comment."""
    n = len(sql)
    while i < n:
        if sql[i].isspace():
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            break
    return i


def _word(sql: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(sql) and (sql[j].isalnum() or sql[j] == "_"):
        j += 1
    return sql[i:j], j


def first_keyword(sql: str) -> str:
    """The first SQL keyword of ``sql``, uppercased, after whitespace and
    comments (``--`` to the end of the line, ``/* */``); ``""`` if the text
    starts with anything else. SQLite decides a statement's type by it."""
    return _word(sql, _skip(sql, 0))[0].upper()


def split_script(sql: str) -> list[str]:
    """``sql`` cut at top-level semicolons: quotes (``'``, ``"``, `````),
    ``[brackets]`` and comments are respected. Statements inside a trigger
    body come out as separate pieces (harmless for the keyword check:
    none of the forbidden statements can appear in a trigger)."""
    parts: list[str] = []
    start, i, n = 0, 0, len(sql)
    closers = {"'": "'", '"': '"', "`": "`", "[": "]"}
    while i < n:
        c = sql[i]
        if c in closers:
            j = sql.find(closers[c], i + 1)
            while j >= 0 and c != "[" and sql.startswith(closers[c] * 2, j):
                j = sql.find(closers[c], j + 2)
            i = n if j < 0 else j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ";":
            parts.append(sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    parts.append(sql[start:])
    return [p for p in parts if _skip(p, 0) < len(p)]


def _text_refusal(sql: str) -> str | None:
    """Why ``sql`` (one statement) may not run on a tenant handle, or None."""
    i = _skip(sql, 0)
    kw, j = _word(sql, i)
    kw = kw.upper()
    if kw == "EXPLAIN":  # EXPLAIN [QUERY PLAN] <stmt> compiles, never runs it
        return None
    if kw in FORBIDDEN_KEYWORDS:
        return f"{kw} is not allowed on a tenant handle"
    if kw != "PRAGMA":
        return None
    name, k = _word(sql, _skip(sql, j))
    name = name.lower()
    k = _skip(sql, k)
    if k < len(sql) and sql[k] == ".":  # schema-qualified: main.x is fine, others not
        if name not in ("main", "temp"):
            return f"PRAGMA on schema {name!r} is not allowed on a tenant handle"
        name, k = _word(sql, _skip(sql, k + 1))
        name = name.lower()
        k = _skip(sql, k)
    has_value = k < len(sql) and sql[k] in "=("
    if name in ALLOWED_PRAGMAS:
        return None
    if name in READ_ONLY_PRAGMAS and not has_value:
        return None
    if name in READ_ONLY_PRAGMAS:
        return f"PRAGMA {name} cannot be set on a tenant handle"
    return f"PRAGMA {name or '?'} is not allowed on a tenant handle"


class _Checker:
    """The checks, with a bounded cache of SQL texts already accepted."""

    def __init__(self, org_id: str, read_only: bool, trusted: bool = False) -> None:
        self.org_id = org_id
        self.read_only = read_only
        self.trusted = trusted  # the package's own bootstrap SQL, while opening
        # a Statement of any kind but "connection" needs no further check
        self.fast_statements = not read_only
        self._ok: dict[str, bool] = {}
        self._lock = threading.Lock()

    def fail(self, why: str) -> ScopeViolation:
        return ScopeViolation(f"tenant {self.org_id}: {why}")

    def refuse_writes(self) -> None:
        if self.read_only:
            raise self.fail("the tenant is archived (read-only): writes are refused")

    def text(self, sql: str, classify: Any) -> None:
        if self._ok.get(sql):
            return
        why = _text_refusal(sql)
        if why is not None:
            raise self.fail(why)
        if self.read_only:
            self.statement(classify(sql))
        with self._lock:
            if len(self._ok) >= _CHECK_CACHE_MAX:
                self._ok.clear()
            self._ok[sql] = True

    def statement(self, stmt: _native.Statement) -> None:
        kind = stmt.kind
        if kind == "connection":
            why = _text_refusal(stmt.sql)
            if why is not None:
                raise self.fail(why)
        if self.read_only and kind not in ("read", "connection"):
            raise self.fail("the tenant is archived (read-only): writes are refused")

    def script(self, sql: str) -> None:
        if self.trusted or not isinstance(sql, str):
            return
        for part in split_script(sql):
            why = _text_refusal(part)
            if why is not None:
                raise self.fail(why)

    def check(self, sql: Any, classify: Any) -> None:
        if self.trusted:
            return
        if isinstance(sql, str):
            self.text(sql, classify)
        elif isinstance(sql, _native.Statement):
            self.statement(sql)


class _GuardedSession:
    """Shared body of the transaction and snapshot proxies."""

    __slots__ = ("_c", "native")

    def __init__(self, native: Any, checker: _Checker) -> None:
        self.native = native
        self._c = checker

    def _classify(self, sql: str) -> _native.Statement:
        stmt: _native.Statement = self.native.prepare(sql)
        return stmt

    def prepare(self, sql: str) -> _native.Statement:
        """Compile ``sql`` on this session's connection, after the tenant
        check."""
        self._c.check(sql, self._classify)
        return self._classify(sql)

    def execute(self, stmt: _native.Statement | str, params: Any = None) -> _native.ExecResult:
        """As the native method, after the tenant check."""
        self._c.check(stmt, self._classify)
        result: _native.ExecResult = self.native.execute(stmt, params)
        return result

    def fetchone(self, stmt: _native.Statement | str, params: Any = None) -> Any:
        """As the native method, after the tenant check."""
        self._c.check(stmt, self._classify)
        return self.native.fetchone(stmt, params)

    def fetchall(self, stmt: _native.Statement | str, params: Any = None) -> list[Any]:
        """As the native method, after the tenant check."""
        self._c.check(stmt, self._classify)
        rows: list[Any] = self.native.fetchall(stmt, params)
        return rows

    def query(self, sql: _native.Statement | str, params: Any = None) -> list[dict[str, Any]]:
        """As the native method, after the tenant check."""
        self._c.check(sql, self._classify)
        rows: list[dict[str, Any]] = self.native.query(sql, params)
        return rows

    def iterate(self, stmt: _native.Statement | str, params: Any = None) -> Any:
        """As the native method, after the tenant check."""
        self._c.check(stmt, self._classify)
        return self.native.iterate(stmt, params)

    @property
    def active(self) -> bool:
        """As the native property."""
        return bool(self.native.active)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.native, name)


class GuardedTransaction(_GuardedSession):
    """A tenant handle's write transaction: the native
    :class:`~alkdev_storage.Transaction` (``.native``) behind the tenant
    checks. Everything else (``commit``, ``rollback``, ``savepoint``,
    ``notify``, ``with``) is the native object's."""

    __slots__ = ()

    def executemany(self, stmt: _native.Statement | str,
                    seq_of_params: Iterable[Any]) -> _native.ExecResult:
        """As the native method, after the tenant check."""
        self._c.check(stmt, self._classify)
        result: _native.ExecResult = self.native.executemany(stmt, seq_of_params)
        return result

    def executescript(self, sql: str) -> None:
        """As the native method, after checking every statement of the
        script."""
        self._c.script(sql)
        self.native.executescript(sql)

    def __enter__(self) -> GuardedTransaction:
        self.native.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None = None,
                 exc: BaseException | None = None, tb: TracebackType | None = None) -> bool:
        return bool(self.native.__exit__(exc_type, exc, tb))


class GuardedSnapshot(_GuardedSession):
    """A tenant handle's read snapshot: the native
    :class:`~alkdev_storage.Snapshot` (``.native``) behind the tenant
    checks."""

    __slots__ = ()

    def __enter__(self) -> GuardedSnapshot:
        self.native.__enter__()
        return self

    def __exit__(self, *args: object) -> bool:
        return bool(self.native.__exit__(*args))


class TenantDatabase(Database):
    """A tenant file's Database as the hub hands it out (see the module
    docstring): refuses SQL that reaches other files with
    ``ScopeViolation``; when :attr:`read_only`, also every write.
    :attr:`org_id` names its organization. Opened by the hub."""

    org_id: str = ""
    read_only: bool = False

    def __init__(self, path: Any, **options: Any) -> None:
        # Database.__init__ runs the package's own bootstrap SQL; the
        # checks start with _guard_setup (the hub calls it before handing
        # the handle out).
        self._guard = _Checker("", False, trusted=True)
        super().__init__(path, **options)
        self._guard = _Checker("", False)

    def _guard_setup(self, org_id: str, read_only: bool) -> None:
        """Called once by the hub right after opening."""
        self.org_id = org_id
        self.read_only = read_only
        self._guard = _Checker(org_id, read_only)

    def _classify(self, sql: str) -> _native.Statement:
        return _native.Database.prepare(self, sql)

    def prepare(self, sql: str) -> _native.Statement:
        """``Database.prepare``, refusing what a tenant handle may not run."""
        self._guard.check(sql, self._classify)
        stmt = _native.Database.prepare(self, sql)
        self._guard.statement(stmt)
        return stmt

    def execute(self, stmt: _native.Statement | str, params: Any = None) -> _native.ExecResult:
        """``Database.execute`` after the tenant check."""
        g = self._guard
        if not (g.fast_statements and type(stmt) is _STATEMENT and stmt.kind != "connection"):
            g.check(stmt, self._classify)
        return _native.Database.execute(self, stmt, params)

    def executemany(self, stmt: _native.Statement | str,
                    seq_of_params: Iterable[Any]) -> _native.ExecResult:
        """``Database.executemany`` after the tenant check."""
        self._guard.check(stmt, self._classify)
        return _native.Database.executemany(self, stmt, seq_of_params)

    def fetchone(self, stmt: _native.Statement | str, params: Any = None) -> Any:
        """``Database.fetchone`` after the tenant check."""
        g = self._guard
        if not (g.fast_statements and type(stmt) is _STATEMENT and stmt.kind != "connection"):
            g.check(stmt, self._classify)
        return _native.Database.fetchone(self, stmt, params)

    def fetchall(self, stmt: _native.Statement | str, params: Any = None) -> list[Any]:
        """``Database.fetchall`` after the tenant check."""
        g = self._guard
        if not (g.fast_statements and type(stmt) is _STATEMENT and stmt.kind != "connection"):
            g.check(stmt, self._classify)
        return _native.Database.fetchall(self, stmt, params)

    def query(self, sql: _native.Statement | str, params: Any = None) -> list[dict[str, Any]]:
        """``Database.query`` after the tenant check."""
        g = self._guard
        if not (g.fast_statements and type(sql) is _STATEMENT and sql.kind != "connection"):
            g.check(sql, self._classify)
        return _native.Database.query(self, sql, params)

    def iterate(self, stmt: _native.Statement | str, params: Any = None) -> Iterator[Any]:
        """``Database.iterate`` after the tenant check."""
        g = self._guard
        if not (g.fast_statements and type(stmt) is _STATEMENT and stmt.kind != "connection"):
            g.check(stmt, self._classify)
        return _native.Database.iterate(self, stmt, params)

    def executescript(self, sql: str) -> None:
        """``Database.executescript`` after checking every statement of the
        script; refused on a read-only handle."""
        self._guard.refuse_writes()
        self._guard.script(sql)
        _native.Database.executescript(self, sql)

    def transaction(self) -> Any:
        """A :class:`GuardedTransaction` (begins on ``with``); refused on a
        read-only handle."""
        self._guard.refuse_writes()
        return GuardedTransaction(_native.Database.transaction(self), self._guard)

    def begin(self) -> Any:
        """A begun :class:`GuardedTransaction`; refused on a read-only
        handle."""
        self._guard.refuse_writes()
        return GuardedTransaction(_native.Database.begin(self), self._guard)

    def try_begin(self) -> Any:
        """A begun :class:`GuardedTransaction` if no wait is needed, else
        None; refused on a read-only handle."""
        self._guard.refuse_writes()
        tx = _native.Database.try_begin(self)
        return None if tx is None else GuardedTransaction(tx, self._guard)

    def read(self) -> Any:
        """A :class:`GuardedSnapshot` (begins on ``with``)."""
        return GuardedSnapshot(_native.Database.read(self), self._guard)

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("read-only" if self.read_only else "open")
        return f"<alkdev_storage.tenancy.TenantDatabase org={self.org_id} {state}>"
