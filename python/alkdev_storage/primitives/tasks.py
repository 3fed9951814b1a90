"""Task decorators and workers, API-compatible with the honker binding's
``honker._tasks`` (``@queue.task()``, ``@queue.periodic_task()``,
``db.task``, ``db.periodic_task``, ``db.run_workers``, ``registry()``,
``TaskResult``, ``run_workers``, ``load_app``).

A decorated function, when called, enqueues a job whose payload is the
envelope ``{"__honker_task__": {"task": name, "args": [...], "kwargs":
{...}}}`` (honker's wire format, so honker workers can run our tasks and
the reverse); a worker resolves the name in the process-wide registry and
runs it.

Decisions
---------
* Default task name: ``module.qualname`` (as honker, Huey, Celery).
* ``TaskResult.get(timeout)`` blocks on the update watcher with the GIL
  released (it works inside or outside an event loop); ``aget`` is async.
  Both raise ``TimeoutError`` after their timeout, and
  :class:`~alkdev_storage.errors.TaskFailed` (with the job's last error)
  as soon as the job is in the dead table (its retries are used up).
* The task options are defined once (:class:`TaskOptions`,
  :class:`PeriodicTaskOptions`, defaults in :class:`TaskSpec`);
  ``Queue.task`` / ``Queue.periodic_task`` *are* :func:`task_decorator` /
  :func:`periodic_task_decorator`, and ``Database.task`` forwards to them.
* Workers run a task under the shared job policy
  (:mod:`alkdev_storage.primitives.policy`, :meth:`TaskSpec.policy`):
  ``retries`` bounds attempts (when a failing job has used ``retries``
  attempts it goes to the dead table instead of being retried, also for
  :class:`~alkdev_storage.errors.Retryable`); it defaults to the queue's
  ``max_attempts``, which gives honker's behaviour. A saved result is
  kept ``result_ttl_s`` seconds.
* Sync task functions run in a worker thread (``asyncio.to_thread``) so
  they never block the event loop; async ones run on the loop.
  ``timeout_s`` bounds both (a sync thread cannot be interrupted: the job
  is retried, the thread finishes in the background).
* A job whose payload is not a task envelope (raw, or not JSON) or names
  a task this process does not know goes to the dead table with a message
  saying so.
* The worker loops (``run_workers``, ``run_workers_blocking``) are in
  :mod:`alkdev_storage.primitives.worker_loop`.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from alkdev_storage.primitives.policy import JobPolicy
from alkdev_storage.primitives.validate import as_int, opt_int

if TYPE_CHECKING:
    from collections.abc import Callable

    from alkdev_storage.primitives.contract import DatabaseContract, TransactionContract
    from alkdev_storage.primitives.queue import Job, Queue
    from alkdev_storage.primitives.scheduler import CronSchedule

__all__ = [
    "PeriodicTaskOptions",
    "TaskOptions",
    "TaskRegistry",
    "TaskResult",
    "TaskSpec",
    "TaskWrapper",
    "load_app",
    "periodic_task_decorator",
    "registry",
    "resolve_job",
    "task_decorator",
]

_ENVELOPE = "__honker_task__"
_DEFAULT_RESULT_TTL_S = 3600


class TaskOptions(TypedDict, total=False):
    """The options of ``@queue.task(...)`` / ``@db.task(...)`` (defaults:
    the fields of :class:`TaskSpec`; ``retries`` defaults to the queue's
    ``max_attempts``)."""

    retries: int | None
    retry_delay_s: int
    timeout_s: float | None
    priority: int
    expires_s: int | None
    store_result: bool
    result_ttl_s: int


class PeriodicTaskOptions(TypedDict, total=False):
    """The options of ``@queue.periodic_task(schedule, ...)`` (the
    schedule's name defaults to the task's name; ``store_result`` to
    False)."""

    scheduler_name: str | None
    expires_s: int | None
    priority: int
    store_result: bool
    result_ttl_s: int


@dataclass
class TaskSpec:
    """What the registry knows about one task (its options, with their
    defaults)."""

    name: str
    fn: Callable[..., Any]
    queue_name: str
    retries: int = 3
    retry_delay_s: int = 60
    timeout_s: float | None = None
    priority: int = 0
    expires_s: int | None = None
    store_result: bool = True
    result_ttl_s: int = _DEFAULT_RESULT_TTL_S

    def policy(self) -> JobPolicy:
        """The job policy a worker runs this task with."""
        return JobPolicy(
            retries=self.retries,
            retry_delay_s=self.retry_delay_s,
            timeout_s=self.timeout_s,
            save_result=self.store_result,
            result_ttl_s=self.result_ttl_s,
            offload_sync=True,
        )


class TaskRegistry:
    """Task name -> :class:`TaskSpec` (one per process, see :func:`registry`)."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}

    def register(self, spec: TaskSpec) -> None:
        """Add ``spec``; ``ValueError`` if its name is taken by another function."""
        old = self._specs.get(spec.name)
        if old is not None and old.fn is not spec.fn:
            raise ValueError(
                f"duplicate task name {spec.name!r}: already registered for "
                f"{old.fn.__module__}.{old.fn.__qualname__}, now "
                f"{spec.fn.__module__}.{spec.fn.__qualname__}; pass name=... to tell them apart"
            )
        self._specs[spec.name] = spec

    def get(self, name: str) -> TaskSpec | None:
        """The spec registered under ``name``, or None."""
        return self._specs.get(name)

    def names(self) -> list[str]:
        """Every registered task name, sorted."""
        return sorted(self._specs)

    def queues(self) -> set[str]:
        """The names of the queues that have registered tasks."""
        return {s.queue_name for s in self._specs.values()}

    def unregister(self, name: str) -> None:
        """Forget a task (tests)."""
        self._specs.pop(name, None)

    def clear(self) -> None:
        """Forget every task (tests)."""
        self._specs.clear()

    def __repr__(self) -> str:
        return f"<TaskRegistry {len(self._specs)} tasks>"


_REGISTRY = TaskRegistry()


def registry() -> TaskRegistry:
    """The process-wide task registry."""
    return _REGISTRY


class TaskResult:
    """What calling a task returns: the job id, and the task's result once
    a worker saved it."""

    __slots__ = ("_db", "_job_id", "_queue")

    def __init__(self, db: DatabaseContract, queue: Queue, job_id: int) -> None:
        self._db = db
        self._queue = queue
        self._job_id = job_id

    @property
    def id(self) -> int:
        """The id of the enqueued job."""
        return self._job_id

    def get(self, timeout: float | None = None) -> Any:
        """Block until the result is saved; ``TimeoutError`` after
        ``timeout``; :class:`~alkdev_storage.errors.TaskFailed` (with the
        last error) if the job died instead."""
        return self._queue.wait_result_blocking(self._job_id, timeout=timeout)

    async def aget(self, timeout: float | None = None) -> Any:
        """Async :meth:`get`."""
        return await self._queue.wait_result(self._job_id, timeout=timeout)

    def __repr__(self) -> str:
        return f"TaskResult(queue={self._queue.name!r}, id={self._job_id})"


def _default_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__ or '__main__'}.{fn.__qualname__}"


def _envelope(name: str, args: Any, kwargs: Any) -> dict[str, Any]:
    return {_ENVELOPE: {"task": name, "args": list(args), "kwargs": dict(kwargs)}}


class TaskWrapper:
    """What ``@queue.task()`` returns: calling it enqueues a run (a
    :class:`TaskResult`); ``call_local`` runs the function here."""

    def __init__(self, spec: TaskSpec, queue: Queue) -> None:
        self.spec = spec
        self.fn = spec.fn
        self._queue = queue
        functools.update_wrapper(self, spec.fn)

    @property
    def name(self) -> str:
        """The task's registered name."""
        return self.spec.name

    @property
    def queue(self) -> Queue:
        """The queue the task's jobs go to."""
        return self._queue

    def __call__(self, *args: Any, **kwargs: Any) -> TaskResult:
        """Enqueue a run of the task with these arguments."""
        job_id = self._queue.enqueue(
            _envelope(self.spec.name, args, kwargs),
            priority=self.spec.priority,
            expires=self.spec.expires_s,
        )
        return TaskResult(self._queue.db, self._queue, job_id)

    def enqueue(
        self, *args: Any, tx: TransactionContract | None = None, **kwargs: Any
    ) -> TaskResult:
        """Like calling the task; with ``tx`` the job exists only if that
        transaction commits."""
        job_id = self._queue.enqueue(
            _envelope(self.spec.name, args, kwargs),
            tx=tx,
            priority=self.spec.priority,
            expires=self.spec.expires_s,
        )
        return TaskResult(self._queue.db, self._queue, job_id)

    def call_local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here, now (no queue)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.spec.name!r} on queue {self._queue.name!r}>"


def _check_options(options: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"{what} got unknown option(s) {unknown}; allowed: {sorted(allowed)}")


def task_decorator(
    queue: Queue, name: str | None = None, **options: Unpack[TaskOptions]
) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """``@queue.task(name=None, **options)``: register the function as a
    task on ``queue``; calling it then enqueues a run (see
    :class:`TaskOptions`)."""
    opts: dict[str, Any] = dict(options)
    _check_options(opts, TaskOptions.__optional_keys__, "task()")
    retries = opts.pop("retries", None)
    opts["retries"] = queue.max_attempts if retries is None else as_int(retries, "retries")
    for key in ("retry_delay_s", "priority", "result_ttl_s", "expires_s"):
        if opts.get(key) is not None:
            opts[key] = as_int(opts[key], key)
    if "store_result" in opts:
        opts["store_result"] = bool(opts["store_result"])

    def decorate(fn: Callable[..., Any]) -> TaskWrapper:
        if not callable(fn):
            raise TypeError("@task() decorates a function")
        spec = TaskSpec(name=name or _default_name(fn), fn=fn, queue_name=queue.name, **opts)
        _REGISTRY.register(spec)
        return TaskWrapper(spec, queue)

    return decorate


def periodic_task_decorator(
    queue: Queue,
    schedule: CronSchedule | str,
    name: str | None = None,
    **options: Unpack[PeriodicTaskOptions],
) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """``@queue.periodic_task(schedule, name=None, **options)``: a task
    that the scheduler enqueues on ``schedule`` (see
    :class:`PeriodicTaskOptions`)."""
    from alkdev_storage.primitives.scheduler import Scheduler

    opts: dict[str, Any] = dict(options)
    _check_options(opts, PeriodicTaskOptions.__optional_keys__, "periodic_task()")
    scheduler_name = opts.pop("scheduler_name", None)
    priority = as_int(opts.pop("priority", 0), "priority")
    expires_s = opt_int(opts.pop("expires_s", None), "expires_s")
    store_result = bool(opts.pop("store_result", False))
    result_ttl_s = as_int(opts.pop("result_ttl_s", _DEFAULT_RESULT_TTL_S), "result_ttl_s")

    def decorate(fn: Callable[..., Any]) -> TaskWrapper:
        if not callable(fn):
            raise TypeError("@periodic_task() decorates a function")
        task_name = name or _default_name(fn)
        spec = TaskSpec(
            name=task_name,
            fn=fn,
            queue_name=queue.name,
            retries=queue.max_attempts,
            priority=priority,
            expires_s=expires_s,
            store_result=store_result,
            result_ttl_s=result_ttl_s,
        )
        _REGISTRY.register(spec)
        Scheduler(queue.db).add(
            name=scheduler_name or task_name,
            queue=queue.name,
            schedule=schedule,
            payload=_envelope(task_name, (), {}),
            priority=priority,
            expires=expires_s,
        )
        return TaskWrapper(spec, queue)

    return decorate


# ---------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------


def _envelope_of(job: Job) -> dict[str, Any] | None:
    p = job.payload
    if isinstance(p, dict):
        env = p.get(_ENVELOPE)
        if isinstance(env, dict):
            return env
    return None


def resolve_job(job: Job, reg: TaskRegistry) -> tuple[TaskSpec, dict[str, Any]] | None:
    """The job's spec and envelope, or None after dead-lettering a job we
    cannot run."""
    try:
        env = _envelope_of(job)
    except ValueError as e:  # not JSON
        job.fail(error=f"undecodable payload on a decorated-task queue: {e}")
        return None
    if env is None:
        job.fail(error="raw (non-decorated) payload on a decorated-task queue")
        return None
    task_name = env.get("task")
    spec = reg.get(task_name) if isinstance(task_name, str) else None
    if spec is None:
        job.fail(error=f"unknown task: {task_name!r}. Registered tasks: {reg.names()}")
        return None
    return spec, env


def load_app(target: str) -> Any:
    """Import ``module.path:variable`` (a Database whose module registers tasks)."""
    if ":" not in target:
        raise ValueError(f"target must be 'module.path:variable', got {target!r}")
    module_path, attr = target.rsplit(":", 1)
    module = importlib.import_module(module_path)
    obj = getattr(module, attr, None)
    if obj is None:
        raise AttributeError(f"{module_path} has no attribute {attr!r}")
    return obj
