"""The Honker ephemeral event target: ``notify`` to dispatch, the shared
listener to receive (the seeds' ``HonkerEventTarget``, ``mode:
"ephemeral"``).

==========================================  ==================================
pubsub operation                            Honker operation
==========================================  ==================================
``add_event_listener("topic:id", fn)``      the Database's dispatcher starts
                                            wanting channel ``prefix+topic:id``
``dispatch_event(event)``                   ``db.notify(prefix + type, envelope)``
``dispatch_event(event, tx=tx)``            ``tx.notify(...)``: delivered only
                                            if ``tx`` commits
``remove_event_listener(...)``              the channel is no longer wanted
``close()``                                 every listener removed
==========================================  ==================================

Decisions (docs/0021-event-targets.md)
--------------------------------------
* No ``db.listen`` per topic: every target of a Database is fed by that
  Database's one :class:`~alkdev_storage.events.dispatcher.Dispatcher`
  (one match listener on the shared one-read-per-commit path, one
  thread), which asks each target whether it wants a row's channel: a
  prefix check and one dictionary lookup (plus the patterns, if any).
  Ten thousand ``topic:id`` listeners add no watcher and no query.
* Patterns (``graph:*``) are served by the same read.
* ``prefix`` namespaces the channels (``"app:"`` + type); rows of other
  channels are never handed to this target.
* The payload is the event envelope (:mod:`alkdev_storage.events.event`);
  a plain ``notify`` of another binding is received with the payload as
  its detail.
* Ephemeral means ``pg_notify`` semantics: a listener gets what is
  committed after it was added; a listener that falls behind more than
  the dispatcher's buffer (10,000 rows) loses the oldest (counted in
  ``dropped``). Use the durable target for what must not be lost.
* Listeners run on the dispatcher thread (async ones on their loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alkdev_storage.errors import InterfaceError
from alkdev_storage.events.dispatcher import dispatcher_of
from alkdev_storage.events.event import Event, from_envelope, to_envelope
from alkdev_storage.events.registry import Listener, ListenerRegistry, log
from alkdev_storage.events.target import close_sinks, new_origin, prepare_event
from alkdev_storage.events.typed import TypeRegistry, TypesArg
from alkdev_storage.primitives.validate import check_name

if TYPE_CHECKING:
    from alkdev_storage.database import Database
    from alkdev_storage.primitives.notify import Notification

__all__ = ["EphemeralEventTarget"]


class EphemeralEventTarget:
    """Events as Honker notifications (see the module docstring)."""

    mode = "ephemeral"

    def __init__(
        self,
        db: Database,
        *,
        prefix: str = "",
        types: TypesArg = None,
        origin: str | None = None,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if "*" in prefix:
            raise ValueError(f"prefix must not contain '*': {prefix!r}")
        self.db = db
        self.prefix = prefix
        self.types = TypeRegistry(types)
        """The payload models of this target."""
        self.origin = origin if origin is not None else new_origin()
        """Origin id written into the envelope of what this target dispatches."""
        self._listeners = ListenerRegistry()
        self._plen = len(prefix)
        self._closed = False
        self.received = 0
        """Notifications delivered to this target's listeners."""

    def __repr__(self) -> str:
        return (
            f"<EphemeralEventTarget {self.db.path!r} prefix={self.prefix!r} "
            f"listeners={len(self._listeners)}>"
        )

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

    # -- listening -------------------------------------------------------

    def add_event_listener(self, type: str, listener: Listener) -> None:
        """Call ``listener`` for each event of ``type`` (or pattern)
        committed from now on, by any process."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        self._listeners.add(type, listener)
        dispatcher_of(self.db).attach(self)

    def remove_event_listener(self, type: str, listener: Listener) -> None:
        """See :class:`~alkdev_storage.events.target.EventTarget`."""
        self._listeners.remove(type, listener)

    def wants(self, channel: str) -> bool:
        """True if a notification on ``channel`` has a listener here."""
        if self._plen:
            if not channel.startswith(self.prefix):
                return False
            channel = channel[self._plen :]
        return self._listeners.wants(channel)

    def deliver(self, notification: Notification) -> None:
        """Hand one notification to the listeners (dispatcher thread)."""
        t = notification.channel[self._plen :]
        detail, origin, eid = from_envelope(t, notification.payload)
        if self.types:
            ok, detail = self.types.incoming(t, detail)
            if not ok:
                log.warning("dropped an event of %r: its detail does not match its model", t)
                return
        self.received += 1
        self._listeners.call(Event(t, detail, origin=origin, id=eid))

    # -- dispatching -----------------------------------------------------

    def channel_of(self, type: str) -> str:
        """The Honker channel events of ``type`` travel on."""
        return self.prefix + type

    def prepare(self, event: Event) -> tuple[str, dict[str, Any]]:
        """``(channel, envelope)`` of ``event``, checked (type, payload
        model) before anything is written."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        event = prepare_event(event, self.types)
        channel = self.prefix + event.type
        check_name(channel, "channel")
        return channel, to_envelope(event, event.origin or self.origin)

    def dispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """``notify`` the event (with ``tx``: in that transaction, so it
        is delivered only if it commits). Returns True."""
        channel, env = self.prepare(event)
        if tx is None:
            self.db.notify(channel, env)
        else:
            tx.notify(channel, env)
        return True

    async def adispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """:meth:`dispatch_event` for async code (``await db.anotify``; with
        ``tx`` the row joins that transaction at once)."""
        channel, env = self.prepare(event)
        if tx is None:
            await self.db.anotify(channel, env)
        else:
            tx.notify(channel, env)
        return True

    def close(self) -> None:
        """Remove every listener (subscriptions end after their buffered
        items); dispatching afterwards raises ``InterfaceError``."""
        self._closed = True
        close_sinks(self._listeners.clear())
        dispatcher_of(self.db).detach(self)
