"""The tenancy layer: the hub (docs/0025-0027).

* :class:`Hub`: ``system.db`` plus one ``tenant-<org id>.db`` per
  organization; organization lifecycle (create, archive, restore, destroy,
  online backup) with crash recovery; the tenant handle cache
  (``with hub.tenant(org_id) as db:``); API keys (``issue_key``,
  ``authenticate``, ``reroll_key``, ``revoke_key``) and authorised
  sessions (``hub.session(identity, org_id)``).
* :class:`TenantDatabase`: a tenant handle that refuses SQL reaching other
  files (ATTACH, DETACH, VACUUM INTO, unsafe PRAGMAs).
* :mod:`~alkdev_storage.tenancy.keys`: the key format (``alk_`` prefix,
  190 random bits, CRC-32 checksum; ``KEY_RE`` for scanners) and pepper
  providers.

Example::

    from alkdev_storage.tenancy import Hub, StaticPepperProvider

    with Hub("hub-data", peppers=StaticPepperProvider({1: b"0" * 32})) as hub:
        ada = hub.create_account("ada@example.com")
        org = hub.create_organization("acme", "Acme", ada)
        key_id, key = hub.issue_key(ada, "ci", scopes=["graphs:write"])
        with hub.session(hub.authenticate(key), org) as s:
            s.db.fetchall("SELECT name FROM graph_types")
"""

from __future__ import annotations

from alkdev_storage.tenancy.auth import INVALID_KEY, Authenticator
from alkdev_storage.tenancy.guard import GuardedSnapshot, GuardedTransaction, TenantDatabase
from alkdev_storage.tenancy.handles import HandleCache, Lease
from alkdev_storage.tenancy.hub import Hub
from alkdev_storage.tenancy.keys import (
    KEY_PREFIX,
    KEY_RE,
    EnvPepperProvider,
    FilePepperProvider,
    PepperProvider,
    StaticPepperProvider,
    format_key,
    parse_key,
)
from alkdev_storage.tenancy.paths import check_id, tenant_file_name
from alkdev_storage.tenancy.session import Identity, TenantSession

__all__ = [
    "INVALID_KEY",
    "KEY_PREFIX",
    "KEY_RE",
    "Authenticator",
    "EnvPepperProvider",
    "FilePepperProvider",
    "GuardedSnapshot",
    "GuardedTransaction",
    "HandleCache",
    "Hub",
    "Identity",
    "Lease",
    "PepperProvider",
    "StaticPepperProvider",
    "TenantDatabase",
    "TenantSession",
    "check_id",
    "format_key",
    "parse_key",
    "tenant_file_name",
]
