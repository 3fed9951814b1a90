"""API keys: format and checksum, peppers, uniform failures, expiry,
revocation, batched last-used and auth:key_verified, reroll with grace,
pepper rotation, sessions (membership, org-scoped keys, ACL delegation)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tenancy_helpers import notifications, peppers

from alkdev_storage.domain import BUILTIN_MODULES, Principal
from alkdev_storage.errors import AuthenticationFailed, ScopeViolation, StorageError
from alkdev_storage.schema import new_id, utcnow
from alkdev_storage.tenancy import (
    INVALID_KEY,
    KEY_RE,
    EnvPepperProvider,
    FilePepperProvider,
    Hub,
    Identity,
    format_key,
    parse_key,
)
from alkdev_storage.tenancy.keys import SECRET_LENGTH, new_secret

# -- format ---------------------------------------------------------------------


def test_key_format_roundtrip_and_scanner() -> None:
    kid, secret = new_id(), new_secret()
    key = format_key(kid, secret)
    assert key.startswith("alk_") and len(secret) == SECRET_LENGTH
    assert parse_key(key) == parse_key(key) and parse_key(key).key_id == kid  # type: ignore[union-attr]
    text = f"config: token={key}\nother alk_notakey stuff"
    assert [m.group(0) for m in KEY_RE.finditer(text)] == [key]


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(min_value=0), char=st.sampled_from(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"))
def test_any_single_character_typo_is_caught_without_a_lookup(pos: int, char: str) -> None:
    key = format_key(new_id(), new_secret())
    i = pos % len(key)
    typo = key[:i] + char + key[i + 1:]
    assert (parse_key(typo) is None) == (typo != key)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_parse_never_raises(text: str) -> None:
    assert parse_key(text) is None


def test_pepper_providers_from_env_and_file(tmp_path: Path) -> None:
    env = {"P_1": "00" * 32, "P_2": "11" * 32, "P_CURRENT": "1"}
    p = EnvPepperProvider("P_", env)
    assert p.current_version() == 1 and p.pepper(2) == b"\x11" * 32
    f = tmp_path / "peppers.json"
    f.write_text(json.dumps({"peppers": {"3": "22" * 32}}))
    assert FilePepperProvider(f).current_version() == 3
    with pytest.raises(StorageError, match="no pepper"):
        EnvPepperProvider("NOPE_", {})
    with pytest.raises(StorageError, match="16 bytes"):
        EnvPepperProvider("P_", {"P_1": "00"})


# -- authentication --------------------------------------------------------------


def failure(hub: Hub, key: object) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        hub.authenticate(key)  # type: ignore[arg-type]
    return info.value


def test_every_failure_is_the_same_error(hub: Hub, owner: str, org: str) -> None:
    kid, key = hub.issue_key(owner, "k")
    other_id, other = hub.issue_key(owner, "k2")
    unknown = format_key(new_id(), new_secret())
    wrong_secret = format_key(kid, new_secret())
    _, expired = hub.issue_key(owner, "old", expires_at=utcnow() - timedelta(seconds=1))
    revoked_id, revoked = hub.issue_key(owner, "rev")
    hub.revoke_key(revoked_id)
    cases = {
        "malformed": "hello", "empty": "", "not a str": None, "typo": key[:-1] + "x",
        "unknown id": unknown, "wrong secret": wrong_secret, "expired": expired,
        "revoked": revoked, "swapped": format_key(other_id, parse_key(key).secret),  # type: ignore[union-attr]
    }
    seen = set()
    for what, bad in cases.items():
        err = failure(hub, bad)
        seen.add((type(err), str(err), err.args, err.__cause__ is None, err.__suppress_context__))
        assert str(err) == INVALID_KEY, what
    assert len(seen) == 1
    assert hub.authenticate(key).account_id == owner
    assert hub.authenticate(other).key_id == other_id


def test_identity_has_memberships_and_scopes(hub: Hub, owner: str, org: str) -> None:
    other = hub.create_organization("other", "Other", owner)
    _, key = hub.issue_key(owner, "k", scopes=["graphs:read", "graphs:write"])
    ident = hub.authenticate(key)
    assert dict(ident.memberships) == {org: "owner", other: "owner"}
    assert ident.scopes == frozenset({"graphs:read", "graphs:write"})
    _, scoped = hub.issue_key(owner, "k", org_id=org)
    assert dict(hub.authenticate(scoped).memberships) == {org: "owner"}
    with pytest.raises(ScopeViolation):
        hub.session(hub.authenticate(scoped), other)


def test_suspended_account_cannot_authenticate(hub: Hub, owner: str) -> None:
    _, key = hub.issue_key(owner, "k")
    hub.system.execute("UPDATE accounts SET status = 'suspended' WHERE id = ?", (owner,))
    assert str(failure(hub, key)) == INVALID_KEY


def test_last_used_is_batched_and_key_verified_emitted_on_flush(hub: Hub, owner: str) -> None:
    kid, key = hub.issue_key(owner, "k")
    for _ in range(50):
        hub.authenticate(key)
    assert hub.system.fetchone("SELECT last_used_at FROM api_keys WHERE id = ?", (kid,)) == (None,)
    assert notifications(hub.system, "auth:key_verified") == []
    assert hub.flush() == 1
    assert hub.system.fetchone("SELECT last_used_at FROM api_keys WHERE id = ?", (kid,))[0]
    events = notifications(hub.system, "auth:key_verified")
    assert [(e["key_id"], e["owner_id"]) for e in events] == [(kid, owner)]
    assert hub.flush() == 0


def test_flush_happens_by_itself_after_the_interval(hub_root: Path) -> None:
    with Hub(hub_root, peppers=peppers(), last_used_flush_s=0.0) as hub:
        owner = hub.create_account("o@example.com")
        kid, key = hub.issue_key(owner, "k")
        hub.authenticate(key)
        hub.authenticate(key)
        assert hub.system.fetchone("SELECT last_used_at FROM api_keys WHERE id = ?", (kid,))[0]


def test_reroll_keeps_the_old_key_for_the_grace_period(hub: Hub, owner: str, org: str) -> None:
    kid, key = hub.issue_key(owner, "k", org_id=org, scopes=["a"])
    new_id_, new_key = hub.reroll_key(kid, grace=timedelta(hours=1))
    assert hub.authenticate(key).key_id == kid
    ident = hub.authenticate(new_key)
    assert ident.key_id == new_id_ and ident.scopes == frozenset({"a"}) and ident.key_org_id == org
    kid2, key2 = hub.issue_key(owner, "k")
    hub.reroll_key(kid2, grace=timedelta(0))
    assert str(failure(hub, key2)) == INVALID_KEY


def test_pepper_rotation_upgrades_hashes_on_use(hub_root: Path) -> None:
    with Hub(hub_root, peppers=peppers(1)) as hub:
        owner = hub.create_account("o@example.com")
        kid, key = hub.issue_key(owner, "k")
    with Hub(hub_root, peppers=peppers(1, 2)) as hub:
        assert hub.authenticate(key).key_id == kid
        hub.flush()
        assert hub.system.fetchone(
            "SELECT pepper_version FROM api_keys WHERE id = ?", (kid,)) == (2,)
    with Hub(hub_root, peppers=peppers(2)) as hub:  # pepper 1 retired
        assert hub.authenticate(key).key_id == kid
    with Hub(hub_root, peppers=peppers(3)) as hub:  # unknown version: uniform failure
        assert str(failure(hub, key)) == INVALID_KEY


# -- sessions --------------------------------------------------------------------------


def test_session_checks_membership(hub: Hub, owner: str, org: str) -> None:
    stranger = hub.create_account("s@example.com")
    _, key = hub.issue_key(stranger, "k")
    ident = hub.authenticate(key)
    with pytest.raises(ScopeViolation) as a:
        hub.session(ident, org)
    with pytest.raises(ScopeViolation) as b:
        hub.session(ident, new_id())
    assert str(a.value).split(" for ")[0] == str(b.value).split(" for ")[0]
    hub.add_member(org, stranger, "viewer")
    ident = hub.authenticate(key)
    with hub.session(ident, org, request_id="r1") as s:
        assert s.principal == Principal.user(stranger, org, "viewer")
        assert s.context.request_id == "r1" and s.context.key_scopes == frozenset()
        assert s.db.fetchone("SELECT count(*) FROM graph_types")[0] == len(BUILTIN_MODULES)
    assert s.closed
    with pytest.raises(ScopeViolation):
        hub.session(Principal.user(new_id(), org, "owner"), org)
    with hub.session(Principal.system(), org) as s:
        assert s.principal.is_system


def test_session_with_an_agent_needs_a_delegation_in_the_acl_graph(hub: Hub, owner: str,
                                                                   org: str) -> None:
    _, key = hub.issue_key(owner, "k")
    ident = hub.authenticate(key)
    with pytest.raises(ScopeViolation):
        hub.session(ident, org, agent_id="bot-1")
    with hub.session(ident, org) as s, s.graphs() as store:
        acl = store.db.fetchone("SELECT id FROM graph_types WHERE name = 'acl-graph'")[0]
        g = store.create_graph(acl, "acl")
        store.add_node(g.id, "me", "principal", {"kind": "account", "account_id": owner})
        store.add_node(g.id, "bot-1", "agent", {"name": "Bot"})
        store.add_node(g.id, "bot-2", "agent", {"name": "Old bot"})
        store.add_edge(g.id, "delegates_to", "me", "bot-1", {"scopes": ["graphs:read"]})
        store.add_edge(g.id, "delegates_to", "me", "bot-2",
                       {"scopes": ["graphs:read"], "expires_at": "2000-01-01T00:00:00Z"})
    with hub.session(ident, org, agent_id="bot-1") as s:
        assert s.context.agent_id == "bot-1"
        assert s.context.delegated_scopes == frozenset({"graphs:read"})
        assert s.principal.agent_id == "bot-1"
    with pytest.raises(ScopeViolation):
        hub.session(ident, org, agent_id="bot-2")  # expired delegation


def test_identity_is_not_forgeable_into_another_org(hub: Hub, owner: str, org: str) -> None:
    for fake in (Identity(account_id=owner, memberships={org: "owner"}),
                 Identity(account_id=owner, memberships={new_id(): "owner"})):
        with pytest.raises(ScopeViolation):
            hub.session(fake, org)
    _, key = hub.issue_key(owner, "k")
    with hub.session(hub.authenticate(key), org):
        pass
