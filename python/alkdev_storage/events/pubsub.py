"""``create_pubsub``: publish and subscribe by routing key over an event
target, as the pubsub package's ``createPubSub`` (graphql-yoga's).

Topics are formed exactly as there::

    publish(routing_key, payload)      -> topic routing_key
    publish(routing_key, id, payload)  -> topic f"{routing_key}:{id}"
    subscribe(routing_key)             -> topic routing_key
    subscribe(routing_key, id)         -> topic f"{routing_key}:{id}"

and each publish dispatches one event of that type whose ``detail`` is the
payload; a subscription yields the details. One deliberate difference:
the original takes ``args[1] ?? args[0]`` as the payload, so a ``null``
payload published with an id became the id; here ``publish(key, id,
None)`` publishes None.

An ``id`` is a ``str`` or an ``int`` (``bool`` and ``float`` are refused:
their text differs between Python and JavaScript); a routing key is a
non-empty ``str`` (a pattern with ``*`` for ``subscribe`` only), or a
catalog definition (anything with ``name`` and a pydantic ``payload``
model): then ``publish`` validates the payload first (``ValidationFailed``
naming the field, nothing dispatched) and ``subscribe`` yields model
instances.

``subscribe`` returns a :class:`~alkdev_storage.events.subscription.Subscription`:
``async for`` and ``for`` alike, bounded (``max_buffered``, ``overflow``),
unsubscribed when the iteration stops (see that module).
"""

from __future__ import annotations

from typing import Any

from alkdev_storage.events.event import Event, check_key, check_type
from alkdev_storage.events.subscription import DEFAULT_MAX_BUFFERED, Overflow, Subscription
from alkdev_storage.events.target import EventTarget, InProcessEventTarget
from alkdev_storage.events.typed import definition_of, validate_detail

__all__ = ["PubSub", "create_pubsub", "topic"]


def _id_text(id: Any) -> str:
    if isinstance(id, bool) or not isinstance(id, (str, int)):
        raise TypeError(f"a pubsub id must be a str or an int, not {type(id).__name__}")
    if isinstance(id, str) and not id:
        raise ValueError("a pubsub id must not be empty")
    return str(id)


def _key(routing_key: Any) -> tuple[str, Any]:
    """``(name, model or None)`` of a routing key or catalog definition."""
    if type(routing_key) is str:
        return check_key(routing_key, "routing_key"), None
    d = definition_of(routing_key)
    if d is not None:
        return d
    return check_key(routing_key, "routing_key"), None


def topic(routing_key: Any, id: Any = None) -> str:
    """The topic of ``routing_key`` and ``id`` (None: no id)."""
    name, _ = _key(routing_key)
    return name if id is None else f"{name}:{_id_text(id)}"


class PubSub:
    """Publish/subscribe over one event target (see the module docstring)."""

    def __init__(self, event_target: EventTarget | None = None) -> None:
        if event_target is not None and not isinstance(event_target, EventTarget):
            raise TypeError(
                f"event_target must implement EventTarget, not {type(event_target).__name__}"
            )
        self.target: EventTarget = (
            event_target if event_target is not None else InProcessEventTarget()
        )
        """The event target events go through."""

    def __repr__(self) -> str:
        return f"<PubSub target={self.target!r}>"

    def _event(self, routing_key: Any, args: tuple[Any, ...]) -> Event:
        if len(args) == 1 and type(routing_key) is str and routing_key and "*" not in routing_key:
            return Event(routing_key, args[0])  # the hot path: a plain key, no id
        if len(args) == 1:
            id, payload = None, args[0]
        elif len(args) == 2:
            id, payload = args
            if id is None:
                raise TypeError("publish(routing_key, id, payload): id must not be None")
        else:
            raise TypeError(
                "publish takes (routing_key, payload) or (routing_key, id, payload), "
                f"got {len(args) + 1} positional arguments"
            )
        name, model = _key(routing_key)
        t = check_type(name if id is None else f"{name}:{_id_text(id)}", "topic")
        if model is not None:
            payload = validate_detail(model, payload, t)
        return Event(t, payload)

    def publish(self, routing_key: Any, *args: Any, tx: Any = None) -> None:
        """Publish ``payload`` on ``routing_key`` (``publish(key, payload)``)
        or on ``routing_key:id`` (``publish(key, id, payload)``); with
        ``tx``, only if that transaction commits."""
        self.target.dispatch_event(self._event(routing_key, args), tx=tx)

    async def apublish(self, routing_key: Any, *args: Any, tx: Any = None) -> None:
        """:meth:`publish` for async code (writes wait off the event loop;
        blocking subscriptions are awaited)."""
        await self.target.adispatch_event(self._event(routing_key, args), tx=tx)

    def subscribe(
        self,
        routing_key: Any,
        id: Any = None,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        overflow: Overflow = "drop_oldest",
        block_timeout: float | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """The payloads published on ``routing_key`` (or ``routing_key:id``)
        from now on, as a bounded async and blocking iterator
        (:class:`~alkdev_storage.events.subscription.Subscription`);
        ``timeout`` ends it after that many idle seconds."""
        name, model = _key(routing_key)
        t = name if id is None else f"{name}:{_id_text(id)}"
        convert = None
        if model is not None:

            def convert(event: Event) -> Any:
                return validate_detail(model, event.detail, event.type)

        return Subscription(
            self.target,
            t,
            max_buffered=max_buffered,
            overflow=overflow,
            block_timeout=block_timeout,
            timeout=timeout,
            convert=convert,
        )

    def close(self) -> None:
        """Close the event target (subscriptions end)."""
        self.target.close()


def create_pubsub(event_target: EventTarget | None = None) -> PubSub:
    """A :class:`PubSub` over ``event_target`` (default: a new
    :class:`~alkdev_storage.events.target.InProcessEventTarget`)."""
    return PubSub(event_target)
