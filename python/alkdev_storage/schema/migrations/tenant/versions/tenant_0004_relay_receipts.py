"""tenant: receipts of cross-tenant changes applied here (tenancy relay,
docs/0027).

Revision ID: tenant_0004
Revises: tenant_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "tenant_0004"
down_revision: str | None = "tenant_0003"
branch_labels: str | None = None
depends_on: str | None = None

NOW = sa.text("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")


def upgrade() -> None:
    op.create_table(
        "relay_receipts",
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("source_org_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("applied_at", sa.Text(), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("dedupe_key", name=op.f("pk_relay_receipts")),
    )


def downgrade() -> None:
    op.drop_table("relay_receipts")
