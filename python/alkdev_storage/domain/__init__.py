"""The domain layer: graph-type modules and their validation, principals,
the validated graph store, generated pydantic models, the event catalog
and encrypted secrets (docs/0016-0019).

Importing it registers the built-in modules (call graph, ACL graph, ...)
in the process's module registry.

* :mod:`~alkdev_storage.domain.modules`: graph-type modules,
  ``module_to_db_schema``, ``validate_node``, ``validate_edge``.
* :mod:`~alkdev_storage.domain.graphs`: ``init_tenant`` and ``GraphStore``
  (every write validated against its graph type; scope protection).
* :mod:`~alkdev_storage.domain.models`: ``model_for(table, mode)``
  (ADR-046), ``validate``, ``row_values``.
* :mod:`~alkdev_storage.domain.catalog`: the channels, streams and queues of
  DESIGN.md's event catalog with their payload models; ``notify``,
  ``publish``, ``enqueue`` validate before writing, ``parse`` for listeners.
* :mod:`~alkdev_storage.domain.secrets`: AES-256-GCM ``encrypt``/``decrypt``
  bound to a ``Binding``, ``EncryptedData``, key providers (docs/0017);
  :mod:`~alkdev_storage.domain.rotation`: key rotation on the
  ``secret-rotation`` queue; the secret graph's ``SecretSealer`` seals
  secrets written through a ``GraphStore``.
"""

from __future__ import annotations

from alkdev_storage.domain import catalog, rotation, secrets
from alkdev_storage.domain.builtin import ACL_GRAPH, BUILTIN_MODULES, CALL_GRAPH, SECRET_GRAPH
from alkdev_storage.domain.builtin.secret_graph import (
    SecretSealer,
    reveal_attributes,
    seal_attributes,
)
from alkdev_storage.domain.graphs import Change, GraphStore, Sealer, init_tenant
from alkdev_storage.domain.models import (
    MODES,
    Mode,
    model_for,
    row_values,
    validate,
    validation_failed,
)
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
from alkdev_storage.domain.rotation import rotation_status, run_rotation, start_rotation
from alkdev_storage.domain.secrets import (
    Binding,
    EncryptedColumn,
    EncryptedData,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    StaticKeyProvider,
    decrypt,
    decrypt_text,
    encrypt,
    generate_key,
)

__all__ = [
    "ACL_GRAPH",
    "BUILTIN_MODULES",
    "CALL_GRAPH",
    "MODES",
    "SECRET_GRAPH",
    "Attributes",
    "Binding",
    "Change",
    "EdgeType",
    "EncryptedColumn",
    "EncryptedData",
    "EnvKeyProvider",
    "FileKeyProvider",
    "GraphStore",
    "GraphTypeModule",
    "KeyProvider",
    "Mode",
    "NodeType",
    "Principal",
    "Sealer",
    "SecretSealer",
    "StaticKeyProvider",
    "catalog",
    "decrypt",
    "decrypt_text",
    "encrypt",
    "encrypted_fields",
    "generate_key",
    "get_module",
    "init_tenant",
    "model_for",
    "module_to_db_schema",
    "modules",
    "register_module",
    "reveal_attributes",
    "rotation",
    "rotation_status",
    "row_values",
    "run_rotation",
    "seal_attributes",
    "secrets",
    "start_rotation",
    "validate",
    "validate_edge",
    "validate_node",
    "validation_failed",
]
