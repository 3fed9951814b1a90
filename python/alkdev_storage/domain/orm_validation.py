"""Validation of the schema's ``Node`` and ``Edge`` ORM models on flush
(docs/0018-graph-type-modules.md).

Importing this module (``alkdev_storage.domain`` does) installs SQLAlchemy
``before_insert`` / ``before_update`` mapper events on
:class:`alkdev_storage.schema.tenant.Node` and
:class:`~alkdev_storage.schema.tenant.Edge`: a caller that adds or changes
those objects in a ``Session`` is validated against the graph's type like
:class:`~alkdev_storage.domain.graphs.GraphStore` validates it (node and
edge type, allowed triple, attributes), the stored attributes are the
model's JSON dump and ``key_version`` is set from the secret attributes. A
failure raises :class:`~alkdev_storage.errors.ValidationFailed` from the
flush (the ORM transaction is then rolled back; nothing is written).

What this does not cover (documented bypasses):

* Core statements (``sqlalchemy.insert(Node.__table__)``, ``update()``),
  ``Session.execute(insert(Node), [...])`` bulk statements and raw SQL on
  the Database or a DB-API connection run no mapper events: their
  attributes are only checked to be a JSON object (the table's CHECK).
  The SQL triggers still hold for them: edges stay inside their graph, and
  system-scope graph types cannot be created, changed or deleted.
* No principal is known on this path, so the rules about who may write
  (viewers, another user's user-scope types, ``admin_writes`` modules) are
  the graph store's; only the triggers' scope protection applies here.
* Secret attributes are not sealed here (there is no key provider): they
  must already be ``EncryptedData`` envelopes.
* A graph whose type's module is not registered in the process cannot be
  validated, so the flush is refused (``ValidationFailed`` on ``type``).
* A graph type that was not registered from a module (its stored node
  schema has no ``x-module``: created with the ORM, Core or SQL, below the
  graph store) has no module to validate against; ORM writes to its
  graphs are not validated (the graph store refuses to write to them).
"""

from __future__ import annotations

import weakref
from typing import Any, cast

import sqlalchemy as sa
from pydantic import BaseModel

from alkdev_storage.domain.modules import (
    GraphTypeModule,
    dump_attributes,
    encrypted_fields,
    module_for_stored,
    validate_edge_attributes,
    validate_node_attributes,
)
from alkdev_storage.errors import NotFound, ValidationFailed
from alkdev_storage.schema.tenant import Edge, Graph, GraphType, Node

__all__ = ["key_version_of", "module_of_graph"]

_G = cast(sa.Table, Graph.__table__)
_GT = cast(sa.Table, GraphType.__table__)
_N = cast(sa.Table, Node.__table__)

_TYPE_OF_GRAPH = (
    sa.select(_GT.c.id, _GT.c.module, _GT.c.version, _GT.c.updated_at, _GT.c.node_schema,
              _GT.c.edge_schema)
    .select_from(_G.join(_GT, _GT.c.id == _G.c.graph_type_id))
    .where(_G.c.id == sa.bindparam("graph_id"))
)
_NODE_TYPES = sa.select(_N.c.id, _N.c.type, _N.c.graph_id).where(
    _N.c.id.in_(sa.bindparam("ids", expanding=True))
)

# (graph type id, updated_at) -> module (None: not a module's type); a
# changed type gets a new key.
_modules: dict[tuple[str, object], GraphTypeModule | None] = {}
_MAX_CACHED = 1024
# transaction -> {graph id: module}: a flush of many rows looks each graph
# up once per transaction.
_per_transaction: weakref.WeakKeyDictionary[Any, dict[str, GraphTypeModule | None]] = (
    weakref.WeakKeyDictionary())


def module_of_graph(connection: sa.Connection, graph_id: str) -> GraphTypeModule | None:
    """The module that validates writes to graph ``graph_id`` (read through
    ``connection``); None when the graph's type was not registered from a
    module (its stored node schema has no ``x-module``: a type written
    below the graph store, with nothing to validate against). Raises
    ``ValidationFailed`` on ``graph_id`` when there is no such graph, on
    ``type`` when its module is not registered in this process, and
    ``MigrationError`` when the registered module's schemas differ from the
    stored ones. Within one transaction a graph is looked up once."""
    tx = connection.get_transaction()
    seen = _per_transaction.setdefault(tx, {}) if tx is not None else {}
    if graph_id in seen:
        return seen[graph_id]
    m = _lookup(connection, graph_id)
    seen[graph_id] = m
    return m


def _lookup(connection: sa.Connection, graph_id: str) -> GraphTypeModule | None:
    row = connection.execute(_TYPE_OF_GRAPH, {"graph_id": graph_id}).one_or_none()
    if row is None:
        raise ValidationFailed(f"graph_id: no graph {graph_id!r}", field="graph_id",
                               errors=[{"loc": ("graph_id",), "msg": "no such graph",
                                        "type": "not_found"}])
    key = (row.id, row.updated_at)
    if key in _modules:
        return _modules[key]
    m: GraphTypeModule | None = None
    if isinstance(row.node_schema, dict) and "x-module" in row.node_schema:
        try:
            m = module_for_stored(row.module, row.version, row.node_schema, row.edge_schema)
        except NotFound as exc:
            raise ValidationFailed(f"type: {exc}", field="type") from None
    if len(_modules) >= _MAX_CACHED:
        _modules.clear()
    _modules[key] = m
    return m


def key_version_of(m: GraphTypeModule, type_name: str, attrs: BaseModel) -> int | None:
    """The lowest key version among the secret attributes of a validated
    attribute model (None when it holds none): the ``key_version`` column."""
    versions = [
        getattr(value, "key_version", None)
        for name in encrypted_fields(m, type_name)
        if (value := getattr(attrs, _attribute_name(attrs, name), None)) is not None
    ]
    found = [v for v in versions if isinstance(v, int)]
    return min(found) if found else None


def _attribute_name(attrs: BaseModel, stored_key: str) -> str:
    """The Python attribute of the model field stored under ``stored_key``
    (its alias, or its name)."""
    for name, info in type(attrs).model_fields.items():
        if (info.alias or name) == stored_key:
            return name
    return stored_key


def _validate_node(mapper: Any, connection: sa.Connection, target: Node) -> None:
    m = module_of_graph(connection, target.graph_id)
    if m is None:
        return
    attrs = validate_node_attributes(m, target.type, target.attributes)
    target.attributes = dump_attributes(attrs)
    target.key_version = key_version_of(m, target.type, attrs)


def _validate_edge(mapper: Any, connection: sa.Connection, target: Edge) -> None:
    m = module_of_graph(connection, target.graph_id)
    if m is None:
        return
    ends = {r.id: r for r in connection.execute(
        _NODE_TYPES, {"ids": [target.source_id, target.target_id]})}
    types = []
    for role, node_id in (("source_id", target.source_id), ("target_id", target.target_id)):
        row = ends.get(node_id)
        if row is None or row.graph_id != target.graph_id:
            raise ValidationFailed(f"{role}: no node {node_id!r} in graph {target.graph_id!r} "
                                   "(a new edge's nodes must be flushed before it)",
                                   field=role, errors=[{"loc": (role,), "msg": "no such node",
                                                        "type": "not_found"}])
        types.append(row.type)
    attrs = validate_edge_attributes(m, target.type, types[0], types[1], target.attributes)
    target.attributes = dump_attributes(attrs)
    target.key_version = key_version_of(m, target.type, attrs)


for _event in ("before_insert", "before_update"):
    sa.event.listen(Node, _event, _validate_node)
    sa.event.listen(Edge, _event, _validate_edge)
