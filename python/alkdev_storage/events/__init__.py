"""Events (ADR-047): the ``EventTarget`` protocol, ``create_pubsub``, and
targets in process, on Honker (ephemeral and durable), composite, and on
Redis Streams between machines.

    >>> pubsub = create_pubsub()                       # in process
    >>> sub = pubsub.subscribe("graph", graph_id)      # topic "graph:<id>"
    >>> pubsub.publish("graph", graph_id, {"op": "x"})
    >>> next(sub)                                      # or: async for p in sub
    {'op': 'x'}

    >>> target = create_honker_event_target(db, "ephemeral", prefix="app:")
    >>> pubsub = create_pubsub(CompositeEventTarget(target))
    >>> with db.transaction() as tx:                   # delivered on commit only
    ...     tx.execute("INSERT ...")
    ...     pubsub.publish("graph", graph_id, {"op": "x"}, tx=tx)

Files: ``event.py`` (Event, types, patterns, wire envelope), ``registry.py``
(listeners, sync/async calling), ``typed.py`` (payload models),
``subscription.py`` (bounded subscriber buffers), ``target.py`` (the
protocol, the in-process target), ``pubsub.py``, ``dispatcher.py`` (one
listener and thread per Database, the post-commit hook), ``ephemeral.py``,
``durable.py``, ``lease.py`` (one live consumer per name), ``honker.py``
(``create_honker_event_target``), ``composite.py``, ``redis_relay.py`` and
``redis_target.py`` (the multi-node transport). Decisions:
docs/0021-event-targets.md and docs/0022-redis-transport.md.

Layering: imports the layers below (``Database``, the primitives, the
errors), never their private names; ``redis`` (redis-py, the ``redis``
extra) is only needed by the Redis classes, which take a client object.
"""

from alkdev_storage.errors import ConsumerBusy, LeaseLost, SubscriberOverflow
from alkdev_storage.events.composite import CompositeEventTarget
from alkdev_storage.events.dispatcher import Dispatcher, after_commit, dispatcher_of
from alkdev_storage.events.durable import DurableEvent, DurableEventTarget
from alkdev_storage.events.ephemeral import EphemeralEventTarget
from alkdev_storage.events.event import Event
from alkdev_storage.events.honker import create_honker_event_target
from alkdev_storage.events.lease import ConsumerLease
from alkdev_storage.events.pubsub import PubSub, create_pubsub, topic
from alkdev_storage.events.redis_relay import RedisRelay, message_id
from alkdev_storage.events.redis_target import RedisEvent, RedisEventTarget
from alkdev_storage.events.registry import Listener
from alkdev_storage.events.subscription import OVERFLOW_POLICIES, Overflow, Subscription
from alkdev_storage.events.target import EventTarget, InProcessEventTarget
from alkdev_storage.events.typed import TypeRegistry, catalog_types

__all__ = [
    "OVERFLOW_POLICIES",
    "CompositeEventTarget",
    "ConsumerBusy",
    "ConsumerLease",
    "Dispatcher",
    "DurableEvent",
    "DurableEventTarget",
    "EphemeralEventTarget",
    "Event",
    "EventTarget",
    "InProcessEventTarget",
    "LeaseLost",
    "Listener",
    "Overflow",
    "PubSub",
    "RedisEvent",
    "RedisEventTarget",
    "RedisRelay",
    "SubscriberOverflow",
    "Subscription",
    "TypeRegistry",
    "after_commit",
    "catalog_types",
    "create_honker_event_target",
    "create_pubsub",
    "dispatcher_of",
    "message_id",
    "topic",
]
