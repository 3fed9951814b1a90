"""The composite target (OQ-30): in process at once, other processes
through Honker, nobody twice.

``CompositeEventTarget(remote)`` pairs an in-process target (``local``)
with a transport target (``remote``: an ephemeral or durable Honker
target, or a Redis target), plus optional ``inbound`` targets it only
receives from (say a :class:`~alkdev_storage.events.redis_target.RedisEventTarget`
bringing other machines' events).

* ``dispatch_event(event)``: the event is checked (type, payload model,
  JSON), delivered to the local listeners at once (microseconds: no
  database round trip), then written to ``remote`` stamped with this
  composite's ``origin`` id. A write error reaches the caller after the
  local delivery.
* ``dispatch_event(event, tx=tx)``: written to ``remote`` in ``tx``, and
  delivered locally only once ``tx`` commits (the Database's post-commit
  hook, :func:`~alkdev_storage.events.dispatcher.after_commit`); never if
  it rolls back.
* Listening: ``add_event_listener`` registers on ``local``, and one
  bridge listener per key on ``remote`` and every ``inbound`` target. The
  bridge hands what comes from elsewhere to the local listeners and
  **drops what carries this composite's origin id** (its own events
  coming back: already delivered locally). ``dropped_own`` counts them.
* The remote target's own delivery rules apply to what comes from other
  processes (ephemeral: from now on; durable: at-least-once from the
  consumer's offset; Redis: at-least-once, duplicates dropped by message
  id).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from alkdev_storage.errors import InterfaceError
from alkdev_storage.events.event import Event, to_envelope
from alkdev_storage.events.registry import Listener
from alkdev_storage.events.target import EventTarget, InProcessEventTarget, new_origin
from alkdev_storage.events.typed import TypesArg
from alkdev_storage.primitives.payload import encode

__all__ = ["CompositeEventTarget"]


class CompositeEventTarget:
    """In-process delivery plus a transport (see the module docstring)."""

    def __init__(
        self,
        remote: EventTarget,
        *,
        local: InProcessEventTarget | None = None,
        inbound: Sequence[EventTarget] = (),
        types: TypesArg = None,
        db: Any = None,
    ) -> None:
        if not isinstance(remote, EventTarget):
            raise TypeError(f"remote must implement EventTarget, not {type(remote).__name__}")
        for t in inbound:
            if not isinstance(t, EventTarget):
                raise TypeError(
                    f"inbound targets must implement EventTarget, not {type(t).__name__}"
                )
        self.remote = remote
        self.inbound = tuple(inbound)
        self.local = local if local is not None else InProcessEventTarget(types=types)
        if types is not None and local is not None:
            self.local.types.add(types)
        self.db = db if db is not None else getattr(remote, "db", None)
        """The database whose transactions ``tx=`` may be (the remote's)."""
        if self.local.db is None:
            self.local.db = self.db
        self.origin = new_origin()
        """This composite's origin id (stamped on everything it sends)."""
        self._keys: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.dropped_own = 0
        """Own events that came back through a transport and were dropped."""
        self.received_remote = 0
        """Events from other processes handed to the local listeners."""

    def __repr__(self) -> str:
        return f"<CompositeEventTarget remote={self.remote!r} keys={len(self._keys)}>"

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    @property
    def listening(self) -> bool:
        """True while some listener is registered."""
        return self.local.listening

    def listener_count(self, type: str | None = None) -> int:
        """Local listeners registered under ``type`` (exactly), or in all."""
        return self.local.listener_count(type)

    # -- listening -------------------------------------------------------

    def _bridge(self, event: Event) -> None:
        """Listener on the transports: others' events go to local listeners."""
        if event.origin == self.origin:
            self.dropped_own += 1
            return
        self.received_remote += 1
        self.local.deliver(event)

    def add_event_listener(self, type: str, listener: Listener) -> None:
        """Listen in process and, through the bridge, to other processes."""
        if self._closed:
            raise InterfaceError("the event target is closed")
        with self._lock:
            before = self.local.listener_count(type)
            self.local.add_event_listener(type, listener)
            if self.local.listener_count(type) == before:
                return  # already registered
            n = self._keys.get(type, 0)
            self._keys[type] = n + 1
            if n:
                return
            done: list[EventTarget] = []
            try:
                for t in (self.remote, *self.inbound):
                    t.add_event_listener(type, self._bridge)
                    done.append(t)
            except BaseException:
                for t in done:
                    t.remove_event_listener(type, self._bridge)
                self.local.remove_event_listener(type, listener)
                self._keys.pop(type, None)
                raise

    def remove_event_listener(self, type: str, listener: Listener) -> None:
        """See :class:`~alkdev_storage.events.target.EventTarget`."""
        with self._lock:
            before = self.local.listener_count(type)
            self.local.remove_event_listener(type, listener)
            if self.local.listener_count(type) == before:
                return
            n = self._keys.get(type, 0) - 1
            if n > 0:
                self._keys[type] = n
                return
            self._keys.pop(type, None)
            for t in (self.remote, *self.inbound):
                t.remove_event_listener(type, self._bridge)

    # -- dispatching -----------------------------------------------------

    def _prepare(self, event: Event) -> Event:
        if self._closed:
            raise InterfaceError("the event target is closed")
        event = self.local.prepare(event)
        stamped = Event(event.type, event.detail, origin=self.origin, id=event.id)
        encode(to_envelope(stamped, self.origin))  # TypeError now if JSON cannot carry it
        return stamped

    def dispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """Local listeners at once, then the transport (see the module
        docstring); with ``tx`` both only if it commits."""
        stamped = self._prepare(event)
        if tx is None:
            err: BaseException | None = None
            try:
                self.local.deliver(stamped)
            except Exception as e:  # listener errors: after the write
                err = e
            self.remote.dispatch_event(stamped)
            if err is not None:
                raise err
            return True
        self.remote.dispatch_event(stamped, tx=tx)
        self._after_commit(stamped, tx)
        return True

    async def adispatch_event(self, event: Event, *, tx: Any = None) -> bool:
        """:meth:`dispatch_event` for async code."""
        stamped = self._prepare(event)
        if tx is None:
            err: BaseException | None = None
            try:
                await self.local.adispatch_event(stamped)
            except Exception as e:
                err = e
            await self.remote.adispatch_event(stamped)
            if err is not None:
                raise err
            return True
        await self.remote.adispatch_event(stamped, tx=tx)
        self._after_commit(stamped, tx)
        return True

    def _after_commit(self, event: Event, tx: Any) -> None:
        if not self.local.listening:
            return
        db = self.db
        if db is None:
            raise TypeError("dispatch_event(..., tx=) needs the database: pass db=")
        from alkdev_storage.events.dispatcher import after_commit

        local = self.local
        after_commit(db, tx, lambda: local.deliver(event))

    # -- ending ----------------------------------------------------------

    def close(self) -> None:
        """Close the local target, the remote and the inbound targets."""
        self._closed = True
        self.local.close()
        self.remote.close()
        for t in self.inbound:
            t.close()
        self._keys.clear()
