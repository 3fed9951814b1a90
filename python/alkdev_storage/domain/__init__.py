"""The domain layer: graph-type modules and their validation, principals,
the validated graph store, generated models, the event catalog and
encrypted secrets (docs/0018-graph-type-modules.md).

Importing it registers the built-in modules (call graph, ACL graph, ...)
in the process's module registry. Other helpers' names are imported at the
end, one line each.
"""

from __future__ import annotations

from alkdev_storage.domain.builtin import ACL_GRAPH, BUILTIN_MODULES, CALL_GRAPH
from alkdev_storage.domain.graphs import Change, GraphStore, Sealer, init_tenant
from alkdev_storage.domain.modules import (
    Attributes,
    EdgeType,
    GraphTypeModule,
    NodeType,
    encrypted_fields,
    get_module,
    module_to_db_schema,
    modules,
    register_module,
    validate_edge,
    validate_node,
)
from alkdev_storage.domain.principal import Principal

__all__ = [
    "ACL_GRAPH",
    "BUILTIN_MODULES",
    "CALL_GRAPH",
    "Attributes",
    "Change",
    "EdgeType",
    "GraphStore",
    "GraphTypeModule",
    "NodeType",
    "Principal",
    "Sealer",
    "encrypted_fields",
    "get_module",
    "init_tenant",
    "module_to_db_schema",
    "modules",
    "register_module",
    "validate_edge",
    "validate_node",
]
