"""Who is calling: :class:`CallContext`, the scope rules every call is
checked against, and :class:`AccessView`, the part of a context a
statement's access predicate depends on (docs/0024-access-in-sql.md).

Scopes are strings such as ``graphs:read``, ``nodes:write``, ``*``,
``graphs:*``, ``project:<id>`` and ``secrets:read``. A call can be
limited by up to two scope sets, and must satisfy every one of them:

* ``key_scopes``: the API key's scopes (None: not an API-key call, no limit);
* ``delegated_scopes``: when an agent acts for the principal
  (``agent_id`` set), the scopes of the ACL graph's delegation: the agent
  gets the intersection of what the key and the delegation allow (an agent
  without a delegation gets nothing).

``project:<id>`` entries restrict graph rows (and their nodes and edges) to
those projects; a set without any ``project:`` entry does not restrict
projects. Secret attributes are decrypted only when ``secrets:read`` is
granted explicitly (by the principal's own scopes or the key's) and every
limiting set allows it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from alkdev_storage.domain.principal import Principal

__all__ = ["AccessView", "CallContext", "allows"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


def allows(scopes: frozenset[str] | None, needed: str) -> bool:
    """Whether a scope set grants ``needed`` (``resource:action``): None
    grants everything; else ``needed`` itself, ``*`` or ``resource:*``."""
    if scopes is None:
        return True
    if needed in scopes or "*" in scopes:
        return True
    resource = needed.split(":", 1)[0]
    return f"{resource}:*" in scopes


@dataclass(frozen=True)
class CallContext:
    """The caller of an operation (immutable; the contract shared with the
    tenancy layer, COMMON10.md).

    ``principal``: who acts (:class:`~alkdev_storage.domain.Principal`).
    ``request_id``: the request (written into every event; a repeated one
    makes a mutation idempotent). ``memberships``: org id -> membership
    level (informational; the system kind's rules read the memberships
    table itself). ``key_scopes``: the API key's scopes (None: not an
    API-key call). ``agent_id``: the agent acting for the principal, when
    delegated. ``delegated_scopes``: the delegation's scopes (from the ACL
    graph's ``delegates_to`` edges) when acting as an agent."""

    principal: Principal
    request_id: str | None = None
    memberships: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    key_scopes: frozenset[str] | None = None
    agent_id: str | None = None
    delegated_scopes: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.principal, Principal):
            raise TypeError(f"principal must be a Principal, not {type(self.principal).__name__}")
        if self.request_id is not None and (
                not isinstance(self.request_id, str) or not 0 < len(self.request_id) <= 128):
            raise ValueError("request_id: expected a string of 1 to 128 characters or None")
        for name in ("key_scopes", "delegated_scopes"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str):
                    raise ValueError(f"{name}: expected a set of scope strings, not a string")
                object.__setattr__(self, name, frozenset(value))
        object.__setattr__(self, "memberships", MappingProxyType(dict(self.memberships)))

    @classmethod
    def system(cls, request_id: str | None = None) -> CallContext:
        """The package itself (no limits)."""
        return cls(Principal.system(), request_id=request_id)

    def with_request(self, request_id: str | None) -> CallContext:
        """This context with another ``request_id``."""
        return CallContext(self.principal, request_id, self.memberships, self.key_scopes,
                           self.agent_id, self.delegated_scopes)

    def limits(self) -> tuple[frozenset[str], ...]:
        """The scope sets the call must satisfy (empty: unlimited)."""
        out: list[frozenset[str]] = []
        if self.key_scopes is not None:
            out.append(self.key_scopes)
        if self.agent_id is not None or self.delegated_scopes is not None:
            out.append(self.delegated_scopes or frozenset())
        return tuple(out)

    def allows(self, needed: str) -> bool:
        """Whether every limiting scope set grants ``needed``."""
        return all(allows(s, needed) for s in self.limits())

    def projects(self) -> frozenset[str] | None:
        """The projects the call is limited to (None: any project)."""
        result: frozenset[str] | None = None
        for s in self.limits():
            if "*" in s or "project:*" in s:
                continue
            mine = frozenset(x[8:] for x in s if x.startswith("project:"))
            if mine:
                result = mine if result is None else result & mine
        return result

    def may_decrypt(self) -> bool:
        """Whether secret attributes may be returned decrypted."""
        if self.principal.is_system and not self.limits():
            return True
        granted = ("secrets:read" in self.principal.scopes
                   or (self.key_scopes is not None and allows(self.key_scopes, "secrets:read")))
        return granted and self.allows("secrets:read")

    @property
    def actor_id(self) -> str | None:
        """Who to name in audit records: the agent, else the account."""
        return self.agent_id or self.principal.account_id


@dataclass(frozen=True)
class AccessView:
    """What an access predicate depends on. ``shape`` fixes the structure
    of the SQL (statements are compiled once per spec and shape);
    ``params`` are the values bound into it (``acl_me``, ``acl_org``,
    ``acl_projects`` as a JSON array)."""

    kind: str
    manager: bool
    writer: bool
    restricted: bool
    params: Mapping[str, Any]
    shape: tuple[str, bool, bool, bool] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", (self.kind, self.manager, self.writer,
                                           self.restricted))

    @classmethod
    def of(cls, ctx: CallContext) -> AccessView:
        p = ctx.principal
        projects = ctx.projects()
        return cls(
            kind=p.kind,
            manager=p.manages_tenant,
            writer=p.can_write,
            restricted=projects is not None,
            params={
                "acl_me": p.account_id or "",
                "acl_org": p.org_id or "",
                "acl_projects": json.dumps(sorted(projects or ())),
            },
        )
