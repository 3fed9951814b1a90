"""Nodes and edges of the graph store: :class:`GraphData`, the part of
:class:`alkdev_storage.domain.graphs.GraphStore` that writes and reads a
graph's nodes and edges (validated against the graph type's module before
anything is written; batches in one ``executemany``, all or nothing).

Node and edge references (``key_or_id``, an edge's ``source`` and
``target``) are a node's key in the graph, or its id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, SecretBytes, SecretStr

from alkdev_storage.domain.graph_support import (
    Change,
    E,
    EdgeSpec,
    N,
    NodeSpec,
    Sealer,
    chunks,
    detached,
    edge_spec,
    fail,
    node_spec,
    prefixed,
    text,
)
from alkdev_storage.domain.modules import (
    GraphTypeModule,
    dump_attributes,
    encrypted_fields,
    is_encrypted_type,
    validate_edge_attributes,
    validate_node_attributes,
)
from alkdev_storage.domain.orm_validation import key_version_of
from alkdev_storage.domain.principal import Principal
from alkdev_storage.errors import NotFound, ValidationFailed
from alkdev_storage.schema.tenant import Edge, Node
from alkdev_storage.schema.types import new_id, utcnow

__all__ = ["GraphData"]


class GraphData:
    """Node and edge methods of :class:`~alkdev_storage.domain.graphs.GraphStore`
    (a mixin: the store provides the transaction, the principal checks and
    the graph's module)."""

    org_id: str
    principal: Principal
    _sealer: Sealer | None

    # Provided by GraphStore.
    def transaction(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _reading(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _changed(self, conn: sa.Connection, change: Change) -> None:
        raise NotImplementedError

    def _graph(self, conn: sa.Connection, graph_id: str, *,
               write: bool) -> tuple[Any, GraphTypeModule | None]:
        raise NotImplementedError

    def _writable(self, conn: sa.Connection, graph_id: str) -> GraphTypeModule:
        _, m = self._graph(conn, graph_id, write=True)
        assert m is not None  # write=True resolves the module
        return m

    # -- shared -------------------------------------------------------------

    def _seal(self, fields: list[str], attrs: object, table: str, row_id: str,
              stored: Mapping[str, Any] | None) -> object:
        """``attrs`` with plaintext secret fields sealed by the sealer. A
        value equal to the stored one (its envelope, e.g. read back and
        written again) is kept as it is."""
        if not fields or self._sealer is None or not isinstance(attrs, Mapping):
            return attrs
        out = dict(attrs)
        checks_envelopes = bool(getattr(self._sealer, "checks_envelopes", False))
        for f in fields:
            value = out.get(f)
            if value is None or (stored is not None and value == stored.get(f)):
                continue
            envelope = is_encrypted_type(type(value))
            if envelope and not checks_envelopes:
                continue
            if envelope or isinstance(value, str | bytes | SecretStr | SecretBytes):
                out[f] = self._sealer(value, org_id=self.org_id, table=table,
                                      column=f"attributes.{f}", row_id=row_id)
        return out

    def _node_values(self, m: GraphTypeModule, type_name: object, attrs: object, node_id: str,
                     stored: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], int | None]:
        type_name = text(type_name, "type", 64)
        fields = (encrypted_fields(m, type_name)
                  if type_name in {t.name for t in m.node_types} else [])
        attrs = self._seal(fields, attrs, "nodes", node_id, stored)
        inst = validate_node_attributes(m, type_name, attrs)
        return dump_attributes(inst), key_version_of(m, type_name, inst)

    def _edge_values(self, m: GraphTypeModule, type_name: object, ends: tuple[str, str],
                     attrs: object, edge_id: str, stored: Mapping[str, Any] | None = None,
                     ) -> tuple[dict[str, Any], int | None]:
        type_name = text(type_name, "type", 64)
        fields = (encrypted_fields(m, type_name)
                  if type_name in {t.name for t in m.edge_types} else [])
        attrs = self._seal(fields, attrs, "edges", edge_id, stored)
        inst = validate_edge_attributes(m, type_name, ends[0], ends[1], attrs)
        return dump_attributes(inst), key_version_of(m, type_name, inst)

    @staticmethod
    def _node_row(conn: sa.Connection, graph_id: str, key_or_id: str, where: str) -> Any:
        text(key_or_id, where)
        row = conn.execute(sa.select(N).where(N.c.graph_id == graph_id,
                                              N.c.key == key_or_id)).one_or_none()
        if row is None:
            row = conn.execute(sa.select(N).where(N.c.graph_id == graph_id,
                                                  N.c.id == key_or_id)).one_or_none()
        if row is None:
            raise NotFound(f"{where}: no node with key or id {key_or_id!r} in graph {graph_id!r}")
        return row

    # -- nodes --------------------------------------------------------------

    def add_node(self, graph_id: str, key: str, type: str,
                 attributes: Mapping[str, Any] | BaseModel | None = None) -> Node:
        """Add node ``key`` (unique in the graph) of ``type`` with
        ``attributes`` (validated by the type's model; the stored form is
        its JSON dump) to graph ``graph_id``; returns it."""
        return self._add_nodes(graph_id, [(key, type, attributes)], batch=False)[0]

    def add_nodes(self, graph_id: str, nodes: Iterable[NodeSpec]) -> list[Node]:
        """Add many nodes in one transaction: all are validated first, then
        written with one ``executemany``; one bad node (error field
        ``nodes.<index>.<field>``) or a key that exists or repeats writes
        none."""
        return self._add_nodes(graph_id, list(nodes), batch=True)

    def _add_nodes(self, graph_id: str, specs: list[Any], *, batch: bool) -> list[Node]:
        with self.transaction() as conn:
            m = self._writable(conn, graph_id)
            now = utcnow()
            rows: list[dict[str, Any]] = []
            where: dict[str, str] = {}
            for i, spec in enumerate(specs):
                prefix = f"nodes.{i}." if batch else ""
                key, type_name, attrs = node_spec(spec, prefix) if batch else spec
                key = text(key, f"{prefix}key")
                if key in where:
                    raise fail(f"{prefix}key", f"key {key!r} repeats {where[key]}key", "repeated")
                where[key] = prefix
                node_id = new_id()
                try:
                    stored, key_version = self._node_values(m, type_name, attrs, node_id)
                except ValidationFailed as exc:
                    raise prefixed(exc, prefix) from None
                rows.append({"id": node_id, "graph_id": graph_id, "key": key,
                             "type": type_name, "attributes": stored,
                             "key_version": key_version, "created_at": now, "updated_at": now})
            keys = list(where)
            for part in chunks(keys):
                taken = conn.execute(sa.select(N.c.key).where(
                    N.c.graph_id == graph_id, N.c.key.in_(part)).limit(1)).scalar()
                if taken is not None:
                    raise fail(f"{where[taken]}key", f"a node with key {taken!r} already exists "
                               f"in graph {graph_id!r}", "exists")
            if rows:
                conn.execute(sa.insert(N), rows)
                self._changed(conn, Change("node", "created", tuple(r["id"] for r in rows),
                                           graph_id, tuple(keys)))
        return [detached(Node, r) for r in rows]

    def update_node(self, graph_id: str, key_or_id: str,
                    attributes: Mapping[str, Any] | BaseModel | None = None, *,
                    type: str | None = None, merge: bool = False) -> Node:
        """Replace the attributes of a node (``merge=True``: only the given
        ones, over the stored ones) and optionally change its ``type``
        (every edge of the node must stay an allowed triple). Secret fields
        left at their stored envelope are kept, not sealed again."""
        with self.transaction() as conn:
            m = self._writable(conn, graph_id)
            row = self._node_row(conn, graph_id, key_or_id, "key_or_id")
            new_type = row.type if type is None else type
            if merge:
                given = (dump_attributes(attributes) if isinstance(attributes, BaseModel)
                         else dict(attributes or {}))
                attributes = {**row.attributes, **given}
            stored, key_version = self._node_values(m, new_type, attributes, row.id,
                                                    row.attributes)
            if new_type != row.type:
                self._check_edges_allow(conn, m, row.id, new_type)
            values = {"type": new_type, "attributes": stored, "key_version": key_version,
                      "updated_at": utcnow()}
            conn.execute(sa.update(N).where(N.c.id == row.id).values(**values))
            self._changed(conn, Change("node", "updated", (row.id,), graph_id, (row.key,)))
        return detached(Node, {**row._mapping, **values})

    @staticmethod
    def _check_edges_allow(conn: sa.Connection, m: GraphTypeModule, node_id: str,
                           new_type: str) -> None:
        s, t = N.alias("s"), N.alias("t")
        query = (sa.select(E.c.id, E.c.type, E.c.source_id, E.c.target_id,
                           s.c.type.label("st"), t.c.type.label("tt"))
                 .select_from(E.join(s, s.c.id == E.c.source_id).join(t, t.c.id == E.c.target_id))
                 .where(sa.or_(E.c.source_id == node_id, E.c.target_id == node_id)))
        for e in conn.execute(query):
            src = new_type if e.source_id == node_id else e.st
            dst = new_type if e.target_id == node_id else e.tt
            if (src, e.type, dst) not in m.triples:
                raise fail("type", f"edge {e.id} would become {src} -{e.type}-> {dst}, which "
                           f"module {m.label} does not allow", "triple_not_allowed")

    def delete_node(self, graph_id: str, key_or_id: str) -> None:
        """Delete a node and its edges."""
        with self.transaction() as conn:
            self._writable(conn, graph_id)
            row = self._node_row(conn, graph_id, key_or_id, "key_or_id")
            conn.execute(sa.delete(N).where(N.c.id == row.id))
            self._changed(conn, Change("node", "deleted", (row.id,), graph_id, (row.key,)))

    def get_node(self, graph_id: str, key_or_id: str) -> Node:
        """A node of graph ``graph_id`` by key or id (``NotFound``)."""
        with self._reading() as conn:
            self._graph(conn, graph_id, write=False)
            return detached(Node, self._node_row(conn, graph_id, key_or_id,
                                                 "key_or_id")._mapping)

    def list_nodes(self, graph_id: str, *, type: str | None = None, limit: int | None = None,
                   after_id: str | None = None) -> list[Node]:
        """Nodes of graph ``graph_id`` in creation order (optionally of
        ``type``; at most ``limit``, those created after node ``after_id``
        to page)."""
        query = sa.select(N).where(N.c.graph_id == graph_id).order_by(N.c.id)
        if type is not None:
            query = query.where(N.c.type == type)
        if after_id is not None:
            query = query.where(N.c.id > after_id)
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as conn:
            self._graph(conn, graph_id, write=False)
            return [detached(Node, r._mapping) for r in conn.execute(query)]

    # -- edges --------------------------------------------------------------

    @staticmethod
    def _resolve_nodes(conn: sa.Connection, graph_id: str,
                       refs: list[str]) -> dict[str, tuple[str, str]]:
        """ref (key or id) -> (node id, node type), for the refs found."""
        found: dict[str, tuple[str, str]] = {}
        wanted = sorted(set(refs))
        for part in chunks(wanted):
            for r in conn.execute(sa.select(N.c.id, N.c.key, N.c.type).where(
                    N.c.graph_id == graph_id, N.c.key.in_(part))):
                found[r.key] = (r.id, r.type)
        rest = [r for r in wanted if r not in found]
        for part in chunks(rest):
            for by_id in conn.execute(sa.select(N.c.id, N.c.type).where(
                    N.c.graph_id == graph_id, N.c.id.in_(part))):
                found[by_id.id] = (by_id.id, by_id.type)
        return found

    def add_edge(self, graph_id: str, type: str, source: str, target: str,
                 attributes: Mapping[str, Any] | BaseModel | None = None) -> Edge:
        """Add an edge of ``type`` from node ``source`` to node ``target``
        (keys or ids of nodes of the graph); the (source type, edge type,
        target type) triple must be allowed by the module and the
        attributes valid."""
        return self._add_edges(graph_id, [(type, source, target, attributes)], batch=False)[0]

    def add_edges(self, graph_id: str, edges: Iterable[EdgeSpec]) -> list[Edge]:
        """Add many edges in one transaction, all or none (error field
        ``edges.<index>.<field>``)."""
        return self._add_edges(graph_id, list(edges), batch=True)

    def _add_edges(self, graph_id: str, specs: list[Any], *, batch: bool) -> list[Edge]:
        with self.transaction() as conn:
            m = self._writable(conn, graph_id)
            parsed = []
            for i, spec in enumerate(specs):
                prefix = f"edges.{i}." if batch else ""
                type_name, source, target, attrs = edge_spec(spec, prefix) if batch else spec
                parsed.append((prefix, type_name, text(source, f"{prefix}source"),
                               text(target, f"{prefix}target"), attrs))
            nodes = self._resolve_nodes(conn, graph_id, [r for p in parsed for r in p[2:4]])
            now = utcnow()
            rows: list[dict[str, Any]] = []
            for prefix, type_name, source, target, attrs in parsed:
                ends = []
                for role, ref in (("source", source), ("target", target)):
                    if ref not in nodes:
                        raise fail(f"{prefix}{role}", f"no node with key or id {ref!r} in graph "
                                   f"{graph_id!r}", "not_found")
                    ends.append(nodes[ref])
                edge_id = new_id()
                try:
                    stored, key_version = self._edge_values(
                        m, type_name, (ends[0][1], ends[1][1]), attrs, edge_id)
                except ValidationFailed as exc:
                    raise prefixed(exc, prefix) from None
                rows.append({"id": edge_id, "graph_id": graph_id, "type": type_name,
                             "source_id": ends[0][0], "target_id": ends[1][0],
                             "attributes": stored, "key_version": key_version,
                             "created_at": now, "updated_at": now})
            if rows:
                conn.execute(sa.insert(E), rows)
                self._changed(conn, Change("edge", "created", tuple(r["id"] for r in rows),
                                           graph_id))
        return [detached(Edge, r) for r in rows]

    def _edge_row(self, conn: sa.Connection, edge_id: str, *, write: bool) -> tuple[Any, Any]:
        text(edge_id, "edge_id")
        row = conn.execute(sa.select(E).where(E.c.id == edge_id)).one_or_none()
        if row is None:
            raise NotFound(f"edge {edge_id!r} does not exist")
        _, m = self._graph(conn, row.graph_id, write=write)
        return row, m

    def update_edge(self, edge_id: str, attributes: Mapping[str, Any] | BaseModel | None = None,
                    *, merge: bool = False) -> Edge:
        """Replace (``merge=True``: update) the attributes of an edge."""
        with self.transaction() as conn:
            row, m = self._edge_row(conn, edge_id, write=True)
            ends = {r.id: r.type for r in conn.execute(
                sa.select(N.c.id, N.c.type).where(N.c.id.in_([row.source_id, row.target_id])))}
            if merge:
                given = (dump_attributes(attributes) if isinstance(attributes, BaseModel)
                         else dict(attributes or {}))
                attributes = {**row.attributes, **given}
            stored, key_version = self._edge_values(
                m, row.type, (ends[row.source_id], ends[row.target_id]), attributes, row.id,
                row.attributes)
            values = {"attributes": stored, "key_version": key_version, "updated_at": utcnow()}
            conn.execute(sa.update(E).where(E.c.id == row.id).values(**values))
            self._changed(conn, Change("edge", "updated", (row.id,), row.graph_id))
        return detached(Edge, {**row._mapping, **values})

    def delete_edge(self, edge_id: str) -> None:
        """Delete an edge."""
        with self.transaction() as conn:
            row, _ = self._edge_row(conn, edge_id, write=True)
            conn.execute(sa.delete(E).where(E.c.id == row.id))
            self._changed(conn, Change("edge", "deleted", (row.id,), row.graph_id))

    def get_edge(self, edge_id: str) -> Edge:
        """An edge by id (``NotFound`` when absent or its graph is not
        visible)."""
        with self._reading() as conn:
            row, _ = self._edge_row(conn, edge_id, write=False)
        return detached(Edge, row._mapping)

    def list_edges(self, graph_id: str, *, type: str | None = None, source: str | None = None,
                   target: str | None = None) -> list[Edge]:
        """Edges of graph ``graph_id`` in creation order, optionally of
        ``type``, from node ``source`` or to node ``target`` (keys or
        ids)."""
        query = sa.select(E).where(E.c.graph_id == graph_id).order_by(E.c.id)
        if type is not None:
            query = query.where(E.c.type == type)
        with self._reading() as conn:
            self._graph(conn, graph_id, write=False)
            for column, ref, role in ((E.c.source_id, source, "source"),
                                      (E.c.target_id, target, "target")):
                if ref is not None:
                    query = query.where(column == self._node_row(conn, graph_id, ref, role).id)
            return [detached(Edge, r._mapping) for r in conn.execute(query)]
