"""Cross-tenant delegation (OQ-28; docs/0027-migrations-across-tenants.md).

A principal of org A delegates to an account of org B:

1. **In A, one transaction**: the ``delegates_to`` edge in A's ACL graph
   (from A's account principal node ``account:<id>`` to a node for the
   remote account ``account:<B>:<id>``, ``org_id`` = B) *and* an outbox job
   on A's ``hub-relay`` queue (honker queue: at-least-once, retried,
   survives crashes). Both or neither.
2. **Relay** (:meth:`Relay.run_once`): claims A's jobs and applies each in
   B in one transaction: the mirror edge in B's ACL graph (from
   ``account:<A>:<id>`` to B's ``account:<id>``; ``reason`` =
   ``cross-tenant:<A>:<A's edge id>``) *and* a ``relay_receipts`` row
   whose primary key is the dedupe key (``grant:<edge id>`` /
   ``revoke:<edge id>``). A job delivered twice finds its receipt and
   changes nothing. The job is acked in A after B commits; a crash in
   between redelivers it (deduped).
3. **Reconciliation** (:meth:`Relay.reconcile`): walks the registry's
   tenants, computes the mirror edges every B should have from every A's
   cross-tenant edges, and repairs B (adds missing mirrors, fixes scopes,
   removes mirrors whose source edge is gone). Covers jobs lost to a
   claim held by a killed relay until its claim expires, and manual
   edits.

Revocation is the same path with ``op = "revoke"``. A kill at any point
converges after the relay and one reconciliation (tested by killing a
child at random moments).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from alkdev_storage.domain import GraphStore, Principal
from alkdev_storage.errors import NotFound, ScopeViolation, ValidationFailed
from alkdev_storage.schema import RelayReceipt
from alkdev_storage.sqlalchemy import honker_tx
from alkdev_storage.tenancy.paths import check_id

if TYPE_CHECKING:
    from alkdev_storage.tenancy.hub import Hub

__all__ = ["ACL_GRAPH_NAME", "RELAY_QUEUE", "CrossDelegation", "Relay"]

RELAY_QUEUE = "hub-relay"
"""The per-tenant outbox queue of cross-tenant changes (hub-internal)."""

ACL_GRAPH_NAME = "acl"
"""Name of the ACL graph the hub writes delegations into."""

_REASON = "cross-tenant:"
R: sa.Table = cast(sa.Table, RelayReceipt.__table__)


@dataclass(frozen=True)
class CrossDelegation:
    """A cross-tenant delegation as A stores it."""

    key: str
    source_org: str
    target_org: str
    from_account: str
    to_account: str
    scopes: tuple[str, ...]
    expires_at: str | None


def _local(account_id: str) -> str:
    return f"account:{account_id}"


def _remote(org_id: str, account_id: str) -> str:
    return f"account:{org_id}:{account_id}"


class Relay:
    """The hub's cross-tenant relay (``hub.relay``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.worker_id = f"hub-relay-{os.getpid()}"

    # -- helpers -------------------------------------------------------------------

    @contextlib.contextmanager
    def _store(self, org_id: str) -> Iterator[GraphStore]:
        with self._hub.tenant(org_id) as db, GraphStore(db, org_id, Principal.system()) as store:
            yield store

    @staticmethod
    def _acl_graph(store: GraphStore) -> str:
        for g in store.list_graphs():
            if g.name == ACL_GRAPH_NAME and g.status == "active":
                gt = store.get_graph_type(g.graph_type_id)
                if gt.name == "acl-graph":
                    return g.id
        return store.create_graph("acl-graph", ACL_GRAPH_NAME).id

    @staticmethod
    def _principal(store: GraphStore, graph_id: str, key: str, account_id: str,
                   org_id: str | None) -> None:
        try:
            store.get_node(graph_id, key)
        except NotFound:
            store.add_node(graph_id, key, "principal",
                           {"kind": "account", "account_id": account_id, "org_id": org_id})

    # -- grant and revoke in A -------------------------------------------------------

    def delegate(self, from_account: str, source_org: str, to_account: str, target_org: str,
                 scopes: Iterable[str], *, expires_at: datetime | None = None,
                 deliver: bool = True) -> str:
        """Delegate ``scopes`` from ``from_account`` (member of
        ``source_org``) to ``to_account`` (member of ``target_org``).
        Writes A's edge and the outbox job in one transaction, then (with
        ``deliver``) relays it at once. Returns A's edge id (the
        delegation's key)."""
        for v, f in ((from_account, "from_account"), (to_account, "to_account")):
            check_id(v, f)
        check_id(source_org, "source_org")
        check_id(target_org, "target_org")
        if source_org == target_org:
            raise ValidationFailed(
                "target_org: must differ from source_org (use the ACL graph directly)",
                errors=[{"loc": ("target_org",), "msg": "same org", "type": "value_error"}],
                field="target_org")
        auth = self._hub.auth
        if auth.membership_level(from_account, source_org) is None or \
                auth.membership_level(to_account, target_org) is None:
            raise ScopeViolation("both accounts must be members of their organizations")
        scope_list = sorted(set(scopes))
        with self._store(source_org) as store, store.transaction() as conn:
            g = self._acl_graph(store)
            self._principal(store, g, _local(from_account), from_account, source_org)
            self._principal(store, g, _remote(target_org, to_account), to_account, target_org)
            attrs: dict[str, Any] = {"scopes": scope_list, "expires_at": expires_at,
                                     "reason": f"cross-tenant delegation to {target_org}"}
            edge = store.add_edge(g, "delegates_to", _local(from_account),
                                  _remote(target_org, to_account), attrs)
            job = {"op": "grant", "key": edge.id, "source_org": source_org,
                   "target_org": target_org, "from_account": from_account,
                   "to_account": to_account, "scopes": scope_list,
                   "expires_at": None if expires_at is None else
                   edge.attributes.get("expires_at")}
            store.db.queue(RELAY_QUEUE).enqueue(job, tx=honker_tx(conn))
        if deliver:
            self.run_once([source_org])
        return str(edge.id)

    def revoke(self, source_org: str, key: str, *, deliver: bool = True) -> None:
        """Revoke the cross-tenant delegation ``key`` of ``source_org``
        (deletes A's edge and queues the revocation, in one transaction)."""
        check_id(source_org, "source_org")
        with self._store(source_org) as store, store.transaction() as conn:
            edge = store.get_edge(key)
            target = store.get_node(edge.graph_id, edge.target_id)
            target_org = target.attributes.get("org_id")
            if target_org in (None, source_org):
                raise NotFound(f"{key} is not a cross-tenant delegation")
            store.delete_edge(key)
            store.db.queue(RELAY_QUEUE).enqueue(
                {"op": "revoke", "key": key, "source_org": source_org,
                 "target_org": target_org}, tx=honker_tx(conn))
        if deliver:
            self.run_once([source_org])

    # -- apply in B ---------------------------------------------------------------------

    def apply(self, job: dict[str, Any], *, force: bool = False) -> str:
        """Apply one relay job in its target tenant; idempotent by its
        dedupe key (``force``: repair even if the receipt exists, for
        reconciliation). Returns ``"applied"``, ``"duplicate"`` or
        ``"gone"`` (the target tenant no longer exists)."""
        target, source, key, op = (job["target_org"], job["source_org"], job["key"], job["op"])
        dedupe = f"{op}:{key}"
        reason = f"{_REASON}{source}:{key}"
        try:
            cm = self._store(target)
            store = cm.__enter__()
        except NotFound:
            return "gone"
        try:
            with store.transaction() as conn:
                seen = conn.execute(sa.select(R.c.dedupe_key)
                                    .where(R.c.dedupe_key == dedupe)).first()
                if seen is not None and not force:
                    return "duplicate"
                g = self._acl_graph(store)
                mirrors = [e for e in store.list_edges(g, type="delegates_to")
                           if e.attributes.get("reason") == reason]
                if op == "grant":
                    src = _remote(source, job["from_account"])
                    dst = _local(job["to_account"])
                    self._principal(store, g, src, job["from_account"], source)
                    self._principal(store, g, dst, job["to_account"], target)
                    attrs = {"scopes": job["scopes"], "expires_at": job.get("expires_at"),
                             "reason": reason}
                    if mirrors:
                        store.update_edge(mirrors[0].id, attrs)
                        for extra in mirrors[1:]:
                            store.delete_edge(extra.id)
                    else:
                        store.add_edge(g, "delegates_to", src, dst, attrs)
                else:
                    for m in mirrors:
                        store.delete_edge(m.id)
                if seen is None:
                    conn.execute(sa.insert(R).values(dedupe_key=dedupe, source_org_id=source,
                                                     kind=op))
            return "applied"
        finally:
            cm.__exit__(None, None, None)

    def run_once(self, orgs: Iterable[str] | None = None, *, batch: int = 64) -> int:
        """Deliver the pending relay jobs of ``orgs`` (default: every ready
        tenant of the registry). Returns the jobs delivered."""
        if orgs is None:
            orgs = [t["org_id"] for t in self._hub.tenants("ready")]
        delivered = 0
        for org in orgs:
            while True:
                with self._hub.tenant(org) as db:
                    q = db.queue(RELAY_QUEUE)
                    jobs = q.claim_batch(self.worker_id, batch)
                    if not jobs:
                        break
                    for job in jobs:
                        try:
                            self.apply(job.payload)
                        except Exception as e:
                            job.retry(delay_s=5, error=f"{type(e).__name__}: {e}"[:500])
                            continue
                        job.ack()
                        delivered += 1
                if len(jobs) < batch:
                    break
        return delivered

    # -- reconciliation --------------------------------------------------------------------

    def cross_delegations(self, org_id: str) -> list[CrossDelegation]:
        """The cross-tenant delegations org ``org_id`` grants (from its ACL
        graph)."""
        out: list[CrossDelegation] = []
        with self._store(org_id) as store:
            g = self._acl_graph(store)
            nodes = {n.id: n for n in store.list_nodes(g, type="principal")}
            for e in store.list_edges(g, type="delegates_to"):
                s, t = nodes.get(e.source_id), nodes.get(e.target_id)
                if s is None or t is None:
                    continue
                target_org = t.attributes.get("org_id")
                if target_org in (None, org_id):
                    continue
                out.append(CrossDelegation(
                    key=e.id, source_org=org_id, target_org=target_org,
                    from_account=s.attributes["account_id"],
                    to_account=t.attributes["account_id"],
                    scopes=tuple(e.attributes["scopes"]),
                    expires_at=e.attributes.get("expires_at")))
        return out

    def mirrors(self, org_id: str) -> dict[str, tuple[tuple[str, ...], str]]:
        """The mirror edges in ``org_id``: ``{"<A>:<key>": (scopes, edge id)}``."""
        out: dict[str, tuple[tuple[str, ...], str]] = {}
        with self._store(org_id) as store:
            g = self._acl_graph(store)
            for e in store.list_edges(g, type="delegates_to"):
                reason = e.attributes.get("reason") or ""
                if reason.startswith(_REASON):
                    out[reason[len(_REASON):]] = (tuple(e.attributes["scopes"]), e.id)
        return out

    def reconcile(self) -> dict[str, int]:
        """Repair every tenant's mirror edges from the source tenants'
        delegations (see the module docstring). Returns counts
        ``added``, ``updated``, ``removed``."""
        orgs = [t["org_id"] for t in self._hub.tenants("ready")]
        expected: dict[str, dict[str, CrossDelegation]] = {o: {} for o in orgs}
        for a in orgs:
            for d in self.cross_delegations(a):
                if d.target_org in expected:
                    expected[d.target_org][f"{a}:{d.key}"] = d
        counts = {"added": 0, "updated": 0, "removed": 0}
        for b in orgs:
            have = self.mirrors(b)
            want = expected[b]
            for ref, d in want.items():
                if ref in have and have[ref][0] == d.scopes:
                    continue
                counts["updated" if ref in have else "added"] += 1
                self.apply({"op": "grant", "key": d.key, "source_org": d.source_org,
                            "target_org": b, "from_account": d.from_account,
                            "to_account": d.to_account, "scopes": list(d.scopes),
                            "expires_at": d.expires_at}, force=True)
            for ref in have.keys() - want.keys():
                source, key = ref.split(":", 1)
                counts["removed"] += 1
                self.apply({"op": "revoke", "key": key, "source_org": source,
                            "target_org": b}, force=True)
        return counts
