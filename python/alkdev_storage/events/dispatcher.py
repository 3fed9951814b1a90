"""The events of one Database in this process: one listener, one thread,
and the post-commit hook.

Decisions (docs/0021-event-targets.md)
--------------------------------------
* One :class:`Dispatcher` per Database (``dispatcher_of(db)``), created by
  the first Honker ephemeral target that listens or the first
  commit-aware dispatch. It owns **one** match listener
  (``Listener(db, ..., match=...)`` of the primitives: fed by the
  Database's one read of ``_honker_notifications`` per commit, the same
  read every ``db.listen`` shares) and **one** daemon thread that takes
  the notifications and hands each to the targets that want its channel
  (``client.wants(channel)``, ``client.deliver(notification)``). Ten
  thousand ``topic:id`` listeners cost one dictionary lookup per row, no
  watcher, query or thread of their own.
* The thread lives while something needs it: it stops by itself once no
  target listens and no commit hook waits (checked at every wake, at the
  latest after the listener's fallback poll, 15 s).
* Post-commit hook (:func:`after_commit`): the native Transaction has no
  commit callback, and it may come from ``db.transaction()``,
  ``db.atransaction()`` or a SQLAlchemy session (``honker_tx``). So the
  hook writes a marker notification (channel ``alkdev.events:commit:<id>``
  of this dispatcher, payload a token) **inside the caller's
  transaction**; the callback runs on the dispatcher thread when that
  row comes back through the shared read (about a millisecond after the
  commit). A rolled-back transaction leaves no row: its callback is
  dropped once a probe settles it. The probe takes the writer with
  ``db.try_begin()`` (only possible once every transaction that
  registered a hook has ended, since a registering transaction holds the
  process's one writer slot) and looks the markers up in that
  transaction: present means committed (the callback runs, if the
  listener has not run it yet), absent means rolled back. It runs on a
  small thread that exists only while hooks wait (every ``PROBE_S``).
* A transaction of another database file is refused (``ValueError``)
  before anything is written: its marker would never come back here.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from alkdev_storage.errors import InterfaceError
from alkdev_storage.events.registry import log
from alkdev_storage.primitives.notify import Listener, Notification
from alkdev_storage.primitives.payload import decode

if TYPE_CHECKING:
    from alkdev_storage.database import Database

__all__ = [
    "COMMIT_CHANNEL_PREFIX",
    "PROBE_S",
    "Client",
    "Dispatcher",
    "after_commit",
    "dispatcher_of",
]

COMMIT_CHANNEL_PREFIX = "alkdev.events:commit:"
PROBE_S = 0.05
"""How often waiting commit hooks are settled by a probe (seconds)."""
BUFFERED = 100_000
"""Notifications the dispatcher's listener holds before dropping the
oldest (``Dispatcher.dropped``): one commit may carry this many rows for
its targets, delivered in full."""
IDLE_CHECK_S = 15.0
"""How often an idle dispatcher thread checks whether it is still needed."""

SQL_MAIN_FILE = "SELECT file FROM pragma_database_list WHERE name = 'main'"
SQL_MARKERS = (
    "SELECT id, payload FROM _honker_notifications WHERE channel = ?1 AND id >= ?2 ORDER BY id"
)

_registry: weakref.WeakKeyDictionary[Any, Dispatcher] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


class Client(Protocol):
    """What a dispatcher needs from a target it feeds."""

    def wants(self, channel: str) -> bool:
        """True if a notification on ``channel`` is for this target
        (called inside the shared read: fast, no blocking)."""
        ...

    def deliver(self, notification: Notification) -> None:
        """Handle one notification (on the dispatcher thread)."""
        ...


def dispatcher_of(db: Database) -> Dispatcher:
    """The one :class:`Dispatcher` of ``db`` (created on first use)."""
    d = _registry.get(db)
    if d is None:
        with _registry_lock:
            d = _registry.get(db)
            if d is None:
                d = _registry[db] = Dispatcher(db)
    return d


def after_commit(db: Database, tx: Any, callback: Callable[[], Any]) -> None:
    """Run ``callback()`` after ``tx`` (an active transaction on ``db``'s
    file) commits, on ``db``'s dispatcher thread; never if it rolls back.
    See the module docstring. ``ValueError`` for a transaction of another
    file, ``TypeError`` for something that is not a transaction."""
    dispatcher_of(db).after_commit(tx, callback)


class Dispatcher:
    """The event thread of one Database (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db_ref = weakref.ref(db)  # the registry is keyed weakly by db
        self.path = db.path
        """The database file's path."""
        self._lock = threading.Lock()
        self._clients: tuple[Client, ...] = ()
        self._pending: dict[int, tuple[int, Callable[[], Any]]] = {}
        self._tokens = itertools.count(1)
        self.channel = COMMIT_CHANNEL_PREFIX + uuid.uuid4().hex
        """This dispatcher's commit-marker channel."""
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._prober: threading.Thread | None = None
        self._file: str | None = None
        self.delivered = 0
        """Notifications handed to targets."""
        self.committed = 0
        """Commit hooks run."""
        self.rolled_back = 0
        """Commit hooks dropped because their transaction rolled back."""
        self.probes = 0
        """Probe transactions run to settle commit hooks."""
        self._dropped = 0

    def __repr__(self) -> str:
        return (
            f"<Dispatcher {self.path!r} clients={len(self._clients)} "
            f"pending={len(self._pending)} running={self.running}>"
        )

    @property
    def running(self) -> bool:
        """True while the dispatcher thread runs."""
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def dropped(self) -> int:
        """Notifications dropped because the dispatcher thread fell more
        than ``BUFFERED`` rows behind (listeners too slow)."""
        lst = self._listener
        return self._dropped + (lst.dropped if lst is not None else 0)

    @property
    def pending(self) -> int:
        """Commit hooks waiting for their transaction's outcome."""
        return len(self._pending)

    def _database(self) -> Database:
        db = self._db_ref()
        if db is None:
            raise InterfaceError("the Database was garbage-collected")
        return db

    def _gone(self) -> bool:
        db = self._db_ref()
        return db is None or db.closed

    # -- clients ---------------------------------------------------------

    def attach(self, client: Client) -> None:
        """Feed ``client`` (idempotent); starts the thread if needed."""
        with self._lock:
            if client not in self._clients:
                self._clients = (*self._clients, client)
            self._ensure_running_locked()

    def detach(self, client: Client) -> None:
        """Stop feeding ``client`` (idempotent)."""
        with self._lock:
            self._clients = tuple(c for c in self._clients if c is not client)

    def _match(self, channel: str) -> bool:
        if channel == self.channel:
            return True
        for c in self._clients:
            if c.wants(channel):
                return True
        return False

    # -- commit hooks ----------------------------------------------------

    def after_commit(self, tx: Any, callback: Callable[[], Any]) -> None:
        """See :func:`after_commit`."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if not (hasattr(tx, "notify") and hasattr(tx, "fetchone")):
            raise TypeError(
                f"tx must be a transaction from db.transaction(), not {type(tx).__name__}"
            )
        row = tx.fetchone(SQL_MAIN_FILE)
        if self._file is None:
            own = self._database().fetchone(SQL_MAIN_FILE)
            self._file = own[0] if own else None
        if row is None or row[0] != self._file:
            raise ValueError(
                f"tx is a transaction of {row[0] if row else '?'!r}, not of {self.path!r}: "
                "a commit-aware dispatch needs a transaction of the target's database"
            )
        token = next(self._tokens)
        nid = int(tx.notify(self.channel, token))
        with self._lock:
            self._pending[token] = (nid, callback)
            self._ensure_running_locked()
            if self._prober is None:
                self._prober = threading.Thread(
                    target=self._probe_loop, name="alkdev-events-probe", daemon=True
                )
                self._prober.start()

    def _probe_loop(self) -> None:
        """While hooks wait: settle them every ``PROBE_S`` (a commit's
        marker usually comes back through the listener first)."""
        try:
            while True:
                time.sleep(PROBE_S)
                with self._lock:
                    if not self._pending or self._gone():
                        self._prober = None
                        return
                self._probe()
        except Exception as e:
            with self._lock:
                self._prober = None
            if not self._gone():
                log.error("commit-hook probe of %r stopped", self.path, exc_info=e)

    def _committed(self, payload: Any) -> None:
        if type(payload) is not int:
            return
        with self._lock:
            entry = self._pending.pop(payload, None)
        if entry is not None:
            self._run_hook(entry[1])

    def _run_hook(self, callback: Callable[[], Any]) -> None:
        self.committed += 1
        try:
            callback()
        except Exception as e:
            log.error("after-commit callback %r failed", callback, exc_info=e)

    def _probe(self) -> None:
        """Settle waiting hooks (see the module docstring)."""
        db = self._db_ref()
        if db is None or db.closed:
            return
        tx = db.try_begin()
        if tx is None:
            return  # a transaction runs: maybe a registering one; next time
        try:
            with self._lock:
                snapshot = dict(self._pending)
            if not snapshot:
                return
            low = min(nid for nid, _ in snapshot.values())
            rows = tx.fetchall(SQL_MARKERS, (self.channel, low))
        finally:
            tx.rollback()
        self.probes += 1
        present: set[tuple[int, int]] = set()
        for rid, raw in rows:
            try:
                tok = decode(raw)
            except ValueError:
                continue
            if type(tok) is int:
                present.add((int(rid), tok))
        for token, (nid, _) in snapshot.items():
            with self._lock:
                entry = self._pending.pop(token, None)
            if entry is None:
                continue  # the listener ran it meanwhile
            if (nid, token) in present:
                self._run_hook(entry[1])
            else:
                self.rolled_back += 1

    # -- the thread ------------------------------------------------------

    def _ensure_running_locked(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._listener is not None:
            if not self._listener.closed:
                return
        listener = Listener(
            self._database(), self.channel, match=self._match, max_buffered=BUFFERED
        )
        self._listener = listener
        t = threading.Thread(
            target=self._run, args=(listener,), name="alkdev-events-dispatch", daemon=True
        )
        self._thread = t
        t.start()

    def _needed_locked(self) -> bool:
        return bool(self._pending) or any(getattr(c, "listening", True) for c in self._clients)

    def _run(self, listener: Listener) -> None:
        try:
            while True:
                n = listener.get(IDLE_CHECK_S)
                while n is not None:
                    self._route(n)
                    n = listener.get(0)
                if listener.closed:
                    return
                with self._lock:
                    if self._listener is not listener:
                        return  # replaced
                    if not self._needed_locked():
                        self._listener = None
                        listener.close()
                        return
        except Exception as e:  # the Database closed under us, or a bug
            if not self._gone():
                log.error("event dispatcher of %r stopped", self.path, exc_info=e)
        finally:
            with self._lock:
                if self._listener is listener:
                    self._listener = None
                self._dropped += listener.dropped
            listener.close()

    def _route(self, n: Notification) -> None:
        channel = n.channel
        if channel == self.channel:
            self._committed(n.payload)
            return
        for c in self._clients:
            if c.wants(channel):
                self.delivered += 1
                try:
                    c.deliver(n)
                except Exception as e:
                    log.error("event target %r failed on %r", c, channel, exc_info=e)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no commit hook is pending (tests, shutdown); False on
        timeout."""
        deadline = time.monotonic() + timeout
        while self._pending:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True
