"""Encrypted secrets (alkdev_storage.domain.secrets): round trips, the
adversarial moves (rows, columns, tables, tenants), tampering, key
providers, and that no message or repr carries plaintext or key material."""

from __future__ import annotations

import base64
import json
import os
import pickle
import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, SecretBytes, SecretStr
from pydantic import ValidationError as PydanticValidationError

from alkdev_storage.domain.secrets import (
    ENVELOPE_PATTERN,
    MAX_KEY_VERSION,
    Binding,
    EncryptedColumn,
    EncryptedData,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    StaticKeyProvider,
    decrypt,
    decrypt_text,
    encrypt,
    envelope_size,
    generate_key,
    reencrypt,
)
from alkdev_storage.errors import (
    DecryptionFailed,
    SecretError,
    UnknownKeyVersion,
    ValidationFailed,
)
from alkdev_storage.sqlalchemy import create_engine

K1, K2, K3 = (bytes([i]) * 32 for i in (1, 2, 3))
WHERE = Binding("org-A", "nodes", "attributes.value", "01HROW0000000000000000000A")
PLAIN = "correct horse battery staple"

fields = st.text(min_size=1, max_size=40)
bindings = st.builds(Binding, fields, fields, fields, fields)
plaintexts = st.one_of(st.binary(max_size=2048), st.text(max_size=512))
key_sets = st.dictionaries(
    st.integers(1, MAX_KEY_VERSION), st.binary(min_size=32, max_size=32), min_size=1, max_size=4
)


def _key_forms(key: bytes) -> list[str]:
    """Every textual form of a key that a leak could take."""
    return [
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        key.hex(),
        repr(key)[2:-1],
    ]


def _assert_no_leak(text: str, *secrets: bytes | str) -> None:
    """Neither a plaintext (str) nor a key (32 bytes, in any text form)."""
    for secret in secrets:
        forms = [secret] if isinstance(secret, str) else _key_forms(secret)
        for form in forms:
            assert form not in text


# ---------------------------------------------------------------- round trips


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(plaintexts, bindings, key_sets, st.data())
def test_round_trip(plaintext, binding, keys, data):
    current = data.draw(st.sampled_from(sorted(keys)))
    provider = StaticKeyProvider(keys, current)
    sealed = encrypt(plaintext, binding, provider)
    expected = plaintext.encode() if isinstance(plaintext, str) else plaintext
    assert isinstance(sealed, EncryptedData)
    assert sealed.key_version == current
    assert re.fullmatch(ENVELOPE_PATTERN, sealed)
    assert len(sealed) == envelope_size(len(expected), current)
    assert decrypt(sealed, binding, provider) == expected
    assert decrypt(str(sealed), binding, provider) == expected  # a plain str read back
    if isinstance(plaintext, str):
        assert decrypt_text(sealed, binding, provider) == plaintext
    env = sealed.parse()
    assert (env.version, env.key_version, len(env.nonce)) == (1, current, 12)
    assert len(env.ciphertext) == len(expected) + 16
    # every key version the provider holds can be chosen explicitly
    for version in keys:
        other = encrypt(plaintext, binding, provider, key_version=version)
        assert other.key_version == version
        assert decrypt(other, binding, provider) == expected


def test_plaintext_forms():
    for given_, expected in [
        ("é", "é".encode()),
        (b"\x00\xff", b"\x00\xff"),
        (bytearray(b"ab"), b"ab"),
        (memoryview(b"cd"), b"cd"),
        (SecretStr("s3cret"), b"s3cret"),
        (SecretBytes(b"\x01"), b"\x01"),
        ("", b""),
    ]:
        assert decrypt(encrypt(given_, WHERE, StaticKeyProvider({1: K1})), WHERE,
                       StaticKeyProvider({1: K1})) == expected
    with pytest.raises(ValidationFailed, match="not int"):
        encrypt(5, WHERE, StaticKeyProvider({1: K1}))  # type: ignore[arg-type]  # wrong on purpose
    with pytest.raises(ValidationFailed, match="lone surrogate") as info:
        encrypt("pw\ud800", WHERE, StaticKeyProvider({1: K1}))
    assert "pw" not in str(info.value)


def test_nonces_are_fresh():
    provider = StaticKeyProvider({1: K1})
    sealed = {encrypt(PLAIN, WHERE, provider) for _ in range(200)}
    assert len(sealed) == 200
    assert len({s.parse().nonce for s in sealed}) == 200


def test_reencrypt_moves_to_current_key():
    old = StaticKeyProvider({1: K1})
    sealed = encrypt(PLAIN, WHERE, old)
    both = StaticKeyProvider({1: K1, 2: K2})
    again = reencrypt(sealed, WHERE, both)
    assert again.key_version == 2
    assert decrypt_text(again, WHERE, StaticKeyProvider({2: K2})) == PLAIN


# ---------------------------------------------------------------- adversarial


def _moved(binding: Binding) -> list[tuple[str, Binding]]:
    return [
        ("row", Binding(binding.org_id, binding.table, binding.column, binding.row_id + "x")),
        ("column", Binding(binding.org_id, binding.table, "attributes.other", binding.row_id)),
        ("table", Binding(binding.org_id, "edges", binding.column, binding.row_id)),
        ("org", Binding(binding.org_id + "-B", binding.table, binding.column, binding.row_id)),
    ]


@pytest.mark.parametrize("move", ["row", "column", "table", "org"])
def test_moved_ciphertext_fails(move):
    provider = StaticKeyProvider({1: K1})
    sealed = encrypt(PLAIN, WHERE, provider)
    target = dict(_moved(WHERE))[move]
    with pytest.raises(DecryptionFailed) as info:
        decrypt(sealed, target, provider)
    message = str(info.value)
    assert "another org, table, column or row" in message
    assert target.row_id in message  # names where it was read
    _assert_no_leak(message, PLAIN, K1)


@settings(max_examples=200)
@given(bindings, bindings, plaintexts)
def test_any_other_binding_fails(a, b, plaintext):
    provider = StaticKeyProvider({1: K1})
    sealed = encrypt(plaintext, a, provider)
    if a == b:
        decrypt(sealed, b, provider)
    else:
        with pytest.raises(DecryptionFailed):
            decrypt(sealed, b, provider)


@given(bindings, bindings, st.integers(1, MAX_KEY_VERSION), st.integers(1, MAX_KEY_VERSION))
def test_associated_data_is_unambiguous(a, b, va, vb):
    # the oracle: equal bytes exactly when binding and key version are equal
    assert (a.associated_data(va) == b.associated_data(vb)) == (a == b and va == vb)


def test_associated_data_layout():
    aad = Binding("o", "t", "c", "rr").associated_data(7)
    assert aad == (
        b"alkdev-storage/secret\x00" + b"\x01" + (7).to_bytes(4, "big")
        + b"\x00\x00\x00\x01o" + b"\x00\x00\x00\x01t" + b"\x00\x00\x00\x01c"
        + b"\x00\x00\x00\x02rr"
    )
    # shifting a separator between fields changes the bytes
    assert Binding("ab", "c", "d", "e").associated_data(1) != Binding(
        "a", "bc", "d", "e"
    ).associated_data(1)


def test_moves_between_rows_and_tenant_files(tmp_path):
    """Ciphertexts in real files: copied by SQL to another row, another
    column, another table and another tenant's file; each read decrypts
    with the binding of where it now is, and fails."""
    provider = StaticKeyProvider({1: K1})
    meta = sa.MetaData()
    tables = {
        name: sa.Table(
            name, meta,
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("token", EncryptedColumn),
            sa.Column("password", EncryptedColumn),
        )
        for name in ("creds", "creds_archive")
    }
    engines = {org: create_engine(tmp_path / f"tenant-{org}.db") for org in ("A", "B")}
    secrets = {}
    try:
        for org, engine in engines.items():
            meta.create_all(engine)
            with engine.begin() as conn:
                for table in tables.values():
                    for row in ("r1", "r2"):
                        values = {}
                        for column in ("token", "password"):
                            plain = f"{org}/{table.name}/{row}/{column}"
                            where = Binding(org, table.name, column, row)
                            values[column] = encrypt(plain, where, provider)
                            secrets[(org, table.name, column, row)] = plain
                        conn.execute(table.insert().values(id=row, **values))

        def read(org, table, column, row):
            with engines[org].connect() as conn:
                t = tables[table]
                value = conn.execute(sa.select(t.c[column]).where(t.c.id == row)).scalar_one()
            assert isinstance(value, EncryptedData)
            return decrypt_text(value, Binding(org, table, column, row), provider)

        for (org, table, column, row), plain in secrets.items():
            assert read(org, table, column, row) == plain

        def copy(src, dst):
            (so, st_, sc, sr), (do, dt, dc, dr) = src, dst
            with engines[so].connect() as conn:
                t = tables[st_]
                value = conn.execute(sa.select(t.c[sc]).where(t.c.id == sr)).scalar_one()
            with engines[do].begin() as conn:
                t = tables[dt]
                conn.execute(t.update().where(t.c.id == dr).values({dc: value}))

        src = ("A", "creds", "token", "r1")
        for dst in [
            ("A", "creds", "token", "r2"),          # another row
            ("A", "creds", "password", "r1"),       # another column
            ("A", "creds_archive", "token", "r1"),  # another table
            ("B", "creds", "token", "r1"),          # another tenant
        ]:
            copy(src, dst)
            with pytest.raises(DecryptionFailed) as info:
                read(*dst)
            _assert_no_leak(str(info.value), secrets[src], secrets[dst], K1)
        assert read(*src) == secrets[src]  # the original is untouched
    finally:
        for engine in engines.values():
            engine.dispose()


# ---------------------------------------------------------------- tampering


def _flip(text: str, index: int, bit: int) -> str:
    return text[:index] + chr(ord(text[index]) ^ (1 << bit)) + text[index + 1 :]


def test_every_bit_flip_fails():
    provider = StaticKeyProvider({1: K1, 3: K3})
    sealed = encrypt("short", WHERE, provider, key_version=1)
    failures = 0
    for index in range(len(sealed)):
        for bit in range(8):
            tampered = _flip(sealed, index, bit)
            with pytest.raises(SecretError) as info:
                decrypt(tampered, WHERE, provider)
            assert isinstance(info.value, DecryptionFailed | UnknownKeyVersion)
            failures += 1
    assert failures == 8 * len(sealed)


@settings(max_examples=300)
@given(st.binary(max_size=64), st.data())
def test_bit_flips_in_the_raw_body_fail(plaintext, data):
    """Flip any bit of nonce, ciphertext or tag and re-encode canonically:
    only the GCM check can catch it."""
    provider = StaticKeyProvider({1: K1})
    sealed = encrypt(plaintext, WHERE, provider)
    env = sealed.parse()
    raw = bytearray(env.nonce + env.ciphertext)
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    body = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    tampered = EncryptedData(f"v1.1.{body}")
    with pytest.raises(DecryptionFailed):
        decrypt(tampered, WHERE, provider)


def test_truncated_or_extended_fails():
    provider = StaticKeyProvider({1: K1})
    sealed = encrypt(PLAIN, WHERE, provider)
    for bad in (sealed[:-1], sealed[:-4], sealed + "A", sealed + "AAAA", "v1.1.", ""):
        with pytest.raises(DecryptionFailed):
            decrypt(bad, WHERE, provider)


def test_edited_key_version_fails_even_with_the_same_key():
    # versions 1 and 2 hold the same key: only the associated data differs
    provider = StaticKeyProvider({1: K1, 2: K1})
    sealed = encrypt(PLAIN, WHERE, provider, key_version=1)
    edited = "v1.2." + sealed[len("v1.1.") :]
    assert EncryptedData(edited).key_version == 2
    with pytest.raises(DecryptionFailed):
        decrypt(edited, WHERE, provider)


def test_wrong_key_fails():
    sealed = encrypt(PLAIN, WHERE, StaticKeyProvider({1: K1}))
    with pytest.raises(DecryptionFailed) as info:
        decrypt(sealed, WHERE, StaticKeyProvider({1: K2}))
    _assert_no_leak(str(info.value), PLAIN, K1, K2)


def test_unknown_key_version():
    sealed = encrypt(PLAIN, WHERE, StaticKeyProvider({5: K1}))
    with pytest.raises(UnknownKeyVersion, match="key version 5 is unknown") as info:
        decrypt(sealed, WHERE, StaticKeyProvider({1: K1, 2: K2}))
    assert isinstance(info.value, KeyError)
    _assert_no_leak(str(info.value), PLAIN, K1, K2)
    with pytest.raises(UnknownKeyVersion):
        encrypt(PLAIN, WHERE, StaticKeyProvider({1: K1}), key_version=2)


def test_not_utf8_text():
    provider = StaticKeyProvider({1: K1})
    sealed = encrypt(b"\xffsecret\xfe", WHERE, provider)
    with pytest.raises(SecretError, match="not UTF-8") as info:
        decrypt_text(sealed, WHERE, provider)
    assert "secret" not in str(info.value).replace("the secret for", "")
    assert "xff" not in str(info.value)


def test_custom_provider_with_a_short_key_is_refused():
    class Short:
        def current_version(self) -> int:
            return 1

        def key(self, version: int) -> bytes:
            return b"k" * 16  # AES-128-sized: must not silently be accepted

    assert isinstance(Short(), KeyProvider)
    with pytest.raises(SecretError, match="16 bytes; an AES-256 key is 32") as info:
        encrypt(PLAIN, WHERE, Short())
    assert "kkkk" not in str(info.value)


def test_binding_validation():
    with pytest.raises(ValidationFailed, match=r"Binding\.row_id must be a non-empty str") as info:
        Binding("o", "t", "c", "")
    assert info.value.field == "row_id"
    with pytest.raises(ValidationFailed, match=r"Binding\.org_id .* int"):
        Binding(1, "t", "c", "r")  # type: ignore[arg-type]  # wrong on purpose
    with pytest.raises(ValidationFailed, match="binding must be a Binding"):
        encrypt(PLAIN, ("o", "t", "c", "r"), StaticKeyProvider({1: K1}))  # type: ignore[arg-type]


# ---------------------------------------------------------------- envelope type


def test_envelope_validation_never_quotes_the_input():
    for bad in (PLAIN, "v1.0.AAAA", "v2.1." + "A" * 40, "v1.01." + "A" * 40, "v1.1." + "A" * 37):
        with pytest.raises(ValidationFailed) as info:
            EncryptedData(bad)
        assert bad not in str(info.value)
    with pytest.raises(ValidationFailed, match="above"):
        EncryptedData(f"v1.{MAX_KEY_VERSION + 1}." + "A" * 40)
    with pytest.raises(ValidationFailed, match="not canonical"):
        EncryptedData("v1.1." + "A" * 37 + "B")  # unused low bits of the tail set
    assert EncryptedData("v1.1." + "A" * 38).key_version == 1  # 28 zero bytes: well formed


@settings(max_examples=500)
@given(
    st.one_of(
        st.integers(0, 2**40).map(str),
        st.text(alphabet="0123456789", max_size=11),
    ),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ \né.",
            min_size=30, max_size=48),
)
def test_pattern_agrees_with_the_parser(version, body):
    text = f"v1.{version}.{body}"
    try:
        EncryptedData(text)
        parsed = True
    except ValidationFailed:
        parsed = False
    matches = re.fullmatch(ENVELOPE_PATTERN, text) is not None
    if parsed:
        assert matches
    elif matches:  # the pattern cannot bound the key version's value
        assert int(version) > MAX_KEY_VERSION


class Credential(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)
    name: str
    value: EncryptedData


def test_pydantic_field():
    provider = StaticKeyProvider({1: K1})
    sealed = encrypt(PLAIN, WHERE, provider)
    model = Credential(name="db", value=str(sealed))
    assert type(model.value) is EncryptedData and model.value == sealed
    assert model.model_dump() == {"name": "db", "value": str(sealed)}
    assert Credential.model_validate_json(model.model_dump_json()).value == sealed
    schema = Credential.model_json_schema()["properties"]["value"]
    assert schema["type"] == "string" and schema["pattern"] == ENVELOPE_PATTERN
    with pytest.raises(PydanticValidationError) as info:
        Credential(name="db", value=PLAIN)
    assert info.value.errors()[0]["loc"] == ("value",)
    assert PLAIN not in str(info.value)


def test_encrypted_column(tmp_path):
    meta = sa.MetaData()
    t = sa.Table("s", meta, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("v", EncryptedColumn, nullable=True))
    engine = create_engine(tmp_path / "t.db")
    try:
        meta.create_all(engine)
        provider = StaticKeyProvider({1: K1})
        sealed = encrypt(PLAIN, WHERE, provider)
        with engine.begin() as conn:
            conn.execute(t.insert().values(id=1, v=sealed))
            conn.execute(t.insert().values(id=2, v=None))
        with pytest.raises(sa.exc.StatementError) as info, engine.begin() as conn:
            conn.execute(t.insert().values(id=3, v=PLAIN))
        assert isinstance(info.value.orig, ValidationFailed)
        assert "EncryptedColumn stores EncryptedData only" in str(info.value.orig)
        assert PLAIN not in str(info.value.orig)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.id, t.c.v).order_by(t.c.id)).all()
        assert [r.id for r in rows] == [1, 2]  # nothing written for the refused row
        assert type(rows[0].v) is EncryptedData and rows[0].v == sealed
        assert rows[1].v is None
        assert decrypt_text(rows[0].v, WHERE, provider) == PLAIN
    finally:
        engine.dispose()


# ---------------------------------------------------------------- providers


def test_static_provider():
    provider = StaticKeyProvider({1: K1, 2: K2})
    assert provider.current_version() == 2 and provider.key(1) == K1
    assert provider.versions() == [1, 2]
    assert StaticKeyProvider({1: K1, 2: K2}, current=1).current_version() == 1
    assert repr(provider) == "StaticKeyProvider(versions=[1, 2], current=2)"
    _assert_no_leak(repr(provider) + str(provider), K1, K2)
    for keys, current, message in [
        ({}, None, "no keys"),
        ({1: K1[:31]}, None, "key version 1: the key is 31 bytes"),
        ({1: K1 + b"x"}, None, "33 bytes"),
        ({0: K1}, None, "outside"),
        ({1: K1}, 2, "current version 2 has no key"),
        ({1: "a" * 32}, None, "must be bytes, not str"),
    ]:
        with pytest.raises(SecretError, match=message) as info:
            StaticKeyProvider(keys, current)  # type: ignore[arg-type]  # wrong on purpose
        _assert_no_leak(str(info.value), K1)
        assert "aaaa" not in str(info.value)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(provider)


def test_env_provider():
    k1, k2 = generate_key(), generate_key()
    env = {"ALKDEV_SECRET_KEY_1": k1, "ALKDEV_SECRET_KEY_2": k2, "HOME": "/x"}
    provider = EnvKeyProvider(environ=env)
    assert provider.current_version() == 2
    assert provider.key(1) == base64.b64decode(k1)
    assert EnvKeyProvider(environ={**env, "ALKDEV_SECRET_KEY_CURRENT": "1"}).current_version() == 1
    urlsafe = base64.urlsafe_b64encode(K3).decode().rstrip("=")
    assert EnvKeyProvider("P_", {"P_7": urlsafe}).key(7) == K3
    text = repr(provider)
    assert text == "EnvKeyProvider(prefix='ALKDEV_SECRET_KEY_', versions=[1, 2], current=2)"
    _assert_no_leak(text, base64.b64decode(k1), base64.b64decode(k2))
    sealed = encrypt(PLAIN, WHERE, provider)
    assert decrypt_text(sealed, WHERE, StaticKeyProvider({2: base64.b64decode(k2)})) == PLAIN


def test_env_provider_reads_os_environ(monkeypatch):
    monkeypatch.setenv("ALKTEST_KEY_3", base64.b64encode(K3).decode())
    assert EnvKeyProvider("ALKTEST_KEY_").key(3) == K3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no keys; set ALKDEV_SECRET_KEY_1"),
        ({"ALKDEV_SECRET_KEY_1": "not base64!!"},
         "ALKDEV_SECRET_KEY_1: the key is not valid base64"),
        ({"ALKDEV_SECRET_KEY_1": base64.b64encode(K1[:16]).decode()}, "16 bytes"),
        ({"ALKDEV_SECRET_KEY_1": base64.b64encode(K1).decode(), "ALKDEV_SECRET_KEY_CURRENT": "2"},
         "CURRENT is 2 but ALKDEV_SECRET_KEY_2 is not set"),
        ({"ALKDEV_SECRET_KEY_1": base64.b64encode(K1).decode(), "ALKDEV_SECRET_KEY_CURRENT": "x"},
         "CURRENT: must be a key version"),
        ({"ALKDEV_SECRET_KEY_1": base64.b64encode(K1).decode(), "ALKDEV_SECRET_KEY_V2": "y"},
         "ALKDEV_SECRET_KEY_V2: the part after"),
        ({"ALKDEV_SECRET_KEY_01": base64.b64encode(K1).decode()}, "the part after"),
    ],
)
def test_env_provider_errors(env, message):
    with pytest.raises(SecretError, match=re.escape(message)) as info:
        EnvKeyProvider(environ=env)
    for value in env.values():
        if len(value) > 2:
            assert value not in str(info.value)
    _assert_no_leak(str(info.value), K1)


def _key_file(path, doc, mode=0o600):
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    os.chmod(path, mode)
    return path


def test_file_provider(tmp_path):
    doc = {"current": 1, "keys": {"1": base64.b64encode(K1).decode(),
                                  "2": base64.b64encode(K2).decode()}}
    path = _key_file(tmp_path / "keys.json", doc)
    provider = FileKeyProvider(path)
    assert (provider.current_version(), provider.key(2)) == (1, K2)
    assert repr(provider) == f"FileKeyProvider(path={str(path)!r}, versions=[1, 2], current=1)"
    _assert_no_leak(repr(provider), K1, K2)
    del doc["current"]
    assert FileKeyProvider(_key_file(path, doc, 0o400)).current_version() == 2
    # a key file readable by others is refused unless asked for
    _key_file(path, doc, 0o644)
    with pytest.raises(SecretError, match=r"accessible by group or others \(mode 0644\)"):
        FileKeyProvider(path)
    assert FileKeyProvider(path, check_permissions=False).current_version() == 2


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "not valid JSON (line 1, column 2)"),
        ([1], "must hold a JSON object"),
        ({"keys": {}}, '"keys" must be a non-empty object'),
        ({"keys": {"one": "x"}}, 'key name "one" is not a version number'),
        ({"keys": {"1": 5}}, "key version 1: must be a base64 string"),
        ({"keys": {"1": base64.b64encode(K1[:20]).decode()}}, "key version 1: the key is 20 bytes"),
        ({"keys": {"1": "@@@@"}}, "key version 1: the key is not valid base64"),
        ({"keys": {"1": base64.b64encode(K1).decode()}, "current": 3},
         "current version 3 has no key"),
        ({"keys": {"1": base64.b64encode(K1).decode()}, "current": True}, "must be an int"),
        ({"keys": {"1": base64.b64encode(K1).decode()}, "extra": 1}, "unknown entries ['extra']"),
    ],
)
def test_file_provider_errors(tmp_path, doc, message):
    path = _key_file(tmp_path / "keys.json", doc)
    with pytest.raises(SecretError, match=re.escape(message)) as info:
        FileKeyProvider(path)
    assert str(path) in str(info.value)
    _assert_no_leak(str(info.value), K1)
    assert base64.b64encode(K1[:20]).decode() not in str(info.value)


def test_file_provider_missing_file(tmp_path):
    with pytest.raises(SecretError, match="cannot read the key file"):
        FileKeyProvider(tmp_path / "absent.json")
    with pytest.raises(SecretError, match="cannot read the key file"):
        FileKeyProvider(tmp_path)  # a directory


def test_envelope_size_overhead():
    provider = StaticKeyProvider({1: K1})
    for n in (0, 1, 2, 3, 100, 1024):
        assert len(encrypt(b"x" * n, WHERE, provider)) == envelope_size(n)
    assert envelope_size(1024) == 1408


def test_marked_as_encrypted_for_modules():
    # domain.modules finds secret fields by this marker
    assert EncryptedData.__alkdev_encrypted__ is True
