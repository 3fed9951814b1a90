"""What a mutation writes besides its rows, in the same transaction
(docs/0023-operation-specs.md, "Events" and "Idempotency"):

* its catalogued events (:func:`notify`: ``graph:created``,
  ``account:created``, ...; validated by the catalog's payload models,
  with the call's request id);
* an audit record (:func:`audit`): the system file's ``audit-events``
  stream (:class:`~alkdev_storage.domain.catalog.AuditEvent`) or the tenant
  file's ``call-protocol`` stream (a ``call.responded`` event);
* with a request id, the call's result in ``operation_requests``
  (:func:`remember`); :func:`replay` returns it for a repeated request id
  (and refuses a request id reused for another call).

Everything goes through the native Transaction of the call, so it commits
with the write or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from alkdev_storage.domain import catalog
from alkdev_storage.errors import ValidationFailed
from alkdev_storage.operations.context import CallContext
from alkdev_storage.operations.spec import Invocation, OperationSpec
from alkdev_storage.schema.types import new_id

__all__ = ["audit", "fingerprint", "notify", "remember", "replay"]

_MISSING = object()
_SELECT = "SELECT op_id, fingerprint, result FROM operation_requests WHERE request_id = ?"
_INSERT = ("INSERT INTO operation_requests (request_id, op_id, fingerprint, result) "
           "VALUES (?, ?, ?, ?)")


def fingerprint(spec: OperationSpec, data: BaseModel, ctx: CallContext) -> str:
    """A digest of the operation, its validated input and the caller."""
    p = ctx.principal
    text = json.dumps([spec.id, data.model_dump(mode="json"), p.kind, p.account_id, p.org_id,
                       ctx.agent_id], separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def replay(session: Any, spec: OperationSpec, ctx: CallContext, digest: str) -> Any:
    """The stored result of ``ctx.request_id``, or the module's ``_MISSING``
    marker (see :func:`is_missing`) when it is new; ``ValidationFailed`` on
    ``request_id`` when it was used for another call."""
    row = session.fetchone(_SELECT, (ctx.request_id,))
    if row is None:
        return _MISSING
    op_id, stored, result = row
    if op_id != spec.id or stored != digest:
        msg = (f"request id {ctx.request_id!r} was already used for another call "
               f"({op_id}); use a new request id for a new call")
        raise ValidationFailed(f"request_id: {msg}", [{"loc": ("request_id",), "msg": msg,
                                                       "type": "request_id_reused"}],
                               "request_id")
    return json.loads(result)


def is_missing(value: Any) -> bool:
    """Whether :func:`replay` found nothing."""
    return value is _MISSING


def remember(session: Any, spec: OperationSpec, ctx: CallContext, digest: str,
             result: Any) -> None:
    """Store the result of ``ctx.request_id`` (in the call's transaction)."""
    session.execute(_INSERT, (ctx.request_id, spec.id, digest,
                              json.dumps(result, separators=(",", ":"), default=str)))


def notify(inv: Invocation, channel: catalog.Channel[Any], payload: Mapping[str, Any]) -> None:
    """Publish a catalogued notification in the call's transaction, with
    its request id."""
    catalog.notify(inv.session, channel, {**payload, "request_id": inv.ctx.request_id})


def audit(inv: Invocation, action: str, target_type: str, target_id: str | None,
          details: Mapping[str, Any] | None = None, graph_id: str | None = None) -> None:
    """The audit record of a mutation: ``audit-events`` (system file) or
    ``call-protocol`` (tenant file), in the call's transaction."""
    ctx = inv.ctx
    p = ctx.principal
    data = dict(details or {})
    streams = inv.services.streams
    if inv.services.kind == "system":
        event = catalog.AuditEvent(action=action, actor_id=ctx.actor_id, org_id=p.org_id,
                                   target_type=target_type, target_id=target_id,
                                   details=data, request_id=ctx.request_id)
        streams("audit-events").publish(event.model_dump(mode="json"), key=target_id,
                                        tx=inv.session)
        return
    data.update({"target_type": target_type, "target_id": target_id,
                 "actor_id": ctx.actor_id})
    call = catalog.CallProtocolEvent(type="call.responded", call_id=ctx.request_id or new_id(),
                                     operation_id=action, graph_id=graph_id, data=data,
                                     request_id=ctx.request_id)
    streams("call-protocol").publish(call.model_dump(mode="json"), key=graph_id,
                                     tx=inv.session)
