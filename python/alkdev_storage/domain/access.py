"""Who may see and change graph types and graph data (ADR-043;
docs/0018-graph-type-modules.md). Pure functions of a
:class:`~alkdev_storage.domain.principal.Principal` and a graph type's
``scope`` and ``owner_id``; the graph store applies them, the SQL triggers
hold the system-scope part below every API.

==========================  ==========  ==========================  =====================
graph type scope            visible to  register / change / delete  write its graphs' data
==========================  ==========  ==========================  =====================
``system``                  everyone    the system principal only   every writer [#]_
``tenant``                  everyone    system, tenant principal,   every writer [#]_
                                        user of level owner/admin
``user`` (owner ``o``)      system,     system, the user ``o``      system, the user ``o``
                            the user    (not a viewer)              (not a viewer)
                            ``o``
==========================  ==========  ==========================  =====================

.. [#] A *writer* is any principal but a user of level ``viewer``. For a
   module with ``admin_writes`` (the ACL graph) the data of its graphs is
   written only by principals that manage the tenant.

Registering a ``user`` type makes the acting user its owner; only the
system principal may register one for another account.
"""

from __future__ import annotations

from alkdev_storage.domain.principal import Principal

__all__ = ["can_manage_type", "can_register_type", "can_see_type", "can_write_data"]


def can_see_type(p: Principal, scope: str, owner_id: str | None) -> bool:
    """Whether ``p`` sees a graph type (and the graphs of it)."""
    if p.is_system or scope in ("system", "tenant"):
        return True
    return scope == "user" and p.kind == "user" and owner_id == p.account_id


def can_manage_type(p: Principal, scope: str, owner_id: str | None) -> bool:
    """Whether ``p`` may change or delete an existing graph type."""
    if p.is_system:
        return True
    if scope == "tenant":
        return p.manages_tenant
    if scope == "user":
        return p.kind == "user" and p.can_write and owner_id == p.account_id
    return False


def can_register_type(p: Principal, scope: str, owner_id: str | None) -> bool:
    """Whether ``p`` may register a graph type of ``scope`` (for ``user``
    scope, owned by ``owner_id``)."""
    return can_manage_type(p, scope, owner_id)


def can_write_data(p: Principal, scope: str, owner_id: str | None,
                   admin_writes: bool = False) -> bool:
    """Whether ``p`` may create graphs of a type and write their nodes and
    edges (the type must also be visible to it)."""
    if not (p.can_write and can_see_type(p, scope, owner_id)):
        return False
    return p.manages_tenant if admin_writes else True
