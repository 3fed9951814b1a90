"""Row- and column-level access rules as SQL predicates
(docs/0024-access-in-sql.md).

Each table has :class:`TableRules`: ``read`` (the rows a caller sees),
``write`` (the rows it may update), ``delete`` (the rows it may delete,
``write`` by default), ``create`` (a check of the values of a new row) and
column rules (``protected``: a column that may only be changed where an
extra predicate holds; presets are applied by the table configs). Every
predicate is a SQLAlchemy expression over bound parameters (``acl_me``,
``acl_org``, ``acl_projects``, ``acl_admin_modules``, ``p_<column>``)
whose structure depends only on :attr:`AccessView.shape`, so a statement
is compiled once per shape and the rows a caller may not see are never
read: ``list`` filters in SQL and ``UPDATE ... WHERE id = ? AND <rule>``
cannot touch a hidden row.

Tenant files (one organization): graph types are visible per
:mod:`alkdev_storage.domain.access` (system and tenant scope to everyone,
user scope to its owner); graphs are visible when their type is, and, for
callers that do not manage the tenant (members and viewers), when they are
shared (``owner_id`` NULL) or owned by the caller; a call limited to
projects (``project:<id>`` scopes) sees only graphs of those projects.
Graph data is written by writers (not viewers) in graphs they see; graphs
of a module with ``admin_writes`` (the ACL graph) only by tenant managers.
Nodes and edges follow their graph.

System file: the system principal sees and changes everything; a platform
administrator (an active account with ``access_level = 'admin'``, read from
the ``accounts`` table in the same statement) too. Otherwise: an account
sees itself and the members of its organizations, changes itself, and only
an administrator changes ``access_level``/``status``; organizations are
seen by their members and owner, changed by owners and admins (membership
levels read from ``organization_memberships``), deleted and handed over
(``owner_id``) by the owner; memberships are seen by the org's members,
added/changed/removed by its owners and admins (a membership of level
``owner`` only by owners), and one may leave an org; API keys are seen by
their account and the org's owners/admins, changed by their account;
the tenant registry only by the system principal and administrators. A
``tenant`` principal acts for its organization only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa

from alkdev_storage.operations.context import AccessView
from alkdev_storage.schema.system import (
    Account,
    ApiKey,
    Organization,
    OrganizationMembership,
    TenantRecord,
)
from alkdev_storage.schema.tenant import Edge, Graph, GraphType, Node

__all__ = [
    "ColumnRule",
    "Pred",
    "TableRules",
    "owner_rules",
    "shared_rules",
    "system_rules",
    "tenant_rules",
]

Pred = sa.ColumnElement[bool]
RowPred = Callable[[AccessView, sa.Table], Pred]
CreatePred = Callable[[AccessView, Mapping[str, Any]], Pred]

ME = sa.bindparam("acl_me", type_=sa.Text)
ORG = sa.bindparam("acl_org", type_=sa.Text)
PROJECTS = sa.bindparam("acl_projects", type_=sa.Text)
ADMIN_MODULES = sa.bindparam("acl_admin_modules", type_=sa.Text)

GT = cast(sa.Table, GraphType.__table__)
G = cast(sa.Table, Graph.__table__)
N = cast(sa.Table, Node.__table__)
E = cast(sa.Table, Edge.__table__)
A = cast(sa.Table, Account.__table__)
O = cast(sa.Table, Organization.__table__)  # noqa: E741 - the organizations table
M = cast(sa.Table, OrganizationMembership.__table__)
K = cast(sa.Table, ApiKey.__table__)
T = cast(sa.Table, TenantRecord.__table__)


@dataclass(frozen=True)
class ColumnRule:
    """A column-level rule: ``protected(view, table)``: the column may be
    changed (update/patch) only in rows where this predicate also holds."""

    protected: RowPred


@dataclass(frozen=True)
class TableRules:
    """The access rules of one table (see the module docstring)."""

    description: str
    read: RowPred
    write: RowPred
    create: CreatePred
    delete: RowPred | None = None
    columns: Mapping[str, ColumnRule] = field(default_factory=dict)

    def deleting(self, view: AccessView, table: sa.Table) -> Pred:
        """The delete predicate (``write`` unless given)."""
        return (self.delete or self.write)(view, table)


def _true(*_: Any) -> Pred:
    return sa.true()


def _false(*_: Any) -> Pred:
    return sa.false()


def _one_of(col: Any, values: tuple[str, ...]) -> Pred:
    """``col IN ('a', 'b')`` with the values as plain parameters (not an
    expanding list: the statement is compiled once)."""
    return cast(Pred, col.in_([sa.literal(v, type_=sa.Text) for v in values]))


def _json_values(param: sa.BindParameter[Any]) -> sa.Select[Any]:
    return sa.select(sa.column("value")).select_from(sa.func.json_each(param))


# ---------------------------------------------------------------------
# Rules for tables of your own
# ---------------------------------------------------------------------


def owner_rules(column: str = "owner_id") -> TableRules:
    """Rows belong to the account in ``column``: a user sees, creates,
    changes and deletes only its own rows (and may not give one away);
    tenant and system principals see and change every row. Use with a
    ``presets={column: ...}`` that fills the caller's account id."""
    def mine(v: AccessView, t: sa.Table) -> Pred:
        return sa.true() if v.kind != "user" else t.c[column] == ME

    def create(v: AccessView, p: Mapping[str, Any]) -> Pred:
        if v.kind != "user":
            return sa.true()
        return p[column] == ME if v.writer else sa.false()

    def keep(v: AccessView, t: sa.Table) -> Pred:
        return sa.true() if v.kind != "user" else sa.bindparam("p_" + column,
                                                               type_=sa.Text) == ME

    return TableRules(f"rows are their {column}'s (users); tenant and system see all",
                      read=mine, write=lambda v, t: mine(v, t) if v.writer else sa.false(),
                      create=create, columns={column: ColumnRule(keep)})


def shared_rules() -> TableRules:
    """Every caller of the file sees every row; writers (not viewers)
    create, change and delete them."""
    def write(v: AccessView, t: Any) -> Pred:
        return sa.true() if v.writer else sa.false()
    return TableRules("every caller reads; writers write", read=_true, write=write,
                      create=write)


# ---------------------------------------------------------------------
# Tenant files
# ---------------------------------------------------------------------


def type_visible(v: AccessView, gt: sa.Table | Any) -> Pred:
    """Graph types the caller sees (domain.access.can_see_type)."""
    if v.kind == "system":
        return sa.true()
    cond = _one_of(gt.c.scope, ("system", "tenant"))
    if v.kind == "user":
        cond = sa.or_(cond, sa.and_(gt.c.scope == "user", gt.c.owner_id == ME))
    return cond


def type_manageable(v: AccessView, gt: sa.Table | Any) -> Pred:
    """Graph types the caller may change or delete (can_manage_type)."""
    if v.kind == "system":
        return sa.true()
    parts: list[Pred] = []
    if v.manager:
        parts.append(gt.c.scope == "tenant")
    if v.kind == "user" and v.writer:
        parts.append(sa.and_(gt.c.scope == "user", gt.c.owner_id == ME))
    return sa.or_(*parts) if parts else sa.false()


def _data_types(v: AccessView, *, write: bool) -> sa.Select[Any] | None:
    """Ids of the graph types whose graphs the caller may see (write:
    write), or None for every type."""
    if v.kind == "system":
        return None
    gt = GT.alias("acl_gt")
    cond = type_visible(v, gt)
    if write and not v.manager:
        cond = sa.and_(cond, gt.c.module.not_in(_json_values(ADMIN_MODULES)))
    return sa.select(gt.c.id).where(cond)


def graph_visible(v: AccessView, g: sa.Table | Any, *, write: bool = False) -> Pred:
    """Graphs the caller sees (``write``: may write the data of)."""
    if write and not v.writer:
        return sa.false()
    parts: list[Pred] = []
    types = _data_types(v, write=write)
    if types is not None:
        parts.append(g.c.graph_type_id.in_(types))
    if not v.manager:
        parts.append(sa.or_(g.c.owner_id.is_(None), g.c.owner_id == ME))
    if v.restricted:
        parts.append(g.c.project_id.in_(_json_values(PROJECTS)))
    return sa.and_(*parts) if parts else sa.true()


def _graph_ids(v: AccessView, *, write: bool) -> sa.Select[Any] | None:
    if v.kind == "system" and not v.restricted and (v.writer or not write):
        return None
    g = G.alias("acl_g")
    return sa.select(g.c.id).where(graph_visible(v, g, write=write))


def _in_graphs(write: bool) -> RowPred:
    def pred(v: AccessView, t: sa.Table) -> Pred:
        ids = _graph_ids(v, write=write)
        return sa.true() if ids is None else t.c.graph_id.in_(ids)
    return pred


def _graph_create(v: AccessView, p: Mapping[str, Any]) -> Pred:
    types = _data_types(v, write=True)
    if not v.writer:
        return sa.false()
    parts: list[Pred] = []
    if types is not None:
        parts.append(p["graph_type_id"].in_(types))
    if not v.manager:
        parts.append(sa.or_(p["owner_id"].is_(None), p["owner_id"] == ME))
    if v.restricted:
        parts.append(p["project_id"].in_(_json_values(PROJECTS)))
    return sa.and_(*parts) if parts else sa.true()


def _data_create(v: AccessView, p: Mapping[str, Any]) -> Pred:
    ids = _graph_ids(v, write=True)
    return sa.true() if ids is None else p["graph_id"].in_(ids)


def _graph_owner(v: AccessView, g: sa.Table) -> Pred:
    # A member may only keep or take a graph as their own.
    return sa.true() if v.manager else sa.bindparam("p_owner_id", type_=sa.Text) == ME


def _type_create(v: AccessView, p: Mapping[str, Any]) -> Pred:
    # scope 'system' is refused below every API (the triggers) too.
    if v.kind == "system":
        return sa.true()
    parts: list[Pred] = []
    if v.manager:
        parts.append(sa.and_(p["scope"] == "tenant", p["owner_id"].is_(None)))
    if v.kind == "user" and v.writer:
        parts.append(sa.and_(p["scope"] == "user", p["owner_id"] == ME))
    return sa.or_(*parts) if parts else sa.false()


def tenant_rules() -> dict[str, TableRules]:
    """The rules of the tenant tables, by table name."""
    return {
        "graph_types": TableRules(
            "visible: system and tenant scope to everyone, user scope to its owner; "
            "changed/deleted: tenant scope by tenant managers, user scope by its owner, "
            "system scope by the system principal only",
            read=type_visible, write=type_manageable, create=_type_create),
        "graphs": TableRules(
            "visible when its graph type is; to members and viewers only when shared "
            "(owner_id NULL) or their own; project-limited calls see their projects; "
            "written by writers, ACL-type graphs by tenant managers only",
            read=graph_visible,
            write=lambda v, t: graph_visible(v, t, write=True),
            create=_graph_create,
            columns={"owner_id": ColumnRule(_graph_owner)}),
        "nodes": TableRules("as their graph", read=_in_graphs(False), write=_in_graphs(True),
                            create=_data_create),
        "edges": TableRules("as their graph", read=_in_graphs(False), write=_in_graphs(True),
                            create=_data_create),
    }


# ---------------------------------------------------------------------
# The system file
# ---------------------------------------------------------------------


def _is_admin() -> Pred:
    a = A.alias("acl_a")
    return sa.exists(sa.select(1).select_from(a).where(
        a.c.id == ME, a.c.access_level == "admin", a.c.status == "active"))


def _my_orgs(v: AccessView, col: Any, levels: tuple[str, ...] = ()) -> Pred:
    """``col`` is an organization the caller belongs to (at ``levels``)."""
    if v.kind == "system":
        return sa.true()
    if v.kind == "tenant":
        return cast(Pred, col == ORG)
    m = M.alias("acl_m")
    q = sa.select(m.c.org_id).where(m.c.account_id == ME)
    if levels:
        q = q.where(_one_of(m.c.level, levels))
    return cast(Pred, col.in_(q))


_MANAGERS = ("owner", "admin")


def _sys(user: Callable[[AccessView, Any], Pred],
         tenant: Callable[[AccessView, Any], Pred] = _false) -> Callable[[AccessView, Any], Pred]:
    """A system-file rule: everything for the system principal, ``user``
    (or an administrator) for accounts, ``tenant`` for a tenant principal."""
    def pred(v: AccessView, t: Any) -> Pred:
        if v.kind == "system":
            return sa.true()
        if v.kind == "tenant":
            return tenant(v, t)
        return sa.or_(_is_admin(), user(v, t))
    return pred


def _co_members(v: AccessView, a: sa.Table) -> Pred:
    m = M.alias("acl_m2")
    return sa.or_(a.c.id == ME, a.c.id.in_(
        sa.select(m.c.account_id).where(_my_orgs(v, m.c.org_id))))


def _tenant_members(v: AccessView, a: sa.Table) -> Pred:
    m = M.alias("acl_m2")
    return a.c.id.in_(sa.select(m.c.account_id).where(m.c.org_id == ORG))


def _membership_create(v: AccessView, p: Mapping[str, Any]) -> Pred:
    return sa.and_(_my_orgs(v, p["org_id"], _MANAGERS),
                   sa.or_(p["level"] != "owner", _my_orgs(v, p["org_id"], ("owner",))))


def _key_create(v: AccessView, p: Mapping[str, Any]) -> Pred:
    return sa.and_(p["account_id"] == ME,
                   sa.or_(p["org_id"].is_(None), _my_orgs(v, p["org_id"])))


def system_rules() -> dict[str, TableRules]:
    """The rules of the system tables, by table name."""
    def create(user: CreatePred | None, tenant: CreatePred | None = None) -> CreatePred:
        def pred(v: AccessView, p: Mapping[str, Any]) -> Pred:
            if v.kind == "system":
                return sa.true()
            if v.kind == "tenant":
                return tenant(v, p) if tenant is not None else sa.false()
            return sa.or_(_is_admin(), user(v, p)) if user is not None else _is_admin()
        return pred

    admin_only = _sys(_false)
    return {
        "accounts": TableRules(
            "an account sees itself and the members of its organizations and changes "
            "itself; access_level and status only by administrators",
            read=_sys(_co_members, _tenant_members),
            write=_sys(lambda v, a: a.c.id == ME),
            create=create(None),
            columns={"access_level": ColumnRule(admin_only),
                     "status": ColumnRule(admin_only)}),
        "organizations": TableRules(
            "seen by members and the owner, changed by owners and admins, deleted and handed "
            "over by the owner",
            read=_sys(lambda v, o: sa.or_(o.c.owner_id == ME, _my_orgs(v, o.c.id))),
            write=_sys(lambda v, o: sa.or_(o.c.owner_id == ME, _my_orgs(v, o.c.id, _MANAGERS)),
                       lambda v, o: o.c.id == ORG),
            delete=_sys(lambda v, o: o.c.owner_id == ME),
            create=create(lambda v, p: p["owner_id"] == ME),
            columns={"owner_id": ColumnRule(_sys(lambda v, o: o.c.owner_id == ME))}),
        "organization_memberships": TableRules(
            "seen by the org's members, added and changed by its owners and admins "
            "(level owner by owners only); one may leave",
            read=_sys(lambda v, m: sa.or_(m.c.account_id == ME, _my_orgs(v, m.c.org_id)),
                      lambda v, m: m.c.org_id == ORG),
            write=_sys(lambda v, m: _my_orgs(v, m.c.org_id, _MANAGERS),
                       lambda v, m: m.c.org_id == ORG),
            delete=_sys(lambda v, m: sa.or_(m.c.account_id == ME,
                                            _my_orgs(v, m.c.org_id, _MANAGERS)),
                        lambda v, m: m.c.org_id == ORG),
            create=create(_membership_create, lambda v, p: p["org_id"] == ORG),
            columns={"level": ColumnRule(_sys(lambda v, m: _my_orgs(v, m.c.org_id, ("owner",)),
                                              lambda v, m: m.c.org_id == ORG))}),
        "api_keys": TableRules(
            "seen by their account and the org's owners and admins, changed by their account",
            read=_sys(lambda v, k: sa.or_(k.c.account_id == ME,
                                          _my_orgs(v, k.c.org_id, _MANAGERS)),
                      lambda v, k: k.c.org_id == ORG),
            write=_sys(lambda v, k: k.c.account_id == ME, lambda v, k: k.c.org_id == ORG),
            create=create(_key_create)),
        "tenants": TableRules(
            "the system principal and administrators; a tenant principal reads its own",
            read=_sys(_false, lambda v, t: t.c.org_id == ORG),
            write=admin_only, create=create(None)),
    }
