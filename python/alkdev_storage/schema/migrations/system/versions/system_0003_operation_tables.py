"""system: the operations layer's tables: idempotent requests
(``operation_requests``) and named random keys (``operation_keys``, the
cursor HMAC key) (docs/0023-operation-specs.md).

Revision ID: system_0003
Revises: system_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "system_0003"
down_revision: str | None = "system_0002"
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


def downgrade() -> None:
    op.drop_table("operation_keys")
    op.drop_table("operation_requests")
