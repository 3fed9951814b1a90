"""API-key issue, verification and batched bookkeeping (docs/0026-api-keys.md).

Verification does the same work on every path: parse (no lookup), one
indexed lookup by key id (a fixed non-existent id when the text is
malformed), one HMAC-SHA256 (against a dummy hash when there is no row),
one ``hmac.compare_digest``; then expiry, revocation and the account's
status. Every failure raises the same
:class:`~alkdev_storage.errors.AuthenticationFailed` ("invalid API key").

Bookkeeping is batched, not written per request: a successful
verification records the key's last-used time (and, when its hash uses an
older pepper, the upgraded hash) in memory; :meth:`Authenticator.flush`
writes them in one transaction together with one ``auth:key_verified``
notification per key verified since the previous flush. The flush runs
from ``authenticate`` once ``flush_every_s`` passed, and on
``hub.flush()``/``hub.close()``. So a listener of ``auth:key_verified``
hears of a key at most ``flush_every_s`` late and once per flush window,
and the authentication hot path never takes the writer slot.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from alkdev_storage.database import Database
from alkdev_storage.domain import catalog
from alkdev_storage.errors import (
    AuthenticationFailed,
    NotFound,
    StorageError,
    UnknownKeyVersion,
    ValidationFailed,
)
from alkdev_storage.schema import Account, ApiKey, Organization, OrganizationMembership, utcnow
from alkdev_storage.schema.types import new_id, parse_utc
from alkdev_storage.tenancy.keys import (
    EnvPepperProvider,
    PepperProvider,
    format_key,
    hash_secret,
    new_secret,
    parse_key,
)
from alkdev_storage.tenancy.paths import check_id
from alkdev_storage.tenancy.session import Identity

if TYPE_CHECKING:
    from alkdev_storage.tenancy.hub import Hub

__all__ = ["INVALID_KEY", "Authenticator"]

INVALID_KEY = "invalid API key"
"""The one message of every authentication failure."""

K: sa.Table = cast(sa.Table, ApiKey.__table__)
A: sa.Table = cast(sa.Table, Account.__table__)
M: sa.Table = cast(sa.Table, OrganizationMembership.__table__)
O: sa.Table = cast(sa.Table, Organization.__table__)  # noqa: E741

_DUMMY_ID = "00000000000000000000000000"
_DUMMY_SECRET = "0" * 32
_DUMMY_PEPPER = b"\x00" * 32


def _ts(text: str | None) -> datetime | None:
    return None if text is None else parse_utc(text)


class Authenticator:
    """The hub's API-key service (``hub.auth``). Thread-safe."""

    def __init__(self, hub: Hub, peppers: PepperProvider | None, *,
                 flush_every_s: float = 5.0) -> None:
        self._hub = hub
        self._peppers = peppers
        self.flush_every_s = flush_every_s
        db = hub.system
        self._db: Database = db
        # Always exactly one row of the same shape (filler values when there
        # is no such key): the same statement and row work either way.
        self._q_key = db.prepare(
            "SELECT k.id IS NOT NULL, ifnull(k.key_hash, zeroblob(32)), "
            "ifnull(k.pepper_version, 0), ifnull(k.account_id, q.id), k.org_id, "
            "ifnull(k.scopes, '[\"-\"]'), k.expires_at, k.revoked_at, "
            "ifnull(a.status, 'missing') FROM (SELECT ? AS id) AS q "
            "LEFT JOIN api_keys AS k ON k.id = q.id "
            "LEFT JOIN accounts AS a ON a.id = ifnull(k.account_id, q.id)")
        self._q_members = db.prepare(
            "SELECT m.org_id, m.level FROM organization_memberships AS m "
            "JOIN organizations AS o ON o.id = m.org_id "
            "WHERE m.account_id = ? AND o.status = 'active'")
        self._q_level = db.prepare(
            "SELECT level FROM organization_memberships WHERE account_id = ? AND org_id = ?")
        self._q_member_of = db.prepare(
            "SELECT m.org_id, m.level FROM organization_memberships AS m "
            "JOIN organizations AS o ON o.id = m.org_id "
            "WHERE m.account_id = ? AND m.org_id = ? AND o.status = 'active'")
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str, str | None, float, bytes | None, int | None]] = {}
        self._last_flush = time.monotonic()
        self.verified = 0
        self.token = object()

    # -- peppers -----------------------------------------------------------------

    @property
    def peppers(self) -> PepperProvider:
        """The pepper provider (from the environment if none was given)."""
        if self._peppers is None:
            try:
                self._peppers = EnvPepperProvider()
            except StorageError as e:
                raise StorageError(
                    f"API keys need a pepper: pass Hub(peppers=...) or set the environment ({e})"
                ) from None
        return self._peppers

    # -- issue, revoke, reroll ------------------------------------------------------

    def issue(self, account_id: str, name: str, *, org_id: str | None = None,
              scopes: list[str] | tuple[str, ...] = (),
              expires_at: datetime | None = None) -> tuple[str, str]:
        """See :meth:`Hub.issue_key`."""
        check_id(account_id, "account_id")
        if org_id is not None:
            check_id(org_id)
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            raise ValidationFailed(
                f"name: must be 1 to 200 characters (got {name!r})",
                errors=[{"loc": ("name",), "msg": "bad name", "type": "value_error"}],
                field="name")
        if isinstance(scopes, str) or not all(isinstance(s, str) and s for s in scopes):
            raise ValidationFailed(
                f"scopes: must be a list of non-empty strings (got {scopes!r})",
                errors=[{"loc": ("scopes",), "msg": "bad scopes", "type": "value_error"}],
                field="scopes")
        peppers = self.peppers
        version = peppers.current_version()
        key_id, secret = new_id(), new_secret()
        digest = hash_secret(peppers.pepper(version), key_id, secret)
        with self._hub.system_transaction() as conn:
            if not conn.execute(sa.select(A.c.id).where(A.c.id == account_id)).first():
                raise NotFound(f"account {account_id} does not exist")
            if org_id is not None and not conn.execute(
                    sa.select(M.c.level).where(M.c.org_id == org_id,
                                               M.c.account_id == account_id)).first():
                raise NotFound(f"account {account_id} is not a member of {org_id}")
            conn.execute(sa.insert(K).values(
                id=key_id, account_id=account_id, org_id=org_id, name=name,
                prefix=format_key(key_id, secret)[:12], key_hash=digest,
                pepper_version=version, scopes=sorted(set(scopes)), expires_at=expires_at))
        return key_id, format_key(key_id, secret)

    def revoke(self, key_id: str) -> None:
        """See :meth:`Hub.revoke_key`."""
        check_id(key_id, "key_id")
        with self._hub.system_transaction() as conn:
            n = conn.execute(sa.update(K).where(K.c.id == key_id, K.c.revoked_at.is_(None))
                             .values(revoked_at=utcnow())).rowcount
            if not n and not conn.execute(sa.select(K.c.id).where(K.c.id == key_id)).first():
                raise NotFound(f"no API key {key_id}")
        with self._lock:
            self._pending.pop(key_id, None)

    def reroll(self, key_id: str, *, grace: timedelta) -> tuple[str, str]:
        """See :meth:`Hub.reroll_key`."""
        check_id(key_id, "key_id")
        with self._hub.engine.connect() as conn:
            row = conn.execute(sa.select(K).where(K.c.id == key_id)).first()
        if row is None or row.revoked_at is not None:
            raise NotFound(f"no live API key {key_id}")
        new = self.issue(row.account_id, row.name, org_id=row.org_id, scopes=list(row.scopes),
                         expires_at=row.expires_at)
        until = utcnow() + grace
        if row.expires_at is not None and row.expires_at < until:
            until = row.expires_at
        with self._hub.system_transaction() as conn:
            conn.execute(sa.update(K).where(K.c.id == key_id).values(expires_at=until))
        return new

    def forget_org(self, org_id: str) -> None:
        """Drop pending bookkeeping of keys of a destroyed org."""
        with self._lock:
            for k in [k for k, v in self._pending.items() if v[1] == org_id]:
                del self._pending[k]

    # -- verification -------------------------------------------------------------------

    def authenticate(self, key: object) -> Identity:
        """See :meth:`Hub.authenticate`."""
        parsed = parse_key(key)
        key_id = parsed.key_id if parsed is not None else _DUMMY_ID
        secret = parsed.secret if parsed is not None else _DUMMY_SECRET
        found = self._db.fetchone(self._q_key, (key_id,))
        assert found is not None  # the query always returns one row
        (exists, stored, version, account_id, key_org, scopes_json, expires, revoked,
         account_status) = found
        peppers = self.peppers
        if not exists:
            version = peppers.current_version()
        try:
            pepper = peppers.pepper(version)
            known = True
        except UnknownKeyVersion:
            pepper, known = _DUMMY_PEPPER, False
        digest = hash_secret(pepper, key_id, secret)
        ok = hmac.compare_digest(digest, stored) & known & (parsed is not None) & (exists == 1)
        if not ok:
            raise AuthenticationFailed(INVALID_KEY)
        now = utcnow()
        exp = _ts(expires)
        if revoked is not None or account_status != "active" or (exp is not None and exp <= now):
            raise AuthenticationFailed(INVALID_KEY)
        if key_org is None:
            rows = self._db.fetchall(self._q_members, (account_id,))
        else:  # an org-scoped key: only that membership
            rows = self._db.fetchall(self._q_member_of, (account_id, key_org))
        members: dict[str, str] = dict(rows)
        current = peppers.current_version()
        rehash = None
        if version != current:
            rehash = hash_secret(peppers.pepper(current), key_id, secret)
        self._record(key_id, key_org, account_id, rehash, current if rehash else None)
        return Identity(account_id=account_id, key_id=key_id,
                        memberships=MappingProxyType(members),
                        scopes=frozenset(json.loads(scopes_json)), key_org_id=key_org,
                        issuer=self.token)

    def membership_level(self, account_id: str, org_id: str) -> str | None:
        """``account_id``'s level in ``org_id`` from ``system.db`` (None:
        not a member)."""
        row = self._db.fetchone(self._q_level, (account_id, org_id))
        return None if row is None else str(row[0])

    def delegated_scopes(self, db: Database, account_id: str, agent_id: str) -> frozenset[str]:
        """The scopes the ACL graph(s) of tenant ``db`` delegate from the
        account's principal node (``kind`` ``account``,
        ``account_id``) to the agent node whose key is ``agent_id``, over
        live (unexpired) ``delegates_to`` edges; empty when none."""
        rows = db.fetchall(
            "SELECT e.attributes FROM edges AS e "
            "JOIN nodes AS s ON s.id = e.source_id JOIN nodes AS t ON t.id = e.target_id "
            "JOIN graphs AS g ON g.id = e.graph_id "
            "JOIN graph_types AS gt ON gt.id = g.graph_type_id "
            "WHERE gt.name = 'acl-graph' AND gt.scope = 'system' AND g.status = 'active' "
            "AND e.type = 'delegates_to' AND s.type = 'principal' "
            "AND json_extract(s.attributes, '$.account_id') = ? "
            "AND t.type = 'agent' AND t.key = ?",
            (account_id, agent_id))
        now = utcnow()
        scopes: set[str] = set()
        for (attrs_json,) in rows:
            attrs: Mapping[str, Any] = json.loads(attrs_json)
            exp = attrs.get("expires_at")
            if exp is not None and datetime.fromisoformat(exp.replace("Z", "+00:00")) <= now:
                continue
            scopes.update(attrs.get("scopes", ()))
        return frozenset(scopes)

    # -- batched bookkeeping ------------------------------------------------------------

    def _record(self, key_id: str, org_id: str | None, account_id: str,
                rehash: bytes | None, version: int | None) -> None:
        due = False
        with self._lock:
            self.verified += 1
            self._pending[key_id] = (account_id, org_id, time.time(), rehash, version)
            if time.monotonic() - self._last_flush >= self.flush_every_s:
                due = True
                self._last_flush = time.monotonic()
        if due:
            self.flush()

    def pending(self) -> int:
        """Keys with unwritten last-used times."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write the pending last-used times (and upgraded hashes) and one
        ``auth:key_verified`` per key, in one transaction."""
        with self._lock:
            batch, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if not batch:
            return 0
        try:
            with self._hub.system_transaction() as conn:
                for key_id, (account_id, org_id, used, rehash, version) in batch.items():
                    values: dict[str, Any] = {"last_used_at": datetime.fromtimestamp(used, UTC)}
                    if rehash is not None:
                        values.update(key_hash=rehash, pepper_version=version)
                    n = conn.execute(sa.update(K).where(K.c.id == key_id)
                                     .values(**values)).rowcount
                    if n:
                        catalog.notify(conn, catalog.AUTH_KEY_VERIFIED, {
                            "key_id": key_id, "owner_id": account_id, "org_id": org_id})
        except BaseException:
            with self._lock:  # keep them for the next flush
                for k, v in batch.items():
                    self._pending.setdefault(k, v)
            raise
        return len(batch)
