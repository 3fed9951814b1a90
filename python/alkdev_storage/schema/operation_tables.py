"""The operations layer's own tables, in both kinds of database
(docs/0023-operation-specs.md; revisions ``system_0003``/``tenant_0003``):

* ``operation_requests``: one row per mutation called with a request id
  (``request_id`` primary key, the operation, a fingerprint of the call's
  input and principal, the JSON result, when): a repeated request id
  returns the stored result and writes nothing (idempotent retries).
* ``operation_keys``: named random keys of the file (``name`` primary key,
  32-byte ``key``): the HMAC key that authenticates list cursors, so a
  cursor survives restarts and is accepted by every process that opens the
  file.

Core tables (no ORM class): :func:`operation_tables` adds them to a
MetaData; :mod:`~alkdev_storage.schema.system` and
:mod:`~alkdev_storage.schema.tenant` each call it once.
"""

from __future__ import annotations

import sqlalchemy as sa

from alkdev_storage.schema.types import UTC_NOW_SQL, UTCDateTime, utcnow

__all__ = ["operation_tables"]


def operation_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """``(operation_requests, operation_keys)`` added to ``metadata``."""
    requests = sa.Table(
        "operation_requests",
        metadata,
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("op_id", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow,
                  server_default=sa.text(UTC_NOW_SQL)),
        sa.CheckConstraint("json_valid(result)", name="result_json"),
    )
    keys = sa.Table(
        "operation_keys",
        metadata,
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow,
                  server_default=sa.text(UTC_NOW_SQL)),
        sa.CheckConstraint("typeof(key) = 'blob' AND length(key) = 32", name="key_size"),
    )
    return requests, keys
