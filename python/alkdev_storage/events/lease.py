"""One live process per consumer name: a Honker lock lease with renewal.

A durable consumer (and a Redis relay) is named by configuration, never
by a PID (OQ-31), so a restarted process resumes from the name's saved
offset. Two live processes under one name would both deliver every event;
:class:`ConsumerLease` prevents it with ``db.lock("alkdev.events:lease:" +
name, ttl)``, owned by a random id of this process's target:

* ``acquire()`` takes it if free (or expired); ``renew()`` extends it
  every ``ttl / 3`` seconds while consuming, and returns False once it was
  lost (expired and taken: the process stalled longer than ``ttl``), upon
  which the consumer stops delivering at once;
* a second process either waits as a standby (retrying every
  ``ttl / 3``; it takes over at most ``ttl`` seconds after the first one
  died without releasing) or fails with
  :class:`~alkdev_storage.errors.ConsumerBusy` (``on_busy="fail"``);
* ``held_in(tx)`` checks the lease inside the caller's transaction (a
  fencing check): an offset committed together with the listener's own
  writes is refused (:class:`~alkdev_storage.errors.LeaseLost`, the
  transaction rolls back) once the lease is gone.

The lock's clock is SQLite's ``unixepoch()``: whole seconds, so a lease
taken late in a second has a little over ``ttl - 1`` seconds left; ``ttl``
is therefore an int >= 2 and renewals come every ``(ttl - 1) / 3``
seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

from alkdev_storage.errors import ConsumerBusy, LeaseLost
from alkdev_storage.primitives.lock import SQL_HELD, check_ttl
from alkdev_storage.primitives.validate import check_name

if TYPE_CHECKING:
    from alkdev_storage.database import Database

__all__ = ["LEASE_PREFIX", "ConsumerLease", "OnBusy"]

LEASE_PREFIX = "alkdev.events:lease:"
OnBusy = Literal["standby", "fail"]


class ConsumerLease:
    """The lease of one consumer name (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        name: str,
        *,
        ttl: int = 15,
        on_busy: OnBusy = "standby",
        owner: str | None = None,
    ) -> None:
        check_name(name, "consumer name")
        if on_busy not in ("standby", "fail"):
            raise ValueError(f"on_busy must be 'standby' or 'fail', not {on_busy!r}")
        self.db = db
        self.name = name
        self.ttl = check_ttl(ttl)
        if self.ttl < 2:
            raise ValueError(
                f"a lease ttl must be at least 2 seconds, got {ttl!r} (the lock clock counts "
                "whole seconds: a lease taken late in a second has less than ttl - 1 left)"
            )
        self.on_busy: OnBusy = on_busy
        self.owner = owner if owner is not None else uuid.uuid4().hex
        """This holder's lock owner id (random per target instance)."""
        self.lock_name = LEASE_PREFIX + name
        self._lock = db.lock(self.lock_name, ttl=self.ttl, owner=self.owner)
        self._renewed_at = 0.0
        self.held = False
        """True while this process holds the lease (as of the last call)."""

    def __repr__(self) -> str:
        return f"<ConsumerLease {self.name!r} held={self.held} ttl={self.ttl}>"

    @property
    def interval(self) -> float:
        """Seconds between renewals (and between standby retries): a third
        of the shortest time a lease may have left, ``ttl - 1`` seconds."""
        return max(0.1, (self.ttl - 1) / 3)

    def acquire(self) -> bool:
        """Take the lease if free; True if held now."""
        self.held = self._lock.acquire()
        if self.held:
            self._renewed_at = time.monotonic()
        return self.held

    def acquire_or_fail(self) -> bool:
        """:meth:`acquire`; with ``on_busy="fail"`` a held lease raises
        :class:`~alkdev_storage.errors.ConsumerBusy` instead of returning
        False."""
        if self.acquire():
            return True
        if self.on_busy == "fail":
            raise ConsumerBusy(
                f"consumer {self.name!r} is held by another live process (lease "
                f"{self.lock_name!r}, ttl {self.ttl} s); use on_busy='standby' to wait for it"
            )
        return False

    def wait(self, stop: threading.Event, timeout: float | None = None) -> bool:
        """Standby: retry :meth:`acquire` every :attr:`interval` until held
        (True), ``stop`` is set or ``timeout`` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not stop.is_set():
            if self.acquire():
                return True
            wait = self.interval
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                wait = min(wait, left)
            stop.wait(wait)
        return False

    def due(self) -> float:
        """Seconds until the next renewal is due (0: now)."""
        return max(0.0, self._renewed_at + self.interval - time.monotonic())

    def renew(self) -> bool:
        """Extend the lease; False if it was lost."""
        self.held = self._lock.renew()
        if self.held:
            self._renewed_at = time.monotonic()
        return self.held

    def renew_if_due(self) -> bool:
        """:meth:`renew` when due; True while held."""
        if self.due() <= 0:
            return self.renew()
        return self.held

    def held_in(self, tx: Any) -> bool:
        """True if the lease is ours and unexpired, read in ``tx`` (a
        False also marks it lost here: :attr:`held` becomes False)."""
        if tx.fetchone(SQL_HELD, (self.lock_name, self.owner)) is not None:
            return True
        self.held = False
        return False

    def check_in(self, tx: Any) -> None:
        """:class:`~alkdev_storage.errors.LeaseLost` unless :meth:`held_in`."""
        if not self.held_in(tx):
            raise LeaseLost(
                f"consumer {self.name!r}: this process no longer holds its lease; "
                "the offset was not committed (roll back)"
            )

    def release(self) -> None:
        """Give the lease up if ours (idempotent; never raises for a lost one)."""
        if self.held and not self.db.closed:
            try:
                self._lock.release()
            except Exception:
                pass
        self.held = False
