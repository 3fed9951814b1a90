"""Applying the shipped migrations: :func:`migrate`, :func:`current_revision`,
:func:`head_revision`, :func:`revisions`.

Each schema kind (``"system"`` for ``system.db``, ``"tenant"`` for a
``tenant-{orgId}.db``) has an Alembic environment inside the package
(``schema/migrations/<kind>/``: ``env.py``, ``script.py.mako``,
``versions/``), so migrating needs no ``alembic.ini`` and works from an
installed wheel. Revisions are ``<kind>_NNNN``, one linear history per kind
(docs/0015).

A migration run goes through the ``sqlite+honker`` dialect on the target's
own Database; it takes the writer slot before reading the file's revision
and applies every step in one transaction (all of it or nothing), with
foreign-key enforcement off during the run and ``PRAGMA
foreign_key_check`` after it (:func:`alkdev_storage.sqlalchemy.foreign_keys_disabled`).

Example::

    from alkdev_storage.schema import migrate, current_revision
    migrate("tenant-acme.db", "tenant")          # -> "tenant_0002" (head)
    migrate(db, "tenant", "tenant_0001")         # downgrade an open Database
    current_revision(db, "tenant")               # -> "tenant_0001"
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from alkdev_storage.database import Database
from alkdev_storage.errors import MigrationError
from alkdev_storage.sqlalchemy import (
    HonkerDialect,
    create_engine,
    foreign_keys_disabled,
    honker_tx,
)

__all__ = [
    "KINDS",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrate",
    "revisions",
    "run_environment",
]

#: The schema kinds with a shipped migration environment.
KINDS = ("system", "tenant")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Alembic's `context`/`op` proxies are module globals: one command at a time
# per process (different processes serialize on the writer slot instead).
_ALEMBIC_LOCK = threading.Lock()

#: What :func:`migrate` accepts as a target.
Target = str | os.PathLike[str] | Database | sa.Engine | sa.Connection


def _kind(kind: object) -> str:
    if kind not in KINDS:
        raise MigrationError(f"unknown schema kind {kind!r}: expected one of {', '.join(KINDS)}")
    return str(kind)


def alembic_config(kind: str) -> Config:
    """An Alembic ``Config`` for the shipped environment of ``kind`` (no
    ini file; ``script_location`` is the package directory). Put a
    ``sqlite+honker`` Connection in ``config.attributes["connection"]`` to
    run commands on it, or set the ``sqlalchemy.url`` main option."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR / _kind(kind)))
    cfg.set_main_option("path_separator", "os")  # version_locations split on os.pathsep
    cfg.attributes["kind"] = kind
    return cfg


@functools.cache
def _script(kind: str) -> ScriptDirectory:
    script = ScriptDirectory.from_config(alembic_config(kind))
    heads = script.get_heads()
    if len(heads) != 1:  # pragma: no cover - a packaging mistake
        raise MigrationError(f"the {kind} migrations have {len(heads)} heads: {heads}")
    return script


def revisions(kind: str) -> list[str]:
    """Every revision of ``kind``'s shipped migrations, base first."""
    script = _script(_kind(kind))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head_revision(kind: str) -> str:
    """The newest revision of ``kind``'s shipped migrations."""
    return revisions(kind)[-1]


def _check_dialect(dialect: sa.engine.Dialect) -> None:
    if not isinstance(dialect, HonkerDialect):
        raise MigrationError(
            f"not a sqlite+honker database ({dialect.name}+{dialect.driver}): migrations run "
            "through alkdev_storage.sqlalchemy.create_engine()"
        )


@contextlib.contextmanager
def _connection(target: object) -> Iterator[sa.Connection]:
    """A Connection on ``target``; engines made here are disposed after."""
    if isinstance(target, sa.Connection):
        _check_dialect(target.dialect)
        yield target
        return
    if isinstance(target, sa.Engine):
        _check_dialect(target.dialect)
        with target.connect() as conn:
            yield conn
        return
    if isinstance(target, Database):
        engine = create_engine(target)
    elif isinstance(target, str | os.PathLike):
        if os.fspath(target) in ("", ":memory:"):
            raise MigrationError(f"not a database file: {target!r}")
        engine = create_engine(target)
    else:
        raise MigrationError(
            "migrate() takes a file path, an alkdev_storage Database or a sqlite+honker "
            f"Engine/Connection, not {type(target).__name__}"
        )
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as e:
            raise MigrationError(f"cannot open {target!r} as a database: {e.orig}") from e
        with conn:
            yield conn
    finally:
        engine.dispose()


def _read_revision(conn: sa.Connection, kind: str) -> str | None:
    began = not conn.in_transaction()
    try:
        heads = MigrationContext.configure(conn).get_current_heads()
    except sa.exc.DBAPIError as e:
        raise MigrationError(f"cannot read the {kind} schema revision: {e.orig}") from e
    finally:
        if began and conn.in_transaction():
            conn.rollback()
    if len(heads) > 1:
        raise MigrationError(f"the file has several schema revisions: {', '.join(heads)}")
    return heads[0] if heads else None


def _check_known(rev: str | None, kind: str) -> None:
    if rev is not None and rev not in revisions(kind):
        other = [k for k in KINDS if k != kind and rev in revisions(k)]
        if other:
            raise MigrationError(
                f"the file is a {other[0]} database (at revision {rev}), not a {kind} one"
            )
        raise MigrationError(
            f"the file is at {kind} revision {rev!r}, which this package does not know "
            f"(newer than its head {head_revision(kind)}? upgrade alkdev-storage)"
        )


def current_revision(target: Target, kind: str) -> str | None:
    """The revision ``target`` is at (``None`` before the first migration).
    ``target`` as for :func:`migrate`. Raises :class:`MigrationError` for an
    unknown kind or a file at a revision this package does not know."""
    kind = _kind(kind)
    with _connection(target) as conn:
        rev = _read_revision(conn, kind)
    _check_known(rev, kind)
    return rev


def _resolve(revision: object, kind: str) -> str | None:
    """The revision id ``revision`` names (None for ``"base"``)."""
    if revision == "head":
        return head_revision(kind)
    if revision == "base":
        return None
    if isinstance(revision, str) and revision in revisions(kind):
        return revision
    raise MigrationError(
        f"unknown {kind} revision {revision!r}: expected 'head', 'base' or one of "
        f"{', '.join(revisions(kind))}"
    )


def migrate(target: Target, kind: str, revision: str = "head") -> str:
    """Bring ``target`` to ``revision`` of the ``kind`` schema (``"system"``
    or ``"tenant"``) and return the revision now current (``"base"`` after
    downgrading past the first one).

    ``target`` is a file path (created if missing), an open
    :class:`alkdev_storage.Database` (migrated through it and left open),
    or a ``sqlite+honker`` SQLAlchemy Engine or Connection (a Connection
    must not be inside a write transaction). ``revision`` is ``"head"``,
    ``"base"`` or a revision id; one older than the file's downgrades.
    Migrating to the revision the file is at does nothing. Concurrent
    migrations of one file (threads or processes) run one after the other;
    the later ones find the work done.

    Raises :class:`MigrationError` naming the problem for an unknown kind
    or revision, a file at a revision this package does not know (newer
    than its head, or the other kind's), a target that is not a
    ``sqlite+honker`` database, or a failed step (then nothing of the run
    is written; the cause is chained).
    """
    kind = _kind(kind)
    dest = _resolve(revision, kind)
    order = revisions(kind)
    with _connection(target) as conn:
        current = _read_revision(conn, kind)
        _check_known(current, kind)
        here = -1 if current is None else order.index(current)
        there = -1 if dest is None else order.index(dest)
        if here != there:
            cfg = alembic_config(kind)
            cfg.attributes["connection"] = conn
            try:
                with _ALEMBIC_LOCK:
                    if there > here:
                        command.upgrade(cfg, str(dest))
                    else:
                        command.downgrade(cfg, dest or "base")
            except MigrationError:
                raise
            except Exception as e:
                raise MigrationError(
                    f"{kind} migration from {current or 'base'} to {dest or 'base'} failed: {e}"
                ) from e
        now = _read_revision(conn, kind)
    return now or "base"


def run_environment(target_metadata: sa.MetaData) -> None:
    """The body of the shipped ``env.py`` files (call it only from an
    Alembic environment script).

    Online: on ``config.attributes["connection"]`` (set by :func:`migrate`)
    or else an engine on the ``sqlalchemy.url`` main option; foreign keys
    off for the run and checked after it; batch mode for SQLite ALTERs;
    one transaction around every step, whose writer slot is taken before
    the file's revision is read (so concurrent migrators of one file run
    one after the other, the second finding the work done). Offline
    (``--sql``): the SQLite statements are written out.
    """
    from alembic import context

    config = context.config
    opts: dict[str, Any] = {
        "target_metadata": target_metadata,
        "render_as_batch": True,
        "compare_type": True,
    }
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url") or "sqlite://",
            literal_binds=True,
            **opts,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    def online(conn: sa.Connection) -> None:
        _check_dialect(conn.dialect)
        with foreign_keys_disabled(conn):
            context.configure(connection=conn, transactional_ddl=True, **opts)
            with context.begin_transaction():
                honker_tx(conn)  # take the writer slot before the version is read
                context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        online(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise MigrationError(
            "no connection: set config.attributes['connection'] or the sqlalchemy.url option"
        )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            online(conn)
    finally:
        engine.dispose()
