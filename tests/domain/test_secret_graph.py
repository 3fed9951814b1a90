"""The built-in secret graph module and its seal/reveal helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretBytes, SecretStr
from rotation_helpers import TEST_MODULE

from alkdev_storage.domain import GraphStore, Principal, init_tenant
from alkdev_storage.domain.builtin import BUILTIN_MODULES
from alkdev_storage.domain.builtin.secret_graph import (
    SECRET_GRAPH,
    SecretSealer,
    reveal_attributes,
    seal_attributes,
)
from alkdev_storage.domain.modules import (
    encrypted_fields,
    get_module,
    module_to_db_schema,
    validate_edge,
    validate_node,
)
from alkdev_storage.domain.rotation import rotation_status, run_rotation, start_rotation
from alkdev_storage.domain.secrets import (
    ENVELOPE_PATTERN,
    Binding,
    EncryptedData,
    StaticKeyProvider,
    decrypt_text,
    encrypt,
)
from alkdev_storage.errors import DecryptionFailed, SecretError, ValidationFailed

K1, K2 = bytes([1]) * 32, bytes([2]) * 32
P = StaticKeyProvider({1: K1, 2: K2}, current=2)
ORG = "org-A"
ROW = ("org-A", "nodes", "01HNODE000000000000000000A")
PLAIN = "s3cret-value-for-tests"


def test_registered_and_declared():
    assert SECRET_GRAPH in BUILTIN_MODULES
    assert get_module("secret-graph", "1.0.0") is SECRET_GRAPH
    assert encrypted_fields(SECRET_GRAPH, "secret") == ["value"]
    for t in ("vault", "principal", "contains", "grants", "replaces"):
        assert encrypted_fields(SECRET_GRAPH, t) == []
    node_schema, edge_schema = module_to_db_schema(SECRET_GRAPH)
    secret_branch = next(b for b in node_schema["oneOf"]
                         if b["properties"]["type"] == {"const": "secret"})
    assert secret_branch["x-encrypted"] == ["value"]
    value = node_schema["$defs"]["SecretAttributes"]["properties"]["value"]
    assert value["type"] == "string" and value["pattern"] == ENVELOPE_PATTERN
    assert ["vault", "contains", "secret"] in edge_schema["x-triples"]
    assert ["principal", "grants", "secret"] in edge_schema["x-triples"]


def test_triples():
    validate_edge(SECRET_GRAPH, "contains", "vault", "secret", {})
    validate_edge(SECRET_GRAPH, "grants", "principal", "vault", {"permission": "admin"})
    for source, edge, target in [("secret", "contains", "vault"),
                                 ("vault", "grants", "secret"),
                                 ("principal", "replaces", "secret")]:
        with pytest.raises(ValidationFailed):
            validate_edge(SECRET_GRAPH, edge, source, target, {})


def test_seal_then_validate_then_reveal():
    attrs, kv = seal_attributes(SECRET_GRAPH, "secret",
                                {"name": "db", "value": PLAIN, "kind": "password"}, ROW, P)
    assert kv == 2 and isinstance(attrs["value"], EncryptedData)
    stored = validate_node(SECRET_GRAPH, "secret", attrs)
    assert stored["value"] == attrs["value"] and stored["name"] == "db"
    assert PLAIN not in repr(stored)
    shown = reveal_attributes(SECRET_GRAPH, "secret", stored, ROW, P)
    assert isinstance(shown["value"], SecretStr)
    assert shown["value"].get_secret_value() == PLAIN
    assert PLAIN not in repr(shown) and PLAIN not in str(shown)
    assert reveal_attributes(SECRET_GRAPH, "secret", stored, ROW, P, wrap=False)["value"] == PLAIN
    raw = reveal_attributes(SECRET_GRAPH, "secret", stored, ROW, P, as_bytes=True)["value"]
    assert isinstance(raw, SecretBytes) and raw.get_secret_value() == PLAIN.encode()
    # the binding is the row's: org, table, attributes.value, row id
    where = Binding(ROW[0], ROW[1], "attributes.value", ROW[2])
    assert decrypt_text(stored["value"], where, P) == PLAIN


@settings(max_examples=60)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)),
       st.sampled_from(["str", "secretstr", "bytes"]))
def test_seal_reveal_round_trip(plain, form):
    if isinstance(plain, bytes):
        given_ = SecretBytes(plain) if form == "secretstr" else plain
        expected = plain
    else:
        given_ = {"str": plain, "secretstr": SecretStr(plain), "bytes": plain.encode()}[form]
        expected = plain.encode()
    if isinstance(given_, str):
        try:
            EncryptedData(given_)
            return  # a str in the envelope format is a ciphertext, not a plaintext
        except ValidationFailed:
            pass
    attrs, kv = seal_attributes(SECRET_GRAPH, "secret", {"name": "n", "value": given_}, ROW, P)
    assert kv == 2
    shown = reveal_attributes(SECRET_GRAPH, "secret", attrs, ROW, P, as_bytes=True, wrap=False)
    assert shown["value"] == expected


def test_envelopes_are_checked_not_encrypted_again():
    attrs, _ = seal_attributes(SECRET_GRAPH, "secret", {"name": "n", "value": PLAIN}, ROW, P)
    envelope = attrs["value"]
    # written again (as EncryptedData, or as the str read back from JSON): kept as is
    for again in (envelope, str(envelope)):
        resealed, kv = seal_attributes(SECRET_GRAPH, "secret", {"name": "n", "value": again},
                                       ROW, P)
        assert resealed["value"] == envelope and kv == 2
    # an old-version envelope keeps its version (the row's key_version says so)
    old = encrypt(PLAIN, Binding(ROW[0], ROW[1], "attributes.value", ROW[2]), P, key_version=1)
    assert seal_attributes(SECRET_GRAPH, "secret", {"name": "n", "value": old}, ROW, P)[1] == 1
    # copied to another row, table or org: refused
    for other in [(ROW[0], ROW[1], "01HOTHERROW00000000000000"), (ROW[0], "edges", ROW[2]),
                  ("org-B", ROW[1], ROW[2])]:
        for again in (envelope, str(envelope)):
            with pytest.raises(DecryptionFailed):
                seal_attributes(SECRET_GRAPH, "secret", {"name": "n", "value": again}, other, P)
    # a plaintext that looks like an envelope is stored as a plaintext when wrapped
    wrapped, _ = seal_attributes(SECRET_GRAPH, "secret",
                                 {"name": "n", "value": SecretStr(str(envelope))}, ROW, P)
    assert wrapped["value"] != envelope
    assert reveal_attributes(SECRET_GRAPH, "secret", wrapped, ROW, P,
                             wrap=False)["value"] == envelope


def test_lowest_key_version_of_several_fields():
    row = ("org-A", "nodes", "01HNODE000000000000000000B")
    p1 = StaticKeyProvider({1: K1, 2: K2}, current=1)
    first, kv1 = seal_attributes(TEST_MODULE, "account", {"name": "a", "password": "x"}, row, p1)
    assert kv1 == 1
    both, kv = seal_attributes(TEST_MODULE, "account", {**first, "token": "y"}, row, P)
    assert kv == 1  # password still on version 1, token on version 2
    assert EncryptedData(both["token"]).key_version == 2
    none, kv_none = seal_attributes(TEST_MODULE, "account", {"name": "a", "password": None},
                                    row, P)
    assert kv_none is None and none == {"name": "a", "password": None}
    plain, kv_plain = seal_attributes(TEST_MODULE, "plain", {"name": "p"}, row, P)
    assert (plain, kv_plain) == ({"name": "p"}, None)


def test_bad_values_are_refused_without_quoting():
    with pytest.raises(ValidationFailed, match=r"attributes\.value: a secret must be given as") \
            as info:
        seal_attributes(SECRET_GRAPH, "secret", {"name": "n", "value": 12345}, ROW, P)
    assert info.value.field == "attributes.value"
    # plaintext that skipped sealing is refused by validation, and not quoted
    with pytest.raises(ValidationFailed) as info:
        validate_node(SECRET_GRAPH, "secret", {"name": "n", "value": PLAIN})
    assert info.value.field == "attributes.value" and PLAIN not in str(info.value)
    with pytest.raises(ValidationFailed, match="binding_base"):
        seal_attributes(SECRET_GRAPH, "secret", {"name": "n", "value": PLAIN},
                        ("org", "nodes"), P)  # type: ignore[arg-type]  # wrong on purpose


def test_reveal_errors():
    attrs, _ = seal_attributes(SECRET_GRAPH, "secret", {"name": "n", "value": b"\xff\xfe"},
                               ROW, P)
    with pytest.raises(SecretError, match="not UTF-8"):
        reveal_attributes(SECRET_GRAPH, "secret", attrs, ROW, P)
    assert reveal_attributes(SECRET_GRAPH, "secret", attrs, ROW, P, as_bytes=True,
                             wrap=False)["value"] == b"\xff\xfe"
    with pytest.raises(DecryptionFailed):
        reveal_attributes(SECRET_GRAPH, "secret", attrs, ("org-B", "nodes", ROW[2]), P)


def test_sealer():
    sealer = SecretSealer(P)
    assert repr(sealer) == f"SecretSealer({P!r})"
    assert "\\x01" not in repr(sealer)
    env = sealer(PLAIN, org_id=ORG, table="nodes", column="attributes.value", row_id="r1")
    assert decrypt_text(env, Binding(ORG, "nodes", "attributes.value", "r1"), P) == PLAIN
    assert sealer(env, org_id=ORG, table="nodes", column="attributes.value", row_id="r1") == env
    with pytest.raises(DecryptionFailed):
        sealer(env, org_id=ORG, table="nodes", column="attributes.value", row_id="r2")


# ------------------------------------------------------------ through the graph store


def test_graph_store_seals_and_checks(db):
    init_tenant(db, ORG)
    admin = Principal.tenant_admin(ORG, "acct-admin")
    with GraphStore(db, ORG, admin, sealer=SecretSealer(P)) as s:
        (gt,) = s.graph_types(name="secret-graph")
        assert gt.scope == "system"
        g = s.create_graph(gt, "prod")
        s.add_node(g.id, "infra", "vault", {"name": "infra"})
        sec = s.add_node(g.id, "db", "secret", {"name": "db", "value": PLAIN, "kind": "password"})
        api = s.add_node(g.id, "api", "secret", {"name": "api", "value": SecretStr("k-123")})
        s.add_edge(g.id, "contains", "infra", "db")
        stored = db.query("SELECT attributes, key_version FROM nodes WHERE id = ?", [sec.id])[0]
        assert PLAIN not in stored["attributes"] and stored["key_version"] == 2
        got = s.get_node(g.id, "db")
        where = (ORG, "nodes", got.id)
        shown = reveal_attributes(SECRET_GRAPH, "secret", got.attributes, where, P, wrap=False)
        assert shown["value"] == PLAIN and shown["name"] == "db"
        assert reveal_attributes(SECRET_GRAPH, "secret", s.get_node(g.id, "api").attributes,
                                 (ORG, "nodes", api.id), P, wrap=False)["value"] == "k-123"
        # read back and written again (whole or merged): the same envelope
        envelope = got.attributes["value"]
        s.update_node(g.id, "db", dict(got.attributes))
        s.update_node(g.id, "db", {"description": "primary"}, merge=True)
        assert s.get_node(g.id, "db").attributes["value"] == envelope
        # a ciphertext copied to another row is refused (as str or EncryptedData), nothing written
        before = db.query("SELECT id, attributes, key_version FROM nodes ORDER BY id")
        for copied in (envelope, EncryptedData(envelope)):
            with pytest.raises(DecryptionFailed, match=api.id):
                s.update_node(g.id, "api", {"name": "api", "value": copied})
            with pytest.raises(DecryptionFailed):
                s.add_node(g.id, "new", "secret", {"name": "new", "value": copied})
        assert db.query("SELECT id, attributes, key_version FROM nodes ORDER BY id") == before
        # a new plaintext replaces the value, sealed for this row
        s.update_node(g.id, "api", {"value": "k-456"}, merge=True)
        assert reveal_attributes(SECRET_GRAPH, "secret", s.get_node(g.id, "api").attributes,
                                 (ORG, "nodes", api.id), P, wrap=False)["value"] == "k-456"

    # rotation of what the store wrote, then every secret still reveals
    p3 = StaticKeyProvider({1: K1, 2: K2, 3: bytes([3]) * 32})
    assert rotation_status(db, p3).nodes == {2: 2}
    start_rotation(db, ORG, p3)
    progress = run_rotation(db, p3)
    assert progress is not None and progress.finished and progress.nodes_done == 2
    with GraphStore(db, ORG, admin) as s:
        for node in s.list_nodes(g.id, type="secret"):
            assert node.key_version == 3
            assert EncryptedData(node.attributes["value"]).key_version == 3
            value = reveal_attributes(SECRET_GRAPH, "secret", node.attributes,
                                      (ORG, "nodes", node.id), p3, wrap=False)["value"]
            assert value == {"db": PLAIN, "api": "k-456"}[node.key]
