"""Notification retention: ``prune_notifications`` and the opt-in
automatic retention (docs/0014).

Decisions
---------
* honker's rules: a row goes if it is older than ``older_than_s`` seconds
  (``created_at < unixepoch() - older_than_s``) OR it is not among the
  newest ``max_keep`` rows *of its channel* (rank by id, per channel).
* One ``DELETE`` statement run on the writer in its own ``BEGIN
  IMMEDIATE`` transaction: the ranks and the clock are computed inside it,
  so the prune sees every row committed before it took the write lock.
* Automatic retention (``db.set_notification_retention``) runs the same
  prune every ``every_s`` seconds on one daemon thread per Database, with
  a floor: it never deletes a row above the id the Database's listener
  fan-out has read so far while a listener is alive (rows not yet
  delivered to a live listener of this process stay).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from alkdev_storage.primitives.fanout import fanout_of
from alkdev_storage.primitives.validate import as_int

if TYPE_CHECKING:
    from alkdev_storage.primitives.contract import DatabaseContract

__all__ = ["Retention", "check_rules", "prune"]

# ?1 older_than_s (or NULL) ?2 max_keep (or NULL) ?3 highest id that may go.
SQL_PRUNE = (
    "DELETE FROM _honker_notifications WHERE id <= ?3 AND ("
    "(?1 IS NOT NULL AND created_at < unixepoch() - ?1) OR "
    "(?2 IS NOT NULL AND id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
    "(PARTITION BY channel ORDER BY id DESC) AS rk FROM _honker_notifications) "
    "WHERE rk > ?2)))"
)
_NO_FLOOR = (1 << 63) - 1


def check_rules(older_than_s: object, max_keep: object) -> tuple[int | None, int | None]:
    """Validated ``(older_than_s, max_keep)``."""
    older = None if older_than_s is None else as_int(older_than_s, "older_than_s")
    keep = None if max_keep is None else as_int(max_keep, "max_keep")
    if older is not None and older < 0:
        raise ValueError(f"older_than_s must be >= 0, got {older}")
    if keep is not None and keep < 0:
        raise ValueError(f"max_keep must be >= 0, got {keep}")
    return older, keep


def prune(
    db: DatabaseContract,
    older_than_s: int | None,
    max_keep: int | None,
    floor: int | None = None,
) -> int:
    """Delete by honker's rules (validated already), never above ``floor``.
    Returns the number of rows deleted."""
    if older_than_s is None and max_keep is None:
        return 0
    limit = _NO_FLOOR if floor is None else floor
    return db.execute(db.statement(SQL_PRUNE), (older_than_s, max_keep, limit)).changes


class Retention:
    """Automatic retention of one Database (a daemon thread)."""

    def __init__(
        self, db: DatabaseContract, older_than_s: int | None, max_keep: int | None, every_s: float
    ) -> None:
        self._db_ref = weakref.ref(db)
        self.older_than_s = older_than_s
        self.max_keep = max_keep
        self.every_s = every_s
        self.runs = 0
        self.deleted = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"alkdev-storage-retention:{db.path}", daemon=True
        )
        self._thread.start()

    def run_once(self) -> int:
        """One prune now, with the listener floor; returns rows deleted."""
        db = self._db_ref()
        if db is None or db.closed:
            return 0
        n = prune(db, self.older_than_s, self.max_keep, fanout_of(db).floor())
        self.runs += 1
        self.deleted += n
        return n

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            db = self._db_ref()
            if db is None or db.closed:
                return
            del db
            try:
                self.run_once()
            except Exception as e:  # a busy or closed file: try again later
                self.error = e

    def stop(self) -> None:
        """Stop the thread (idempotent)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)
