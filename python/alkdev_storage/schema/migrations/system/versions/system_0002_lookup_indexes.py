"""system: indexes for looking up memberships and API keys by account and
organization.

Revision ID: system_0002
Revises: system_0001
"""

from __future__ import annotations

from alembic import op

revision: str = "system_0002"
down_revision: str | None = "system_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_organization_memberships_account_id"),
        "organization_memberships",
        ["account_id"],
    )
    op.create_index(op.f("ix_api_keys_account_id"), "api_keys", ["account_id"])
    op.create_index(op.f("ix_api_keys_org_id"), "api_keys", ["org_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_api_keys_org_id"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_account_id"), table_name="api_keys")
    op.drop_index(
        op.f("ix_organization_memberships_account_id"), table_name="organization_memberships"
    )
