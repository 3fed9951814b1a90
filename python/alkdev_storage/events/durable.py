"""The Honker durable event target: a named stream and a named consumer
(the seeds' ``HonkerEventTarget``, ``mode: "durable"``).

==========================================  ==================================
pubsub operation                            Honker operation
==========================================  ==================================
``dispatch_event(event)``                   ``db.stream(name).publish(envelope,
                                            key=prefix + type)``
``dispatch_event(event, tx=tx)``            the same in ``tx``: the event
                                            exists only if it commits
``add_event_listener(type, fn)``            the consumer thread starts (first
                                            listener): lease, then
                                            ``stream.subscribe(consumer)``
``remove_event_listener(...)``              the consumer stops when no
                                            listener remains (offset saved,
                                            lease released)
``close()``                                 the same, and every listener goes
==========================================  ==================================

Delivery contract
-----------------
* **At-least-once.** The consumer's offset is saved only for events its
  listeners have handled (after every ``save_every_n`` events or
  ``save_every_s`` seconds, when idle, and when it stops), so after a
  crash the events since the last save are delivered again, never
  skipped. Offsets are only ever saved by the lease holder, in a
  transaction that checks the lease.
* **A listener that raises** (logged): with ``on_error="retry"`` (the
  default) the event is not passed: the consumer saves what came before,
  waits ``retry_delay_s`` (doubling up to 30 s) and delivers it again, to
  every listener of its type (``retries`` counts it); a poison event
  holds the consumer back, visibly, instead of being lost. With
  ``on_error="skip"`` it counts as handled.
* **Exactly-once effects for local handlers.** A listener that writes to
  the same database calls ``event.commit(tx)`` inside the transaction of
  its writes: the offset is saved in that transaction (after checking,
  in it, that this process still holds the consumer's lease; otherwise
  :class:`~alkdev_storage.errors.LeaseLost` rolls it back), so the effect
  and the offset commit together or not at all. The offset covers the
  event for every listener of this target: commit from the last (or
  only) listener of a type.
* **Client-side filtering.** A stream carries every type; the consumer
  reads all of it and hands each event to the listeners of its type
  (``key`` minus ``prefix``). Events no listener wants are passed over
  and their offsets saved.
* **Stable consumer names (OQ-31).** ``consumer`` comes from
  configuration; its offset survives restarts. One live process consumes
  under a name at a time (:mod:`alkdev_storage.events.lease`): a second
  one waits as a standby (``on_busy="standby"``, the default: it takes
  over within ``lease_ttl`` seconds of the first one's death) or fails
  with :class:`~alkdev_storage.errors.ConsumerBusy` (``on_busy="fail"``,
  raised by the ``add_event_listener`` that starts the consumer). A
  listener that stalls longer than ``lease_ttl`` loses the lease: its
  process stops delivering at once (a standby may then redeliver what it
  had not saved: at-least-once).
* A new consumer name starts at the beginning of the stream
  (``start="earliest"``) or at its end (``start="latest"``: the end when
  ``add_event_listener`` started the consumer; for a standby, when it
  takes over a name that has no saved offset yet).
* Listeners run on the consumer thread, one event at a time, in offset
  order; an async listener runs on its loop and the consumer waits for it
  before the next event.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from alkdev_storage.errors import InterfaceError, LeaseLost
from alkdev_storage.events.event import Event, from_envelope, to_envelope
from alkdev_storage.events.lease import ConsumerLease, OnBusy
from alkdev_storage.events.registry import Listener, ListenerRegistry, call_and_wait, log
from alkdev_storage.events.target import close_sinks, new_origin, prepare_event
from alkdev_storage.events.typed import TypeRegistry, TypesArg
from alkdev_storage.primitives.stream import SQL_LAST_OFFSET
from alkdev_storage.primitives.validate import as_int, as_seconds, check_name

if TYPE_CHECKING:
    from alkdev_storage.database import Database
    from alkdev_storage.primitives.stream import Event as StreamEvent
    from alkdev_storage.primitives.stream import StreamSubscription

__all__ = ["DurableEvent", "DurableEventTarget"]

_IDLE_WAIT_S = 1.0
_MAX_RETRY_DELAY_S = 30.0


class DurableEvent(Event):
    """An event delivered by a durable target: with its stream ``offset``
    and :meth:`commit` for exactly-once effects."""

    __slots__ = ("_target", "consumer", "offset", "stream")

    def __init__(
        self,
        type: str,
        detail: Any,
        *,
        origin: str | None,
        id: str | None,
        offset: int,
        stream: str,
        consumer: str,
        target: DurableEventTarget,
    ) -> None:
        super().__init__(type, detail, origin=origin, id=id)
        self.offset = offset
        self.stream = stream
        self.consumer = consumer
        self._target = target


    def commit(self, tx: Any) -> None:
        """Save this event's offset for its consumer inside ``tx`` (the
        transaction of the listener's own writes): exactly-once effects.
        :class:`~alkdev_storage.errors.LeaseLost` if this process no
        longer holds the consumer's lease (roll back)."""
        self._target.commit_offset(self.offset, tx)

    def __repr__(self) -> str:
        return f"DurableEvent(type={self.type!r}, offset={self.offset}, detail={self.detail!r})"


class DurableEventTarget:
    """Events on a Honker stream with a named consumer (see the module
    docstring)."""

    mode = "durable"

    def __init__(
        self,
        db: Database,
        *,
        stream: str = "events",
        consumer: str | None = None,
        prefix: str = "",
        types: TypesArg = None,
        origin: str | None = None,
        on_busy: OnBusy = "standby",
        lease_ttl: int = 15,
        start: Literal["earliest", "latest"] = "earliest",
        save_every_n: int = 100,
        save_every_s: float = 1.0,
        on_error: Literal["retry", "skip"] = "retry",
        retry_delay_s: float = 1.0,
    ) -> None:
        check_name(stream, "stream")
        if on_error not in ("retry", "skip"):
            raise ValueError(f"on_error must be 'retry' or 'skip', not {on_error!r}")
        if consumer is not None:
            check_name(consumer, "consumer")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        self.db = db
        self.stream = db.stream(stream)
        self.consumer = consumer
        """The consumer name (None: this target only dispatches)."""
        self.prefix = prefix
        self.types = TypeRegistry(types)
        """The payload models of this target."""
        self.origin = origin if origin is not None else new_origin()
        """Origin id written into the envelope of what this target dispatches."""
        self.start = start
        self.save_every_n = max(1, as_int(save_every_n, "save_every_n"))
        self.save_every_s = as_seconds(save_every_s, "save_every_s")
        self.on_error = on_error
        self.retry_delay_s = as_seconds(retry_delay_s, "retry_delay_s")
        self.retries = 0
        """Times a failed event was redelivered (``on_error="retry"``)."""
        self._lease = (
            ConsumerLease(db, f"{stream}/{consumer}", ttl=lease_ttl, on_busy=on_busy)
            if consumer is not None
            else None
        )
        self._listeners = ListenerRegistry()
        self._plen = len(prefix)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
        self._stop = threading.Event()
        self._active = threading.Event()
        self._sub: StreamSubscription | None = None
        self._closed = False
        self.handled_offset = 0
        """Offset of the last event this consumer handled (0 before any)."""
        self.error: BaseException | None = None
        """Why the consumer stopped on its own (a lost lease with
        ``on_busy="fail"``), else None."""

    def __repr__(self) -> str:
        return (
            f"<DurableEventTarget stream={self.stream.name!r} consumer={self.consumer!r} "
            f"active={self.active} listeners={len(self._listeners)}>"
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

    @property
    def active(self) -> bool:
        """True while this process holds the consumer's lease and consumes."""
        return self._active.is_set()

    @property
    def lease(self) -> ConsumerLease | None:
        """The consumer name's lease (None without a consumer)."""
        return self._lease

    def wait_active(self, timeout: float | None = None) -> bool:
        """Wait until this process consumes (standby until then); False on
        timeout."""
        return self._active.wait(timeout)

    def listener_count(self, type: str | None = None) -> int:
        """Listeners registered under ``type`` (exactly), or in all."""
        return len(self._listeners) if type is None else self._listeners.count(type)

    # -- listening -------------------------------------------------------

    def add_event_listener(self, type: str, listener: Listener) -> None:
        """Call ``listener`` for each event of ``type`` (or pattern) of the
        stream, from the consumer's saved offset on; starts the consumer
        (``ConsumerBusy`` here with ``on_busy="fail"`` when another live
        process holds the name)."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        if self._lease is None:
            raise ValueError(
                "a durable target listens as a named consumer: create it with consumer=..."
            )
        added = self._listeners.add(type, listener)
        try:
            self._ensure_consumer()
        except BaseException:
            if added:
                self._listeners.remove(type, listener)
            raise

    def remove_event_listener(self, type: str, listener: Listener) -> None:
        """See :class:`~alkdev_storage.events.target.EventTarget`; the
        consumer stops once no listener remains."""
        self._listeners.remove(type, listener)

    def _ensure_consumer(self) -> None:
        lease = self._lease
        assert lease is not None
        with self._lock:
            if self._running and not self._stop.is_set():
                return
            old = self._thread
        if old is not None and old is not threading.current_thread():
            old.join()  # an ending consumer thread: let it release the lease
        with self._lock:
            if self._running and not self._stop.is_set():
                return
            stop = self._stop = threading.Event()
            self.error = None
            if lease.acquire_or_fail():  # ConsumerBusy with on_busy="fail"
                self._init_position()  # "latest" is the moment the listener was added
            t = threading.Thread(
                target=self._run,
                args=(stop,),
                name=f"alkdev-events-consumer:{self.consumer}",
                daemon=True,
            )
            self._thread = t
            self._running = True
            t.start()

    # -- the consumer thread ---------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        lease = self._lease
        assert lease is not None
        delay = self.retry_delay_s
        try:
            while True:
                while not lease.held and not stop.is_set() and self.listening:
                    lease.wait(stop, timeout=lease.interval)  # standby
                if lease.held and not stop.is_set() and self.listening:
                    try:
                        outcome = self._consume(stop, lease)
                    finally:
                        self._active.clear()
                    if outcome == "lost":
                        log.warning("durable consumer %r lost its lease", self.consumer)
                        if lease.on_busy == "fail":
                            self.error = LeaseLost(f"consumer {self.consumer!r} lost its lease")
                    elif outcome == "retry":
                        self.retries += 1
                        stop.wait(delay)  # then redeliver from the failed event
                        delay = min(delay * 2, _MAX_RETRY_DELAY_S)
                        continue
                    delay = self.retry_delay_s
                with self._lock:
                    if stop.is_set() or not self.listening or self.error is not None:
                        self._running = False
                        return
        except Exception as e:
            if not self.db.closed:
                self.error = e
                log.error("durable consumer %r stopped", self.consumer, exc_info=e)
            with self._lock:
                self._running = False
        finally:
            self._active.clear()
            lease.release()

    def _init_position(self) -> None:
        """A new consumer name with ``start="latest"`` starts at the
        stream's current end (once: its saved row exists afterwards)."""
        consumer = self.consumer
        assert consumer is not None
        if self.start == "latest" and consumer not in self.stream.consumers():
            row = self.db.fetchone(self.db.statement(SQL_LAST_OFFSET))
            self.stream.reset(consumer, int(row[0]) if row else 0)

    def _save(self, offset: int, lease: ConsumerLease) -> bool:
        """Save ``offset`` in a transaction that checks the lease (offsets
        are only ever saved by the lease holder); False if not held."""
        assert self.consumer is not None
        with self.db.transaction() as tx:
            if not lease.held_in(tx):
                return False
            self.stream.save_offset(self.consumer, offset, tx=tx)
        return True

    def _consume(self, stop: threading.Event, lease: ConsumerLease) -> str:
        """Deliver until stopped (``"stopped"``), the lease is lost
        (``"lost"``) or a listener failed under ``on_error="retry"``
        (``"retry"``: the events before it are saved, it is not)."""
        stream = self.stream
        consumer = self.consumer
        assert consumer is not None
        self._init_position()
        sub = stream.subscribe(consumer, save_every_n=0, save_every_s=0)
        self._sub = sub
        self._active.set()  # consuming from a known position
        if stop.is_set():
            sub.close()
        handled = saved = sub.offset
        self.handled_offset = handled
        since = 0
        last_save = time.monotonic()
        outcome = "stopped"
        try:
            while not stop.is_set() and self.listening:
                if not lease.renew_if_due():
                    outcome = "lost"
                    return outcome
                ev = sub.get(0)
                if ev is None:
                    if sub.closed:
                        break
                    if handled > saved:
                        if not self._save(handled, lease):
                            outcome = "lost"
                            return outcome
                        saved, since, last_save = handled, 0, time.monotonic()
                    ev = sub.get(min(lease.due(), _IDLE_WAIT_S))
                    if ev is None:
                        continue
                failed = self._handle(ev, stop)
                if failed is not None and self.on_error == "retry":
                    log.warning(
                        "durable consumer %r: event %d failed; redelivering it",
                        consumer,
                        ev.offset,
                    )
                    outcome = "retry"
                    return outcome
                handled = ev.offset
                self.handled_offset = handled
                since += 1
                if since >= self.save_every_n or time.monotonic() - last_save >= self.save_every_s:
                    if not self._save(handled, lease):
                        outcome = "lost"
                        return outcome
                    saved, since, last_save = handled, 0, time.monotonic()
            return outcome
        finally:
            self._sub = None
            sub.close()
            if outcome != "lost" and handled > saved and not self.db.closed:
                try:
                    self._save(handled, lease)
                except Exception as e:
                    log.error("durable consumer %r could not save its offset", consumer, exc_info=e)

    def _handle(self, ev: StreamEvent, stop: threading.Event) -> BaseException | None:
        """Deliver one stream event; the first listener exception, or None."""
        key = ev.key
        if not isinstance(key, str) or not key.startswith(self.prefix):
            return None
        t = key[self._plen :]
        fns = self._listeners.lookup(t) if t else ()
        if not fns:
            return None
        detail, origin, eid = from_envelope(t, ev.payload)
        if self.types:
            ok, detail = self.types.incoming(t, detail)
            if not ok:
                log.warning(
                    "dropped event %d of %r: its detail does not match its model", ev.offset, t
                )
                return None
        assert self.consumer is not None
        event = DurableEvent(
            t,
            detail,
            origin=origin,
            id=eid,
            offset=ev.offset,
            stream=self.stream.name,
            consumer=self.consumer,
            target=self,
        )
        return call_and_wait(fns, event, stop)

    # -- offsets -----------------------------------------------------------

    def commit_offset(self, offset: int, tx: Any) -> None:
        """Save ``offset`` for this consumer inside ``tx``, after checking
        in ``tx`` that this process holds the lease (``LeaseLost``)."""
        lease = self._lease
        if lease is None or self.consumer is None:
            raise ValueError("this durable target has no consumer")
        lease.check_in(tx)
        self.stream.save_offset(self.consumer, offset, tx=tx)

    def saved_offset(self) -> int:
        """The consumer's saved offset (0 if none)."""
        return 0 if self.consumer is None else self.stream.get_offset(self.consumer)

    # -- dispatching -----------------------------------------------------

    def prepare(self, event: Event) -> tuple[str, dict[str, Any]]:
        """``(key, envelope)`` of ``event``, checked before anything is
        written."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        event = prepare_event(event, self.types)
        return self.prefix + event.type, to_envelope(event, event.origin or self.origin)

    def dispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """Publish the event on the stream (with ``tx``: in that
        transaction). Returns True."""
        key, env = self.prepare(event)
        self.stream.publish(env, key=key, tx=tx)
        return True

    async def adispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """:meth:`dispatch_event` for async code (``await stream.apublish``)."""
        key, env = self.prepare(event)
        await self.stream.apublish(env, key=key, tx=tx)
        return True

    # -- ending ----------------------------------------------------------

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop consuming (offset saved, lease released) and keep the
        listeners; the next ``add_event_listener`` starts again."""
        with self._lock:
            self._stop.set()
            sub = self._sub
            if sub is not None:
                sub.close()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def close(self) -> None:
        """Stop consuming and remove every listener (subscriptions end
        after their buffered items); dispatching afterwards raises
        ``InterfaceError``."""
        self._closed = True
        self.stop()
        close_sinks(self._listeners.clear())
