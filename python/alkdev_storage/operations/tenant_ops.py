"""The tenant file's operations (docs/0023-operation-specs.md): graph
types, graphs, nodes and edges, generated from their tables.

* ``graph_types``: ``create`` registers a module registered in this process
  (input: ``module``, optional ``version``/``name``, ``scope`` tenant or
  user; the schemas come from the module); get, list, delete. Changing a
  type's schemas is :meth:`GraphStore.update_graph_type`'s job (it checks
  the data already stored), so no update/patch.
* ``graphs``: members' new graphs are their own (``owner_id`` preset);
  ``graph:created`` / ``graph:updated``.
* ``nodes`` / ``edges``: attributes validated by the graph type's module
  (:func:`~alkdev_storage.domain.modules.validate_node_attributes`,
  triples for edges), the ``ValidationFailed`` naming the field; secret
  fields sealed on write by the dispatcher's ``sealer`` and redacted on
  read (``"[redacted]"``) unless the call may decrypt (``secrets:read``)
  and an ``opener`` is configured; ``nodes:created``, and
  ``acl:delegation_changed`` for ``delegates_to`` edges of the ACL graph.

Every mutation also writes its ``call-protocol`` audit record.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from alkdev_storage.domain import catalog
from alkdev_storage.domain.builtin import ACL_GRAPH
from alkdev_storage.domain.modules import (
    GraphTypeModule,
    dump_attributes,
    encrypted_fields,
    get_module,
    is_encrypted_type,
    module_for_stored,
    module_to_db_schema,
    validate_edge_attributes,
    validate_node_attributes,
)
from alkdev_storage.domain.orm_validation import key_version_of
from alkdev_storage.errors import NotFound, ScopeViolation
from alkdev_storage.operations import records
from alkdev_storage.operations.context import AccessView
from alkdev_storage.operations.generate import Hooks, TableConfig, fail, generate
from alkdev_storage.operations.rules import GT, E, G, N, graph_visible, tenant_rules
from alkdev_storage.operations.spec import Invocation, OperationSpec, StatementBuilder

__all__ = ["REDACTED", "tenant_configs", "tenant_specs"]

REDACTED = "[redacted]"
"""What a secret attribute reads as when the call may not decrypt it."""

_DATA_SERVER_SET = frozenset({"id", "created_at", "updated_at", "key_version"})


class GraphTypeCreate(BaseModel):
    """Input of ``graph_types.create``: register ``module`` (its highest
    registered version, or ``version``) as a graph type named ``name``
    (default: the module's name) of ``scope`` (``user``: owned by the
    caller)."""

    model_config = ConfigDict(extra="forbid")

    module: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    scope: Literal["tenant", "user"] = "tenant"


# ---------------------------------------------------------------------
# Statements shared by the graph-data hooks
# ---------------------------------------------------------------------


def _writable_graph_type(v: AccessView, _: Any) -> sa.Executable:
    g = G.alias("w_g")
    return (sa.select(GT.c.id, GT.c.updated_at, GT.c.module, GT.c.version)
            .select_from(g.join(GT, GT.c.id == g.c.graph_type_id))
            .where(g.c.id == sa.bindparam("p_graph_id", type_=sa.Text),
                   graph_visible(v, g, write=True)))


def _graph_type_of(v: AccessView, _: Any) -> sa.Executable:
    # No access predicate: used only for rows already read under one.
    return (sa.select(GT.c.id, GT.c.updated_at, GT.c.module, GT.c.version)
            .select_from(G.join(GT, GT.c.id == G.c.graph_type_id))
            .where(G.c.id == sa.bindparam("p_graph_id", type_=sa.Text)))


def _type_schemas(v: AccessView, _: Any) -> sa.Executable:
    return sa.select(GT.c.node_schema, GT.c.edge_schema).where(
        GT.c.id == sa.bindparam("p_id", type_=sa.Text))


def _ends(v: AccessView, _: Any) -> sa.Executable:
    return sa.select(N.c.id, N.c.type).where(
        N.c.graph_id == sa.bindparam("p_graph_id", type_=sa.Text),
        N.c.id.in_([sa.bindparam("p_source_id", type_=sa.Text),
                    sa.bindparam("p_target_id", type_=sa.Text)]))


_DATA_STATEMENTS: dict[str, StatementBuilder] = {
    "writable_graph_type": _writable_graph_type,
    "graph_type_of": _graph_type_of,
    "type_schemas": _type_schemas,
    "ends": _ends,
}


def _module(inv: Invocation, type_row: dict[str, Any] | None) -> GraphTypeModule:
    """The module of a graph type row (id, updated_at, module, version),
    cached per dispatcher by (id, updated_at)."""
    assert type_row is not None
    cache: dict[tuple[str, str], GraphTypeModule] = inv.services.modules
    key = (type_row["id"], type_row["updated_at"])
    m = cache.get(key)
    if m is None:
        schemas = inv.sql("type_schemas").row(inv.session, {"p_id": type_row["id"]})
        assert schemas is not None
        m = module_for_stored(type_row["module"], type_row["version"], schemas["node_schema"],
                              schemas["edge_schema"])
        if len(cache) > 1024:
            cache.clear()
        cache[key] = m
    return m


def _graph_module(inv: Invocation, graph_id: str) -> GraphTypeModule:
    return _module(inv, inv.sql("graph_type_of").row(inv.session, {"p_graph_id": graph_id}))


def _check_data_create(inv: Invocation, values: dict[str, Any]) -> Any:
    row = inv.sql("writable_graph_type").row(
        inv.session, {**inv.view.params, "p_graph_id": values.get("graph_id")})
    if row is None:
        raise ScopeViolation(f"{inv.spec.id}: graph {values.get('graph_id')!r} does not exist "
                             "or this caller may not write to it")
    return _module(inv, row)


def _seal(inv: Invocation, m: GraphTypeModule, table: str, type_name: str,
          attrs: Any, row_id: str, stored: dict[str, Any] | None) -> Any:
    if not isinstance(attrs, dict):
        return attrs
    try:
        fields = encrypted_fields(m, type_name)
    except KeyError:
        return attrs  # validation names the unknown type
    if not fields:
        return attrs
    sealer = inv.services.sealer
    out = dict(attrs)
    for f in fields:
        value = out.get(f)
        if value is None or is_encrypted_type(type(value)):
            continue
        if stored is not None and value == stored.get(f):
            continue  # the stored envelope written back
        if value == REDACTED:
            raise fail(f"attributes.{f}", "is the redacted placeholder; send the secret or "
                       "leave the field out", "redacted")
        if sealer is None:
            continue  # validation refuses plaintext without a sealer
        out[f] = sealer(value, org_id=inv.services.org_id, table=table,
                        column=f"attributes.{f}", row_id=row_id)
    return out


def _node_prepare(inv: Invocation, verb: str, values: dict[str, Any],
                  current: dict[str, Any] | None, m: Any) -> dict[str, Any]:
    if current is not None:
        m = _graph_module(inv, current["graph_id"])
        type_name = current["type"]
        row_id = current["id"]
    else:
        type_name = values["type"]
        row_id = values["id"]
    if "attributes" in values or current is None:
        attrs = _seal(inv, m, "nodes", type_name, values.get("attributes", {}), row_id,
                      current["attributes"] if current else None)
        inst = validate_node_attributes(m, type_name, attrs)
        values["attributes"] = dump_attributes(inst)
        values["key_version"] = key_version_of(m, type_name, inst)
    return values


def _edge_check(inv: Invocation, values: dict[str, Any]) -> Any:
    m = _check_data_create(inv, values)
    ends = {r["id"]: r["type"] for r in inv.sql("ends").rows(inv.session, {
        "p_graph_id": values["graph_id"], "p_source_id": values.get("source_id"),
        "p_target_id": values.get("target_id")})}
    for role in ("source_id", "target_id"):
        if values.get(role) not in ends:
            raise fail(role, f"no node {values.get(role)!r} in graph {values['graph_id']!r}",
                       "not_found")
    return (m, ends[values["source_id"]], ends[values["target_id"]])


def _edge_prepare(inv: Invocation, verb: str, values: dict[str, Any],
                  current: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    if current is not None:
        m = _graph_module(inv, current["graph_id"])
        ends = {r["id"]: r["type"] for r in inv.sql("ends").rows(inv.session, {
            "p_graph_id": current["graph_id"], "p_source_id": current["source_id"],
            "p_target_id": current["target_id"]})}
        src, dst = ends[current["source_id"]], ends[current["target_id"]]
        type_name, row_id = current["type"], current["id"]
    else:
        m, src, dst = context
        type_name, row_id = values["type"], values["id"]
    if "attributes" in values or current is None:
        attrs = _seal(inv, m, "edges", type_name, values.get("attributes", {}), row_id,
                      current["attributes"] if current else None)
        inst = validate_edge_attributes(m, type_name, src, dst, attrs)
        values["attributes"] = dump_attributes(inst)
        values["key_version"] = key_version_of(m, type_name, inst)
    return values


def _present_data(table: str) -> Any:
    def present(inv: Invocation, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("key_version") is None:
            return row
        try:
            m = _graph_module(inv, row["graph_id"])
            fields = encrypted_fields(m, row["type"])
        except (KeyError, NotFound):
            return row
        opener = inv.services.opener if inv.ctx.may_decrypt() else None
        attrs = dict(row["attributes"])
        for f in fields:
            if attrs.get(f) is None:
                continue
            if opener is None:
                attrs[f] = REDACTED
            else:
                attrs[f] = opener(attrs[f], org_id=inv.services.org_id, table=table,
                                  column=f"attributes.{f}", row_id=row["id"])
        return {**row, "attributes": attrs}
    return present


# ---------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------


def _type_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
                ) -> None:
    records.audit(inv, inv.spec.id, "graph_type", row["id"], {"name": row["name"]})


def _graph_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
                 ) -> None:
    if verb == "create":
        records.notify(inv, catalog.GRAPH_CREATED, {
            "graph_id": row["id"], "graph_type_id": row["graph_type_id"],
            "owner_id": row["owner_id"]})
    elif verb in ("update", "patch"):
        records.notify(inv, catalog.GRAPH_UPDATED, {"graph_id": row["id"],
                                                    "changes": sorted(changed)})
    records.audit(inv, inv.spec.id, "graph", row["id"], graph_id=row["id"])


def _node_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
                ) -> None:
    if verb == "create":
        records.notify(inv, catalog.NODES_CREATED, {"graph_id": row["graph_id"],
                                                    "keys": [row["key"]]})
    records.audit(inv, inv.spec.id, "node", row["id"], {"key": row["key"]},
                  graph_id=row["graph_id"])


def _edge_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
                ) -> None:
    if row["type"] == "delegates_to" and (verb != "patch" or "attributes" in changed):
        t = inv.sql("graph_type_of").row(inv.session, {"p_graph_id": row["graph_id"]})
        if t is not None and t["module"] == ACL_GRAPH.name:
            records.notify(inv, catalog.ACL_DELEGATION_CHANGED, {
                "principal_id": row["source_id"], "agent_id": row["target_id"],
                "change": "revoked" if verb == "delete" else "granted"})
    records.audit(inv, inv.spec.id, "edge", row["id"], graph_id=row["graph_id"])


# ---------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------


def _type_prepare(inv: Invocation, verb: str, values: dict[str, Any],
                  current: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    try:
        m = get_module(values.pop("module"), values.pop("version", None))
    except NotFound as exc:
        raise fail("module", str(exc), "unknown_module") from None
    node, edge = module_to_db_schema(m)
    values.update(name=values.get("name") or m.name, version=m.version, module=m.name,
                  node_schema=node, edge_schema=edge)
    values.setdefault("owner_id", None)
    return values


def _type_check(inv: Invocation, values: dict[str, Any]) -> None:
    params = {**inv.view.params, "p_scope": values.get("scope"),
              "p_owner_id": values.get("owner_id")}
    params.update({f"p_{c}": params.get(f"p_{c}") for c in GT.c.keys()})
    if not inv.sql("create_check").scalar(inv.session, params):
        raise ScopeViolation(f"{inv.spec.id}: this caller may not register a "
                             f"{values.get('scope')}-scope graph type")


def _user_owner(inv: Invocation, values: dict[str, Any]) -> Any:
    return inv.ctx.principal.account_id if values.get("scope") == "user" else None


def _member_owner(inv: Invocation, values: dict[str, Any]) -> Any:
    p = inv.ctx.principal
    return p.account_id if p.kind == "user" and not p.manages_tenant else None


def tenant_configs() -> dict[str, TableConfig]:
    """The :class:`TableConfig` of every tenant table."""
    rules = tenant_rules()
    return {
        "graph_types": TableConfig(
            GT, rules["graph_types"], create_model=GraphTypeCreate,
            presets={"owner_id": _user_owner},
            hooks=Hooks(check_create=_type_check, prepare=_type_prepare, after=_type_after),
            description="the tenant's graph types"),
        "graphs": TableConfig(
            G, rules["graphs"], immutable=frozenset({"graph_type_id"}),
            presets={"owner_id": _member_owner}, hooks=Hooks(after=_graph_after),
            description="the tenant's graphs"),
        "nodes": TableConfig(
            N, rules["nodes"], server_set=_DATA_SERVER_SET,
            immutable=frozenset({"graph_id", "type"}),
            hooks=Hooks(check_create=_check_data_create, prepare=_node_prepare,
                        after=_node_after, present=_present_data("nodes"), needs_current=True),
            description="the nodes of the tenant's graphs"),
        "edges": TableConfig(
            E, rules["edges"], server_set=_DATA_SERVER_SET,
            immutable=frozenset({"graph_id", "type", "source_id", "target_id"}),
            hooks=Hooks(check_create=_edge_check, prepare=_edge_prepare, after=_edge_after,
                        present=_present_data("edges"), needs_current=True),
            description="the edges of the tenant's graphs"),
    }


def _with_statements(specs: list[OperationSpec], extra: dict[str, StatementBuilder]
                     ) -> list[OperationSpec]:
    return [s.replace(statements={**s.statements, **extra}) for s in specs]


def tenant_specs() -> list[OperationSpec]:
    """Every generated operation of the tenant kind."""
    cfg = tenant_configs()
    out: list[OperationSpec] = []
    out += generate(cfg["graph_types"], exclude=("update", "patch"))
    out += generate(cfg["graphs"], events={"create": ["graph:created", "call-protocol"],
                                           "update": ["graph:updated", "call-protocol"],
                                           "patch": ["graph:updated", "call-protocol"],
                                           "delete": ["call-protocol"]})
    audit = {v: ["call-protocol"] for v in ("update", "patch", "delete")}
    out += _with_statements(generate(cfg["nodes"], events={
        **audit, "create": ["nodes:created", "call-protocol"]}), _DATA_STATEMENTS)
    delegation = ["acl:delegation_changed", "call-protocol"]
    out += _with_statements(generate(cfg["edges"], events={
        "create": delegation, "update": delegation, "patch": delegation,
        "delete": delegation}), _DATA_STATEMENTS)
    return [s if s.events or s.kind == "query" else s.replace(events=("call-protocol",))
            for s in out]
