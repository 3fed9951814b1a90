"""The Database handle returned by :func:`alkdev_storage.open`."""

from __future__ import annotations

import os

from alkdev_storage import _native

__all__ = ["Database", "open"]


class Database(_native.Database):
    """An open honker database file.

    One writer slot (``BEGIN IMMEDIATE`` transactions, threads queue for it
    with the GIL released) and a bounded pool of reader connections that
    open lazily. Safe to share between threads.

    * ``prepare(sql)`` compiles a reusable :class:`Statement`.
    * ``execute / executemany / fetchone / fetchall / iterate / query`` run
      outside a transaction: reads on a reader, writes on the writer in their
      own short transaction.
    * ``transaction()`` (write), ``read()`` (consistent snapshot).
    * ``notify()`` and the ``honker_*`` SQL functions are available on the
      writer, so code written for the honker binding runs unchanged.
    """


def open(  # noqa: A001 - the honker-compatible name
    path: str | os.PathLike[str],
    *,
    max_readers: int = 8,
    watcher_poll_interval_ms: float | None = None,
) -> Database:
    """Open (creating if needed) the database file at ``path``.

    ``max_readers`` bounds the reader pool (at least 1). ``":memory:"`` and
    empty paths are rejected with ``ValueError``: every reader connection
    would see a different in-memory database.
    ``watcher_poll_interval_ms`` sets the poll period of the update watcher
    that wakes listeners (default 1 ms).
    """
    return Database(
        path, max_readers=max_readers, watcher_poll_interval_ms=watcher_poll_interval_ms
    )
