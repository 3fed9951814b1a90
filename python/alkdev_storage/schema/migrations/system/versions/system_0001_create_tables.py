"""system: accounts, organizations, memberships, API keys, tenant registry.

Revision ID: system_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "system_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

NOW = sa.text("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
EMAIL_FORBIDDEN = "char(" + ", ".join(str(c) for c in [*range(1, 33), 127]) + ")"


def _timestamp(name: str, nullable: bool = False) -> sa.Column[str]:
    if nullable:
        return sa.Column(name, sa.Text(), nullable=True)
    return sa.Column(name, sa.Text(), nullable=False, server_default=NOW)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("access_level", sa.String(), nullable=False, server_default="user"),
        sa.Column("status", sa.String(), nullable=False, server_default="active"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.CheckConstraint(
            "email = lower(email) AND instr(email, char(0)) = 0 "
            f"AND email NOT GLOB '*[' || {EMAIL_FORBIDDEN} || ']*'",
            name=op.f("ck_accounts_email_normalized"),
        ),
        sa.CheckConstraint(
            "typeof(email) = 'text' AND length(email) BETWEEN 3 AND 254 "
            "AND email GLOB '?*@?*'",
            name=op.f("ck_accounts_email_format"),
        ),
        sa.UniqueConstraint("email", name=op.f("uq_accounts_email")),
        sa.CheckConstraint(
            "access_level IN ('user', 'admin')", name=op.f("ck_accounts_access_level")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'deleted')", name=op.f("ck_accounts_status")
        ),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False, server_default="active"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.CheckConstraint(
            "typeof(slug) = 'text' AND length(slug) BETWEEN 3 AND 63 "
            "AND instr(slug, char(0)) = 0 AND slug NOT GLOB '*[^a-z0-9-]*' "
            "AND slug NOT GLOB '-*' AND slug NOT GLOB '*-'",
            name=op.f("ck_organizations_slug_format"),
        ),
        sa.UniqueConstraint("slug", name=op.f("uq_organizations_slug")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["accounts.id"], name=op.f("fk_organizations_owner_id_accounts")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'archived')", name=op.f("ck_organizations_status")
        ),
    )
    op.create_table(
        "organization_memberships",
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("org_id", "account_id", name=op.f("pk_organization_memberships")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_organization_memberships_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_organization_memberships_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "level IN ('owner', 'admin', 'member', 'viewer')",
            name=op.f("ck_organization_memberships_level"),
        ),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("pepper_version", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False, server_default="[]"),
        _timestamp("created_at"),
        _timestamp("expires_at", nullable=True),
        _timestamp("last_used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.CheckConstraint(
            "typeof(key_hash) = 'blob' AND length(key_hash) = 32",
            name=op.f("ck_api_keys_key_hash_size"),
        ),
        sa.CheckConstraint(
            "json_valid(scopes) AND json_type(scopes) = 'array'",
            name=op.f("ck_api_keys_scopes_array"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_api_keys_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_api_keys_org_id_organizations")
        ),
    )
    op.create_table(
        "tenants",
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("schema_revision", sa.Text(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_tenants")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_tenants_org_id_organizations")
        ),
        sa.CheckConstraint(
            "status IN ('creating', 'ready', 'migrating', 'archived', 'destroying', 'failed')",
            name=op.f("ck_tenants_status"),
        ),
    )


def downgrade() -> None:
    op.drop_table("tenants")
    op.drop_table("api_keys")
    op.drop_table("organization_memberships")
    op.drop_table("organizations")
    op.drop_table("accounts")
