"""The built-in ACL graph (``acl-graph``): principals (accounts, teams,
the org, services), agents acting for them, roles and resources;
``member_of`` (membership in a team, org or role), ``delegates_to`` (a
principal lets an agent or another principal act for it, limited to
``scopes`` and until ``expires_at``) and ``grants`` (a principal, agent or
role holds ``permission`` on a resource).

Registered as a system-scope graph type in every tenant file
(:func:`alkdev_storage.domain.graphs.init_tenant`); the ACL evaluator (the
``acl-evaluation`` queue) reads it. Change it only with a new version.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, field_validator

from alkdev_storage.domain.modules import Attributes, EdgeType, GraphTypeModule, NodeType

__all__ = [
    "ACL_GRAPH",
    "AgentAttributes",
    "DelegatesToAttributes",
    "GrantsAttributes",
    "MemberOfAttributes",
    "PrincipalAttributes",
    "ResourceAttributes",
    "RoleAttributes",
    "Scope",
]

Scope = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.:*-]*$", max_length=128)]
"""A scope or permission name: ``graphs:read``, ``secrets:*``..."""
Name = Annotated[str, Field(min_length=1, max_length=200)]


class PrincipalAttributes(Attributes):
    """Someone who can hold permissions: an account, a team, the
    organization itself or a service account."""

    kind: Literal["account", "team", "org", "service"]
    account_id: str | None = None
    org_id: str | None = None
    display_name: Annotated[str, Field(max_length=200)] | None = None


class AgentAttributes(Attributes):
    """An agent (an automated actor) that acts for principals through
    delegation."""

    name: Name
    account_id: str | None = None
    description: str | None = None


class RoleAttributes(Attributes):
    """A named bundle of grants principals and agents can be members of."""

    name: Name
    description: str | None = None


class ResourceAttributes(Attributes):
    """Something permissions are granted on: ``kind`` (``graph``,
    ``graph_type``, ``operation``, ``secret``...) and ``ref`` (its id, or a
    pattern such as ``*``)."""

    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    ref: Annotated[str, Field(min_length=1, max_length=512)]
    description: str | None = None


class MemberOfAttributes(Attributes):
    """Membership; ``level`` as in organization memberships, when it
    applies."""

    level: Literal["owner", "admin", "member", "viewer"] | None = None


class DelegatesToAttributes(Attributes):
    """The source lets the target act for it within ``scopes`` (at least
    one, no duplicates) until ``expires_at`` (never when None)."""

    scopes: Annotated[list[Scope], Field(min_length=1)]
    expires_at: AwareDatetime | None = None
    reason: str | None = None

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[str]) -> list[str]:
        """Refuses repeated scopes; stores them sorted (they are a set)."""
        if len(set(scopes)) != len(scopes):
            raise ValueError("scopes must not repeat")
        return sorted(scopes)


class GrantsAttributes(Attributes):
    """The source holds ``permission`` on the target resource, until
    ``expires_at`` (never when None)."""

    permission: Scope
    expires_at: AwareDatetime | None = None


_HOLDERS = ("principal", "agent", "role")

ACL_GRAPH = GraphTypeModule(
    name="acl-graph",
    version="1.0.0",
    description="Principals, agents, roles and resources; delegation and grants.",
    admin_writes=True,
    node_types=(
        NodeType("principal", PrincipalAttributes, "an account, team, org or service"),
        NodeType("agent", AgentAttributes, "an automated actor"),
        NodeType("role", RoleAttributes, "a named bundle of grants"),
        NodeType("resource", ResourceAttributes, "something permissions are granted on"),
    ),
    edge_types=(
        EdgeType("member_of", MemberOfAttributes, "membership in a team, org or role"),
        EdgeType("delegates_to", DelegatesToAttributes, "act for the source within scopes"),
        EdgeType("grants", GrantsAttributes, "the source holds a permission on a resource"),
    ),
    triples=frozenset({
        ("principal", "member_of", "principal"),
        ("principal", "member_of", "role"),
        ("agent", "member_of", "role"),
        ("principal", "delegates_to", "agent"),
        ("principal", "delegates_to", "principal"),
        ("agent", "delegates_to", "agent"),
        *((holder, "grants", "resource") for holder in _HOLDERS),
    }),
)
"""The ACL graph module, version 1.0.0."""
