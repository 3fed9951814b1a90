"""The validated graph store of a tenant file (docs/0018-graph-type-modules.md).

:func:`init_tenant` brings a tenant file to the schema head and registers
the built-in modules as ``system``-scope graph types. :class:`GraphStore`
is the write API over a tenant file for one principal: graph types
(register, change, delete, list by visibility), graphs, nodes and edges.
Every write is checked before anything is written:

* who may do it (:mod:`alkdev_storage.domain.access`; a refusal raises
  :class:`~alkdev_storage.errors.ScopeViolation`, an object the principal
  cannot see raises :class:`~alkdev_storage.errors.NotFound`);
* what it writes, against the graph type's module: node and edge types,
  the allowed (source, edge, target) triple, the attributes' model
  (:class:`~alkdev_storage.errors.ValidationFailed` naming the field;
  ``nodes.3.attributes.timeout_ms`` for the fourth node of a batch).

Each write runs in one transaction (a savepoint inside
:meth:`GraphStore.transaction`): it is written whole or not at all. Rows
are written with prepared Core statements (the batch methods with one
``executemany``), so the ORM's mapper events do not validate twice.

Other paths: ORM ``Session`` writes of ``Node``/``Edge`` are validated by
:mod:`alkdev_storage.domain.orm_validation`; Core statements and raw SQL
bypass validation and the principal rules, but the SQL triggers still
refuse any change to a system-scope graph type and edges across graphs.

Secrets: a node or edge type whose model has ``EncryptedData`` fields
(:func:`~alkdev_storage.domain.modules.encrypted_fields`) gets them sealed
by the store's ``sealer`` (see :class:`Sealer`) before validation; without
one, those fields must already hold ``EncryptedData`` envelopes.

Events: nothing is published here. Each write calls the store's
``on_change(connection, change)`` hook inside its transaction (the hook
point for the event layer: publish through
``alkdev_storage.sqlalchemy.honker_tx(connection)`` so the event commits
with the write).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import sqlalchemy as sa

from alkdev_storage.database import Database
from alkdev_storage.domain import access
from alkdev_storage.domain.graph_data import GraphData
from alkdev_storage.domain.graph_support import (
    GT,
    UNSET,
    Change,
    E,
    EdgeSpec,
    G,
    N,
    NodeSpec,
    OnChange,
    Scope,
    Sealer,
    detached,
    fail,
    json_object,
    newer,
    text,
)
from alkdev_storage.domain.modules import (
    GraphTypeModule,
    canonical_json,
    module_for_stored,
    module_to_db_schema,
    register_module,
    version_key,
)
from alkdev_storage.domain.principal import Principal
from alkdev_storage.errors import MigrationError, NotFound, ScopeViolation
from alkdev_storage.schema.migrate import migrate
from alkdev_storage.schema.tenant import Graph, GraphType, protection_lifted
from alkdev_storage.schema.types import new_id, utcnow
from alkdev_storage.sqlalchemy import create_engine

__all__ = ["UNSET", "Change", "EdgeSpec", "GraphStore", "NodeSpec", "Sealer", "init_tenant"]


# ---------------------------------------------------------------------------
# Tenant initialization
# ---------------------------------------------------------------------------


def init_tenant(db: Database, org_id: str,
                modules: Iterable[GraphTypeModule] | None = None) -> dict[str, str]:
    """Prepare the tenant file of organization ``org_id`` (an open
    Database): migrate it to the schema head and register every built-in
    module (or ``modules``) as a ``system``-scope graph type, inside the
    scope protection's lifting and one transaction.

    Idempotent. A built-in whose version changed is upgraded in place
    (graphs keep pointing at it); a file whose stored version is newer is
    left alone. The same version with other schemas raises
    :class:`~alkdev_storage.errors.MigrationError` (a module changed
    without a new version). Returns ``{module name: "created" |
    "upgraded" | "unchanged" | "newer"}``."""
    text(org_id, "org_id", 200)
    if modules is None:
        from alkdev_storage.domain.builtin import BUILTIN_MODULES

        modules = BUILTIN_MODULES
    wanted = [register_module(m) for m in modules]
    migrate(db, "tenant")
    engine = create_engine(db).execution_options(honker_begin_write=True)
    outcome: dict[str, str] = {}
    try:
        with engine.begin() as conn:
            stored: dict[str, Any] = {}
            for r in conn.execute(sa.select(GT).where(GT.c.scope == "system")):
                if r.name not in stored or newer(r.version, stored[r.name].version):
                    stored[r.name] = r
            plan: list[tuple[str, GraphTypeModule, Any]] = []
            for m in wanted:
                row = stored.get(m.name)
                if row is None:
                    plan.append(("created", m, None))
                elif row.version == m.version:
                    node, edge = module_to_db_schema(m)
                    if canonical_json([node, edge]) != canonical_json(
                            [row.node_schema, row.edge_schema]):
                        raise MigrationError(
                            f"built-in graph type {m.name} {m.version}: the file stores other "
                            "schemas for this version (a module changed without a new version)")
                    outcome[m.name] = "unchanged"
                elif newer(row.version, m.version):
                    outcome[m.name] = "newer"
                else:
                    plan.append(("upgraded", m, row))
            if plan:
                with protection_lifted(conn):
                    for action, m, row in plan:
                        node, edge = module_to_db_schema(m)
                        now = utcnow()
                        values = {"version": m.version, "module": m.name, "node_schema": node,
                                  "edge_schema": edge, "updated_at": now}
                        if row is None:
                            conn.execute(sa.insert(GT).values(
                                id=new_id(), name=m.name, scope="system", owner_id=None,
                                created_at=now, **values))
                        else:
                            conn.execute(sa.update(GT).where(GT.c.id == row.id)
                                         .values(**values))
                        outcome[m.name] = action
    finally:
        engine.dispose()
    return outcome




class GraphStore(GraphData):
    """The validated write API and the reads of one tenant file, for one
    principal.

    ``db``: an open :class:`alkdev_storage.Database` of the tenant file
    (prepared by :func:`init_tenant`); ``org_id``: its organization (part
    of every secret's binding); ``principal``: who is acting (a non-system
    principal must belong to ``org_id``, else ``ScopeViolation``).
    ``sealer``: encrypts secret attributes (:class:`Sealer`; None: secret
    fields must already hold ``EncryptedData``). ``on_change``: called as
    ``on_change(connection, change)`` inside the transaction of every
    write (:class:`Change`), the hook point for events.

    Writes raise ``ValidationFailed`` (bad input, naming the field),
    ``ScopeViolation`` (the principal may not) or ``NotFound`` (no such
    object visible to the principal); nothing is written then. A store is
    used by one thread at a time; :meth:`close` it (or use it as a context
    manager) to release its engine (the Database stays open)."""

    def __init__(self, db: Database, org_id: str, principal: Principal, *,
                 sealer: Sealer | None = None, on_change: OnChange | None = None) -> None:
        if not isinstance(principal, Principal):
            raise TypeError(f"principal must be a Principal, not {type(principal).__name__}")
        self.org_id = text(org_id, "org_id", 200)
        if not principal.is_system and principal.org_id != org_id:
            raise ScopeViolation(
                f"principal of org {principal.org_id!r} cannot act in org {org_id!r}")
        self.db = db
        self.principal = principal
        self._sealer = sealer
        self._on_change = on_change
        self._engine = create_engine(db)
        self._write_engine = self._engine.execution_options(honker_begin_write=True)
        self._read_engine = self._engine.execution_options(honker_readonly=True)
        self._open_tx: sa.Connection | None = None
        self._modules: dict[tuple[str, object], GraphTypeModule] = {}

    def close(self) -> None:
        """Release the store's engine (the Database is not closed)."""
        self._engine.dispose()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Group writes: every write of the store inside the block commits
        together when it ends, and none if it raises. Nested blocks (and
        each write inside one) are savepoints. Yields the SQLAlchemy
        Connection (``honker_tx(connection)`` gives the native Transaction
        for notify/queue/stream writes that commit with it)."""
        if self._open_tx is not None:
            with self._open_tx.begin_nested():
                yield self._open_tx
            return
        with self._write_engine.connect() as conn, conn.begin():
            self._open_tx = conn
            try:
                yield conn
            finally:
                self._open_tx = None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        if self._open_tx is not None:
            yield self._open_tx
            return
        with self._read_engine.connect() as conn, conn.begin():
            yield conn

    def _changed(self, conn: sa.Connection, change: Change) -> None:
        # The event hook point (issue 10 publishes the catalogued events).
        if self._on_change is not None:
            self._on_change(conn, change)

    # -- access -------------------------------------------------------------

    def _visible(self) -> sa.ColumnElement[bool]:
        p = self.principal
        if p.is_system:
            return sa.true()
        cond: sa.ColumnElement[bool] = GT.c.scope.in_(("system", "tenant"))
        if p.kind == "user":
            cond = sa.or_(cond, sa.and_(GT.c.scope == "user", GT.c.owner_id == p.account_id))
        return cond

    def _who(self) -> str:
        p = self.principal
        if p.kind == "user":
            return f"user {p.account_id} ({p.level})"
        return "the tenant principal" if p.kind == "tenant" else "the system principal"

    def _module(self, row: Any) -> GraphTypeModule:
        key = (row.id, row.updated_at)
        m = self._modules.get(key)
        if m is None:
            m = module_for_stored(row.module, row.version, row.node_schema, row.edge_schema)
            self._modules[key] = m
        return m

    # -- graph types --------------------------------------------------------

    def register_graph_type(self, module: GraphTypeModule, scope: Scope = "tenant", *,
                            name: str | None = None, owner_id: str | None = None) -> GraphType:
        """Register ``module`` as a graph type of this tenant (named
        ``name``, by default the module's name) and in the process's module
        registry. ``scope``: ``"tenant"`` (principals that manage the
        tenant), ``"user"`` (owned by the acting user; the system principal
        passes ``owner_id``) or ``"system"`` (the system principal only).
        Registering the same module again returns the existing type; a
        type of that name and version with another definition or scope
        raises ``ValidationFailed`` on ``name``."""
        if scope not in ("system", "tenant", "user"):
            raise fail("scope", f"{scope!r} is not one of system, tenant, user", "enum")
        type_name = text(module.name if name is None else name, "name", 200)
        p = self.principal
        owner: str | None = None
        if scope == "user":
            if p.is_system:
                owner = text(owner_id, "owner_id", 200)
            elif owner_id not in (None, p.account_id):
                raise ScopeViolation(
                    f"{self._who()} cannot register a user-scope graph type for {owner_id!r}")
            else:
                owner = p.account_id
        elif owner_id is not None:
            raise fail("owner_id", f"only user-scope graph types have an owner, not {scope}")
        if not access.can_register_type(p, scope, owner):
            raise ScopeViolation(f"{self._who()} may not register a {scope}-scope graph type "
                                 f"({type_name})")
        m = register_module(module)
        node, edge = module_to_db_schema(m)
        with self.transaction() as conn:
            existing = conn.execute(sa.select(GT).where(
                GT.c.name == type_name, GT.c.version == m.version,
                sa.func.ifnull(GT.c.owner_id, "") == (owner or ""))).one_or_none()
            if existing is not None:
                if (existing.scope == scope and existing.module == m.name
                        and canonical_json([existing.node_schema, existing.edge_schema])
                        == canonical_json([node, edge])):
                    return detached(GraphType, existing._mapping)
                raise fail("name", f"graph type {type_name} {m.version} already exists "
                            f"({existing.scope} scope) with another definition", "exists")
            now = utcnow()
            type_id = new_id()
            values = {"id": type_id, "name": type_name, "version": m.version, "scope": scope,
                      "owner_id": owner, "module": m.name, "node_schema": node,
                      "edge_schema": edge, "created_at": now, "updated_at": now}
            lifted = protection_lifted(conn) if scope == "system" else contextlib.nullcontext()
            with lifted:
                conn.execute(sa.insert(GT), values)
            self._changed(conn, Change("graph_type", "created", (type_id,)))
        return detached(GraphType, values)

    def _managed_type(self, conn: sa.Connection, graph_type_id: str, verb: str) -> Any:
        row = conn.execute(sa.select(GT).where(GT.c.id == graph_type_id)).one_or_none()
        if row is None:
            raise NotFound(f"graph type {graph_type_id!r} does not exist")
        if not access.can_manage_type(self.principal, row.scope, row.owner_id):
            raise ScopeViolation(f"{self._who()} may not {verb} {row.scope}-scope graph type "
                                 f"{row.name} {row.version}")
        return row

    def update_graph_type(self, graph_type_id: str, module: GraphTypeModule) -> GraphType:
        """Change graph type ``graph_type_id`` to ``module`` (usually a new
        version of the same module): its module, version and schemas. The
        types and triples used by its graphs' nodes and edges must still
        exist in ``module`` (``ValidationFailed`` on ``module`` names the
        first that does not); attributes already stored are not
        re-validated. Who may: see :mod:`alkdev_storage.domain.access`
        (``ScopeViolation`` otherwise, e.g. for a system type or another
        user's type)."""
        with self.transaction() as conn:
            row = self._managed_type(conn, graph_type_id, "change")
            m = register_module(module)
            self._check_used_types(conn, row, m)
            clash = conn.execute(sa.select(GT.c.id).where(
                GT.c.name == row.name, GT.c.version == m.version, GT.c.id != row.id,
                sa.func.ifnull(GT.c.owner_id, "") == (row.owner_id or ""))).first()
            if clash is not None:
                raise fail("module", f"graph type {row.name} {m.version} already exists",
                            "exists")
            node, edge = module_to_db_schema(m)
            values = {"module": m.name, "version": m.version, "node_schema": node,
                      "edge_schema": edge, "updated_at": utcnow()}
            lifted = (protection_lifted(conn) if row.scope == "system"
                      else contextlib.nullcontext())
            with lifted:
                conn.execute(sa.update(GT).where(GT.c.id == row.id).values(**values))
            self._changed(conn, Change("graph_type", "updated", (row.id,)))
        return detached(GraphType, {**row._mapping, **values})

    def _check_used_types(self, conn: sa.Connection, row: Any, m: GraphTypeModule) -> None:
        graphs = sa.select(G.c.id).where(G.c.graph_type_id == row.id)
        for (node_type,) in conn.execute(
                sa.select(N.c.type).distinct().where(N.c.graph_id.in_(graphs))):
            try:
                m.node_type(node_type)
            except KeyError:
                raise fail("module", f"node type {node_type!r} is used by graphs of "
                            f"{row.name} but not defined by module {m.label}") from None
        ns, nt = N.alias("s"), N.alias("t")
        used = (sa.select(ns.c.type, E.c.type, nt.c.type).distinct()
                .select_from(E.join(ns, ns.c.id == E.c.source_id)
                             .join(nt, nt.c.id == E.c.target_id))
                .where(E.c.graph_id.in_(graphs)))
        for s, e, t in conn.execute(used):
            if (s, e, t) not in m.triples:
                raise fail("module", f"edges {s} -{e}-> {t} exist in graphs of {row.name} "
                            f"but module {m.label} does not allow them")

    def delete_graph_type(self, graph_type_id: str) -> None:
        """Delete graph type ``graph_type_id``; refused (``ValidationFailed``
        on ``graph_type_id``) while graphs use it. Who may: as for
        :meth:`update_graph_type`."""
        with self.transaction() as conn:
            row = self._managed_type(conn, graph_type_id, "delete")
            used = conn.execute(sa.select(sa.func.count()).select_from(G)
                                .where(G.c.graph_type_id == row.id)).scalar_one()
            if used:
                raise fail("graph_type_id", f"graph type {row.name} {row.version} is used by "
                            f"{used} graph(s); delete them first", "in_use")
            lifted = (protection_lifted(conn) if row.scope == "system"
                      else contextlib.nullcontext())
            with lifted:
                conn.execute(sa.delete(GT).where(GT.c.id == row.id))
            self._changed(conn, Change("graph_type", "deleted", (row.id,)))

    def get_graph_type(self, graph_type_id: str) -> GraphType:
        """The graph type ``graph_type_id``; ``NotFound`` if it does not
        exist or the principal cannot see it."""
        with self._reading() as conn:
            row = conn.execute(sa.select(GT).where(GT.c.id == graph_type_id,
                                                    self._visible())).one_or_none()
        if row is None:
            raise NotFound(f"graph type {graph_type_id!r} does not exist or is not visible")
        return detached(GraphType, row._mapping)

    def graph_types(self, *, name: str | None = None,
                    scope: Scope | None = None) -> list[GraphType]:
        """The graph types the principal sees (system and tenant ones, and
        its own user-scope ones; all for the system principal), by name
        then creation; optionally only those called ``name`` or of
        ``scope``."""
        query = sa.select(GT).where(self._visible()).order_by(GT.c.name, GT.c.id)
        if name is not None:
            query = query.where(GT.c.name == name)
        if scope is not None:
            query = query.where(GT.c.scope == scope)
        with self._reading() as conn:
            return [detached(GraphType, r._mapping) for r in conn.execute(query)]

    def _resolve_type(self, conn: sa.Connection, graph_type: str | GraphType) -> Any:
        ref = graph_type.id if isinstance(graph_type, GraphType) else graph_type
        text(ref, "graph_type", 200)
        row = conn.execute(sa.select(GT).where(GT.c.id == ref, self._visible())).one_or_none()
        if row is not None:
            return row
        rows = list(conn.execute(sa.select(GT).where(GT.c.name == ref, self._visible())))
        if not rows:
            raise NotFound(f"graph type {ref!r} does not exist or is not visible")
        top = max(version_key(r.version) for r in rows)
        best = [r for r in rows if version_key(r.version) == top]
        if len(best) > 1:
            raise fail("graph_type", f"{ref!r} names {len(best)} visible graph types "
                        f"({', '.join(sorted(r.scope for r in best))}); pass its id",
                        "ambiguous")
        return best[0]

    # -- graphs -------------------------------------------------------------

    def _graph(self, conn: sa.Connection, graph_id: str, *,
               write: bool) -> tuple[Any, GraphTypeModule | None]:
        row = conn.execute(
            sa.select(G.c.id.label("graph_id"), GT)
            .select_from(G.join(GT, GT.c.id == G.c.graph_type_id))
            .where(G.c.id == graph_id, self._visible())).one_or_none()
        if row is None:
            raise NotFound(f"graph {graph_id!r} does not exist or is not visible")
        if not write:
            return row, None
        m = self._module(row)
        if not access.can_write_data(self.principal, row.scope, row.owner_id, m.admin_writes):
            raise ScopeViolation(f"{self._who()} may not write graphs of {row.scope}-scope "
                                 f"graph type {row.name}")
        return row, m

    def create_graph(self, graph_type: str | GraphType, name: str, *,
                     owner_id: str | None = None, project_id: str | None = None,
                     attributes: Mapping[str, Any] | None = None,
                     status: Literal["active", "archived"] = "active") -> Graph:
        """Create a graph of ``graph_type`` (a GraphType, its id, or the
        name of a visible type: its highest version). ``attributes``: a
        JSON object. ``ScopeViolation`` when the principal may not write
        graphs of that type."""
        title = text(name, "name", 200)
        if status not in ("active", "archived"):
            raise fail("status", f"{status!r} is not one of active, archived", "enum")
        for field, value in (("owner_id", owner_id), ("project_id", project_id)):
            if value is not None:
                text(value, field, 200)
        attrs = json_object(attributes, "attributes")
        with self.transaction() as conn:
            row = self._resolve_type(conn, graph_type)
            m = self._module(row)
            if not access.can_write_data(self.principal, row.scope, row.owner_id,
                                         m.admin_writes):
                raise ScopeViolation(f"{self._who()} may not create graphs of {row.scope}-"
                                     f"scope graph type {row.name}")
            now = utcnow()
            values = {"id": new_id(), "graph_type_id": row.id, "name": title, "status": status,
                      "owner_id": owner_id, "project_id": project_id, "attributes": attrs,
                      "created_at": now, "updated_at": now}
            conn.execute(sa.insert(G), values)
            self._changed(conn, Change("graph", "created", (values["id"],), values["id"]))
        return detached(Graph, values)

    def update_graph(self, graph_id: str, *, name: str = UNSET, status: str = UNSET,
                     owner_id: str | None = UNSET, project_id: str | None = UNSET,
                     attributes: Mapping[str, Any] = UNSET) -> Graph:
        """Change the given fields of graph ``graph_id`` (the others stay)."""
        values: dict[str, Any] = {}
        if name is not UNSET:
            values["name"] = text(name, "name", 200)
        if status is not UNSET:
            if status not in ("active", "archived"):
                raise fail("status", f"{status!r} is not one of active, archived", "enum")
            values["status"] = status
        for field, value in (("owner_id", owner_id), ("project_id", project_id)):
            if value is not UNSET:
                values[field] = None if value is None else text(value, field, 200)
        if attributes is not UNSET:
            values["attributes"] = json_object(attributes, "attributes")
        values["updated_at"] = utcnow()
        with self.transaction() as conn:
            self._graph(conn, graph_id, write=True)
            conn.execute(sa.update(G).where(G.c.id == graph_id).values(**values))
            row = conn.execute(sa.select(G).where(G.c.id == graph_id)).one()
            self._changed(conn, Change("graph", "updated", (graph_id,), graph_id))
        return detached(Graph, row._mapping)

    def delete_graph(self, graph_id: str) -> None:
        """Delete graph ``graph_id`` with its nodes and edges."""
        with self.transaction() as conn:
            self._graph(conn, graph_id, write=True)
            conn.execute(sa.delete(G).where(G.c.id == graph_id))
            self._changed(conn, Change("graph", "deleted", (graph_id,), graph_id))

    def get_graph(self, graph_id: str) -> Graph:
        """Graph ``graph_id``; ``NotFound`` if absent or not visible."""
        with self._reading() as conn:
            row = conn.execute(sa.select(G).select_from(G.join(GT, GT.c.id == G.c.graph_type_id))
                               .where(G.c.id == graph_id, self._visible())).one_or_none()
        if row is None:
            raise NotFound(f"graph {graph_id!r} does not exist or is not visible")
        return detached(Graph, row._mapping)

    def list_graphs(self, *, graph_type_id: str | None = None, owner_id: str | None = None,
                    project_id: str | None = None, status: str | None = None) -> list[Graph]:
        """The visible graphs, oldest first, filtered by the given fields."""
        query = (sa.select(G).select_from(G.join(GT, GT.c.id == G.c.graph_type_id))
                 .where(self._visible()).order_by(G.c.id))
        for column, value in ((G.c.graph_type_id, graph_type_id), (G.c.owner_id, owner_id),
                              (G.c.project_id, project_id), (G.c.status, status)):
            if value is not None:
                query = query.where(column == value)
        with self._reading() as conn:
            return [detached(Graph, r._mapping) for r in conn.execute(query)]
