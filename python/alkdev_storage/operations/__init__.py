"""The operations layer (ADR-048; docs/0023-operation-specs.md,
docs/0024-access-in-sql.md): operation specs generated from the tables,
access rules compiled into the SQL of each statement, catalogued events and
audit records committed with every write, and the dispatcher.

    >>> ops = Dispatcher(db, "tenant", org_id=org)
    >>> ctx = CallContext(Principal.user(account, org, "member"), request_id="r-1")
    >>> graph = ops.call("graphs.create", {"graph_type_id": t, "name": "g"}, ctx)
    >>> page = ops.call("nodes.list", {"graph_id": graph["id"], "limit": 100}, ctx)
    >>> ops.registry.export()          # every spec as JSON (JSON Schema 2020-12)
"""

from __future__ import annotations

from alkdev_storage.operations.context import AccessView, CallContext, allows
from alkdev_storage.operations.delegation import agent_context, delegated_scopes
from alkdev_storage.operations.dispatcher import Dispatcher, Opener, registry_for
from alkdev_storage.operations.generate import VERBS, Hooks, TableConfig, custom, generate
from alkdev_storage.operations.rules import (
    ColumnRule,
    TableRules,
    owner_rules,
    shared_rules,
    system_rules,
    tenant_rules,
)
from alkdev_storage.operations.spec import (
    JSON_SCHEMA_DIALECT,
    CallResult,
    CallTiming,
    Invocation,
    OperationSpec,
    Registry,
)
from alkdev_storage.operations.system_ops import system_configs, system_specs
from alkdev_storage.operations.tenant_ops import REDACTED, tenant_configs, tenant_specs

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "REDACTED",
    "VERBS",
    "AccessView",
    "CallContext",
    "CallResult",
    "CallTiming",
    "ColumnRule",
    "Dispatcher",
    "Hooks",
    "Invocation",
    "Opener",
    "OperationSpec",
    "Registry",
    "TableConfig",
    "TableRules",
    "agent_context",
    "allows",
    "custom",
    "delegated_scopes",
    "generate",
    "owner_rules",
    "registry_for",
    "shared_rules",
    "system_configs",
    "system_rules",
    "system_specs",
    "tenant_configs",
    "tenant_rules",
    "tenant_specs",
]
