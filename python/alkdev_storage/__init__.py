"""alkdev-storage: a whole platform's storage in SQLite files through Honker.

The native session (``open``, ``Database``, ``Transaction``, ``Statement``)
is implemented in Rust on top of honker-core; see the README.
"""

from alkdev_storage import errors as _errors
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
from alkdev_storage.errors import *  # noqa: F403  (the one list: errors.__all__)
from alkdev_storage.primitives import (
    CronSchedule,
    Event,
    Job,
    Listener,
    Notification,
    Outbox,
    Queue,
    Scheduler,
    Stream,
    TaskResult,
    crontab,
    every_s,
    extension_info,
    load_extension,
    registry,
    run_workers,
)

__version__ = "0.1.0"

__all__ = [
    "CronSchedule",
    "Database",
    "Event",
    "ExecResult",
    "Job",
    "Listener",
    "Notification",
    "Outbox",
    "Queue",
    "RowIterator",
    "Savepoint",
    "Scheduler",
    "Snapshot",
    "Statement",
    "Stream",
    "TaskResult",
    "Transaction",
    "__version__",
    "crontab",
    "every_s",
    "extension_info",
    "load_extension",
    "open",
    "registry",
    "run_workers",
    "sqlite_version",
    "sqlite_version_number",
]
__all__ += _errors.__all__
