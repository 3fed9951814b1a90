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


# Domain exceptions
# ---------------------------------------------------------------------
# Raised by the primitives (alkdev_storage.primitives) and re-exported
# there under the honker binding's names.


class LockHeld(Exception):
    """The lock is held by another owner (raised when entering ``db.lock``,
    and by a scheduler runner that is not the leader)."""


class LeadershipLost(Exception):
    """A lock we held is no longer ours (it expired and was taken, or was
    released): raised by ``Lock.renew()`` and by the scheduler runner."""


class UnknownTaskError(Exception):
    """A worker met a task name that is not registered in its process."""


class Retryable(Exception):
    """Raise from a job handler (task, ``run_task`` handler, outbox
    delivery) to ask for a retry after ``delay_s`` seconds instead of the
    policy's own delay. The retry still counts against the attempt budget:
    once it is used up the job goes to the dead table."""

    def __init__(self, message: str = "", delay_s: int = 60) -> None:
        super().__init__(message)
        self.delay_s = int(delay_s)


__all__ += ["LeadershipLost", "LockHeld", "Retryable", "UnknownTaskError"]
