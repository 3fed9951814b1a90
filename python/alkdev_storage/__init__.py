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
from alkdev_storage.primitives import (
    CronSchedule,
    Event,
    Job,
    LeadershipLost,
    Listener,
    LockHeld,
    Notification,
    Outbox,
    Queue,
    Retryable,
    Scheduler,
    Stream,
    TaskResult,
    UnknownTaskError,
    crontab,
    every_s,
    registry,
    run_workers,
)

__version__ = "0.1.0"

__all__ = [
    "CronSchedule",
    "DataError",
    "Database",
    "DatabaseError",
    "Error",
    "Event",
    "ExecResult",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "Job",
    "LeadershipLost",
    "Listener",
    "LockHeld",
    "NotSupportedError",
    "Notification",
    "OperationalError",
    "Outbox",
    "ProgrammingError",
    "Queue",
    "Retryable",
    "RowIterator",
    "Savepoint",
    "Scheduler",
    "Snapshot",
    "Statement",
    "Stream",
    "TaskResult",
    "Transaction",
    "UnknownTaskError",
    "Warning",
    "__version__",
    "crontab",
    "every_s",
    "open",
    "registry",
    "run_workers",
    "sqlite_version",
    "sqlite_version_number",
]
