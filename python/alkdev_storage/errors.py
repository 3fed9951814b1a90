"""The PEP 249 exception hierarchy.

Every exception raised for an SQLite error carries ``sqlite_errorcode`` (the
extended result code) and ``sqlite_errorname`` (e.g.
``"SQLITE_CONSTRAINT_UNIQUE"``). Classes are chosen from the result code the
same way the stdlib :mod:`sqlite3` module chooses them.
"""

from alkdev_storage._native import (
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
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
]
