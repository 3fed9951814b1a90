"""Who is acting: the :class:`Principal` every domain write is checked
against (docs/0018-graph-type-modules.md).

Three kinds:

* ``"system"``: the package itself (tenant creation, built-in graph types,
  maintenance jobs). The only kind that may register, change or delete
  system-scope graph types; sees everything.
* ``"tenant"``: acting for an organization as a whole (an administrator's
  tool, the hub on the org's behalf). Manages the org's tenant-scope graph
  types; does not see users' private (user-scope) types.
* ``"user"``: an account acting in an organization with a membership
  ``level`` (``owner``, ``admin``, ``member``, ``viewer``). Owners and
  admins manage tenant-scope types; every level but ``viewer`` may
  register and manage its own user-scope types and write graphs;
  ``viewer`` only reads.

``scopes`` (API-key scopes) and ``agent_id`` (an agent acting for the
account) are carried for the layers above (operations, ACL evaluation);
the graph store does not interpret them yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = ["LEVELS", "Level", "Principal", "PrincipalKind"]

PrincipalKind = Literal["system", "tenant", "user"]
Level = Literal["owner", "admin", "member", "viewer"]
LEVELS: tuple[Level, ...] = get_args(Level)
"""Membership levels, most powerful first."""

_KINDS: tuple[str, ...] = get_args(PrincipalKind)


@dataclass(frozen=True)
class Principal:
    """Who is acting (immutable, hashable).

    ``kind``: ``"system"``, ``"tenant"`` or ``"user"``; ``account_id``:
    the account acting (required for ``"user"``); ``org_id``: the
    organization acted in (required for ``"tenant"`` and ``"user"``);
    ``level``: the account's membership level in the org (required for
    ``"user"``); ``scopes``: granted scopes (e.g. an API key's);
    ``agent_id``: the agent acting for the account, if any. Use the
    constructors :meth:`system`, :meth:`tenant_admin` and :meth:`user`.
    Construction raises ``ValueError`` naming the missing or bad field."""

    kind: PrincipalKind
    account_id: str | None = None
    org_id: str | None = None
    level: Level | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    agent_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {', '.join(_KINDS)}")
        if self.level is not None and self.level not in LEVELS:
            raise ValueError(f"level: {self.level!r} is not one of {', '.join(LEVELS)}")
        for name in ("account_id", "org_id", "agent_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name}: expected a non-empty string or None, got {value!r}")
        if self.kind in ("tenant", "user") and self.org_id is None:
            raise ValueError(f"org_id: a {self.kind} principal needs the org it acts in")
        if self.kind == "user":
            if self.account_id is None:
                raise ValueError("account_id: a user principal needs its account")
            if self.level is None:
                raise ValueError("level: a user principal needs its membership level")
        if isinstance(self.scopes, str) or not isinstance(self.scopes, Iterable):
            raise ValueError(f"scopes: expected an iterable of strings, got {self.scopes!r}")
        object.__setattr__(self, "scopes", frozenset(self.scopes))

    @classmethod
    def system(cls) -> Principal:
        """The package itself: may do anything, including changing
        system-scope graph types."""
        return cls("system")

    @classmethod
    def tenant_admin(cls, org_id: str, account_id: str | None = None,
                     scopes: Iterable[str] = ()) -> Principal:
        """Acting for organization ``org_id`` as a whole (optionally on
        behalf of ``account_id``, e.g. for auditing)."""
        return cls("tenant", account_id=account_id, org_id=org_id, scopes=frozenset(scopes))

    @classmethod
    def user(cls, account_id: str, org_id: str, level: Level = "member",
             scopes: Iterable[str] = (), agent_id: str | None = None) -> Principal:
        """Account ``account_id`` acting in org ``org_id`` with membership
        ``level``."""
        return cls("user", account_id=account_id, org_id=org_id, level=level,
                   scopes=frozenset(scopes), agent_id=agent_id)

    @property
    def is_system(self) -> bool:
        """True for the system principal."""
        return self.kind == "system"

    @property
    def manages_tenant(self) -> bool:
        """May register, change and delete the org's tenant-scope graph
        types: the system, a tenant principal, a user of level owner or
        admin."""
        return self.kind in ("system", "tenant") or self.level in ("owner", "admin")

    @property
    def can_write(self) -> bool:
        """May write at all (every principal but a ``viewer`` user)."""
        return self.kind != "user" or self.level != "viewer"
