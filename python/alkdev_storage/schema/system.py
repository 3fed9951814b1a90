"""The system tables (``system.db``, ADR-041): accounts, organizations,
organization memberships, API keys and the tenant registry.

Typed SQLAlchemy 2 ORM models on :class:`SystemBase` (its own MetaData;
the tenant tables are on :class:`~alkdev_storage.schema.tenant.TenantBase`).
The shipped Alembic migrations (``schema/migrations/system``) create the
same schema in a file; ``SystemBase.metadata.create_all`` is for tests and
scratch files only (docs/0015).

Values the database refuses, whichever way they are written (ORM, Core or
raw SQL): a non-normalized e-mail address, a bad organization slug, an
unknown status or level, an API key hash that is not 32 bytes, JSON scopes
that are not an array. Through the ORM, :func:`normalize_email` (a
``@validates`` hook) trims and lowercases addresses and :func:`validate_slug`
refuses bad slugs with :class:`~alkdev_storage.errors.ValidationFailed`
naming the field before anything is sent.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from alkdev_storage.errors import ValidationFailed
from alkdev_storage.schema.operation_tables import operation_tables
from alkdev_storage.schema.types import (
    NAMING_CONVENTION,
    UTC_NOW_SQL,
    UTCDateTime,
    enum_type,
    new_id,
    utcnow,
)

__all__ = [
    "ACCESS_LEVELS",
    "ACCOUNT_STATUSES",
    "MEMBERSHIP_LEVELS",
    "OPERATION_KEYS",
    "OPERATION_REQUESTS",
    "ORGANIZATION_STATUSES",
    "TENANT_STATUSES",
    "Account",
    "ApiKey",
    "Organization",
    "OrganizationMembership",
    "SystemBase",
    "TenantRecord",
    "normalize_email",
    "validate_slug",
]

ACCESS_LEVELS = ("user", "admin")
ACCOUNT_STATUSES = ("active", "suspended", "deleted")
ORGANIZATION_STATUSES = ("active", "archived")
MEMBERSHIP_LEVELS = ("owner", "admin", "member", "viewer")
TENANT_STATUSES = ("creating", "ready", "migrating", "archived", "destroying", "failed")

EMAIL_MIN, EMAIL_MAX = 3, 254
SLUG_MIN, SLUG_MAX = 3, 63

# ASCII control characters, space and DEL: none may appear in a stored
# address (so it is trimmed and has no inner whitespace). NUL cannot sit in
# a GLOB pattern, hence instr().
_EMAIL_FORBIDDEN_SQL = "char(" + ", ".join(str(c) for c in [*range(1, 33), 127]) + ")"

#: The e-mail CHECK constraints, by name (``ck_accounts_<name>``).
EMAIL_CHECKS: dict[str, str] = {
    "email_normalized": (
        "email = lower(email) AND instr(email, char(0)) = 0 "
        f"AND email NOT GLOB '*[' || {_EMAIL_FORBIDDEN_SQL} || ']*'"
    ),
    "email_format": (
        f"typeof(email) = 'text' AND length(email) BETWEEN {EMAIL_MIN} AND {EMAIL_MAX} "
        "AND email GLOB '?*@?*'"
    ),
}

#: The slug CHECK constraint (``ck_organizations_slug_format``).
SLUG_CHECK = (
    f"typeof(slug) = 'text' AND length(slug) BETWEEN {SLUG_MIN} AND {SLUG_MAX} "
    "AND instr(slug, char(0)) = 0 AND slug NOT GLOB '*[^a-z0-9-]*' "
    "AND slug NOT GLOB '-*' AND slug NOT GLOB '*-'"
)

_SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def _refuse(field: str, value: object, msg: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {msg} (got {value!r})",
        errors=[{"loc": (field,), "msg": msg, "type": "value_error"}],
        field=field,
    )


def normalize_email(value: object) -> str:
    """The stored form of an e-mail address: surrounding whitespace removed,
    lowercased. Raises :class:`ValidationFailed` (field ``email``) unless the
    result is 3 to 254 characters with no whitespace or control characters
    and an ``@`` with something on both sides."""
    if not isinstance(value, str):
        raise _refuse("email", value, "must be a string")
    email = value.strip().lower()
    if not EMAIL_MIN <= len(email) <= EMAIL_MAX:
        raise _refuse("email", value, f"must be {EMAIL_MIN} to {EMAIL_MAX} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in email):
        raise _refuse("email", value, "must not contain whitespace or control characters")
    if "@" not in email[1:-1]:
        raise _refuse("email", value, "must contain '@' with text on both sides")
    try:
        email.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse("email", value, "must be valid Unicode text") from None
    return email


def validate_slug(value: object) -> str:
    """``value`` if it is a valid organization slug: 3 to 63 characters of
    ``a-z``, ``0-9`` and ``-``, not starting or ending with ``-``. Raises
    :class:`ValidationFailed` (field ``slug``) saying which rule failed."""
    if not isinstance(value, str):
        raise _refuse("slug", value, "must be a string")
    if not SLUG_MIN <= len(value) <= SLUG_MAX:
        raise _refuse("slug", value, f"must be {SLUG_MIN} to {SLUG_MAX} characters")
    bad = sorted({c for c in value if c not in "abcdefghijklmnopqrstuvwxyz0123456789-"})
    if bad:
        raise _refuse(
            "slug", value, f"may only contain a-z, 0-9 and '-' (found {''.join(bad)!r})"
        )
    if not _SLUG_RE.fullmatch(value):
        raise _refuse("slug", value, "must not start or end with '-'")
    return value


class SystemBase(DeclarativeBase):
    """Declarative base of the system tables (its own MetaData, with the
    naming convention of every constraint and index)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.text(UTC_NOW_SQL)
    )


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        UTCDateTime,
        nullable=False,
        default=utcnow,
        onupdate=utcnow,
        server_default=sa.text(UTC_NOW_SQL),
    )


def _id() -> Mapped[str]:
    return mapped_column(sa.Text, primary_key=True, default=new_id)


class Account(SystemBase):
    """A person or service identity (``accounts``). ``email`` is unique and
    stored normalized (see :func:`normalize_email`)."""

    __tablename__ = "accounts"
    __table_args__ = tuple(sa.CheckConstraint(sql, name=name) for name, sql in EMAIL_CHECKS.items())

    id: Mapped[str] = _id()
    email: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    display_name: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    access_level: Mapped[str] = mapped_column(
        enum_type("access_level", *ACCESS_LEVELS),
        nullable=False,
        default="user",
        server_default="user",
    )
    status: Mapped[str] = mapped_column(
        enum_type("status", *ACCOUNT_STATUSES),
        nullable=False,
        default="active",
        server_default="active",
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    @validates("email")
    def _normalize_email(self, key: str, value: object) -> str:
        return normalize_email(value)


class Organization(SystemBase):
    """An organization (``organizations``): the owner of one tenant file.
    ``slug`` is unique and validated (see :func:`validate_slug`)."""

    __tablename__ = "organizations"
    __table_args__ = (sa.CheckConstraint(SLUG_CHECK, name="slug_format"),)

    id: Mapped[str] = _id()
    slug: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    owner_id: Mapped[str] = mapped_column(sa.Text, sa.ForeignKey("accounts.id"), nullable=False)
    status: Mapped[str] = mapped_column(
        enum_type("status", *ORGANIZATION_STATUSES),
        nullable=False,
        default="active",
        server_default="active",
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    @validates("slug")
    def _validate_slug(self, key: str, value: object) -> str:
        return validate_slug(value)


class OrganizationMembership(SystemBase):
    """An account's membership of an organization, with its level
    (``organization_memberships``; removed with either side)."""

    __tablename__ = "organization_memberships"
    __table_args__ = (sa.Index("ix_organization_memberships_account_id", "account_id"),)

    org_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[str] = mapped_column(enum_type("level", *MEMBERSHIP_LEVELS), nullable=False)
    created_at: Mapped[datetime] = _created_at()


class ApiKey(SystemBase):
    """An API key (``api_keys``). ``id`` is the public key id; only
    ``key_hash`` (a 32-byte HMAC-SHA256 of the secret under the pepper of
    ``pepper_version``) is stored, never the key. ``org_id`` set scopes the
    key to one organization. ``scopes`` is a JSON array."""

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.CheckConstraint(
            "typeof(key_hash) = 'blob' AND length(key_hash) = 32", name="key_hash_size"
        ),
        sa.CheckConstraint(
            "json_valid(scopes) AND json_type(scopes) = 'array'", name="scopes_array"
        ),
        sa.Index("ix_api_keys_account_id", "account_id"),
        sa.Index("ix_api_keys_org_id", "org_id"),
    )

    id: Mapped[str] = _id()
    account_id: Mapped[str] = mapped_column(sa.Text, sa.ForeignKey("accounts.id"), nullable=False)
    org_id: Mapped[str | None] = mapped_column(
        sa.Text, sa.ForeignKey("organizations.id"), nullable=True
    )
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    prefix: Mapped[str] = mapped_column(sa.Text, nullable=False)
    key_hash: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    pepper_version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    scopes: Mapped[list[Any]] = mapped_column(
        sa.JSON, nullable=False, default=list, server_default="[]"
    )
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TenantRecord(SystemBase):
    """The tenant registry (``tenants``): one row per organization's tenant
    file, with the Alembic revision it is at and its lifecycle status."""

    __tablename__ = "tenants"

    org_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("organizations.id"), primary_key=True
    )
    schema_revision: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    status: Mapped[str] = mapped_column(enum_type("status", *TENANT_STATUSES), nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


#: The operations layer's tables (docs/0023): idempotent requests and cursor keys.
OPERATION_REQUESTS, OPERATION_KEYS = operation_tables(SystemBase.metadata)

# -- tenancy helper: durable per-tenant migration status (docs/0027) ---------

TENANT_MIGRATION_STATUSES = ("pending", "running", "done", "failed")


class TenantMigration(SystemBase):
    """One tenant's place in a migration run across tenants
    (``tenant_migrations``; docs/0027): the revision it is being brought
    to, its status, attempts and last error. Removed with its
    organization."""

    __tablename__ = "tenant_migrations"
    __table_args__ = (sa.Index("ix_tenant_migrations_status", "status"),)

    org_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    target_revision: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(
        enum_type("status", *TENANT_MIGRATION_STATUSES), nullable=False
    )
    attempts: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = _updated_at()


__all__ += ["TENANT_MIGRATION_STATUSES", "TenantMigration"]
