"""What authentication gives and what a session is (docs/0026-api-keys.md).

* :class:`Identity`: the result of ``hub.authenticate(key)``: the account,
  its organizations and levels, the key's scopes and the org it is limited
  to, if any. Not tied to an organization yet.
* :class:`TenantSession`: ``hub.session(identity, org_id)`` once the
  membership and (for an agent) the ACL graph's delegation were checked:
  the tenant :attr:`~TenantSession.db` (leased: closing the session ends
  the lease), the domain :class:`~alkdev_storage.domain.Principal` and the
  operation :attr:`~TenantSession.context` (the operations layer's
  :class:`~alkdev_storage.operations.CallContext`), and :meth:`call`
  through the tenant :class:`~alkdev_storage.operations.Dispatcher`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any

from alkdev_storage.domain import GraphStore, Principal
from alkdev_storage.operations import CallContext, Dispatcher
from alkdev_storage.tenancy.guard import TenantDatabase
from alkdev_storage.tenancy.handles import Lease

__all__ = ["Identity", "TenantSession"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Identity:
    """An authenticated account (from ``hub.authenticate``).

    ``account_id``; ``key_id`` (None when not from an API key);
    ``memberships``: org id -> level of the orgs the account belongs to
    (restricted to the key's org for an org-scoped key); ``scopes``: the
    key's scopes (None: not an API-key identity, no scope limit);
    ``key_org_id``: the org an org-scoped key is limited to. ``issuer``:
    the hub that authenticated it (``hub.session`` refuses an Identity it
    did not issue, so one built from request data is worthless)."""

    account_id: str
    key_id: str | None = None
    memberships: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    scopes: frozenset[str] | None = None
    key_org_id: str | None = None
    issuer: object = field(default=None, repr=False, compare=False)

    def level(self, org_id: str) -> str | None:
        """The membership level in ``org_id`` (None: not a member)."""
        return self.memberships.get(org_id)


class TenantSession:
    """An authorised session in one tenant (see the module docstring).
    Use it as a context manager or call :meth:`close` (ends the handle
    lease; the Database stays cached for others)."""

    def __init__(self, lease: Lease, org_id: str, principal: Principal, context: CallContext,
                 identity: Identity | None) -> None:
        self._lease = lease
        self.org_id = org_id
        self.principal = principal
        self.context = context
        self.identity = identity
        self._dispatcher: Dispatcher | None = None

    @property
    def db(self) -> TenantDatabase:
        """The tenant's Database (guarded, see
        :class:`~alkdev_storage.tenancy.guard.TenantDatabase`)."""
        return self._lease.db

    def graphs(self, **options: Any) -> GraphStore:
        """A :class:`~alkdev_storage.domain.GraphStore` on this tenant for
        the session's principal (``options``: ``sealer``, ``on_change``).
        Close it when done."""
        return GraphStore(self.db, self.org_id, self.principal, **options)

    def call(self, op_id: str, input: Any, request_id: str | None = None) -> Any:
        """Run operation ``op_id`` through the tenant
        :class:`~alkdev_storage.operations.Dispatcher` with this session's
        context (``request_id`` makes a mutation idempotent)."""
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(self.db, "tenant", org_id=self.org_id)
        ctx = self.context
        if request_id is not None:
            ctx = dataclasses.replace(ctx, request_id=request_id)
        return self._dispatcher.call(op_id, input, ctx)

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._lease.released

    def close(self) -> None:
        """End the session (idempotent)."""
        self._lease.release()

    def __enter__(self) -> TenantSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TenantSession org={self.org_id} principal={self.principal.kind}>"
