"""TEMPORARY: the statement facts the native Statement will expose
(kind, control, is_ddl, uses_temp, decltypes), derived from the SQL text
until the native classifier lands. Deleted on merge."""

from __future__ import annotations

import re
from typing import Any

_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z]*)", re.S)
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_DDL = frozenset({"CREATE", "DROP", "ALTER", "REINDEX", "ANALYZE"})
_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})
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


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] in "\"'`[":
        q = name[0]
        inner = name[1:-1]
        if q == "[":
            return inner
        return inner.replace(q + q, q)
    return name


def _control(sql: str) -> tuple[str, str | None]:
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
    raise ValueError(sql)


def facts(
    stmt: Any,
) -> tuple[str, tuple[str, str | None] | None, bool, bool, tuple[str | None, ...]]:
    sql = stmt.sql
    m = _LEADING.match(sql)
    kw = m.group(1).upper() if m else ""
    decl = (None,) * len(stmt.columns)
    if kw in _CONTROL:
        return "transaction", _control(sql), False, False, decl
    if kw in ("ATTACH", "DETACH", "VACUUM") or (kw == "PRAGMA" and "=" in sql):
        return "connection", None, False, False, decl
    ddl = kw in _DDL
    temp = bool(_TEMP.search(sql))
    if ddl or kw in _DML or not stmt.readonly:
        return "write", None, ddl, temp, decl
    if _WRITING_FUNCS.search(sql):
        return "read_writes", None, False, temp, decl
    return "read", None, False, temp, decl
