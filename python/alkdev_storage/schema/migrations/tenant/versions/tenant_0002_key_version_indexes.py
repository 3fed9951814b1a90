"""tenant: partial indexes on nodes/edges key_version (what is still on an
old key, for secret rotation).

Revision ID: tenant_0002
Revises: tenant_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "tenant_0002"
down_revision: str | None = "tenant_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    for table in ("nodes", "edges"):
        op.create_index(
            op.f(f"ix_{table}_key_version"),
            table,
            ["key_version"],
            sqlite_where=sa.text("key_version IS NOT NULL"),
        )


def downgrade() -> None:
    for table in ("edges", "nodes"):
        op.drop_index(op.f(f"ix_{table}_key_version"), table_name=table)
