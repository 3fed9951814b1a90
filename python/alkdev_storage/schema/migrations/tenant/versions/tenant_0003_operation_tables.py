"""tenant: the operations layer's tables: idempotent requests
(``operation_requests``) and named random keys (``operation_keys``, the
cursor HMAC key); indexes (graph_id, id) on nodes and edges for keyset
pages of a graph in id order (docs/0023-operation-specs.md).

Revision ID: tenant_0003
Revises: tenant_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "tenant_0003"
down_revision: str | None = "tenant_0002"
branch_labels: str | None = None
depends_on: str | None = None

_NOW = sa.text("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")


def upgrade() -> None:
    op.create_table(
        "operation_requests",
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("op_id", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), server_default=_NOW, nullable=False),
        sa.CheckConstraint("json_valid(result)", name=op.f("ck_operation_requests_result_json")),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_operation_requests")),
    )
    op.create_table(
        "operation_keys",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Text(), server_default=_NOW, nullable=False),
        sa.CheckConstraint(
            "typeof(key) = 'blob' AND length(key) = 32", name=op.f("ck_operation_keys_key_size")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_operation_keys")),
    )
    for table in ("nodes", "edges"):
        op.create_index(op.f(f"ix_{table}_graph_id_id"), table, ["graph_id", "id"])


def downgrade() -> None:
    for table in ("edges", "nodes"):
        op.drop_index(op.f(f"ix_{table}_graph_id_id"), table_name=table)
    op.drop_table("operation_keys")
    op.drop_table("operation_requests")
