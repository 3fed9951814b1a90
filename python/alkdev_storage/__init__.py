"""alkdev-storage: a whole platform's storage in SQLite files through Honker.

The native session (``open``, ``Database``, ``Transaction``, ``Statement``)
is implemented in Rust on top of honker-core; see the README.
"""

from alkdev_storage._native import (
    ExecResult,
    RowIterator,
    Savepoint,
    Snapshot,
    Statement,
    Transaction,
    sqlite_version,
    sqlite_version_number,
)
from alkdev_storage.database import Database, open
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

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Database",
    "DatabaseError",
    "Error",
    "ExecResult",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "RowIterator",
    "Savepoint",
    "Snapshot",
    "Statement",
    "Transaction",
    "Warning",
    "__version__",
    "open",
    "sqlite_version",
    "sqlite_version_number",
]
