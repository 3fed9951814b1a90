"""PEP 249 type objects, constructors and ``cursor.description`` type codes.

A ``description`` type code is the Python type a column's *declared* type
suggests, chosen by SQLite's column-affinity rules (in this order):

=====================================  ===================  ================
declared type contains                 type code            compares equal to
=====================================  ===================  ================
``INT``                                ``int``              NUMBER, ROWID
``CHAR``, ``CLOB`` or ``TEXT``         ``str``              STRING
``BLOB``, or no declared type          ``bytes``            BINARY
``REAL``, ``FLOA`` or ``DOUB``         ``float``            NUMBER
``DATE`` and ``TIME`` / ``TIMESTAMP``  ``datetime.datetime``  DATETIME
``DATE``                               ``datetime.date``    DATETIME
``TIME``                               ``datetime.time``    DATETIME
anything else (``NUMERIC``...)         ``decimal.Decimal``  NUMBER
=====================================  ===================  ================

An expression column (``SELECT count(*)``) has no declared type: like a
column declared without one it is BINARY. The code describes the column's
declaration, not the values: SQLite stores any value in any column.
"""

from __future__ import annotations

import datetime as _dt
import time as _time
from decimal import Decimal
from typing import Any

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "DBAPITypeObject",
    "Date",
    "DateFromTicks",
    "Description",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "description",
    "type_code",
]

Binary = bytes
Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime

#: ``cursor.description``: one 7-item sequence per result column.
Description = tuple[tuple[Any, ...], ...]


def DateFromTicks(ticks: float) -> _dt.date:
    """The local date of a POSIX timestamp (PEP 249 constructor)."""
    return Date(*_time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> _dt.time:
    """The local time of day of a POSIX timestamp (PEP 249 constructor)."""
    return Time(*_time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> _dt.datetime:
    """The local date and time of a POSIX timestamp (PEP 249 constructor)."""
    return Timestamp(*_time.localtime(ticks)[:6])


class DBAPITypeObject:
    """A PEP 249 type object: compares equal to each type code it groups."""

    __slots__ = ("name", "values")

    def __init__(self, name: str, *values: type) -> None:
        self.name = name
        self.values = frozenset(values)

    def __eq__(self, other: object) -> bool:
        return other in self.values

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<DBAPITypeObject {self.name}>"


STRING = DBAPITypeObject("STRING", str)
BINARY = DBAPITypeObject("BINARY", bytes, bytearray, memoryview)
NUMBER = DBAPITypeObject("NUMBER", int, float, Decimal)
DATETIME = DBAPITypeObject("DATETIME", _dt.datetime, _dt.date, _dt.time)
ROWID = DBAPITypeObject("ROWID", int)


def type_code(decltype: str | None) -> type:
    """The ``description`` type code of a column declared as ``decltype``
    (see the module documentation)."""
    if not decltype:
        return bytes
    t = decltype.upper()
    if "INT" in t:
        return int
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return str
    if "BLOB" in t:
        return bytes
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return float
    if "DATE" in t:
        return _dt.datetime if "TIME" in t else _dt.date
    if "TIME" in t:
        return _dt.datetime if "STAMP" in t else _dt.time
    return Decimal


def description(
    columns: tuple[str, ...], decltypes: tuple[str | None, ...] | None = None
) -> Description | None:
    """``cursor.description`` for result columns ``columns`` declared as
    ``decltypes`` (None when the statement returns no rows)."""
    if not columns:
        return None
    if decltypes is None or len(decltypes) != len(columns):
        decltypes = (None,) * len(columns)
    return tuple(
        (name, type_code(decl), None, None, None, None, None)
        for name, decl in zip(columns, decltypes, strict=True)
    )


def positional_description(ncols: int) -> Description | None:
    """``column1``... names for rows whose statement columns are unknown."""
    return description(tuple(f"column{i + 1}" for i in range(ncols)))
