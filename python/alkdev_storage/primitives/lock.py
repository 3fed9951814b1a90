"""Named advisory locks on honker's ``_honker_locks`` table.

``db.lock(name, ttl=60, owner=None)`` returns a context manager that raises
:class:`LockHeld` on entry if another owner holds the lock, exactly as the
honker binding. Acquire/release/renew go through
``honker_lock_acquire`` / ``honker_lock_release`` / ``honker_lock_renew``,
so locks are shared with every other honker binding on the file.

Decisions
---------
* ``renew(ttl=None)`` extends the TTL while we still own the lock and
  returns True, or returns False if we do not (it expired and was taken,
  or was released), as the honker binding does. ``is_held()`` checks
  without writing.
* Leaving the ``with`` block releases the lock if it is still ours and
  never raises for a lost lock (honker-compatible): call ``renew()`` (or
  ``is_held()``) where losing exclusivity matters.
* ``ttl`` is whole seconds, at least 1 (ValueError otherwise).
* The lock also works with ``async with`` (the SQL is a short write
  transaction, as in the sync form).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from alkdev_storage.errors import LockHeld
from alkdev_storage.primitives.aio import off_loop
from alkdev_storage.primitives.validate import as_int, check_name

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import DatabaseContract

__all__ = ["Lock", "check_ttl"]

SQL_ACQUIRE = "SELECT honker_lock_acquire(?1, ?2, ?3)"
SQL_RELEASE = "SELECT honker_lock_release(?1, ?2)"
SQL_RENEW = "SELECT honker_lock_renew(?1, ?2, ?3)"
SQL_HELD = "SELECT 1 FROM _honker_locks WHERE name = ?1 AND owner = ?2 AND expires_at > unixepoch()"


def check_ttl(ttl: Any) -> int:
    """A lock TTL: whole seconds, at least 1 (``ValueError`` otherwise)."""
    t = as_int(ttl, "ttl")
    if t < 1:
        raise ValueError(f"ttl must be at least 1 second, got {ttl!r}")
    return t


class Lock:
    """A named lock owned by ``owner`` (see :meth:`Database.lock`)."""

    __slots__ = ("acquired", "db", "name", "owner", "ttl")

    def __init__(self, db: DatabaseContract, name: str, ttl: int, owner: str) -> None:
        check_name(name, "lock name")
        check_name(owner, "lock owner")
        self.db = db
        self.name = name
        self.ttl = check_ttl(ttl)
        self.owner = owner
        self.acquired = False

    def acquire(self) -> bool:
        """Try to take the lock (no waiting). True if we hold it now."""
        db = self.db
        r = db.fetchone_on_writer(db.statement(SQL_ACQUIRE), (self.name, self.owner, self.ttl))
        self.acquired = bool(r[0])
        return self.acquired

    def release(self) -> bool:
        """Release the lock if it is ours. True if a row was deleted."""
        db = self.db
        r = db.fetchone_on_writer(db.statement(SQL_RELEASE), (self.name, self.owner))
        self.acquired = False
        return bool(r[0])

    def renew(self, ttl: int | None = None) -> bool:
        """Extend the lock to ``ttl`` (default: the lock's ttl) seconds from
        now. True if it was still ours, False if not (it expired and was
        taken, or was released): the caller lost exclusivity."""
        t = self.ttl if ttl is None else check_ttl(ttl)
        db = self.db
        r = db.fetchone_on_writer(db.statement(SQL_RENEW), (self.name, self.owner, t))
        self.acquired = bool(r[0])
        return self.acquired

    def is_held(self) -> bool:
        """True if we own the lock and it has not expired."""
        return self.db.fetchone(self.db.statement(SQL_HELD), (self.name, self.owner)) is not None

    def __enter__(self) -> Lock:
        """Take the lock; :class:`~alkdev_storage.errors.LockHeld` if another
        owner holds it."""
        if not self.acquire():
            raise LockHeld(f"lock {self.name!r} is already held")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        """Release the lock if it is still ours (never raises for a lost lock)."""
        if self.acquired and not self.db.closed:
            self.release()
        return False

    async def __aenter__(self) -> Lock:
        """``async with``: as :meth:`__enter__`; its write waits off the
        event loop (primitives.aio)."""
        return await off_loop(self.__enter__)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        """``async with``: as :meth:`__exit__`, off the event loop."""
        return await off_loop(self.__exit__, exc_type, exc, tb)

    def __repr__(self) -> str:
        state = "acquired" if self.acquired else "not acquired"
        return f"<Lock {self.name!r} owner={self.owner!r} ttl={self.ttl} {state}>"

