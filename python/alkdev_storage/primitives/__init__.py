"""Honker's primitives on the native session, API-compatible with the honker
Python binding: notify/listen, queues, streams, locks, rate limits, the
scheduler, task decorators and workers, and the outbox. They read and write
honker's own tables (created by honker-core's bootstrap), so one ``.db``
file can be shared with any honker binding or honker's SQLite extension.

Most users reach these through :class:`alkdev_storage.Database` methods
(``db.queue``, ``db.stream``, ``db.listen``, ``db.lock``, ...). What we add
to honker's API: blocking iteration (``for``, ``get(timeout)``) next to
``async for`` everywhere honker only iterates asynchronously, ``timeout=``
to end an iteration when idle, ``db.scheduler()`` with a leader-safe runner
(``run`` / ``run_blocking``, optional hot standby, raising
:class:`LeadershipLost`), ``publish`` returning the event's offset, a
dead-letter API and ``stats()`` on queues, :class:`TaskFailed` for result
waiters on dead jobs, and consumer ``reset`` / ``delete_consumer`` on
streams (docs/0013-honker-parity.md).

Layering: this package imports only ``alkdev_storage._native`` and
``alkdev_storage.errors``, and sees the Database only through the typed
contract of :mod:`alkdev_storage.primitives.contract`. Its exceptions
(:class:`LockHeld`, :class:`LeadershipLost`, :class:`Retryable`,
:class:`UnknownTaskError`, :class:`TaskFailed`,
:class:`ExtensionNotAvailable`) are defined in :mod:`alkdev_storage.errors` and
re-exported here.

Files: ``contract.py`` (what a primitive needs from a Database and a
Transaction), ``payload.py`` (the one payload codec), ``validate.py``
(argument checks), ``wake.py`` (commits wake iterators), ``_sql.py`` (the
hot-path statements), ``policy.py`` (the one job-execution policy), and
one file per primitive: ``notify.py``, ``queue.py``, ``stream.py``,
``lock.py``, ``scheduler.py``, ``tasks.py``, ``worker.py``, ``outbox.py``,
and ``extension.py`` (honker's SQLite extension for stdlib connections).
"""

from alkdev_storage.errors import (
    ExtensionNotAvailable,
    LeadershipLost,
    LockHeld,
    Retryable,
    TaskFailed,
    UnknownTaskError,
)
from alkdev_storage.primitives.aio import AsyncTransaction
from alkdev_storage.primitives.contract import DatabaseContract, TransactionContract
from alkdev_storage.primitives.extension import extension_info, load_extension
from alkdev_storage.primitives.job import Job
from alkdev_storage.primitives.lock import Lock
from alkdev_storage.primitives.notify import Listener, Notification, UpdateEvents
from alkdev_storage.primitives.outbox import Outbox
from alkdev_storage.primitives.policy import JobPolicy
from alkdev_storage.primitives.queue import ClaimIterator, Queue
from alkdev_storage.primitives.scheduler import (
    CronSchedule,
    Scheduler,
    cron_next_after,
    crontab,
    every_s,
)
from alkdev_storage.primitives.stream import Event, Stream, StreamSubscription
from alkdev_storage.primitives.tasks import (
    PeriodicTaskOptions,
    TaskOptions,
    TaskRegistry,
    TaskResult,
    TaskSpec,
    TaskWrapper,
    load_app,
    registry,
)
from alkdev_storage.primitives.worker import run_task, run_task_blocking
from alkdev_storage.primitives.worker_loop import run_workers, run_workers_blocking

__all__ = [
    "AsyncTransaction",
    "ClaimIterator",
    "CronSchedule",
    "DatabaseContract",
    "Event",
    "ExtensionNotAvailable",
    "Job",
    "JobPolicy",
    "LeadershipLost",
    "Listener",
    "Lock",
    "LockHeld",
    "Notification",
    "Outbox",
    "PeriodicTaskOptions",
    "Queue",
    "Retryable",
    "Scheduler",
    "Stream",
    "StreamSubscription",
    "TaskFailed",
    "TaskOptions",
    "TaskRegistry",
    "TaskResult",
    "TaskSpec",
    "TaskWrapper",
    "TransactionContract",
    "UnknownTaskError",
    "UpdateEvents",
    "cron_next_after",
    "crontab",
    "every_s",
    "extension_info",
    "load_app",
    "load_extension",
    "registry",
    "run_task",
    "run_task_blocking",
    "run_workers",
    "run_workers_blocking",
]
