"""system: durable per-tenant status of migrations across tenants
(tenancy, docs/0027).

Revision ID: system_0004
Revises: system_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "system_0004"
down_revision: str | None = "system_0003"
branch_labels: str | None = None
depends_on: str | None = None

NOW = sa.text("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")


def upgrade() -> None:
    op.create_table(
        "tenant_migrations",
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("target_revision", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Text(), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_tenant_migrations")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"],
            name=op.f("fk_tenant_migrations_org_id_organizations"), ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed')",
            name=op.f("ck_tenant_migrations_status"),
        ),
    )
    op.create_index(op.f("ix_tenant_migrations_status"), "tenant_migrations", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tenant_migrations_status"), table_name="tenant_migrations")
    op.drop_table("tenant_migrations")
