"""Multi-node transport, producer side: a relay from a durable Honker
stream to a Redis Stream (docs/0022-redis-transport.md).

Honker is one machine's transport; between machines the hub uses Redis
Streams, Redis's own log with consumer groups. :class:`RedisRelay` reads a
Honker stream as a named consumer and appends each event to a Redis
Stream with ``XADD`` (pipelined, a batch per round trip), then saves its
Honker offset.

Contract
--------
* **At-least-once, resumable.** The relay's position is its Honker
  consumer offset (``name``, default ``redis-relay:<redis stream>``),
  saved after each batch is in Redis. Killed between the ``XADD`` and the
  save, it sends the batch again when restarted: duplicates, never a gap.
* **Deterministic message ids.** Every entry carries ``mid =
  "<source>/<stream>/<offset>"`` (the database's configured ``source`` id,
  the Honker stream, the event's offset), so a replayed event has the same
  ``mid`` and the consuming side drops it
  (:class:`~alkdev_storage.events.redis_target.RedisEventTarget`). Redis
  assigns the entry ids (``*``): several relays (databases, machines) may
  feed one Redis Stream.
* Entry fields: ``mid``, ``src`` (the source id), ``key`` (the Honker
  event key: the event type with the durable target's prefix) and
  ``data`` (the event's JSON text, the envelope, unchanged: no decode and
  re-encode on the relay).
* One live relay per ``name`` (a :class:`~alkdev_storage.events.lease.ConsumerLease`,
  standby by default).
* ``maxlen`` trims the Redis Stream approximately (``MAXLEN ~``).
* A Redis error is logged and the batch retried after ``retry_s``; the
  offset is saved only after Redis accepted the whole batch.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from alkdev_storage.events.lease import ConsumerLease, OnBusy
from alkdev_storage.events.registry import log
from alkdev_storage.primitives.stream import SQL_READ
from alkdev_storage.primitives.validate import as_int, as_seconds, check_name

if TYPE_CHECKING:
    from alkdev_storage.database import Database

__all__ = ["RedisRelay", "message_id"]


def message_id(source: str, stream: str, offset: int) -> str:
    """The deterministic id of Honker event ``offset`` of ``stream`` in the
    database ``source``."""
    return f"{source}/{stream}/{offset}"


class RedisRelay:
    """Forwards a Honker stream to a Redis Stream (see the module
    docstring). ``client`` is a ``redis.Redis`` (redis-py)."""

    def __init__(
        self,
        db: Database,
        client: Any,
        *,
        source: str,
        stream: str = "events",
        redis_stream: str | None = None,
        name: str | None = None,
        batch_size: int = 500,
        maxlen: int | None = None,
        lease_ttl: int = 15,
        on_busy: OnBusy = "standby",
        retry_s: float = 0.5,
    ) -> None:
        check_name(source, "source")
        check_name(stream, "stream")
        self.db = db
        self.client = client
        self.source = source
        self.stream = db.stream(stream)
        self.redis_stream = redis_stream if redis_stream is not None else f"alkdev:{stream}"
        check_name(self.redis_stream, "redis_stream")
        self.name = name if name is not None else f"redis-relay:{self.redis_stream}"
        check_name(self.name, "name")
        self.batch_size = as_int(batch_size, "batch_size")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.maxlen = None if maxlen is None else as_int(maxlen, "maxlen")
        self.retry_s = as_seconds(retry_s, "retry_s")
        self.lease = ConsumerLease(db, f"{stream}/{self.name}", ttl=lease_ttl, on_busy=on_busy)
        self._read = db.statement(SQL_READ)
        self._mid_prefix = f"{source}/{stream}/"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.relayed = 0
        """Events sent to Redis by this relay object (replays included)."""
        self.batches = 0
        """Pipelined batches sent."""
        self.errors = 0
        """Redis errors met (each batch was retried)."""

    def __repr__(self) -> str:
        return (
            f"<RedisRelay {self.stream.name!r} -> {self.redis_stream!r} name={self.name!r} "
            f"relayed={self.relayed}>"
        )

    @property
    def offset(self) -> int:
        """The relay's saved Honker offset (what Redis surely has)."""
        return self.stream.get_offset(self.name)

    def send(self, offset: int) -> int:
        """Relay one batch after ``offset`` (no lease check): ``XADD`` each
        event, then save the offset. Returns the new offset (``offset``
        when there was nothing)."""
        rows = self.db.fetchall(self._read, (self.stream.name, offset, self.batch_size))
        if not rows:
            return offset
        pipe = self.client.pipeline(transaction=False)
        xadd = pipe.xadd
        key = self.redis_stream
        prefix = self._mid_prefix
        src = self.source
        maxlen = self.maxlen
        for off, _t, ekey, payload, _c in rows:
            fields = {"mid": prefix + str(off), "src": src, "key": ekey or "", "data": payload}
            if maxlen is None:
                xadd(key, fields)
            else:
                xadd(key, fields, maxlen=maxlen, approximate=True)
        pipe.execute()
        last = int(rows[-1][0])
        self.stream.save_offset(self.name, last)
        self.relayed += len(rows)
        self.batches += 1
        return last

    def run(
        self, stop: threading.Event | None = None, *, idle_timeout: float | None = None
    ) -> None:
        """Relay until ``stop`` is set (or :meth:`close`), or until
        ``idle_timeout`` seconds pass with nothing to send. Waits as a
        standby while another live relay holds ``name`` (``ConsumerBusy``
        with ``on_busy="fail"``)."""
        stop = stop if stop is not None else self._stop
        lease = self.lease
        lease.acquire_or_fail()
        sub = self.db.subscribe_updates()
        try:
            while not stop.is_set() and not self._stop.is_set():
                if not lease.held and not lease.wait(stop, timeout=lease.interval):
                    continue
                if not self._relay_held(stop, sub, idle_timeout):
                    return
        finally:
            sub.close()
            lease.release()

    def _relay_held(self, stop: threading.Event, sub: Any, idle_timeout: float | None) -> bool:
        """Relay while holding the lease: False to end :meth:`run`, True
        after losing the lease (standby again)."""
        lease = self.lease
        offset = self.offset
        idle_since = time.monotonic()
        while not stop.is_set() and not self._stop.is_set():
            if not lease.renew_if_due():
                log.warning("redis relay %r lost its lease", self.name)
                return True
            try:
                new = self.send(offset)
            except Exception as e:
                if self.db.closed:
                    return False
                self.errors += 1
                log.error("redis relay %r: batch after %d failed", self.name, offset, exc_info=e)
                stop.wait(self.retry_s)
                continue
            if new != offset:
                offset = new
                idle_since = time.monotonic()
                continue
            wait = min(lease.due(), 1.0)
            if idle_timeout is not None:
                left = idle_since + idle_timeout - time.monotonic()
                if left <= 0:
                    return False
                wait = min(wait, left)
            sub.wait(wait)
        return False

    def start(self) -> RedisRelay:
        """Run the relay on a daemon thread; returns self."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self.lease.acquire_or_fail()
        self._thread = threading.Thread(
            target=self._run_logged, name=f"alkdev-redis-relay:{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception as e:
            if not self.db.closed:
                log.error("redis relay %r stopped", self.name, exc_info=e)

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the relay (its thread, if started) and release its lease."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
