"""Alembic environment of the tenant schema (``tenant-{orgId}.db``): online
through the ``sqlite+honker`` dialect, batch mode, foreign keys checked
after the run; see :func:`alkdev_storage.schema.migrate.run_environment`."""

from alkdev_storage.schema.migrate import run_environment
from alkdev_storage.schema.tenant import TenantBase

run_environment(TenantBase.metadata)
