"""The hub's cache of open tenant handles (docs/0025-hub-and-tenants.md).

Bounded by a count (``max_open``) and by an estimate of file descriptors
(``fd_budget``: each SQLite connection holds the database and its WAL
open, plus one ``-shm`` per file), least recently used first; a handle
unused for ``idle_ttl`` seconds is closed by :meth:`HandleCache.sweep`
(a single reaper thread calls it).

Handles are *leased*: :meth:`HandleCache.lease` returns a :class:`Lease`
(``with cache.lease(org) as db:``). A leased handle is never closed: an
eviction (by the bounds, by :meth:`HandleCache.evict` or by closing the
cache) only marks it, and the last lease to end closes it. So no
transaction ever runs on a closed handle. While every cached handle is
leased the bounds are exceeded rather than closing one in use.

Two threads asking for the same tenant get the same Database: the first
opens it (outside the cache's lock), the others wait for it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any

from alkdev_storage.errors import InterfaceError
from alkdev_storage.tenancy.guard import TenantDatabase

__all__ = ["HandleCache", "Lease", "fd_estimate"]


def fd_estimate(db: TenantDatabase) -> int:
    """File descriptors an open handle holds, estimated: database + WAL per
    connection (writer and open readers) and one ``-shm``."""
    try:
        readers = db.open_readers
    except Exception:  # closed meanwhile
        return 0
    return 2 * (1 + readers) + 1


class _Entry:
    __slots__ = ("db", "error", "evicted", "fds", "key", "last_used", "leases", "ready")

    def __init__(self, key: str) -> None:
        self.key = key
        self.db: TenantDatabase | None = None
        self.leases = 0
        self.last_used = time.monotonic()
        self.evicted = False
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.fds = 0


class Lease:
    """A use of a tenant handle: ``with lease as db:`` (or ``lease.db`` then
    :meth:`release`). The handle stays open until every lease on it has
    ended. Releasing twice is harmless; a lease dropped without release
    is released when garbage collected."""

    __slots__ = ("_cache", "_entry", "db")

    def __init__(self, cache: HandleCache, entry: _Entry, db: TenantDatabase) -> None:
        self._cache: HandleCache | None = cache
        self._entry = entry
        self.db = db

    def release(self) -> None:
        """End this lease (idempotent)."""
        cache, self._cache = self._cache, None
        if cache is not None:
            cache._release(self._entry)

    @property
    def released(self) -> bool:
        """True once released."""
        return self._cache is None

    def __enter__(self) -> TenantDatabase:
        if self._cache is None:
            raise InterfaceError("this lease was released")
        return self.db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # interpreter shutdown
            pass


class HandleCache:
    """Open tenant handles by key (org id); see the module docstring.

    ``opener(key)`` opens a handle (it may raise; the error reaches every
    thread that waited for that open)."""

    def __init__(self, opener: Callable[[str], TenantDatabase], *, max_open: int = 256,
                 fd_budget: int = 4096, idle_ttl: float = 300.0) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be at least 1, got {max_open}")
        if fd_budget < 3:
            raise ValueError(f"fd_budget must be at least 3, got {fd_budget}")
        if not idle_ttl > 0:
            raise ValueError(f"idle_ttl must be positive, got {idle_ttl}")
        self._opener = opener
        self.max_open = max_open
        self.fd_budget = fd_budget
        self.idle_ttl = idle_ttl
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._closed = False
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()
        self._fds = 0
        self.opens = 0
        self.closes = 0

    # -- leasing -------------------------------------------------------------

    def lease(self, key: str) -> Lease:
        """A lease on the handle of ``key``, opening it if needed."""
        while True:
            with self._lock:
                if self._closed:
                    raise InterfaceError("the tenant handle cache is closed")
                e = self._entries.get(key)
                if e is not None and e.db is not None:
                    e.leases += 1
                    self._entries.move_to_end(key)
                    return Lease(self, e, e.db)
                if e is None:
                    e = _Entry(key)
                    self._entries[key] = e
                    opener = True
                else:
                    opener = False
            if opener:
                return self._open(e)
            e.ready.wait()
            if e.error is not None and e.db is None:
                raise e.error

    def _open(self, e: _Entry) -> Lease:
        try:
            db = self._opener(e.key)
        except BaseException as exc:
            with self._lock:
                if self._entries.get(e.key) is e:
                    del self._entries[e.key]
            e.error = exc
            e.ready.set()
            raise
        victims: list[TenantDatabase] = []
        with self._lock:
            self.opens += 1
            e.db = db
            e.leases += 1
            closed = self._closed
            if closed:
                e.evicted = True
                self._entries.pop(e.key, None)
            else:
                e.fds = fd_estimate(db)
                self._fds += e.fds
                victims = self._shrink_locked()
        e.ready.set()
        self._close_all(victims)
        self._ensure_reaper()
        return Lease(self, e, db)

    def _release(self, e: _Entry) -> None:
        close = None
        with self._lock:
            e.leases -= 1
            e.last_used = time.monotonic()
            if e.leases == 0 and e.evicted and e.db is not None:
                close, e.db = e.db, None
            elif e.db is not None and not e.evicted:
                fds = fd_estimate(e.db)  # readers open lazily
                self._fds += fds - e.fds
                e.fds = fds
        if close is not None:
            self._close_all([close])

    # -- bounds --------------------------------------------------------------

    def _shrink_locked(self) -> list[TenantDatabase]:
        """Evict least recently used idle handles until within bounds."""
        victims: list[TenantDatabase] = []
        n = len(self._entries)
        if n <= self.max_open and self._fds <= self.fd_budget:
            return victims
        for key in list(self._entries):
            if n <= self.max_open and self._fds <= self.fd_budget:
                break
            x = self._entries[key]
            if x.leases or x.db is None:
                continue
            victims.append(self._drop_locked(key, x))
            n -= 1
        return victims

    def _drop_locked(self, key: str, x: _Entry) -> TenantDatabase:
        """Remove an idle entry (its handle is returned, to be closed)."""
        del self._entries[key]
        self._fds -= x.fds
        x.fds = 0
        db, x.db = x.db, None
        assert db is not None
        return db

    def _close_all(self, dbs: list[TenantDatabase]) -> None:
        for db in dbs:
            db.close()
        if dbs:
            with self._lock:
                self.closes += len(dbs)

    def evict(self, key: str) -> bool:
        """Take ``key``'s handle out of the cache: closed now if unused,
        else by its last lease. Returns True when it was closed now (or
        was not open)."""
        close = None
        with self._lock:
            e = self._entries.pop(key, None)
            if e is None:
                return True
            e.evicted = True
            self._fds -= e.fds
            e.fds = 0
            if e.leases == 0 and e.db is not None:
                close, e.db = e.db, None
        if close is not None:
            self._close_all([close])
            return True
        return e.db is None

    def leases(self, key: str) -> int:
        """Leases held on ``key``'s cached handle (0 when not cached)."""
        with self._lock:
            e = self._entries.get(key)
            return 0 if e is None else e.leases

    def sweep(self, now: float | None = None) -> int:
        """Close the handles unused for ``idle_ttl`` seconds; returns how many."""
        now = time.monotonic() if now is None else now
        victims: list[TenantDatabase] = []
        with self._lock:
            for key in list(self._entries):
                x = self._entries[key]
                if x.leases == 0 and x.db is not None and now - x.last_used >= self.idle_ttl:
                    victims.append(self._drop_locked(key, x))
        self._close_all(victims)
        return len(victims)

    def _ensure_reaper(self) -> None:
        if self._reaper is not None:
            return
        with self._lock:
            if self._reaper is not None or self._closed:
                return
            t = threading.Thread(target=self._reap, name="alkdev-tenant-reaper", daemon=True)
            self._reaper = t
        t.start()

    def _reap(self) -> None:
        period = min(max(self.idle_ttl / 2, 0.05), 30.0)
        while not self._stop.wait(period):
            try:
                self.sweep()
            except Exception:  # never let the reaper die
                pass

    # -- state ---------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts: ``open``, ``leased``, ``fds`` (estimate), ``opens``,
        ``closes`` (since creation)."""
        with self._lock:
            dbs = [x for x in self._entries.values() if x.db is not None]
            return {
                "open": len(dbs),
                "leased": sum(1 for x in dbs if x.leases),
                "fds": self._fds,
                "opens": self.opens,
                "closes": self.closes,
            }

    def close(self) -> None:
        """Close every unused handle now and the leased ones when their
        leases end; stop the reaper. Further leases raise."""
        victims: list[TenantDatabase] = []
        with self._lock:
            self._closed = True
            for x in self._entries.values():
                x.evicted = True
                if x.leases == 0 and x.db is not None:
                    victims.append(x.db)
                    x.db = None
            self._entries.clear()
            self._fds = 0
        self._stop.set()
        self._close_all(victims)
        t = self._reaper
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
