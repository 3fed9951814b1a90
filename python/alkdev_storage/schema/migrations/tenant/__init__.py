"""Alembic environment of the tenant schema: ``env.py``, ``script.py.mako``
and ``versions/`` (revisions ``tenant_NNNN``). Not imported: Alembic loads
these files itself."""
