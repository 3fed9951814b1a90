"""Alembic environment of the system schema: ``env.py``, ``script.py.mako``
and ``versions/`` (revisions ``system_NNNN``). Not imported: Alembic loads
these files itself."""
