"""Honker's primitives on the native session, API-compatible with the honker
Python binding: notify/listen, queues, streams, locks, rate limits, the
scheduler, task decorators and workers, and the outbox. They read and write
honker's own tables (created by honker-core's bootstrap), so one ``.db``
file can be shared with any honker binding or honker's SQLite extension.

Most users reach these through :class:`alkdev_storage.Database` methods
(``db.queue``, ``db.stream``, ``db.listen``, ``db.lock``, ...). What we add
to honker's API: blocking iteration (``for``, ``get(timeout)``) next to
``async for`` everywhere honker only iterates asynchronously, ``timeout=``
to end an iteration when idle, ``Lock.renew()`` with
:class:`LeadershipLost`, ``db.scheduler()`` with a leader-safe runner
(``run`` / ``run_blocking``, optional hot standby), and ``publish``
returning the event's offset.

Layering: this package imports only ``alkdev_storage._native`` and
``alkdev_storage.errors``.
"""

from alkdev_storage.primitives.lock import LeadershipLost, Lock, LockHeld
from alkdev_storage.primitives.notify import Listener, Notification, UpdateEvents
from alkdev_storage.primitives.outbox import Outbox
from alkdev_storage.primitives.queue import ClaimIterator, Job, Queue, Retryable
from alkdev_storage.primitives.scheduler import (
    CronSchedule,
    Scheduler,
    cron_next_after,
    crontab,
    every_s,
)
from alkdev_storage.primitives.stream import Event, Stream, StreamSubscription
from alkdev_storage.primitives.tasks import (
    TaskRegistry,
    TaskResult,
    TaskSpec,
    UnknownTaskError,
    load_app,
    registry,
    run_workers,
    run_workers_blocking,
)
from alkdev_storage.primitives.worker import run_task, run_task_blocking

__all__ = [
    "ClaimIterator",
    "CronSchedule",
    "Event",
    "Job",
    "LeadershipLost",
    "Listener",
    "Lock",
    "LockHeld",
    "Notification",
    "Outbox",
    "Queue",
    "Retryable",
    "Scheduler",
    "Stream",
    "StreamSubscription",
    "TaskRegistry",
    "TaskResult",
    "TaskSpec",
    "UnknownTaskError",
    "UpdateEvents",
    "cron_next_after",
    "crontab",
    "every_s",
    "load_app",
    "registry",
    "run_task",
    "run_task_blocking",
    "run_workers",
    "run_workers_blocking",
]
