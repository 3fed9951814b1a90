"""Multi-node transport, consumer side: an event target on a Redis Stream
through a consumer group (docs/0022-redis-transport.md).

:class:`RedisEventTarget` feeds local listeners from a Redis Stream that
:class:`~alkdev_storage.events.redis_relay.RedisRelay` instances (one per
database, on any machine) fill, so two hubs on two machines see each
other's events.

* **Consumer group.** ``group`` names the receiving side (one group per
  hub: every hub sees every event once); ``consumer`` (from
  configuration, stable across restarts, OQ-31) names this process in the
  group. Entries are read with ``XREADGROUP ... >`` (blocking at most
  ``block_ms``) and acknowledged with ``XACK`` only once the listeners
  have handled them (async listeners awaited): **at-least-once**.
* **Recovery.** On start the consumer first re-reads its own pending
  entries (``XREADGROUP ... 0``: what it had read and not acknowledged
  before a crash). Every ``claim_every_s`` it runs ``XAUTOCLAIM`` to take
  over entries another consumer of the group read and left unacknowledged
  for ``claim_idle_ms`` (a dead consumer's), and handles them.
* **Duplicates dropped by message id.** Each entry has a ``mid``
  (deterministic for relayed events: ``source/stream/offset``). Before
  delivering a batch the target asks Redis which mids its group has
  already handled (``MGET`` of ``<stream>:seen:<group>:<mid>`` keys) and
  drops those; after delivery it sets the keys (``EX dedupe_ttl_s``) and
  acknowledges, in one pipelined round trip. So a relay's replay after a
  crash, or an entry handled by a consumer that died before its
  ``XACK``, is not delivered again to the group (within the dedupe TTL).
  A crash between a delivery and that round trip redelivers the entry
  (the at-least-once window).
* A listener that raises (logged) leaves its entry unacknowledged and
  unmarked: ``XAUTOCLAIM`` hands it out again after ``claim_idle_ms``
  (to this consumer or another of the group), at-least-once.
* ``ignore_sources``: entries relayed from these source ids are
  acknowledged and skipped (a hub's own database, whose events its local
  listeners already get through Honker).
* ``dispatch_event`` appends directly (``XADD``) with a fresh ``mid``
  (``direct/<origin>/<n>``); there is no commit-aware form (``tx=`` is a
  ``TypeError``): publish through a durable Honker target and a relay for
  that.
* Listeners run on the consumer thread (async ones on their loop, awaited).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from typing import Any

from alkdev_storage.errors import InterfaceError
from alkdev_storage.events.event import Event, from_envelope, to_envelope
from alkdev_storage.events.registry import Listener, ListenerRegistry, call_and_wait, log
from alkdev_storage.events.target import close_sinks, new_origin, prepare_event
from alkdev_storage.events.typed import TypeRegistry, TypesArg
from alkdev_storage.primitives.payload import decode, encode
from alkdev_storage.primitives.validate import as_int, as_seconds, check_name

__all__ = ["RedisEvent", "RedisEventTarget"]


def _s(value: Any) -> str:
    """A Redis reply value as str (clients with or without decode_responses)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def _field(fields: dict[Any, Any], name: str) -> str:
    v = fields.get(name)
    if v is None:
        v = fields.get(name.encode())
    return _s(v)


class RedisEvent(Event):
    """An event delivered from Redis: with its ``message_id`` (``mid``),
    ``entry_id`` (the Redis entry id) and ``source``."""

    __slots__ = ("entry_id", "message_id", "source")

    def __init__(
        self,
        type: str,
        detail: Any,
        *,
        origin: str | None,
        id: str | None,
        message_id: str,
        entry_id: str,
        source: str,
    ) -> None:
        super().__init__(type, detail, origin=origin, id=id)
        self.message_id = message_id
        self.entry_id = entry_id
        self.source = source



class RedisEventTarget:
    """Local listeners fed from a Redis Stream (see the module docstring).
    ``client`` is a ``redis.Redis`` (redis-py)."""

    mode = "redis"

    def __init__(
        self,
        client: Any,
        *,
        group: str,
        consumer: str,
        redis_stream: str = "alkdev:events",
        prefix: str = "",
        types: TypesArg = None,
        origin: str | None = None,
        ignore_sources: Iterable[str] = (),
        start_id: str = "$",
        batch_size: int = 100,
        block_ms: int = 500,
        claim_idle_ms: int = 30_000,
        claim_every_s: float = 5.0,
        dedupe_ttl_s: int = 86_400,
    ) -> None:
        check_name(group, "group")
        check_name(consumer, "consumer")
        check_name(redis_stream, "redis_stream")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        self.client = client
        self.group = group
        self.consumer = consumer
        self.redis_stream = redis_stream
        self.prefix = prefix
        self.types = TypeRegistry(types)
        """The payload models of this target."""
        self.origin = origin if origin is not None else new_origin()
        """Origin id written into the envelope of what this target dispatches."""
        self.ignore_sources = frozenset(ignore_sources)
        self.start_id = start_id
        self.batch_size = as_int(batch_size, "batch_size")
        self.block_ms = as_int(block_ms, "block_ms")
        self.claim_idle_ms = as_int(claim_idle_ms, "claim_idle_ms")
        self.claim_every_s = as_seconds(claim_every_s, "claim_every_s")
        self.dedupe_ttl_s = as_int(dedupe_ttl_s, "dedupe_ttl_s")
        if self.batch_size < 1 or self.block_ms < 1 or self.dedupe_ttl_s < 1:
            raise ValueError("batch_size, block_ms and dedupe_ttl_s must be >= 1")
        self._listeners = ListenerRegistry()
        self._plen = len(prefix)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
        self._stop = threading.Event()
        self._consuming = threading.Event()
        self._closed = False
        self._seq = itertools.count(1)
        self.delivered = 0
        """Entries handed to listeners."""
        self.duplicates = 0
        """Entries dropped because their mid was already handled by the group."""
        self.skipped = 0
        """Entries acknowledged without delivery (ignored source, no listener, bad data)."""
        self.reclaimed = 0
        """Entries taken over from other consumers with ``XAUTOCLAIM``."""
        self.failed = 0
        """Deliveries where a listener raised (the entry stays pending)."""
        self.error: BaseException | None = None
        """Why the consumer thread stopped on its own, else None."""

    def __repr__(self) -> str:
        return (
            f"<RedisEventTarget {self.redis_stream!r} group={self.group!r} "
            f"consumer={self.consumer!r} listeners={len(self._listeners)}>"
        )

    # -- state -----------------------------------------------------------

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

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the consumer group exists and the consumer reads."""
        return self._consuming.wait(timeout)

    def seen_key(self, mid: str) -> str:
        """The Redis key recording that this group handled ``mid``."""
        return f"{self.redis_stream}:seen:{self.group}:{mid}"

    # -- listening -------------------------------------------------------

    def add_event_listener(self, type: str, listener: Listener) -> None:
        """Call ``listener`` for each event of ``type`` (or pattern) read
        from the Redis Stream; starts the consumer thread."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        self._listeners.add(type, listener)
        self._ensure_consumer()

    def remove_event_listener(self, type: str, listener: Listener) -> None:
        """See :class:`~alkdev_storage.events.target.EventTarget`; the
        consumer stops once no listener remains."""
        self._listeners.remove(type, listener)

    def _ensure_consumer(self) -> None:
        with self._lock:
            if self._running and not self._stop.is_set():
                return
            old = self._thread
        if old is not None and old is not threading.current_thread():
            old.join()
        with self._lock:
            if self._running and not self._stop.is_set():
                return
            stop = self._stop = threading.Event()
            self._consuming.clear()
            self.error = None
            t = threading.Thread(
                target=self._run,
                args=(stop,),
                name=f"alkdev-events-redis:{self.consumer}",
                daemon=True,
            )
            self._thread = t
            self._running = True
            t.start()

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            self.client.xgroup_create(
                self.redis_stream, self.group, id=self.start_id, mkstream=True
            )
        except Exception as e:
            if "BUSYGROUP" not in str(e):
                raise

    def _run(self, stop: threading.Event) -> None:
        try:
            self.ensure_group()
            self._consuming.set()
            self._drain_own_pending(stop)
            next_claim = time.monotonic() + self.claim_every_s
            while True:
                with self._lock:
                    if stop.is_set() or not self.listening:
                        self._running = False
                        return
                if time.monotonic() >= next_claim:
                    self.claim(stop)
                    next_claim = time.monotonic() + self.claim_every_s
                resp = self.client.xreadgroup(
                    self.group,
                    self.consumer,
                    {self.redis_stream: ">"},
                    count=self.batch_size,
                    block=self.block_ms,
                )
                for _key, entries in resp or ():
                    self._handle(entries, stop)
        except Exception as e:
            self.error = e
            log.error("redis event consumer %r stopped", self.consumer, exc_info=e)
            with self._lock:
                self._running = False
        finally:
            self._consuming.set()

    def _drain_own_pending(self, stop: threading.Event) -> None:
        """Entries this consumer read before and never acknowledged."""
        last = "0"
        while not stop.is_set():
            resp = self.client.xreadgroup(
                self.group, self.consumer, {self.redis_stream: last}, count=self.batch_size
            )
            entries = resp[0][1] if resp else []
            if not entries:
                return
            self._handle(entries, stop)
            last = _s(entries[-1][0])

    def claim(self, stop: threading.Event | None = None) -> int:
        """Take over (``XAUTOCLAIM``) and handle the entries other consumers
        of the group left unacknowledged for ``claim_idle_ms``; returns how
        many."""
        stop = stop if stop is not None else threading.Event()
        cursor = "0-0"
        total = 0
        while not stop.is_set():
            reply = self.client.xautoclaim(
                self.redis_stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=cursor,
                count=self.batch_size,
            )
            cursor = _s(reply[0])
            entries = [e for e in reply[1] if e and e[1] is not None]
            if entries:
                total += len(entries)
                self.reclaimed += len(entries)
                self._handle(entries, stop)
            if cursor in ("0-0", "0"):
                break
        return total

    def _handle(self, entries: list[Any], stop: threading.Event) -> None:
        client = self.client
        ids = [_s(e[0]) for e in entries]
        fields = [e[1] or {} for e in entries]
        mids = [_field(f, "mid") for f in fields]
        seen = client.mget([self.seen_key(m) for m in mids]) if mids else []
        done: list[str] = []
        acks: list[str] = []
        in_batch: set[str] = set()
        for entry_id, f, mid, was in zip(ids, fields, mids, seen, strict=True):
            if was is not None or mid in in_batch:
                self.duplicates += 1
                acks.append(entry_id)
                continue
            in_batch.add(mid)
            if self._deliver(entry_id, f, mid, stop):
                done.append(mid)
                acks.append(entry_id)
            else:
                self.failed += 1  # left pending: redelivered by XAUTOCLAIM
        pipe = client.pipeline(transaction=False)
        for mid in done:
            pipe.set(self.seen_key(mid), 1, ex=self.dedupe_ttl_s)
        if acks:
            pipe.xack(self.redis_stream, self.group, *acks)
        pipe.execute()

    def _deliver(self, entry_id: str, f: dict[Any, Any], mid: str, stop: threading.Event) -> bool:
        """Deliver one entry; True if it counts as handled (mark its mid)."""
        src = _field(f, "src")
        key = _field(f, "key")
        if src in self.ignore_sources or not key.startswith(self.prefix):
            self.skipped += 1
            return True
        t = key[self._plen :]
        fns = self._listeners.lookup(t) if t else ()
        if not fns:
            self.skipped += 1
            return True
        try:
            payload = decode(_field(f, "data"))
        except ValueError:
            self.skipped += 1
            log.warning("redis entry %s (%s) has no JSON data", entry_id, mid)
            return True
        detail, origin, eid = from_envelope(t, payload)
        if self.types:
            ok, detail = self.types.incoming(t, detail)
            if not ok:
                self.skipped += 1
                return True
        event = RedisEvent(
            t, detail, origin=origin, id=eid, message_id=mid, entry_id=entry_id, source=src
        )
        if call_and_wait(fns, event, stop) is not None:
            return False
        self.delivered += 1
        return True

    # -- dispatching -----------------------------------------------------

    def _fields(self, event: Event, tx: Any) -> dict[str, str]:
        if tx is not None:
            raise TypeError(
                "a Redis target has no commit-aware dispatch: publish through a durable Honker "
                "target and a RedisRelay"
            )
        if self._closed:
            raise InterfaceError("the event target is closed")
        event = prepare_event(event, self.types)
        data = encode(to_envelope(event, event.origin or self.origin))
        return {
            "mid": f"direct/{self.origin}/{next(self._seq)}",
            "src": self.origin,
            "key": self.prefix + event.type,
            "data": data,
        }

    def dispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """``XADD`` the event (no ``tx``). Returns True."""
        self.client.xadd(self.redis_stream, self._fields(event, tx))
        return True

    async def adispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """:meth:`dispatch_event` off the event loop."""
        import asyncio

        fields = self._fields(event, tx)
        await asyncio.to_thread(self.client.xadd, self.redis_stream, fields)
        return True

    # -- ending ----------------------------------------------------------

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the consumer thread (within ``block_ms``); keep listeners."""
        with self._lock:
            self._stop.set()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def close(self) -> None:
        """Stop consuming and remove every listener; dispatching afterwards
        raises ``InterfaceError``. The Redis client is the caller's."""
        self._closed = True
        self.stop()
        close_sinks(self._listeners.clear())
