"""The shipped Alembic environments (``system/``, ``tenant/``), applied by
:func:`alkdev_storage.schema.migrate.migrate` (docs/0015)."""
