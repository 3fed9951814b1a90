"""The built-in graph-type modules, registered in the process when this
package is imported and as system-scope graph types in every tenant file
by :func:`alkdev_storage.domain.graphs.init_tenant`.

``BUILTIN_MODULES`` lists them; a module added here becomes a system type
of every tenant file on its next ``init_tenant``.
"""

from __future__ import annotations

from alkdev_storage.domain.builtin.acl_graph import ACL_GRAPH
from alkdev_storage.domain.builtin.call_graph import CALL_GRAPH
from alkdev_storage.domain.builtin.secret_graph import SECRET_GRAPH
from alkdev_storage.domain.modules import GraphTypeModule, register_module

__all__ = ["ACL_GRAPH", "BUILTIN_MODULES", "CALL_GRAPH", "SECRET_GRAPH"]

BUILTIN_MODULES: tuple[GraphTypeModule, ...] = (
    CALL_GRAPH,
    ACL_GRAPH,
    SECRET_GRAPH,
)
"""Every built-in module, in registration order."""

for _module in BUILTIN_MODULES:
    register_module(_module)
