"""Revisions of the tenant schema, ``tenant_0001`` upward (one linear
history; Alembic skips this file)."""
