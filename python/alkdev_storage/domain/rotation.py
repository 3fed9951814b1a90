"""Key rotation: re-encrypt a tenant file's secrets under the provider's
current key, as a resumable job on the tenant's ``secret-rotation`` queue
(docs/0017-encrypted-secrets.md).

::

    job_id = start_rotation(db, org_id, provider)        # enqueue
    progress = run_rotation(db, provider)                # claim and run (a worker)
    rotation_status(db, provider).remaining              # 0 when done

How it works. ``nodes.key_version`` / ``edges.key_version`` hold the
lowest key version among a row's encrypted attributes, with a partial
index on each (``WHERE key_version IS NOT NULL``). A batch is ONE write
transaction: select up to ``batch_size`` nodes, then edges with what is
left of the budget, whose ``key_version`` is below the current version
(a range search of the partial index, in index order); decrypt each
encrypted attribute below the current version with its binding (org,
table, ``attributes.<field>``, row id) and encrypt it under the current
key; update ``attributes`` and ``key_version``; save the job's progress
(its result) in the same transaction. A row leaves the selection exactly
when its new ciphertexts commit, so:

* a kill at any point (mid-batch: the transaction rolls back; between
  batches: nothing is pending) loses nothing and the next run continues
  where the last commit left off, with no cursor to keep;
* a ciphertext is never encrypted twice: attributes already at the
  current version are left alone, and a row's attributes and its
  ``key_version`` change in one commit;
* the progress in the job's result counts every re-encrypted row once.

The encrypted attributes of a row are found through its graph type's
module (``graph_types.module``/``version`` -> ``module_for_stored`` ->
``encrypted_fields``); that module must be registered in the worker's
process, with the schemas the file stores. A row that does not decrypt
(tampered, wrong key, copied from elsewhere) stops the job with
DecryptionFailed naming the row; the batch rolls back and the job is
retried, then goes to the dead letters (fix
the row, then start a new rotation). ``updated_at`` is not changed: the
secrets' values are not.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from alkdev_storage import _native
from alkdev_storage.database import Database
from alkdev_storage.domain.catalog import SECRET_ROTATION, SecretRotationJob, parse
from alkdev_storage.domain.catalog import enqueue as catalog_enqueue
from alkdev_storage.domain.modules import GraphTypeModule, encrypted_fields, module_for_stored
from alkdev_storage.domain.secrets import (
    Binding,
    EncryptedData,
    KeyProvider,
    reencrypt,
)
from alkdev_storage.errors import (
    DecryptionFailed,
    NotFound,
    SecretError,
    ValidationFailed,
)
from alkdev_storage.primitives import Job, Queue

__all__ = [
    "ROTATION_QUEUE",
    "RotationProgress",
    "RotationStatus",
    "rotate_batch",
    "rotation_progress",
    "rotation_status",
    "run_rotation",
    "stale_rows",
    "start_rotation",
]

ROTATION_QUEUE = SECRET_ROTATION.name
"""The tenant queue rotation jobs run on (``catalog.SECRET_ROTATION``)."""
DEFAULT_BATCH_SIZE = 200
MAX_BATCH_SIZE = 100_000  # the catalog's bound (SecretRotationJob.batch_size)
TABLES = ("nodes", "edges")

# The batch selection: a range search of the partial index in index order
# (no sort); rows leave the range as they are rotated, so no cursor is
# needed. The join names each row's graph type.
_SELECT = """SELECT r.id, r.type, r.attributes, g.graph_type_id
FROM {table} AS r INDEXED BY ix_{table}_key_version
JOIN graphs AS g ON g.id = r.graph_id
WHERE r.key_version < ?1
ORDER BY r.key_version
LIMIT ?2"""
_UPDATE = "UPDATE {table} SET attributes = ?1, key_version = ?2 WHERE id = ?3"
_GRAPH_TYPE = "SELECT module, version, node_schema, edge_schema FROM graph_types WHERE id = ?1"
# What is still on an old key: counts per version from the partial index.
_STATUS = (
    "SELECT key_version, count(*) FROM {table} WHERE key_version < ?1 "
    "GROUP BY key_version ORDER BY key_version"
)
_REMAINING = "SELECT count(*) FROM {table} WHERE key_version < ?1"
_STALE = (
    "SELECT id, key_version FROM {table} WHERE key_version < ?1 "
    "ORDER BY key_version LIMIT ?2"
)


@dataclass(frozen=True)
class RotationStatus:
    """What is still on an old key: ``{key version: rows}`` for nodes and
    edges below ``current_version`` (read from the key-version index)."""

    current_version: int
    nodes: dict[int, int]
    edges: dict[int, int]

    @property
    def remaining(self) -> int:
        """Rows (nodes + edges) with a secret below the current version."""
        return sum(self.nodes.values()) + sum(self.edges.values())

    @property
    def done(self) -> bool:
        """True when every secret is on the current key."""
        return self.remaining == 0


@dataclass
class RotationProgress:
    """A rotation job's progress, saved as the job's result in every batch
    transaction (so it counts exactly what committed). ``remaining`` is
    the stale row count after the last batch; ``finished`` when it is 0."""

    org_id: str
    target_version: int
    nodes_done: int = 0
    edges_done: int = 0
    batches: int = 0
    remaining: int = 0
    finished: bool = False
    runs: int = 0

    @property
    def done(self) -> int:
        """Rows re-encrypted so far (nodes + edges)."""
        return self.nodes_done + self.edges_done

    def to_json(self) -> dict[str, Any]:
        """The JSON form saved as the job's result."""
        value = asdict(self)
        value["done"] = self.done
        return value

    @classmethod
    def from_json(cls, value: Any) -> RotationProgress:
        """Inverse of :meth:`to_json`."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in dict(value).items() if k in names})


def _check_provider(provider: object) -> KeyProvider:
    if not (callable(getattr(provider, "current_version", None))
            and callable(getattr(provider, "key", None))):
        raise ValidationFailed(f"provider must be a KeyProvider, not {type(provider).__name__}")
    return provider  # type: ignore[return-value]  # checked structurally above


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValidationFailed(
            f"batch_size must be an int, not {type(batch_size).__name__}", field="batch_size"
        )
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValidationFailed(
            f"batch_size must be within 1..{MAX_BATCH_SIZE}, got {batch_size}", field="batch_size"
        )
    return batch_size


def _check_org(org_id: object) -> str:
    if not isinstance(org_id, str) or not org_id:
        raise ValidationFailed("org_id must be a non-empty str", field="org_id")
    return org_id


def rotation_status(db: Database, provider: KeyProvider) -> RotationStatus:
    """Rows whose secrets are still on a key older than the provider's
    current version, counted per version from the partial key-version
    indexes (a range search of the index, not a table scan)."""
    current = _check_provider(provider).current_version()
    counts: dict[str, dict[int, int]] = {}
    for table in TABLES:
        rows = db.fetchall(_STATUS.format(table=table), (current,))
        counts[table] = {int(v): int(n) for v, n in rows}
    return RotationStatus(current, counts["nodes"], counts["edges"])


def stale_rows(db: Database, provider: KeyProvider, limit: int = 100) -> list[tuple[str, str, int]]:
    """Up to ``limit`` ``(table, row id, key_version)`` still on an old key
    (oldest key first), from the partial indexes."""
    current = _check_provider(provider).current_version()
    found: list[tuple[str, str, int]] = []
    for table in TABLES:
        if len(found) >= limit:
            break
        rows = db.fetchall(_STALE.format(table=table), (current, limit - len(found)))
        found += [(table, str(i), int(v)) for i, v in rows]
    return found


def _remaining(tx: _native.Transaction, current: int) -> int:
    total = 0
    for table in TABLES:
        row = tx.fetchone(_REMAINING.format(table=table), (current,))
        total += int(row[0]) if row else 0  # count(*) always returns one row
    return total


class _Modules:
    """The encrypted fields of each graph type's node and edge types, from
    the registered module the type was stored from (``module_for_stored``:
    the module must be registered in this process and its schemas must
    equal the stored ones), cached for one run."""

    def __init__(self) -> None:
        self._cache: dict[str, GraphTypeModule] = {}

    def fields(self, tx: _native.Transaction, graph_type_id: str, type_name: str,
               where: str) -> list[str]:
        m = self._cache.get(graph_type_id)
        if m is None:
            row = tx.fetchone(_GRAPH_TYPE, (graph_type_id,))
            if row is None:
                raise NotFound(f"{where}: graph type {graph_type_id} does not exist")
            module, version, node_schema, edge_schema = row
            m = module_for_stored(module, version, json.loads(node_schema),
                                  json.loads(edge_schema))
            self._cache[graph_type_id] = m
        try:
            return encrypted_fields(m, type_name)
        except KeyError:
            raise NotFound(f"{where}: module {m.label} has no type {type_name!r}") from None


def _rotate_row(
    org_id: str, table: str, row_id: str, attributes: dict[str, Any], fields: list[str],
    provider: KeyProvider, current: int,
) -> int | None:
    """Re-encrypt the row's encrypted attributes below ``current`` in place;
    return the row's new key_version."""
    versions: list[int] = []
    for name in fields:
        value = attributes.get(name)
        if value is None:
            continue
        where = Binding(org_id, table, f"attributes.{name}", row_id)
        try:
            envelope = EncryptedData(value)
        except ValidationFailed as exc:
            raise DecryptionFailed(f"cannot rotate the secret for {where.describe()}: {exc}") \
                from None
        if envelope.key_version < current:
            envelope = reencrypt(envelope, where, provider)
            attributes[name] = str(envelope)
        versions.append(envelope.key_version)
    return min(versions) if versions else None


def rotate_batch(
    tx: _native.Transaction, org_id: str, provider: KeyProvider, batch_size: int,
    modules: _Modules | None = None,
) -> tuple[int, int]:
    """Rotate up to ``batch_size`` rows (nodes first, then edges) inside
    the caller's write transaction ``tx``; returns ``(nodes, edges)``
    rotated. The building block of :func:`run_rotation`."""
    org_id = _check_org(org_id)
    batch_size = _check_batch_size(batch_size)
    current = _check_provider(provider).current_version()
    modules = modules or _Modules()
    done: list[int] = []
    budget = batch_size
    for table in TABLES:
        rows = tx.fetchall(_SELECT.format(table=table), (current, budget)) if budget else []
        for row_id, type_name, raw, graph_type_id in rows:
            attributes = json.loads(raw)
            fields = modules.fields(tx, graph_type_id, type_name, f"{table} row {row_id}")
            key_version = _rotate_row(org_id, table, row_id, attributes, fields, provider,
                                      current)
            tx.execute(_UPDATE.format(table=table), (json.dumps(attributes), key_version, row_id))
        done.append(len(rows))
        budget -= len(rows)
    return done[0], done[1]


def _queue(db: Database, visibility_timeout_s: int | None, max_attempts: int | None) -> Queue:
    return db.queue(ROTATION_QUEUE, visibility_timeout_s=visibility_timeout_s,
                    max_attempts=max_attempts)


def start_rotation(
    db: Database,
    org_id: str,
    provider: KeyProvider,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tx: _native.Transaction | None = None,
    visibility_timeout_s: int | None = None,
    max_attempts: int | None = None,
) -> int:
    """Enqueue a rotation of this tenant file (org ``org_id``) to the
    provider's current key version on the ``secret-rotation`` queue (a
    ``catalog.SecretRotationJob``: ``key_version``, ``batch_size``,
    ``org_id``); returns the job id. With ``tx`` the job exists only if
    that transaction commits. ``visibility_timeout_s`` / ``max_attempts``
    declare the queue (see ``Database.queue``). Running two rotations at
    once is safe (each batch is one write transaction), only wasteful."""
    payload = SecretRotationJob(
        key_version=_check_provider(provider).current_version(),
        batch_size=_check_batch_size(batch_size),
        org_id=_check_org(org_id),
    )
    _queue(db, visibility_timeout_s, max_attempts)  # declare it before the catalog uses it
    return catalog_enqueue(db, SECRET_ROTATION, payload, tx=tx)


def rotation_progress(db: Database, job_id: int) -> RotationProgress | None:
    """The progress saved by the rotation job ``job_id`` (None before its
    first batch, or once the result was swept)."""
    found, value = db.queue(ROTATION_QUEUE).get_result(job_id)
    return RotationProgress.from_json(value) if found else None


def _job_payload(job: Job, org_id: str | None) -> tuple[str, int, int]:
    payload = parse(SECRET_ROTATION, job)  # ValidationFailed naming the field
    if org_id is not None and payload.org_id is not None and org_id != payload.org_id:
        raise ValidationFailed(
            f"the rotation job is for org {payload.org_id}, this worker serves org {org_id}",
            field="org_id",
        )
    found = org_id or payload.org_id
    if found is None:
        raise ValidationFailed("the rotation job names no org_id and none was given",
                               field="org_id")
    return _check_org(found), payload.key_version, payload.batch_size


def run_rotation(
    job_or_db: Job | Database,
    provider: KeyProvider,
    *,
    org_id: str | None = None,
    worker_id: str = "secret-rotation",
    on_batch: Callable[[RotationProgress], None] | None = None,
    retry_delay_s: int = 30,
    visibility_timeout_s: int | None = None,
    max_attempts: int | None = None,
) -> RotationProgress | None:
    """Run a rotation job: a claimed :class:`Job` of the
    ``secret-rotation`` queue, or, given a Database, the next claimable
    one (None when there is none). Processes batches until no row is on
    an old key, heartbeating the claim after each, then acks the job and
    returns its final progress.

    ``on_batch(progress)`` is called inside each batch's transaction
    before it commits (raising aborts the batch and the job is retried).
    On an error the job is put back with ``retry_delay_s`` (or to the dead
    letters when its attempts are used up) and the error re-raised. If the
    claim is lost (it expired and another worker took the job) the run
    stops after its current batch and returns the progress so far.

    ``org_id``: the worker's organization (the tenant file's), checked
    against the job's; needed when the job does not name one.

    The worker's provider must hold the job's target version as current
    or a newer one; an older provider is refused (SecretError) so a stale
    worker never rotates back."""
    provider = _check_provider(provider)
    if isinstance(job_or_db, Job):
        job = job_or_db
    else:
        claimed = _queue(job_or_db, visibility_timeout_s, max_attempts).claim_one(worker_id)
        if claimed is None:
            return None
        job = claimed
    try:
        return _run(job, provider, org_id, on_batch)
    except Exception as exc:
        # Messages of this package never hold plaintext or keys.
        with contextlib.suppress(Exception):
            job.retry(retry_delay_s, f"{type(exc).__name__}: {exc}")
        raise


def _run(
    job: Job, provider: KeyProvider, worker_org: str | None,
    on_batch: Callable[[RotationProgress], None] | None,
) -> RotationProgress:
    queue = job.queue
    db = queue.db
    if not isinstance(db, Database):
        raise ValidationFailed("the rotation job's queue does not belong to a Database")
    org_id, target, batch_size = _job_payload(job, worker_org)
    current = provider.current_version()
    if current < target:
        raise SecretError(
            f"this worker's key provider is at version {current}, older than the "
            f"rotation's target version {target}; give it the new key"
        )
    found, saved = queue.get_result(job.id)
    progress = (RotationProgress.from_json(saved) if found
                else RotationProgress(org_id=org_id, target_version=target))
    progress.target_version = current
    progress.runs += 1
    modules = _Modules()
    while True:
        with db.transaction() as tx:
            nodes, edges = rotate_batch(tx, org_id, provider, batch_size, modules)
            progress.nodes_done += nodes
            progress.edges_done += edges
            progress.batches += 1
            progress.remaining = _remaining(tx, current)
            progress.finished = progress.remaining == 0
            queue.save_result(job.id, progress.to_json(), tx=tx)
            if on_batch is not None:
                on_batch(progress)
        if progress.finished or nodes + edges == 0:
            break
        if not job.heartbeat():
            return progress  # another worker owns the job now
    job.ack()
    return progress
