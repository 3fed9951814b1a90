"""Delegation read from the ACL graph (docs/0024-access-in-sql.md, "The
call context"): what an agent may do for a principal.

A ``delegates_to`` edge of a graph of the built-in ACL graph module, from
a ``principal`` node whose ``account_id`` attribute is the account to an
``agent`` node (its key or id is the agent id), grants its ``scopes``
until its ``expires_at``. :func:`delegated_scopes` is the union of the
scopes of the edges in force; :func:`agent_context` builds the
:class:`CallContext` of an agent acting for a user, whose calls then get
the intersection of the key's scopes (if any) and the delegation's.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from alkdev_storage.database import Database
from alkdev_storage.domain.builtin import ACL_GRAPH
from alkdev_storage.domain.principal import Principal
from alkdev_storage.operations.context import CallContext
from alkdev_storage.operations.rules import GT, E, G, N
from alkdev_storage.operations.sqlc import dialect

__all__ = ["agent_context", "delegated_scopes"]


def _statement() -> tuple[str, tuple[str, ...], dict[str, Any]]:
    s, t = N.alias("s"), N.alias("t")
    account = sa.func.json_extract(s.c.attributes, "$.account_id")
    q = (sa.select(E.c.attributes)
         .select_from(E.join(s, s.c.id == E.c.source_id).join(t, t.c.id == E.c.target_id)
                      .join(G, G.c.id == E.c.graph_id).join(GT, GT.c.id == G.c.graph_type_id))
         .where(E.c.type == "delegates_to", s.c.type == "principal", t.c.type == "agent",
                GT.c.module == ACL_GRAPH.name,
                account == sa.bindparam("account", type_=sa.Text),
                sa.or_(t.c.key == sa.bindparam("agent", type_=sa.Text),
                       t.c.id == sa.bindparam("agent", type_=sa.Text))))
    compiled: Any = q.compile(dialect=dialect())
    names = tuple(compiled.positiontup)
    consts = {n: compiled.binds[n].value for n in names if n not in ("account", "agent")}
    return str(compiled.string), names, consts


_SQL, _NAMES, _CONSTS = _statement()


def delegated_scopes(db: Database, account_id: str, agent_id: str, *,
                     now: _dt.datetime | None = None) -> frozenset[str]:
    """The scopes the ACL graph of tenant file ``db`` delegates from
    account ``account_id`` to agent ``agent_id`` (a node key or id), at
    ``now`` (default: the current time); empty when none is in force."""
    moment = now or _dt.datetime.now(_dt.UTC)
    scopes: set[str] = set()
    values = {**_CONSTS, "account": account_id, "agent": agent_id}
    for (raw,) in db.fetchall(_SQL, tuple(values[n] for n in _NAMES)):
        attrs = json.loads(raw) if isinstance(raw, str) else raw
        expires = attrs.get("expires_at")
        if expires is not None and _dt.datetime.fromisoformat(expires) <= moment:
            continue
        scopes.update(attrs.get("scopes") or ())
    return frozenset(scopes)


def agent_context(db: Database, principal: Principal, agent_id: str, *,
                  key_scopes: Iterable[str] | None = None,
                  request_id: str | None = None) -> CallContext:
    """The context of agent ``agent_id`` acting for user ``principal`` in
    tenant file ``db``: ``delegated_scopes`` read from the ACL graph."""
    if principal.account_id is None:
        raise ValueError("principal: an agent acts for an account; this principal has none")
    return CallContext(principal, request_id=request_id,
                       key_scopes=None if key_scopes is None else frozenset(key_scopes),
                       agent_id=agent_id,
                       delegated_scopes=delegated_scopes(db, principal.account_id, agent_id))
