"""The system file's operations (docs/0023-operation-specs.md): accounts,
organizations, organization memberships, API keys and the tenant registry,
generated from their tables.

* ``accounts``: e-mail normalized (trimmed, lowercased) before validation;
  ``account:created`` / ``account:updated``.
* ``organizations``: a user's new organization is theirs (``owner_id``
  preset) and they become its ``owner`` member in the same transaction;
  ``org:created`` and ``org:member_added``.
* ``organization_memberships``: ``org:member_added``.
* ``api_keys``: ``key_hash`` is accepted by ``create`` (computed by the
  caller from the secret; the secret itself never reaches storage) and
  never returned by any operation; a user's new key is theirs
  (``account_id`` preset); the hash, prefix, pepper and owner cannot be
  changed afterwards.
* ``tenants``: the registry (system principal and administrators).

Every mutation also appends its ``audit-events`` record.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from alkdev_storage.domain import catalog
from alkdev_storage.operations import records
from alkdev_storage.operations.generate import Hooks, TableConfig, generate
from alkdev_storage.operations.rules import A, K, M, O, T, system_rules
from alkdev_storage.operations.spec import Invocation, OperationSpec
from alkdev_storage.schema.system import normalize_email, validate_slug

__all__ = ["system_configs", "system_specs"]

_AUDIT = "audit-events"


def _account_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
                   ) -> None:
    if verb == "create":
        records.notify(inv, catalog.ACCOUNT_CREATED, {
            "account_id": row["id"], "email": row["email"],
            "access_level": row["access_level"]})
    elif verb in ("update", "patch"):
        records.notify(inv, catalog.ACCOUNT_UPDATED, {"account_id": row["id"],
                                                      "changes": sorted(changed)})
    records.audit(inv, inv.spec.id, "account", row["id"])


def _org_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
               ) -> None:
    if verb == "create":
        inv.session.execute(
            "INSERT INTO organization_memberships (org_id, account_id, level, created_at) "
            "VALUES (?, ?, 'owner', ?)", (row["id"], row["owner_id"], row["created_at"]))
        records.notify(inv, catalog.ORG_CREATED, {"org_id": row["id"], "slug": row["slug"],
                                                  "owner_id": row["owner_id"]})
        records.notify(inv, catalog.ORG_MEMBER_ADDED, {
            "org_id": row["id"], "account_id": row["owner_id"], "membership_level": "owner"})
    records.audit(inv, inv.spec.id, "organization", row["id"])


def _member_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
                  ) -> None:
    if verb == "create":
        records.notify(inv, catalog.ORG_MEMBER_ADDED, {
            "org_id": row["org_id"], "account_id": row["account_id"],
            "membership_level": row["level"]})
    records.audit(inv, inv.spec.id, "organization_membership", row["account_id"],
                  {"org_id": row["org_id"], "level": row["level"]})


def _key_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
               ) -> None:
    records.audit(inv, inv.spec.id, "api_key", row["id"], {"name": row["name"]})


def _tenant_after(inv: Invocation, verb: str, row: dict[str, Any], changed: frozenset[str]
                  ) -> None:
    records.audit(inv, inv.spec.id, "tenant", row["org_id"], {"status": row["status"]})


def _me(inv: Invocation, values: dict[str, Any]) -> Any:
    p = inv.ctx.principal
    return p.account_id if p.kind == "user" else None


def system_configs() -> dict[str, TableConfig]:
    """The :class:`TableConfig` of every system table."""
    rules = system_rules()
    email = Annotated[str, BeforeValidator(normalize_email)]
    slug = Annotated[str, BeforeValidator(validate_slug)]
    return {
        "accounts": TableConfig(A, rules["accounts"], refine={"email": email},
                                hooks=Hooks(after=_account_after), description="accounts"),
        "organizations": TableConfig(O, rules["organizations"], refine={"slug": slug},
                                     presets={"owner_id": _me},
                                     hooks=Hooks(after=_org_after),
                                     description="organizations"),
        "organization_memberships": TableConfig(
            M, rules["organization_memberships"], resource="memberships",
            server_set=frozenset({"created_at"}), hooks=Hooks(after=_member_after),
            description="organization memberships"),
        "api_keys": TableConfig(
            K, rules["api_keys"], hidden=frozenset({"key_hash"}),
            immutable=frozenset({"account_id", "org_id", "prefix", "key_hash",
                                 "pepper_version"}),
            server_set=frozenset({"id", "created_at", "last_used_at"}),
            presets={"account_id": _me}, hooks=Hooks(after=_key_after),
            description="API keys (never their hash)"),
        "tenants": TableConfig(T, rules["tenants"], server_set=frozenset({"created_at",
                                                                          "updated_at"}),
                               hooks=Hooks(after=_tenant_after),
                               description="the tenant registry"),
    }


def system_specs() -> list[OperationSpec]:
    """Every generated operation of the system kind."""
    cfg = system_configs()
    audit = {v: [_AUDIT] for v in ("create", "update", "patch", "delete")}
    out: list[OperationSpec] = []
    out += generate(cfg["accounts"], events={**audit, "create": ["account:created", _AUDIT],
                                             "update": ["account:updated", _AUDIT],
                                             "patch": ["account:updated", _AUDIT]})
    out += generate(cfg["organizations"], events={
        **audit, "create": ["org:created", "org:member_added", _AUDIT]})
    out += generate(cfg["organization_memberships"], events={
        **audit, "create": ["org:member_added", _AUDIT]})
    out += generate(cfg["api_keys"], events=audit)
    out += generate(cfg["tenants"], events=audit)
    return out

