"""What the primitives need from a Database and from a Transaction.

The primitives (queues, streams, locks, the scheduler, listeners, tasks,
the outbox) never see :class:`alkdev_storage.Database` itself: they are
typed against these two Protocols, which ``Database`` implements (checked
by mypy where ``database.py`` hands itself to them). A Protocol is only a
type: calls go straight to the native methods, with no wrapper in between.

* :class:`TransactionContract`: runs statements (``execute``,
  ``executemany``, ``fetchone``, ``fetchall``). The native
  ``Transaction`` (``db.transaction()``, or ``honker_tx(session)`` of the
  SQLAlchemy layer) is one; every ``tx=`` argument takes one.
* :class:`DatabaseContract`: the same statements, each in its own
  transaction (reads on a reader, writes on the writer), plus what the
  primitives build on:

  ``statement(sql)``
      A Statement prepared once per Database and cached (the primitives'
      SQL is a small fixed set).
  ``fetchone_on_writer(stmt, params)``
      The one writer-transaction helper: runs ``stmt`` (a ``honker_*``
      SQL function that writes) in its own write transaction on the
      writer and returns its first row.
  ``wake_hub()``
      The asyncio wake bridge of the Database (:class:`~.wake.WakeHub`).
  ``transaction()``, ``subscribe_updates()``, ``queue(...)``, ``lock(...)``,
  ``path``, ``closed``
      As on ``Database``.

:func:`executor` is the one place that resolves a ``tx=`` argument. The
per-job hot paths (enqueue, ack, ack_batch, publish) write
``db if tx is None else executor(db, tx)`` so that the common case costs no
extra Python call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from alkdev_storage import _native
    from alkdev_storage._native import Params, Row
    from alkdev_storage.primitives.lock import Lock
    from alkdev_storage.primitives.queue import Queue
    from alkdev_storage.primitives.wake import WakeHub

__all__ = ["DatabaseContract", "TransactionContract", "executor"]


class TransactionContract(Protocol):
    """Runs statements inside one transaction (a ``tx=`` argument)."""

    def execute(
        self, stmt: _native.Statement | str, params: Params = None
    ) -> _native.ExecResult:
        """Run ``stmt``; its changes and lastrowid."""
        ...

    def executemany(
        self, stmt: _native.Statement | str, seq_of_params: Iterable[Params]
    ) -> _native.ExecResult:
        """Run a writing ``stmt`` once per parameter set."""
        ...

    def fetchone(self, stmt: _native.Statement | str, params: Params = None) -> Row | None:
        """The first row of ``stmt``, or None."""
        ...

    def fetchall(self, stmt: _native.Statement | str, params: Params = None) -> list[Row]:
        """Every row of ``stmt``."""
        ...


class DatabaseContract(TransactionContract, Protocol):
    """What a primitive needs from the Database it runs on (see the module
    docstring). The statement methods run each statement in its own
    transaction."""

    @property
    def path(self) -> str:
        """The database file's path."""
        ...

    @property
    def closed(self) -> bool:
        """True once the Database is closed."""
        ...

    def transaction(self) -> _native.Transaction:
        """A write transaction (``with db.transaction() as tx``)."""
        ...

    def try_begin(self) -> _native.Transaction | None:
        """A write transaction begun now if that needs no wait, else None."""
        ...

    def subscribe_updates(self) -> _native.UpdateSubscription:
        """A subscription to commits on the file (any process)."""
        ...

    def statement(self, sql: str) -> _native.Statement:
        """``sql`` prepared once per Database (cached)."""
        ...

    def fetchone_on_writer(self, stmt: _native.Statement, params: Params = None) -> Row:
        """The first row of ``stmt``, run in its own write transaction on
        the writer (for ``honker_*`` SQL functions that write)."""
        ...

    def wake_hub(self) -> WakeHub:
        """The Database's asyncio wake bridge (one per Database)."""
        ...

    def queue(
        self, name: str, visibility_timeout_s: int | None = None, max_attempts: int | None = None
    ) -> Queue:
        """The queue ``name`` (cached per name; None: the default, or the
        cached queue's value; a conflicting value is a ``ValueError``)."""
        ...

    def lock(self, name: str, ttl: int = 60, owner: str | None = None) -> Lock:
        """A named lock."""
        ...


def executor(db: DatabaseContract, tx: Any) -> TransactionContract:
    """Where a statement with a ``tx=`` argument runs: ``db`` (its own
    transaction) when ``tx`` is None, else ``tx``, which must be a
    transaction (anything with ``fetchone``: the native Transaction, or
    the honker handle of a SQLAlchemy transaction); ``TypeError`` otherwise."""
    if tx is None:
        return db
    if not hasattr(tx, "fetchone"):
        raise TypeError(f"tx must be a transaction from db.transaction(), not {type(tx).__name__}")
    tx_: TransactionContract = tx
    return tx_
