"""Alembic environment of the system schema (``system.db``): online through
the ``sqlite+honker`` dialect, batch mode, foreign keys checked after the
run; see :func:`alkdev_storage.schema.migrate.run_environment`."""

from alkdev_storage.schema.migrate import run_environment
from alkdev_storage.schema.system import SystemBase

run_environment(SystemBase.metadata)
