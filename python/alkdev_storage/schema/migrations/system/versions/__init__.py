"""Revisions of the system schema, ``system_0001`` upward (one linear
history; Alembic skips this file)."""
