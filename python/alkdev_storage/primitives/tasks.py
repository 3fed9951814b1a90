"""Task decorators and workers, API-compatible with the honker binding's
``honker._tasks`` (``@queue.task()``, ``@queue.periodic_task()``,
``db.task``, ``db.periodic_task``, ``db.run_workers``, ``registry()``,
``TaskResult``, ``UnknownTaskError``, ``run_workers``, ``load_app``).

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
  Both raise ``TimeoutError``.
* ``retries`` bounds attempts: when a failing job has used ``retries``
  attempts it goes to the dead table (``fail``) instead of ``retry``. It
  defaults to the queue's ``max_attempts``, which gives honker's behaviour.
* Sync task functions run in a worker thread (``asyncio.to_thread``) so
  they never block the event loop; async ones run on the loop.
  ``timeout_s`` bounds both (a sync thread cannot be interrupted: the job
  is retried, the thread finishes in the background).
* ``run_workers_blocking`` runs the same dispatch in the calling thread
  without an event loop (until ``stop_event`` or an idle ``timeout``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import os
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alkdev_storage.primitives.queue import Retryable

if TYPE_CHECKING:
    from collections.abc import Callable

    from alkdev_storage.primitives.queue import Job, Queue

__all__ = [
    "TaskRegistry",
    "TaskResult",
    "TaskSpec",
    "UnknownTaskError",
    "load_app",
    "periodic_task_decorator",
    "registry",
    "run_workers",
    "run_workers_blocking",
    "task_decorator",
]

_ENVELOPE = "__honker_task__"
_DEFAULT_RESULT_TTL_S = 3600


@dataclass
class TaskSpec:
    """What the registry knows about one task."""

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


class TaskRegistry:
    """Task name -> :class:`TaskSpec` (one per process, see :func:`registry`)."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}

    def register(self, spec: TaskSpec) -> None:
        old = self._specs.get(spec.name)
        if old is not None and old.fn is not spec.fn:
            raise ValueError(
                f"duplicate task name {spec.name!r}: already registered for "
                f"{old.fn.__module__}.{old.fn.__qualname__}, now "
                f"{spec.fn.__module__}.{spec.fn.__qualname__}; pass name=... to tell them apart"
            )
        self._specs[spec.name] = spec

    def get(self, name: str) -> TaskSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def queues(self) -> set[str]:
        return {s.queue_name for s in self._specs.values()}

    def unregister(self, name: str) -> None:
        """Forget a task (tests)."""
        self._specs.pop(name, None)

    def clear(self) -> None:
        """Forget every task (tests)."""
        self._specs.clear()


_REGISTRY = TaskRegistry()


def registry() -> TaskRegistry:
    """The process-wide task registry."""
    return _REGISTRY


class UnknownTaskError(Exception):
    """A worker met a task name that is not registered in its process."""


class TaskResult:
    """What calling a task returns: the job id, and the task's result once
    a worker saved it."""

    __slots__ = ("_db", "_job_id", "_queue")

    def __init__(self, db: Any, queue: Queue, job_id: int) -> None:
        self._db = db
        self._queue = queue
        self._job_id = job_id

    @property
    def id(self) -> int:
        return self._job_id

    def get(self, timeout: float | None = None) -> Any:
        """Block until the result is saved; ``TimeoutError`` after ``timeout``."""
        return self._queue.wait_result_blocking(self._job_id, timeout=timeout)

    async def aget(self, timeout: float | None = None) -> Any:
        return await self._queue.wait_result(self._job_id, timeout=timeout)

    def __repr__(self) -> str:
        return f"TaskResult(queue={self._queue.name!r}, id={self._job_id})"


def _default_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__ or '__main__'}.{fn.__qualname__}"


def _envelope(name: str, args: Any, kwargs: Any) -> dict[str, Any]:
    return {_ENVELOPE: {"task": name, "args": list(args), "kwargs": dict(kwargs)}}


class _TaskWrapper:
    """The decorated task: calling it enqueues; ``call_local`` runs it here."""

    def __init__(self, spec: TaskSpec, queue: Queue) -> None:
        self.spec = spec
        self.fn = spec.fn
        self._queue = queue
        functools.update_wrapper(self, spec.fn)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def queue(self) -> Queue:
        return self._queue

    def __call__(self, *args: Any, **kwargs: Any) -> TaskResult:
        job_id = self._queue.enqueue(
            _envelope(self.spec.name, args, kwargs),
            priority=self.spec.priority,
            expires=self.spec.expires_s,
        )
        return TaskResult(self._queue.db, self._queue, job_id)

    def enqueue(self, *args: Any, tx: Any = None, **kwargs: Any) -> TaskResult:
        """Like calling the task, but inside transaction ``tx``."""
        job_id = self._queue.enqueue(
            _envelope(self.spec.name, args, kwargs),
            tx=tx,
            priority=self.spec.priority,
            expires=self.spec.expires_s,
        )
        return TaskResult(self._queue.db, self._queue, job_id)

    def call_local(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.spec.name!r} on queue {self._queue.name!r}>"


def task_decorator(
    queue: Queue,
    *,
    name: str | None = None,
    retries: int | None = None,
    retry_delay_s: int = 60,
    timeout_s: float | None = None,
    priority: int = 0,
    expires_s: int | None = None,
    store_result: bool = True,
    result_ttl_s: int = _DEFAULT_RESULT_TTL_S,
) -> Callable[[Callable[..., Any]], _TaskWrapper]:
    def decorate(fn: Callable[..., Any]) -> _TaskWrapper:
        if not callable(fn):
            raise TypeError("@task() decorates a function")
        spec = TaskSpec(
            name=name or _default_name(fn),
            fn=fn,
            queue_name=queue.name,
            retries=queue.max_attempts if retries is None else int(retries),
            retry_delay_s=int(retry_delay_s),
            timeout_s=timeout_s,
            priority=int(priority),
            expires_s=expires_s,
            store_result=bool(store_result),
            result_ttl_s=int(result_ttl_s),
        )
        _REGISTRY.register(spec)
        return _TaskWrapper(spec, queue)

    return decorate


def periodic_task_decorator(
    queue: Queue,
    schedule: Any,
    *,
    name: str | None = None,
    scheduler_name: str | None = None,
    expires_s: int | None = None,
    priority: int = 0,
    store_result: bool = False,
    result_ttl_s: int = _DEFAULT_RESULT_TTL_S,
) -> Callable[[Callable[..., Any]], _TaskWrapper]:
    from alkdev_storage.primitives.scheduler import Scheduler

    def decorate(fn: Callable[..., Any]) -> _TaskWrapper:
        task_name = name or _default_name(fn)
        spec = TaskSpec(
            name=task_name,
            fn=fn,
            queue_name=queue.name,
            retries=queue.max_attempts,
            priority=int(priority),
            expires_s=expires_s,
            store_result=bool(store_result),
            result_ttl_s=int(result_ttl_s),
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
        return _TaskWrapper(spec, queue)

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


def _retry_or_fail(job: Job, spec: TaskSpec, delay_s: int, error: str) -> None:
    if job.attempts >= spec.retries:
        job.fail(error=error)
    else:
        job.retry(delay_s=delay_s, error=error)


def _finish_ok(job: Job, spec: TaskSpec, result: Any) -> None:
    if spec.store_result:
        try:
            job.queue.save_result(job.id, result, ttl=spec.result_ttl_s)
        except Exception:
            traceback.print_exc()
    job.ack()


def _finish_error(job: Job, spec: TaskSpec, e: BaseException) -> None:
    if isinstance(e, Retryable):
        job.retry(delay_s=e.delay_s, error=str(e))
    elif isinstance(e, TimeoutError):
        _retry_or_fail(job, spec, spec.retry_delay_s, f"timeout after {spec.timeout_s}s")
    else:
        err = f"{type(e).__name__}: {e}\n{''.join(traceback.format_exception(e))}"
        _retry_or_fail(job, spec, spec.retry_delay_s, err)


def _resolve(job: Job, reg: TaskRegistry) -> TaskSpec | None:
    """The job's spec, or None after dead-lettering a job we cannot run."""
    env = _envelope_of(job)
    if env is None:
        job.fail(error="raw (non-decorated) payload on a decorated-task queue")
        return None
    task_name = env.get("task")
    spec = reg.get(task_name) if isinstance(task_name, str) else None
    if spec is None:
        job.fail(error=f"unknown task: {task_name!r}. Registered tasks: {reg.names()}")
        return None
    return spec


async def _run_one(job: Job, spec: TaskSpec) -> None:
    env = _envelope_of(job) or {}
    args = env.get("args", [])
    kwargs = env.get("kwargs", {})
    try:
        if inspect.iscoroutinefunction(spec.fn):
            aw = spec.fn(*args, **kwargs)
        else:
            aw = asyncio.to_thread(spec.fn, *args, **kwargs)
        if spec.timeout_s is not None:
            result = await asyncio.wait_for(aw, timeout=spec.timeout_s)
        else:
            result = await aw
    except asyncio.CancelledError:
        raise
    except Exception as e:
        _finish_error(job, spec, e)
        return
    _finish_ok(job, spec, result)


def _run_one_blocking(job: Job, spec: TaskSpec) -> None:
    env = _envelope_of(job) or {}
    args = env.get("args", [])
    kwargs = env.get("kwargs", {})
    try:
        if inspect.iscoroutinefunction(spec.fn):
            coro = spec.fn(*args, **kwargs)
            if spec.timeout_s is not None:
                coro = asyncio.wait_for(coro, timeout=spec.timeout_s)
            result = asyncio.run(coro)
        elif spec.timeout_s is not None:
            box: list[Any] = []

            def call() -> None:
                try:
                    box.append((True, spec.fn(*args, **kwargs)))
                except BaseException as exc:
                    box.append((False, exc))

            t = threading.Thread(target=call, daemon=True, name=f"task:{spec.name}")
            t.start()
            t.join(spec.timeout_s)
            if not box:
                raise TimeoutError(f"task {spec.name} timed out after {spec.timeout_s}s")
            ok, value = box[0]
            if not ok:
                raise value
            result = value
        else:
            result = spec.fn(*args, **kwargs)
    except Exception as e:
        _finish_error(job, spec, e)
        return
    _finish_ok(job, spec, result)


async def _drain_loop(
    queue: Queue, worker_id: str, reg: TaskRegistry, stop_event: asyncio.Event
) -> None:
    it = queue.claim(worker_id)
    try:
        async for job in it:
            if stop_event.is_set():
                job.retry(delay_s=0, error="worker shutting down")
                return
            spec = _resolve(job, reg)
            if spec is not None:
                await _run_one(job, spec)
    finally:
        it.close()


async def run_workers(
    db: Any,
    queue: str | None = None,
    concurrency: int | None = None,
    registry_: TaskRegistry | None = None,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Run ``concurrency`` workers per queue (every queue with registered
    tasks, or just ``queue``) until ``stop_event`` is set or cancelled."""
    reg = registry_ or _REGISTRY
    n = concurrency if concurrency is not None else (os.cpu_count() or 1)
    stop_event = stop_event or asyncio.Event()
    names = {queue} if queue else reg.queues()
    if not names:
        raise RuntimeError(
            "run_workers() called with no tasks registered. Import the module that "
            "defines your @q.task() functions before calling run_workers()."
        )
    prefix = f"honker-worker-{os.getpid()}"
    tasks = [
        asyncio.ensure_future(_drain_loop(db.queue(q), f"{prefix}-{q}-{i}", reg, stop_event))
        for q in sorted(names)
        for i in range(n)
    ]
    try:
        await stop_event.wait()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass


def run_workers_blocking(
    db: Any,
    queue: str | None = None,
    registry_: TaskRegistry | None = None,
    stop_event: threading.Event | None = None,
    timeout: float | None = None,
    worker_id: str | None = None,
) -> int:
    """One worker in the calling thread, no event loop: runs jobs of
    ``queue`` (or of every queue with registered tasks, in turn) until
    ``stop_event`` is set or no job arrived for ``timeout`` seconds.
    Returns the number of jobs handled."""
    reg = registry_ or _REGISTRY
    names = sorted({queue} if queue else reg.queues())
    if not names:
        raise RuntimeError("run_workers_blocking() called with no tasks registered")
    wid = worker_id or f"honker-worker-{os.getpid()}-{threading.get_ident()}"
    iters = [db.queue(q).claim(wid, timeout=0) for q in names]
    handled = 0
    sub = db.subscribe_updates()
    try:
        idle_since = time.monotonic()
        while not (stop_event is not None and stop_event.is_set()):
            got = False
            for it in iters:
                job = it.get(0)
                if job is None:
                    continue
                got = True
                spec = _resolve(job, reg)
                if spec is not None:
                    _run_one_blocking(job, spec)
                handled += 1
            if got:
                idle_since = time.monotonic()
                continue
            wait_s = 0.25 if stop_event is not None else None
            if timeout is not None:
                remaining = timeout - (time.monotonic() - idle_since)
                if remaining <= 0:
                    break
                wait_s = remaining if wait_s is None else min(wait_s, remaining)
            for it in iters:
                hint = it._wait_hint()
                if hint is not None:
                    wait_s = hint if wait_s is None else min(wait_s, hint)
            sub.wait(wait_s)
    finally:
        sub.close()
        for it in iters:
            it.close()
    return handled


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
