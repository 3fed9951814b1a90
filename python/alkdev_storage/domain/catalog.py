"""The event catalog (DESIGN.md "Event catalog"): every channel, stream and
queue of the system and tenant databases as a typed constant with a
pydantic payload model, so publishers and listeners share one definition
and a payload that does not match is refused before anything is written.

    >>> with db.transaction() as tx:
    ...     tx.execute(...)                                  # the write
    ...     notify(tx, GRAPH_CREATED, {"graph_id": g, "graph_type_id": t})
    >>> for n in db.listen(GRAPH_CREATED.name, timeout=1):
    ...     event = parse(GRAPH_CREATED, n)                  # a GraphCreated

Payloads (docs/0019-event-catalog.md): snake_case fields, ids as str,
``request_id`` (optional, the request that caused the event) and
``occurred_at`` (aware UTC datetime, now by default) on every model,
unknown fields refused (``extra="forbid"``), models frozen. On the wire a
payload is ``model.model_dump(mode="json")``: datetimes as ISO 8601 text.

Helpers validate first and write second: :func:`notify`, :func:`publish`
and :func:`enqueue` raise :class:`~alkdev_storage.errors.ValidationFailed`
(``.field`` names the field) and write nothing when the payload does not
match. They accept a SQLAlchemy ``Session``/``Connection`` inside a
transaction too (the write then commits with the ORM's). When the file's
name tells its kind (``system.db``, ``tenant-<org>.db``, the hub's names)
a definition of the other kind is refused with ``ValueError``.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue
from sqlalchemy.orm import Session

from alkdev_storage.database import Database
from alkdev_storage.domain.models import validate
from alkdev_storage.errors import ValidationFailed
from alkdev_storage.primitives import Event, Job, Notification
from alkdev_storage.sqlalchemy import honker_database, honker_tx

__all__ = [
    "ACCOUNT_CREATED",
    "ACCOUNT_MAINTENANCE",
    "ACCOUNT_UPDATED",
    "ACL_DELEGATION_CHANGED",
    "ACL_EVALUATION",
    "AUDIT_EVENTS",
    "AUTH_KEY_VERIFIED",
    "CALL_PROTOCOL",
    "CATALOG",
    "GRAPH_CREATED",
    "GRAPH_MAINTENANCE",
    "GRAPH_UPDATED",
    "KEY_MANAGEMENT",
    "NODES_CREATED",
    "ORG_CREATED",
    "ORG_MEMBER_ADDED",
    "SCHEMA_MIGRATION",
    "SECRET_ROTATION",
    "SESSION_EVENTS",
    "AccountCreated",
    "AccountMaintenanceJob",
    "AccountUpdated",
    "AclDelegationChanged",
    "AclEvaluationJob",
    "AuditEvent",
    "AuthKeyVerified",
    "CallProtocolEvent",
    "Channel",
    "DatabaseKind",
    "Definition",
    "EventPayload",
    "GraphCreated",
    "GraphMaintenanceJob",
    "GraphUpdated",
    "KeyManagementJob",
    "NodesCreated",
    "OrgCreated",
    "OrgMemberAdded",
    "QueueDef",
    "SchemaMigrationJob",
    "SecretRotationJob",
    "SessionEvent",
    "StreamDef",
    "database_kind",
    "definition",
    "enqueue",
    "notify",
    "parse",
    "publish",
]

DatabaseKind = Literal["system", "tenant"]

P = TypeVar("P", bound=BaseModel)

Id = Annotated[str, Field(min_length=1, max_length=128)]
"""An id (a ULID for rows of ours; other ids such as API key ids too)."""

FieldName = Annotated[str, Field(min_length=1, max_length=128)]


def _utcnow() -> _dt.datetime:
    now = _dt.datetime.now(_dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# ---------------------------------------------------------------------
# Payload models
# ---------------------------------------------------------------------


class EventPayload(BaseModel):
    """Base of every catalog payload: ``request_id`` (the request that
    caused it, when known) and ``occurred_at`` (aware, UTC, milliseconds;
    now by default). Unknown fields are refused; instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    request_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    occurred_at: AwareDatetime = Field(default_factory=_utcnow)


# system.db channels


class AccountCreated(EventPayload):
    """``account:created``: a new account."""

    account_id: Id
    email: Annotated[str, Field(min_length=3, max_length=320)]
    access_level: Literal["user", "admin"]


class AccountUpdated(EventPayload):
    """``account:updated``: the names of the changed columns (listeners
    read the row for the new values; payloads stay small)."""

    account_id: Id
    changes: Annotated[list[FieldName], Field(min_length=1)]


class OrgCreated(EventPayload):
    """``org:created``: a new organization."""

    org_id: Id
    slug: Annotated[str, Field(min_length=3, max_length=63)]
    owner_id: Id


class OrgMemberAdded(EventPayload):
    """``org:member_added``: an account joined an organization."""

    org_id: Id
    account_id: Id
    membership_level: Literal["owner", "admin", "member", "viewer"]


class AuthKeyVerified(EventPayload):
    """``auth:key_verified``: an API key was verified (never the key)."""

    key_id: Id
    owner_id: Id
    org_id: Id | None = None


# system.db stream


class AuditEvent(EventPayload):
    """One entry of the ``audit-events`` stream (append-only audit trail):
    who (``actor_id``) did what (``action``, e.g. ``"account.suspend"``) to
    which object, with what outcome."""

    action: Annotated[str, Field(min_length=1, max_length=128)]
    actor_id: Id | None = None
    org_id: Id | None = None
    target_type: Annotated[str, Field(min_length=1, max_length=64)]
    target_id: Id | None = None
    outcome: Literal["success", "denied", "error"] = "success"
    details: dict[str, JsonValue] = Field(default_factory=dict)


# system.db queues


class KeyManagementJob(EventPayload):
    """A ``key-management`` job: rotate or revoke one API key, or clean up
    expired keys."""

    task: Literal["rotate", "revoke", "cleanup_expired"]
    key_id: Id | None = None
    pepper_version: Annotated[int, Field(ge=1)] | None = None


class AccountMaintenanceJob(EventPayload):
    """An ``account-maintenance`` job: deactivate an account, or transfer
    its organizations to another account."""

    task: Literal["deactivate", "transfer_orgs"]
    account_id: Id
    target_account_id: Id | None = None


# tenant-{orgId}.db channels


class GraphCreated(EventPayload):
    """``graph:created``: a new graph."""

    graph_id: Id
    graph_type_id: Id
    owner_id: Id | None = None


class GraphUpdated(EventPayload):
    """``graph:updated``: the names of the changed columns of a graph."""

    graph_id: Id
    changes: Annotated[list[FieldName], Field(min_length=1)]


class NodesCreated(EventPayload):
    """``nodes:created``: the keys of nodes created in one graph."""

    graph_id: Id
    keys: Annotated[list[Annotated[str, Field(min_length=1, max_length=255)]], Field(min_length=1)]


class AclDelegationChanged(EventPayload):
    """``acl:delegation_changed``: a principal's delegation to an agent
    was granted or revoked."""

    principal_id: Id
    agent_id: Id
    change: Literal["granted", "revoked"] = "granted"


# tenant-{orgId}.db streams


class CallProtocolEvent(EventPayload):
    """One event of the ``call-protocol`` stream (replayed by the flowgraph
    projector and observability)."""

    type: Literal["call.requested", "call.responded", "call.failed", "call.aborted"]
    call_id: Id
    operation_id: Annotated[str, Field(min_length=1, max_length=255)]
    graph_id: Id | None = None
    data: JsonValue = None


class SessionEvent(EventPayload):
    """One event of the ``session-events`` stream (session lifecycle)."""

    type: Literal["session.started", "session.resumed", "session.ended"]
    session_id: Id
    principal_id: Id | None = None
    details: dict[str, JsonValue] = Field(default_factory=dict)


# tenant-{orgId}.db queues


class AclEvaluationJob(EventPayload):
    """An ``acl-evaluation`` job: recompute a principal's scopes after a
    delegation change."""

    principal_id: Id
    agent_id: Id | None = None


class SecretRotationJob(EventPayload):
    """A ``secret-rotation`` job: re-encrypt secrets to ``key_version`` in
    batches of ``batch_size`` (``domain.rotation``). ``org_id`` is the
    tenant's organization, part of every secret's binding (a worker that
    knows its org checks it against this one)."""

    key_version: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 100
    org_id: Id | None = None


class GraphMaintenanceJob(EventPayload):
    """A ``graph-maintenance`` job: archive a graph, or clean up graphs
    older than ``older_than_days``."""

    task: Literal["archive", "retention_cleanup"]
    graph_id: Id | None = None
    older_than_days: Annotated[int, Field(ge=1)] | None = None


class SchemaMigrationJob(EventPayload):
    """A ``schema-migration`` job: migrate node/edge data of a graph type
    from one version to another."""

    graph_type: Annotated[str, Field(min_length=1, max_length=255)]
    from_version: Annotated[str, Field(min_length=1, max_length=64)]
    to_version: Annotated[str, Field(min_length=1, max_length=64)]
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 500


# ---------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------


@dataclass(frozen=True)
class Definition(Generic[P]):
    """A named channel, stream or queue of one kind of database, with the
    pydantic model of its payloads."""

    name: str
    database: DatabaseKind
    payload: type[P]

    kind = "definition"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a {self.kind} needs a non-empty name, got {self.name!r}")
        if self.database not in ("system", "tenant"):
            raise ValueError(
                f"{self.kind} {self.name!r}: database must be 'system' or 'tenant', "
                f"not {self.database!r}"
            )
        if not (isinstance(self.payload, type) and issubclass(self.payload, BaseModel)):
            raise TypeError(f"{self.kind} {self.name!r}: payload must be a pydantic model class")


@dataclass(frozen=True)
class Channel(Definition[P]):
    """An ephemeral notify/listen channel (:func:`notify`, ``db.listen(name)``)."""

    kind = "channel"


@dataclass(frozen=True)
class StreamDef(Definition[P]):
    """A durable stream (:func:`publish`, ``db.stream(name).subscribe(...)``)."""

    kind = "stream"


@dataclass(frozen=True)
class QueueDef(Definition[P]):
    """A work queue (:func:`enqueue`, ``db.queue(name).claim(...)``)."""

    kind = "queue"


ACCOUNT_CREATED = Channel("account:created", "system", AccountCreated)
ACCOUNT_UPDATED = Channel("account:updated", "system", AccountUpdated)
ORG_CREATED = Channel("org:created", "system", OrgCreated)
ORG_MEMBER_ADDED = Channel("org:member_added", "system", OrgMemberAdded)
AUTH_KEY_VERIFIED = Channel("auth:key_verified", "system", AuthKeyVerified)
AUDIT_EVENTS = StreamDef("audit-events", "system", AuditEvent)
KEY_MANAGEMENT = QueueDef("key-management", "system", KeyManagementJob)
ACCOUNT_MAINTENANCE = QueueDef("account-maintenance", "system", AccountMaintenanceJob)

GRAPH_CREATED = Channel("graph:created", "tenant", GraphCreated)
GRAPH_UPDATED = Channel("graph:updated", "tenant", GraphUpdated)
NODES_CREATED = Channel("nodes:created", "tenant", NodesCreated)
ACL_DELEGATION_CHANGED = Channel("acl:delegation_changed", "tenant", AclDelegationChanged)
CALL_PROTOCOL = StreamDef("call-protocol", "tenant", CallProtocolEvent)
SESSION_EVENTS = StreamDef("session-events", "tenant", SessionEvent)
ACL_EVALUATION = QueueDef("acl-evaluation", "tenant", AclEvaluationJob)
SECRET_ROTATION = QueueDef("secret-rotation", "tenant", SecretRotationJob)
GRAPH_MAINTENANCE = QueueDef("graph-maintenance", "tenant", GraphMaintenanceJob)
SCHEMA_MIGRATION = QueueDef("schema-migration", "tenant", SchemaMigrationJob)

CATALOG: Mapping[DatabaseKind, tuple[Definition[Any], ...]] = {
    "system": (
        ACCOUNT_CREATED,
        ACCOUNT_UPDATED,
        ORG_CREATED,
        ORG_MEMBER_ADDED,
        AUTH_KEY_VERIFIED,
        AUDIT_EVENTS,
        KEY_MANAGEMENT,
        ACCOUNT_MAINTENANCE,
    ),
    "tenant": (
        GRAPH_CREATED,
        GRAPH_UPDATED,
        NODES_CREATED,
        ACL_DELEGATION_CHANGED,
        CALL_PROTOCOL,
        SESSION_EVENTS,
        ACL_EVALUATION,
        SECRET_ROTATION,
        GRAPH_MAINTENANCE,
        SCHEMA_MIGRATION,
    ),
}
"""Every definition, by the kind of database it lives in."""

_BY_NAME: dict[str, Definition[Any]] = {d.name: d for ds in CATALOG.values() for d in ds}


def definition(name: str) -> Definition[Any]:
    """The catalog definition named ``name`` (``KeyError`` naming it if
    there is none)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no channel, stream or queue named {name!r} in the catalog") from None


# ---------------------------------------------------------------------
# Helpers: validate, then write
# ---------------------------------------------------------------------

_TENANT_FILE = re.compile(r"^tenant-.+\.db$")


def database_kind(path: str | os.PathLike[str]) -> DatabaseKind | None:
    """The kind of database a file is by the hub's naming (``system.db``,
    ``tenant-<org>.db``), or None when the name does not tell."""
    base = os.path.basename(os.fspath(path))
    if base == "system.db":
        return "system"
    if _TENANT_FILE.match(base):
        return "tenant"
    return None


def _check_kind(defn: Definition[Any], db: Database | None) -> None:
    if db is None:
        return
    kind = database_kind(db.path)
    if kind is not None and kind != defn.database:
        raise ValueError(
            f"{defn.kind} {defn.name!r} belongs to {defn.database} databases, "
            f"not to {os.path.basename(db.path)} (a {kind} database)"
        )


def _payload(defn: Definition[P], payload: Any) -> P:
    model = defn.payload
    if isinstance(payload, model):
        return payload
    if isinstance(payload, BaseModel):
        raise TypeError(
            f"{defn.kind} {defn.name!r} takes a {model.__name__} (or a dict), "
            f"not a {type(payload).__name__}"
        )
    return validate(model, payload)


def _is_sqlalchemy(obj: Any) -> bool:
    return isinstance(obj, (Session, sa.Connection))


def notify(where: Any, channel: Channel[P], payload: P | Mapping[str, Any]) -> int:
    """Validate ``payload`` against ``channel.payload`` (a model instance or
    a dict), then ``notify`` it on ``where``: a native Transaction (from
    ``db.transaction()``: delivered only if it commits), a Database (its own
    transaction) or a SQLAlchemy Session/Connection inside a transaction.
    Returns the notification id. ``ValidationFailed`` naming the field and
    nothing written if the payload does not match."""
    db: Database | None = None
    if _is_sqlalchemy(where):
        db = honker_database(where)
        target: Any = honker_tx(where)
    elif isinstance(where, Database):
        db = target = where
    elif hasattr(where, "notify"):
        target = where
    else:
        raise TypeError(
            "notify() needs a Transaction, a Database or a SQLAlchemy Session/Connection, "
            f"not {type(where).__name__}"
        )
    _check_kind(channel, db)
    model = _payload(channel, payload)
    result: int = target.notify(channel.name, model.model_dump(mode="json"))
    return result


def _database_and_tx(where: Any, tx: Any, what: str) -> tuple[Database, Any]:
    if _is_sqlalchemy(where):
        return honker_database(where), (honker_tx(where) if tx is None else tx)
    if isinstance(where, Database):
        return where, tx
    raise TypeError(
        f"{what}() needs a Database (and tx= for a transaction) or a SQLAlchemy "
        f"Session/Connection, not {type(where).__name__}"
    )


def publish(
    where: Any,
    stream: StreamDef[P],
    payload: P | Mapping[str, Any],
    *,
    key: str | None = None,
    tx: Any = None,
) -> int:
    """Validate ``payload`` against ``stream.payload``, then append it to
    the stream: ``where`` is a Database (with ``tx=`` a Transaction of it,
    so the event exists only if that commits) or a SQLAlchemy
    Session/Connection inside a transaction. Returns the event's offset.
    ``ValidationFailed`` naming the field and nothing written if the
    payload does not match."""
    db, tx = _database_and_tx(where, tx, "publish")
    _check_kind(stream, db)
    model = _payload(stream, payload)
    return db.stream(stream.name).publish(model.model_dump(mode="json"), key=key, tx=tx)


def enqueue(
    where: Any,
    queue: QueueDef[P],
    payload: P | Mapping[str, Any],
    *,
    tx: Any = None,
    run_at: int | None = None,
    delay: float | None = None,
    priority: int = 0,
    expires: float | None = None,
) -> int:
    """Validate ``payload`` against ``queue.payload``, then enqueue it:
    ``where`` is a Database (with ``tx=`` a Transaction of it) or a
    SQLAlchemy Session/Connection inside a transaction; ``run_at``,
    ``delay``, ``priority`` and ``expires`` are ``Queue.enqueue``'s.
    Returns the job id. ``ValidationFailed`` naming the field and nothing
    written if the payload does not match."""
    db, tx = _database_and_tx(where, tx, "enqueue")
    _check_kind(queue, db)
    model = _payload(queue, payload)
    return db.queue(queue.name).enqueue(
        model.model_dump(mode="json"),
        tx=tx,
        run_at=run_at,
        delay=delay,
        priority=priority,
        expires=expires,
    )


def parse(defn: Definition[P], raw: Any) -> P:
    """The payload model of something received: a ``Notification`` (from
    ``db.listen``), a stream ``Event``, a claimed ``Job``, a decoded payload
    (dict) or its JSON text. ``ValidationFailed`` (naming the field) when it
    does not match, or when it came from another channel, stream or queue."""
    source: str | None = None
    if isinstance(raw, Notification):
        source, raw = raw.channel, raw.payload
    elif isinstance(raw, Event):
        source, raw = raw.topic, raw.payload
    elif isinstance(raw, Job):
        source, raw = raw.queue_name, raw.payload
    if source is not None and source != defn.name:
        msg = f"{defn.kind} {defn.name!r} cannot parse a payload from {source!r}"
        raise ValidationFailed(msg, [{"loc": (), "msg": msg, "type": "wrong_source"}], None)
    return validate(defn.payload, raw)
