"""Every exception alkdev-storage raises, in one place.

The PEP 249 hierarchy comes first::

    Exception
     |- Warning
     |- RuntimeError
         |- Error
         |- InterfaceError
         |- DatabaseError
             |- DataError
             |- OperationalError
             |- IntegrityError
             |- InternalError
             |- ProgrammingError
             |- NotSupportedError

The native module (Rust) imports these classes and raises them; it never
defines exception classes of its own. This module must therefore not import
``alkdev_storage._native``.

An exception raised for an SQLite result code carries ``sqlite_errorcode``
(the extended result code, e.g. ``2067``) and ``sqlite_errorname`` (e.g.
``"SQLITE_CONSTRAINT_UNIQUE"``), set by the native module on the instance.
Other errors (misuse such as a closed Database) leave both at their class
default, ``None``. The class for a result code is chosen the way the stdlib
:mod:`sqlite3` module chooses it, so code written for it catches the same
classes.

``Error`` also derives from ``RuntimeError`` (docs/0013-honker-parity.md):
the honker binding raises ``RuntimeError`` for open failures, a full disk
or a read-only file, and code written for it catches ``RuntimeError``; it
catches ours too. PEP 249 only asks that ``Error`` derive from
``Exception``, which it still does (through ``RuntimeError``), and
``except Error`` / the PEP 249 subclasses work as before.
"""

from __future__ import annotations

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


class Warning(Exception):
    """An important warning (PEP 249), e.g. data truncated on insert."""

    sqlite_errorcode: int | None = None
    sqlite_errorname: str | None = None


class Error(RuntimeError):
    """Base class of every error this package raises for the database (PEP 249;
    a ``RuntimeError`` too, so honker code that catches ``RuntimeError``
    catches it).

    ``sqlite_errorcode`` / ``sqlite_errorname``: the extended SQLite result
    code and its name when SQLite reported the error, else ``None``.
    """

    sqlite_errorcode: int | None = None
    sqlite_errorname: str | None = None


class InterfaceError(Error):
    """Misuse of the interface rather than of the database: a closed
    Database, a transaction or iterator that has ended, a subscription in
    use by another thread."""


class DatabaseError(Error):
    """An error reported by the database (base of the classes below)."""


class DataError(DatabaseError):
    """A problem with the processed data: a value too big, text that is not
    valid UTF-8 (SQLITE_TOOBIG...)."""


class OperationalError(DatabaseError):
    """An error in the database's operation, not necessarily under the
    caller's control: the database is locked or busy (SQLITE_BUSY, also when
    waiting for the writer inside this process timed out), I/O errors, a
    missing table, bad SQL."""


class IntegrityError(DatabaseError):
    """A constraint was violated: UNIQUE, NOT NULL, FOREIGN KEY, CHECK
    (SQLITE_CONSTRAINT_*)."""


class InternalError(DatabaseError):
    """SQLite reported an internal error (SQLITE_INTERNAL, SQLITE_NOTFOUND)."""


class ProgrammingError(DatabaseError):
    """A programming error: the wrong number of parameters, transaction
    control run through ``execute``, a statement used with the wrong
    Database, a thread that would deadlock waiting for itself."""


class NotSupportedError(DatabaseError):
    """A feature that SQLite or this package does not support."""


PEP249: tuple[type[Exception], ...] = (
    Warning,
    Error,
    InterfaceError,
    DatabaseError,
    DataError,
    OperationalError,
    IntegrityError,
    InternalError,
    ProgrammingError,
    NotSupportedError,
)
"""The PEP 249 classes, for code that must list them (the DB-API
``Connection`` attributes)."""


# ---------------------------------------------------------------------------
# Domain exceptions (primitives, tenancy, ...) are defined below this line.
# ---------------------------------------------------------------------------


# Domain exceptions
# ---------------------------------------------------------------------
# Raised by the primitives (alkdev_storage.primitives) and re-exported
# there under the honker binding's names.


class LockHeld(Exception):
    """The lock is held by another owner (raised when entering ``db.lock``,
    and by a scheduler runner that is not the leader)."""


class LeadershipLost(Exception):
    """A lock we held is no longer ours (it expired and was taken, or was
    released): raised by the scheduler runner (``Lock.renew()`` returns
    False instead, as in honker)."""


class UnknownTaskError(Exception):
    """A worker met a task name that is not registered in its process."""


class Retryable(Exception):
    """Raise from a job handler (task, ``run_task`` handler, outbox
    delivery) to ask for a retry after ``delay_s`` seconds instead of the
    policy's own delay. The retry still counts against the attempt budget:
    once it is used up the job goes to the dead table."""

    def __init__(self, message: str = "", delay_s: int = 60) -> None:
        super().__init__(message)
        # Whole seconds (honker's deadlines are unix seconds): a float, a
        # bool or a string is refused, never truncated.
        if type(delay_s) is bool or not hasattr(type(delay_s), "__index__"):
            raise TypeError(
                f"delay_s must be an int (whole seconds), not {type(delay_s).__name__}"
            )
        delay = delay_s.__index__()
        if delay < 0:
            raise ValueError(f"delay_s must be >= 0, got {delay}")
        self.delay_s = delay


class TaskFailed(Exception):
    """A result waiter (``Queue.wait_result``, ``TaskResult.get``) found the
    job in the dead table: it will never produce a result. ``job_id`` is
    the job, ``last_error`` the error it died with (``str(exc)`` quotes
    it)."""

    def __init__(self, job_id: int, last_error: str | None) -> None:
        super().__init__(f"job {job_id} is dead: {last_error or 'no error recorded'}")
        self.job_id = job_id
        self.last_error = last_error


class ExtensionNotAvailable(RuntimeError):
    """honker's SQLite extension is not built or not found (see
    :func:`alkdev_storage.extension_info`)."""


__all__ += [
    "ExtensionNotAvailable",
    "LeadershipLost",
    "LockHeld",
    "Retryable",
    "TaskFailed",
    "UnknownTaskError",
]


# ---------------------------------------------------------------------
# The product's layers (schema, domain, operations, events, tenancy).
# Each class names what was wrong in its message; attributes carry the
# details for code that handles them.
# ---------------------------------------------------------------------


class StorageError(Exception):
    """Base of the errors raised by the layers above the SQLAlchemy dialect
    (schema, domain, operations, events, tenancy)."""


class ValidationFailed(StorageError, ValueError):
    """Input did not match its schema; nothing was written.

    ``errors`` is a list of ``{"loc": (...), "msg": str, "type": str}``
    (pydantic's shape); ``field`` is the dotted location of the first
    error (e.g. ``"attributes.timeout_ms"``)."""

    def __init__(self, message: str, errors: list[dict[str, object]] | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []
        self.field = field


class ScopeViolation(StorageError, PermissionError):
    """The principal may not do this (e.g. change a system-scope graph
    type, or touch another user's user-scope type); nothing was written."""


class NotFound(StorageError, LookupError):
    """The named object does not exist (or is not visible to the caller)."""


class MigrationError(StorageError):
    """A schema migration could not be applied or the file is at an
    unknown revision."""


class SecretError(StorageError):
    """Base of the encryption errors. Messages never contain plaintext or
    key material."""


class DecryptionFailed(SecretError):
    """A ciphertext did not decrypt: wrong key, tampered data, or data
    bound to another place (org, table, column or row)."""


class UnknownKeyVersion(SecretError, KeyError):
    """The key provider has no key of the requested version."""


__all__ += [
    "DecryptionFailed",
    "MigrationError",
    "NotFound",
    "ScopeViolation",
    "SecretError",
    "StorageError",
    "UnknownKeyVersion",
    "ValidationFailed",
]


# -- helper "events" (issue 11): alkdev_storage.events ------------------------


class SubscriberOverflow(StorageError, BufferError):
    """A subscriber's bounded buffer is full and its overflow policy is
    ``"raise"`` (or ``"block"`` and the wait timed out, or would wait for
    the very thread that consumes it). The event was not buffered for that
    subscriber; the others got it."""


class ConsumerBusy(StorageError, LockHeld):
    """Another live process consumes under this durable consumer name (it
    holds the name's lease) and the target was configured to fail rather
    than wait as a standby."""


class LeaseLost(StorageError):
    """This process no longer holds the lease of its durable consumer name
    (it expired and another process took it): an offset commit was refused
    so that the caller's transaction rolls back."""


__all__ += ["ConsumerBusy", "LeaseLost", "SubscriberOverflow"]

# -- tenancy helper ("tenancy"): the hub's errors -----------------------------


class AuthenticationFailed(StorageError, PermissionError):
    """An API key did not authenticate. One message (``invalid API key``)
    for every cause (malformed, bad checksum, unknown key id, wrong secret,
    expired, revoked), so a caller learns nothing about which."""


class TenantUnavailable(StorageError):
    """The organization's tenant file cannot be used now: unknown to the
    registry, still being created, archived (open it read-only), being
    destroyed, or failed."""


class TenantBehind(TenantUnavailable, MigrationError):
    """The tenant file is at an older schema revision than the package's
    head: run ``hub.migrate()`` or open it with ``migrate_on_open=True``."""


__all__ += ["AuthenticationFailed", "TenantBehind", "TenantUnavailable"]
