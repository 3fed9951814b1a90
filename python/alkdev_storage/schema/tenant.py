"""The tenant tables (``tenant-{orgId}.db``, ADR-042/043): graph types,
graphs, nodes and edges, plus the triggers that hold below every API.

Typed SQLAlchemy 2 ORM models on :class:`TenantBase` (its own MetaData).
The shipped Alembic migrations (``schema/migrations/tenant``) are the
source of truth for files; ``TenantBase.metadata.create_all`` creates the
same tables, indexes and triggers (for tests and scratch files).

Triggers (SQL, so they hold for the ORM, Core and raw SQL alike):

* **Same graph** (:data:`EDGE_TRIGGERS`): an edge's source and target must
  be nodes of the edge's graph (checked on INSERT and on UPDATE of
  ``graph_id``/``source_id``/``target_id``), and a node that has edges
  cannot move to another graph.
* **Scope protection** (:data:`PROTECTION_TRIGGERS`, ADR-043): no INSERT,
  UPDATE or DELETE may create, change or remove a ``system``-scope graph
  type, including through ``INSERT OR REPLACE``/``UPDATE OR REPLACE``
  displacing one; the error is an ``IntegrityError`` whose message is
  ``graph type <name> is system-scope and cannot be changed``. Only
  :func:`protection_lifted` (used to register and upgrade the built-in
  system graph types) lifts them, inside one transaction.

What raw SQL can still do: DDL (drop the triggers or tables) -- scope
protection guards against writes, not against a caller that may change
the schema. The attributes' shape is checked here only as "a JSON object";
validating them against the graph type's schema is the domain layer's job.

The messages of the protection triggers are constants (``graph type is
system-scope and cannot be changed``): a message built from an expression
would make the schema unreadable for SQLite before 3.47, and every honker
binding and tool must be able to open a tenant file. The domain layer
names the graph type in its own ScopeViolation (docs/0015).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from alkdev_storage import _native
from alkdev_storage.database import Database
from alkdev_storage.schema.operation_tables import operation_tables
from alkdev_storage.schema.types import (
    NAMING_CONVENTION,
    UTC_NOW_SQL,
    UTCDateTime,
    enum_type,
    new_id,
    utcnow,
)
from alkdev_storage.sqlalchemy import honker_database, honker_tx

__all__ = [
    "EDGE_TRIGGERS",
    "GRAPH_STATUSES",
    "GRAPH_TYPE_SCOPES",
    "OPERATION_KEYS",
    "OPERATION_REQUESTS",
    "PROTECTION_TRIGGERS",
    "PROTECTION_TRIGGER_NAMES",
    "Edge",
    "Graph",
    "GraphType",
    "Node",
    "TenantBase",
    "ensure_protection",
    "protection_lifted",
]

GRAPH_TYPE_SCOPES = ("system", "tenant", "user")
GRAPH_STATUSES = ("active", "archived")

#: Trigger name -> CREATE TRIGGER statement: edges stay inside their graph.
EDGE_TRIGGERS: dict[str, str] = {
    "edges_same_graph_insert": """CREATE TRIGGER edges_same_graph_insert
BEFORE INSERT ON edges FOR EACH ROW
WHEN EXISTS (
    SELECT 1 FROM nodes
    WHERE nodes.id IN (NEW.source_id, NEW.target_id) AND nodes.graph_id IS NOT NEW.graph_id
)
BEGIN
    SELECT RAISE(ABORT, 'edge source and target must be nodes of the edge''s graph');
END""",
    "edges_same_graph_update": """CREATE TRIGGER edges_same_graph_update
BEFORE UPDATE OF graph_id, source_id, target_id ON edges FOR EACH ROW
WHEN EXISTS (
    SELECT 1 FROM nodes
    WHERE nodes.id IN (NEW.source_id, NEW.target_id) AND nodes.graph_id IS NOT NEW.graph_id
)
BEGIN
    SELECT RAISE(ABORT, 'edge source and target must be nodes of the edge''s graph');
END""",
    "nodes_keep_edges_in_graph": """CREATE TRIGGER nodes_keep_edges_in_graph
BEFORE UPDATE OF graph_id ON nodes FOR EACH ROW
WHEN NEW.graph_id IS NOT OLD.graph_id AND EXISTS (
    SELECT 1 FROM edges
    WHERE (edges.source_id = OLD.id OR edges.target_id = OLD.id)
        AND edges.graph_id IS NOT NEW.graph_id
)
BEGIN
    SELECT RAISE(ABORT, 'a node with edges cannot move to another graph');
END""",
}

# The protection triggers also refuse a write that would displace a
# system-scope row (same id, or same unique (name, version, owner) key):
# INSERT OR REPLACE / UPDATE OR REPLACE delete the displaced row without
# running DELETE triggers.

#: Trigger name -> CREATE TRIGGER statement: system-scope graph types are
#: immutable (ADR-043). Lifted only by :func:`protection_lifted`.
PROTECTION_TRIGGERS: dict[str, str] = {
    "graph_types_protect_insert": """CREATE TRIGGER graph_types_protect_insert
BEFORE INSERT ON graph_types FOR EACH ROW
WHEN NEW.scope = 'system' OR EXISTS (
    SELECT 1 FROM graph_types AS g
    WHERE g.scope = 'system' AND (g.id = NEW.id OR (g.name = NEW.name
        AND g.version = NEW.version AND ifnull(g.owner_id, '') = ifnull(NEW.owner_id, '')))
)
BEGIN
    SELECT RAISE(ABORT, 'graph type is system-scope and cannot be changed');
END""",
    "graph_types_protect_update": """CREATE TRIGGER graph_types_protect_update
BEFORE UPDATE ON graph_types FOR EACH ROW
WHEN OLD.scope = 'system' OR NEW.scope = 'system' OR EXISTS (
    SELECT 1 FROM graph_types AS g
    WHERE g.scope = 'system' AND g.id IS NOT OLD.id AND (g.id = NEW.id OR (g.name = NEW.name
        AND g.version = NEW.version AND ifnull(g.owner_id, '') = ifnull(NEW.owner_id, '')))
)
BEGIN
    SELECT RAISE(ABORT, 'graph type is system-scope and cannot be changed');
END""",
    "graph_types_protect_delete": """CREATE TRIGGER graph_types_protect_delete
BEFORE DELETE ON graph_types FOR EACH ROW
WHEN OLD.scope = 'system'
BEGIN
    SELECT RAISE(ABORT, 'graph type is system-scope and cannot be changed');
END""",
}

#: Names of the scope-protection triggers.
PROTECTION_TRIGGER_NAMES: tuple[str, ...] = tuple(PROTECTION_TRIGGERS)


class TenantBase(DeclarativeBase):
    """Declarative base of the tenant tables (its own MetaData, with the
    naming convention of every constraint and index)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _id() -> Mapped[str]:
    return mapped_column(sa.Text, primary_key=True, default=new_id)


def _created_at() -> Mapped[datetime]:
    return mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.text(UTC_NOW_SQL)
    )


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        UTCDateTime,
        nullable=False,
        default=utcnow,
        onupdate=utcnow,
        server_default=sa.text(UTC_NOW_SQL),
    )


def _json_object(column: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"json_valid({column}) AND json_type({column}) = 'object'", name=f"{column}_object"
    )


def _attributes() -> Mapped[dict[str, Any]]:
    return mapped_column(sa.JSON, nullable=False, default=dict, server_default="{}")


class GraphType(TenantBase):
    """A graph type (``graph_types``): a module's node and edge JSON Schemas
    at one version. ``scope`` is ``system`` (built in, immutable: see
    :data:`PROTECTION_TRIGGERS`), ``tenant`` or ``user`` (then ``owner_id``
    is the owning principal, and only then is it set). Unique on
    (name, version, owner)."""

    __tablename__ = "graph_types"
    __table_args__ = (
        sa.CheckConstraint(
            "(scope = 'user') = (owner_id IS NOT NULL)", name="owner_for_user_scope"
        ),
        _json_object("node_schema"),
        _json_object("edge_schema"),
        sa.Index(
            "uq_graph_types_name_version_owner",
            "name",
            "version",
            sa.func.ifnull(sa.column("owner_id"), sa.literal_column("''")),
            unique=True,
        ),
    )

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    version: Mapped[str] = mapped_column(sa.Text, nullable=False)
    scope: Mapped[str] = mapped_column(enum_type("scope", *GRAPH_TYPE_SCOPES), nullable=False)
    owner_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    module: Mapped[str] = mapped_column(sa.Text, nullable=False)
    node_schema: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False)
    edge_schema: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Graph(TenantBase):
    """A graph (``graphs``) of one graph type (which cannot be deleted while
    graphs use it), scoped by ``owner_id`` and ``project_id``."""

    __tablename__ = "graphs"
    __table_args__ = (
        _json_object("attributes"),
        sa.Index("ix_graphs_owner_id_project_id", "owner_id", "project_id"),
        sa.Index("ix_graphs_project_id", "project_id"),
        sa.Index("ix_graphs_graph_type_id", "graph_type_id"),
    )

    id: Mapped[str] = _id()
    graph_type_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("graph_types.id", ondelete="RESTRICT"), nullable=False
    )
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(
        enum_type("status", *GRAPH_STATUSES),
        nullable=False,
        default="active",
        server_default="active",
    )
    owner_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    project_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    attributes: Mapped[dict[str, Any]] = _attributes()
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Node(TenantBase):
    """A node (``nodes``) of a graph (deleted with it); ``key`` is unique in
    the graph. ``key_version`` is the lowest key version among the node's
    encrypted attributes (NULL when it has none; indexed for rotation)."""

    __tablename__ = "nodes"
    __table_args__ = (
        _json_object("attributes"),
        sa.UniqueConstraint("graph_id", "key"),
        sa.Index("ix_nodes_graph_id_type", "graph_id", "type"),
        # keyset pages of a graph's nodes in id order (docs/0023)
        sa.Index("ix_nodes_graph_id_id", "graph_id", "id"),
        sa.Index(
            "ix_nodes_key_version", "key_version", sqlite_where=sa.text("key_version IS NOT NULL")
        ),
    )

    id: Mapped[str] = _id()
    graph_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("graphs.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(sa.Text, nullable=False)
    type: Mapped[str] = mapped_column(sa.Text, nullable=False)
    attributes: Mapped[dict[str, Any]] = _attributes()
    key_version: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Edge(TenantBase):
    """An edge (``edges``) of a graph between two of its nodes (deleted with
    the graph or either node; see :data:`EDGE_TRIGGERS`). ``key_version`` as
    for :class:`Node`."""

    __tablename__ = "edges"
    __table_args__ = (
        _json_object("attributes"),
        sa.Index("ix_edges_graph_id_type", "graph_id", "type"),
        sa.Index("ix_edges_graph_id_id", "graph_id", "id"),
        sa.Index("ix_edges_source_id_type", "source_id", "type"),
        sa.Index("ix_edges_target_id_type", "target_id", "type"),
        sa.Index(
            "ix_edges_key_version", "key_version", sqlite_where=sa.text("key_version IS NOT NULL")
        ),
    )

    id: Mapped[str] = _id()
    graph_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("graphs.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[str] = mapped_column(sa.Text, nullable=False)
    source_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False
    )
    target_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False
    )
    attributes: Mapped[dict[str, Any]] = _attributes()
    key_version: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


def _trigger_creator(sql: str) -> Any:
    def create(target: sa.Table, connection: sa.Connection, **kw: Any) -> None:
        connection.exec_driver_sql(sql)

    return create


# create_all() creates the triggers once their tables exist (the migrations
# run the same statements).
for _sql in EDGE_TRIGGERS.values():
    sa.event.listen(Edge.__table__, "after_create", _trigger_creator(_sql))
for _sql in PROTECTION_TRIGGERS.values():
    sa.event.listen(GraphType.__table__, "after_create", _trigger_creator(_sql))


def _executor(connection: object) -> _native.Transaction:
    if isinstance(connection, _native.Transaction):
        if not connection.active:
            raise sa.exc.InvalidRequestError(
                "protection_lifted() needs an active transaction (this one has ended)"
            )
        return connection
    if isinstance(connection, Session | sa.engine.Connection):
        return honker_tx(connection)
    raise TypeError(
        "protection_lifted() takes a SQLAlchemy Connection or Session inside a transaction, "
        f"or a native alkdev_storage Transaction, not {type(connection).__name__}"
    )


def ensure_protection(target: Database | _native.Transaction) -> list[str]:
    """Create the scope-protection triggers that are missing from a tenant
    file (in their own transaction for a Database, or in the given one) and
    return their names (empty when all were there). For a check when a
    tenant file is opened, and to repair one after a transaction committed
    inside :func:`protection_lifted`."""
    if isinstance(target, Database):
        with target.transaction() as tx:
            return ensure_protection(tx)
    if not isinstance(target, _native.Transaction):
        raise TypeError(
            f"ensure_protection() takes a Database or a native Transaction, not "
            f"{type(target).__name__}"
        )
    rows = target.query("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    present = {r["name"] for r in rows}
    missing = [name for name in PROTECTION_TRIGGER_NAMES if name not in present]
    for name in missing:
        target.execute(PROTECTION_TRIGGERS[name])
    return missing


@contextlib.contextmanager
def protection_lifted(connection: object) -> Iterator[None]:
    """Lift the scope protection of system graph types for the block, inside
    the caller's open transaction.

    Drops the :data:`PROTECTION_TRIGGERS` and re-creates them when the block
    ends (also when it raises). DDL is transactional in SQLite and the
    transaction holds the writer slot, so no other connection ever sees the
    triggers missing: they are back before the commit, and a rollback
    restores them too. Used only to register and upgrade the built-in
    system graph types.

    ``connection`` is a SQLAlchemy ``Connection`` or ``Session`` inside a
    transaction (the writer slot is taken now, see
    :func:`alkdev_storage.sqlalchemy.honker_tx`; a Session is flushed before
    the triggers come back, so objects added in the block are written while
    they are lifted), or an active native :class:`alkdev_storage.Transaction`.
    Anything else raises (``TypeError``, or ``InvalidRequestError`` outside a
    transaction) and changes nothing.

    Do not end the transaction inside the block: if it ends there, this
    raises ``InvalidRequestError`` on exit; for a SQLAlchemy Connection or
    Session the triggers are then restored in a new transaction, for a
    native Transaction call :func:`ensure_protection` on the Database.
    """
    tx = _executor(connection)
    for name in PROTECTION_TRIGGER_NAMES:
        tx.execute(f"DROP TRIGGER IF EXISTS {name}")
    clean = False
    try:
        yield
        if isinstance(connection, Session) and tx.active:
            connection.flush()  # pending ORM writes belong to the lifted block
        clean = True
    finally:
        if tx.active:
            for name, sql in PROTECTION_TRIGGERS.items():
                tx.execute(f"DROP TRIGGER IF EXISTS {name}")
                tx.execute(sql)
        else:
            restored = ""
            if isinstance(connection, Session | sa.engine.Connection):
                ensure_protection(honker_database(connection))
                restored = " (the triggers were restored in a new transaction)"
            if clean:
                raise sa.exc.InvalidRequestError(
                    "the transaction ended inside protection_lifted(); if it committed, the "
                    "system graph types were briefly unprotected" + (restored or
                    ": call alkdev_storage.schema.tenant.ensure_protection(db) now")
                )


#: The operations layer's tables (docs/0023): idempotent requests and cursor keys.
OPERATION_REQUESTS, OPERATION_KEYS = operation_tables(TenantBase.metadata)

# -- tenancy helper: cross-tenant relay receipts (docs/0027) ------------------


class RelayReceipt(TenantBase):
    """A cross-tenant change applied to this tenant (``relay_receipts``;
    docs/0027): ``dedupe_key`` is written in the same transaction as the
    change, so a relay that delivers twice applies once."""

    __tablename__ = "relay_receipts"

    dedupe_key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    source_org_id: Mapped[str] = mapped_column(sa.Text, nullable=False)
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False)
    applied_at: Mapped[datetime] = _created_at()


__all__ += ["RelayReceipt"]
