"""The schema layer: the system and tenant tables as typed SQLAlchemy 2 ORM
models, their shipped Alembic migrations, and the column types they share.

* ``system.db`` (:class:`SystemBase`): :class:`Account`, :class:`Organization`,
  :class:`OrganizationMembership`, :class:`ApiKey`, :class:`TenantRecord`.
* ``tenant-{orgId}.db`` (:class:`TenantBase`): :class:`GraphType`,
  :class:`Graph`, :class:`Node`, :class:`Edge`, with triggers keeping edges
  inside their graph and system-scope graph types immutable
  (:func:`protection_lifted` lifts that inside one transaction).
* :func:`migrate`, :func:`current_revision`, :func:`head_revision`,
  :func:`revisions`: apply the shipped migrations (docs/0015).
* :func:`new_id` (ULID), :func:`utcnow`, :class:`UTCDateTime`.

Example::

    import alkdev_storage
    from sqlalchemy.orm import Session
    from alkdev_storage.schema import migrate, Account
    from alkdev_storage.sqlalchemy import create_engine

    db = alkdev_storage.open("system.db")
    migrate(db, "system")
    with Session(create_engine(db)) as session, session.begin():
        session.add(Account(email="  Ada@Example.COM "))   # stored "ada@example.com"
"""

from alkdev_storage.schema.migrate import (
    KINDS,
    alembic_config,
    current_revision,
    head_revision,
    migrate,
    revisions,
)
from alkdev_storage.schema.system import (
    Account,
    ApiKey,
    Organization,
    OrganizationMembership,
    SystemBase,
    TenantMigration,
    TenantRecord,
    normalize_email,
    validate_slug,
)
from alkdev_storage.schema.tenant import (
    EDGE_TRIGGERS,
    PROTECTION_TRIGGER_NAMES,
    PROTECTION_TRIGGERS,
    Edge,
    Graph,
    GraphType,
    Node,
    RelayReceipt,
    TenantBase,
    ensure_protection,
    protection_lifted,
)
from alkdev_storage.schema.types import UTCDateTime, new_id, utcnow

__all__ = [
    "EDGE_TRIGGERS",
    "KINDS",
    "PROTECTION_TRIGGERS",
    "PROTECTION_TRIGGER_NAMES",
    "Account",
    "ApiKey",
    "Edge",
    "Graph",
    "GraphType",
    "Node",
    "Organization",
    "OrganizationMembership",
    "RelayReceipt",
    "SystemBase",
    "TenantBase",
    "TenantMigration",
    "TenantRecord",
    "UTCDateTime",
    "alembic_config",
    "current_revision",
    "ensure_protection",
    "head_revision",
    "migrate",
    "new_id",
    "normalize_email",
    "protection_lifted",
    "revisions",
    "utcnow",
    "validate_slug",
]
