"""The ``EventTarget`` protocol and the in-process target.

:class:`EventTarget` is the DOM ``EventTarget`` (the pubsub package's
``TypedEventTarget``) in Python: ``add_event_listener(type, listener)``,
``remove_event_listener(type, listener)``, ``dispatch_event(event) ->
bool`` and ``close()``, plus ``adispatch_event`` for async code and
``tx=`` for commit-aware dispatch. Implementations:

* :class:`InProcessEventTarget` (this module, the default of
  ``create_pubsub``): listeners are called synchronously inside
  ``dispatch_event``, as the DOM does.
* :class:`~alkdev_storage.events.ephemeral.EphemeralEventTarget` and
  :class:`~alkdev_storage.events.durable.DurableEventTarget`: Honker
  notify/listen and streams (``create_honker_event_target``).
* :class:`~alkdev_storage.events.composite.CompositeEventTarget`: in
  process at once, and through Honker to other processes.
* :class:`~alkdev_storage.events.redis_target.RedisEventTarget`: Redis
  Streams between machines.

Commit-aware dispatch: ``dispatch_event(event, tx=tx)`` delivers only if
``tx`` commits, never if it rolls back. Listeners of a commit-aware
in-process dispatch run after the commit on the database's event thread
(:mod:`alkdev_storage.events.dispatcher`), so the in-process target needs
the database: ``InProcessEventTarget(db=db)``.

``dispatch_event`` returns True when the event was delivered to at least
one listener at once or handed to a transport (written, or queued for
the commit); False when an in-process dispatch found no listener.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from alkdev_storage.errors import InterfaceError
from alkdev_storage.events.event import Event, check_type
from alkdev_storage.events.registry import Listener, ListenerRegistry
from alkdev_storage.events.subscription import Sink
from alkdev_storage.events.typed import TypeRegistry, TypesArg

if TYPE_CHECKING:
    from alkdev_storage.database import Database

__all__ = [
    "EventTarget",
    "InProcessEventTarget",
    "adeliver",
    "close_sinks",
    "new_origin",
    "prepare_event",
]


def new_origin() -> str:
    """A fresh origin id (random, 32 hex digits)."""
    return uuid.uuid4().hex


@runtime_checkable
class EventTarget(Protocol):
    """What every event target implements (see the module docstring)."""

    def add_event_listener(self, type: str, listener: Listener) -> None:
        """Call ``listener(event)`` for each event of ``type`` (a type, or a
        pattern with ``*``). Adding it twice keeps one registration."""
        ...

    def remove_event_listener(self, type: str, listener: Listener) -> None:
        """Stop calling ``listener`` for ``type`` (no-op if it was not)."""
        ...

    def dispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """Deliver ``event`` (with ``tx``: only if that transaction commits)."""
        ...

    async def adispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """:meth:`dispatch_event` for async code (never blocks the loop)."""
        ...

    def close(self) -> None:
        """Remove every listener and release what the target holds."""
        ...


def prepare_event(event: Event, types: TypeRegistry) -> Event:
    """``event`` checked for dispatch: an :class:`Event` with a valid type,
    and its detail against the payload model of its type (then a copy
    holding the model instance). Raises before anything is delivered or
    written."""
    if not isinstance(event, Event):
        raise TypeError(f"dispatch_event takes an Event, not {type(event).__name__}")
    t = event.type
    if type(t) is not str or not t or "*" in t:
        check_type(t)
    if types.models:
        detail = types.outgoing(t, event.detail)
        if detail is not event.detail:
            return event.with_detail(detail)
    return event


def close_sinks(stored: list[Any]) -> None:
    """Tell the subscriptions among removed listeners that their target
    closed (they end once their buffered items are read)."""
    for fn in stored:
        if isinstance(fn, Sink):
            fn.target_closed()


class InProcessEventTarget:
    """Listeners in this process, called synchronously by
    :meth:`dispatch_event` (the default target of ``create_pubsub``).

    ``types``: payload models by type (:mod:`alkdev_storage.events.typed`).
    ``db``: the database whose transactions ``dispatch_event(..., tx=)``
    may be given."""

    def __init__(self, *, types: TypesArg = None, db: Database | None = None) -> None:
        self._listeners = ListenerRegistry()
        self.types = TypeRegistry(types)
        """The payload models of this target."""
        self.db = db
        self.origin = new_origin()
        """This target's origin id."""
        self._closed = False

    def __repr__(self) -> str:
        return f"<InProcessEventTarget listeners={len(self._listeners)}>"

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    @property
    def listening(self) -> bool:
        """True while some listener is registered."""
        return len(self._listeners) > 0

    def listener_count(self, type: str | None = None) -> int:
        """Listeners registered under ``type`` (exactly), or in all."""
        return len(self._listeners) if type is None else self._listeners.count(type)

    def add_event_listener(self, type: str, listener: Listener) -> None:
        """See :class:`EventTarget`."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        self._listeners.add(type, listener)

    def remove_event_listener(self, type: str, listener: Listener) -> None:
        """See :class:`EventTarget`."""
        self._listeners.remove(type, listener)

    def prepare(self, event: Event) -> Event:
        """``event`` checked for dispatch (:func:`prepare_event`)."""
        return prepare_event(event, self.types)

    def deliver(self, event: Event) -> int:
        """Call the listeners of ``event`` now (no checks); returns how many.
        The first listener exception is raised once all have run."""
        n, err = self._listeners.call(event)
        if err is not None:
            raise err
        return n

    def dispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """See :class:`EventTarget`; listener exceptions reach the caller
        (the first one, after every listener ran)."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        event = prepare_event(event, self.types)
        if tx is not None:
            self._after_commit(event, tx)
            return True
        n, err = self._listeners.call(event)
        if err is not None:
            raise err
        return n > 0

    async def adispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """As :meth:`dispatch_event`; a subscription with the ``"block"``
        policy is awaited (room in its buffer) instead of blocking."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        event = self.prepare(event)
        if tx is not None:
            self._after_commit(event, tx)
            return True
        return await adeliver(self._listeners, event)

    def _after_commit(self, event: Event, tx: Any) -> None:
        db = self.db
        if db is None:
            raise TypeError(
                "dispatch_event(..., tx=) on an in-process target needs the database: "
                "create it with InProcessEventTarget(db=db)"
            )
        from alkdev_storage.events.dispatcher import after_commit

        after_commit(db, tx, lambda: self._deliver_logged(event))

    def _deliver_logged(self, event: Event) -> None:
        self._listeners.call(event)

    def close(self) -> None:
        """Remove every listener; subscriptions end after their buffered
        items. Dispatching afterwards raises ``InterfaceError``."""
        self._closed = True
        close_sinks(self._listeners.clear())


async def adeliver(listeners: ListenerRegistry, event: Event) -> bool:
    """Deliver ``event`` from async code: blocking subscriptions are
    awaited; the first listener exception is raised after all ran."""
    fns = listeners.lookup(event.type)
    if not any(type(fn) is Sink and fn.blocks for fn in fns):
        n, err = listeners.call(event)
        if err is not None:
            raise err
        return n > 0
    first: BaseException | None = None
    for fn in fns:
        try:
            if type(fn) is Sink and fn.blocks:
                await fn.apush(event)
            else:
                fn(event)
        except Exception as e:
            if first is None:
                first = e
    if first is not None:
        raise first
    return len(fns) > 0
