"""Encrypted secrets: AES-256-GCM, versioned keys, ciphertexts bound to
where they belong (docs/0017-encrypted-secrets.md).

A secret is stored as an :class:`EncryptedData`, a ``str`` holding the
text envelope ``v1.<key version>.<base64url(nonce || ciphertext || tag)>``
(unpadded base64url, canonical). The associated data of every ciphertext
is its :class:`Binding` (org id, table, column, row id) together with the
envelope version and the key version, so a ciphertext copied to another
row, column, table or tenant, or with its key-version field edited, fails
to decrypt with :class:`~alkdev_storage.errors.DecryptionFailed`.

Keys come from a :class:`KeyProvider`: :class:`StaticKeyProvider` (keys
in memory), :class:`EnvKeyProvider` (environment variables) or
:class:`FileKeyProvider` (a JSON key file). Every key is 32 bytes. No
message, ``repr`` or log line of this module contains plaintext or key
material.

Example::

    provider = StaticKeyProvider({1: os.urandom(32)})
    where = Binding(org_id, "nodes", "attributes.value", node_id)
    sealed = encrypt("hunter2", where, provider)      # EncryptedData
    assert decrypt_text(sealed, where, provider) == "hunter2"
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, SecretBytes, SecretStr
from pydantic_core import CoreSchema, core_schema
from sqlalchemy.engine import Dialect
from sqlalchemy.types import Text, TypeDecorator

from alkdev_storage.errors import (
    DecryptionFailed,
    SecretError,
    UnknownKeyVersion,
    ValidationFailed,
)

__all__ = [
    "ENVELOPE_PATTERN",
    "ENVELOPE_VERSION",
    "KEY_SIZE",
    "MAX_KEY_VERSION",
    "NONCE_SIZE",
    "TAG_SIZE",
    "Binding",
    "EncryptedColumn",
    "EncryptedData",
    "EnvKeyProvider",
    "Envelope",
    "FileKeyProvider",
    "KeyProvider",
    "Plaintext",
    "StaticKeyProvider",
    "decrypt",
    "decrypt_text",
    "encrypt",
    "envelope_size",
    "generate_key",
    "reencrypt",
]

ENVELOPE_VERSION = 1
"""The envelope format written by :func:`encrypt` (the ``v1`` prefix)."""
KEY_SIZE = 32
"""Bytes in a key (AES-256)."""
NONCE_SIZE = 12
"""Bytes in a nonce (96 bits, random, from ``os.urandom``)."""
TAG_SIZE = 16
"""Bytes in the GCM authentication tag."""
MAX_KEY_VERSION = 2**32 - 1
"""Key versions are integers 1..2**32-1 (4 bytes in the associated data)."""

_B64 = "[A-Za-z0-9_-]"
# Canonical unpadded base64url of at least NONCE_SIZE + TAG_SIZE = 28
# bytes: nine full quads (27 bytes) then a tail of at least one more byte.
# The tail characters constrain the unused low bits to zero.
_TAIL = f"(?:{_B64}[AQgw]|{_B64}{{2}}[AEIMQUYcgkosw048])"
_BODY = f"(?:{_B64}{{4}}){{9}}(?:(?:{_B64}{{4}})+{_TAIL}?|{_TAIL})"
ENVELOPE_PATTERN = f"^v1\\.[1-9][0-9]{{0,9}}\\.{_BODY}$"
"""The envelope's shape as a regular expression (also the JSON Schema
``pattern`` of an :class:`EncryptedData` field). Full validation also
checks that the key version is at most :data:`MAX_KEY_VERSION`."""
_HEAD_RE = re.compile(r"v1\.([1-9][0-9]{0,9})")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PAD = (b"", b"", b"==", b"=")  # by len(body) % 4
_UNUSED_BITS = (0, 0, 0xF, 0x3)  # low bits of the last character left unused

_AAD_MAGIC = b"alkdev-storage/secret\x00"
_AAD_HEAD = struct.Struct(">BI")
_LEN = struct.Struct(">I")


def _b64(raw: bytes) -> str:
    """Unpadded base64url."""
    encoded = binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE)
    return encoded.rstrip(b"=").decode("ascii")


def envelope_size(plaintext_size: int, key_version: int = 1) -> int:
    """Characters in the envelope of a ``plaintext_size``-byte plaintext:
    ``len("v1.") + digits(key_version) + 1 + ceil(4 * (12 + n + 16) / 3)``
    (1 KiB -> 1,408 characters with key version 1: 37.5% over the plaintext)."""
    raw = NONCE_SIZE + plaintext_size + TAG_SIZE
    return len(f"v{ENVELOPE_VERSION}.{key_version}.") + (4 * raw + 2) // 3


# --------------------------------------------------------------------------
# Where a ciphertext belongs
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a ciphertext belongs: the associated data of its encryption.

    ``column`` names a column, or for a field inside a JSON column
    ``"attributes.<field>"`` (table ``"nodes"``, column
    ``"attributes.value"``, ``row_id`` the node id). Every field is a
    non-empty string; ids are not secret and appear in error messages.
    """

    org_id: str
    table: str
    column: str
    row_id: str
    _fields: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = []
        for name in ("org_id", "table", "column", "row_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or value == "":
                raise ValidationFailed(
                    f"Binding.{name} must be a non-empty str, got "
                    f"{'an empty str' if value == '' else type(value).__name__}",
                    field=name,
                )
            try:
                raw = value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationFailed(
                    f"Binding.{name} is not encodable as UTF-8 (lone surrogate)", field=name
                ) from None
            encoded.append(_LEN.pack(len(raw)) + raw)
        object.__setattr__(self, "_fields", b"".join(encoded))

    def associated_data(self, key_version: int) -> bytes:
        """The GCM associated data: a fixed magic, the envelope version (1
        byte), the key version (4 bytes, big-endian), then org id, table,
        column and row id, each as a 4-byte big-endian length and its UTF-8
        bytes. Length prefixes make the encoding unambiguous (no choice of
        field values produces another binding's bytes)."""
        return _AAD_MAGIC + _AAD_HEAD.pack(ENVELOPE_VERSION, key_version) + self._fields

    def describe(self) -> str:
        """``org <org_id>, <table>.<column>, row <row_id>`` for messages."""
        return f"org {self.org_id}, {self.table}.{self.column}, row {self.row_id}"


# --------------------------------------------------------------------------
# The envelope
# --------------------------------------------------------------------------


class Envelope(NamedTuple):
    """The parts of a parsed envelope. ``ciphertext`` ends with the tag."""

    version: int
    key_version: int
    nonce: bytes
    ciphertext: bytes


def _parse(text: object) -> Envelope:
    """Parse an envelope; ValidationFailed (never quoting the input, which
    may be a plaintext passed by mistake) when it is not one.

    The body is decoded strictly (``binascii`` strict mode after mapping
    the URL-safe alphabet) and must be canonical: the unused low bits of
    its last character are zero, so exactly one text encodes each
    ciphertext and any edit of the text is an edit of the bytes."""
    if not isinstance(text, str):
        raise ValidationFailed(
            f"encrypted data must be a str envelope, not {type(text).__name__}"
        )
    dot = text.find(".", 3, 14)
    head = _HEAD_RE.fullmatch(text, 0, dot) if dot > 0 else None
    if head is None:
        raise ValidationFailed(
            "not an encrypted-data envelope (expected 'v1.<key version>.<base64url>'); "
            f"got a str of {len(text)} characters"
        )
    key_version = int(head[1])
    if key_version > MAX_KEY_VERSION:
        raise ValidationFailed(f"envelope key version is above {MAX_KEY_VERSION}")
    body = text[dot + 1 :]
    size = len(body)
    if size % 4 == 1 or "+" in body or "/" in body or "=" in body:
        raise ValidationFailed("envelope body is not valid unpadded base64url")
    try:
        raw = binascii.a2b_base64(
            body.encode("ascii").translate(_FROM_URLSAFE) + _PAD[size % 4], strict_mode=True
        )
    except (UnicodeEncodeError, binascii.Error):
        raise ValidationFailed("envelope body is not valid unpadded base64url") from None
    if size % 4 and _ALPHABET.index(body[-1]) & _UNUSED_BITS[size % 4]:
        raise ValidationFailed("envelope body is not canonical base64url")
    if len(raw) < NONCE_SIZE + TAG_SIZE:
        raise ValidationFailed(
            f"envelope body is {len(raw)} bytes, shorter than nonce + tag "
            f"({NONCE_SIZE + TAG_SIZE} bytes)"
        )
    return Envelope(ENVELOPE_VERSION, key_version, raw[:NONCE_SIZE], raw[NONCE_SIZE:])


class EncryptedData(str):
    """A ciphertext envelope, ``v1.<key version>.<base64url(nonce12 ||
    ciphertext || tag16)>``. Constructing one validates the format
    (ValidationFailed otherwise; the message never quotes the input).

    Usable as a pydantic field type (validates the envelope; JSON Schema
    ``{"type": "string", "pattern": ENVELOPE_PATTERN}``; a field of this
    type in a graph-type module's attribute model is an encrypted
    attribute) and, through :class:`EncryptedColumn`, as a column type.

    pydantic quotes rejected inputs in its own error messages; a model
    that may receive plaintext in a field of this type by mistake should
    set ``model_config = ConfigDict(hide_input_in_errors=True)``.
    """

    __slots__ = ()

    __alkdev_encrypted__ = True
    """Marks the type as a secret: a graph-type module's attribute of this
    type is an encrypted field (``domain.modules.encrypted_fields``)."""

    def __new__(cls, value: str) -> EncryptedData:
        if type(value) is cls:
            return value
        _parse(value)
        return super().__new__(cls, value)

    @classmethod
    def _trusted(cls, text: str) -> EncryptedData:
        return str.__new__(cls, text)

    @property
    def key_version(self) -> int:
        """The version of the key this was encrypted with."""
        return int(self[3 : self.index(".", 3)])

    def parse(self) -> Envelope:
        """The envelope's parts (envelope version, key version, nonce,
        ciphertext with tag)."""
        return _parse(self)

    def __repr__(self) -> str:
        return f"EncryptedData({str.__repr__(self)})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": ENVELOPE_PATTERN,
            "description": "AES-256-GCM envelope v1.<key version>.<base64url>",
        }


class EncryptedColumn(TypeDecorator[EncryptedData]):
    """A SQLAlchemy column type: TEXT holding an envelope. Binds only
    :class:`EncryptedData` (a plain ``str`` is refused with
    ValidationFailed, so a plaintext cannot be stored by mistake) and
    returns EncryptedData."""

    impl = Text
    cache_ok = True

    @property
    def python_type(self) -> type[EncryptedData]:
        return EncryptedData

    def process_bind_param(self, value: EncryptedData | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, EncryptedData):
            raise ValidationFailed(
                "EncryptedColumn stores EncryptedData only (encrypt the value "
                f"first); got {type(value).__name__}"
            )
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> EncryptedData | None:
        if value is None:
            return None
        return EncryptedData(value)


# --------------------------------------------------------------------------
# Key providers
# --------------------------------------------------------------------------


@runtime_checkable
class KeyProvider(Protocol):
    """Where keys come from. ``key(version)`` returns the 32-byte key of
    that version or raises UnknownKeyVersion; ``current_version()`` is the
    version new ciphertexts are encrypted with."""

    def current_version(self) -> int:
        """The key version :func:`encrypt` uses."""
        ...

    def key(self, version: int) -> bytes:
        """The 32-byte key of ``version``; UnknownKeyVersion if absent."""
        ...


def generate_key() -> str:
    """A new random key as base64 text (32 bytes from ``os.urandom``), the
    form :class:`EnvKeyProvider` and :class:`FileKeyProvider` read."""
    return base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii")


def _check_version(version: object, where: str) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        raise SecretError(f"{where}: a key version must be an int, not {type(version).__name__}")
    if not 1 <= version <= MAX_KEY_VERSION:
        raise SecretError(f"{where}: key version {version} is outside 1..{MAX_KEY_VERSION}")
    return version


def _check_key(key: object, where: str) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise SecretError(f"{where}: a key must be bytes, not {type(key).__name__}")
    raw = bytes(key)
    if len(raw) != KEY_SIZE:
        raise SecretError(f"{where}: the key is {len(raw)} bytes; an AES-256 key is {KEY_SIZE}")
    return raw


def _key_from_text(text: str, where: str) -> bytes:
    """Decode base64 (standard or URL-safe alphabet, padding optional)."""
    s = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError(f"{where}: the key is not valid base64") from None
    return _check_key(raw, where)


class StaticKeyProvider:
    """Keys held in memory: ``{version: 32-byte key}``; ``current`` is the
    version to encrypt with (default: the highest). Raises SecretError for
    a missing/short/long key or a bad version, naming the version only."""

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Mapping[int, bytes], current: int | None = None) -> None:
        self._init(keys, current, type(self).__name__)

    def _init(self, keys: Mapping[int, bytes], current: int | None, where: str) -> None:
        if not keys:
            raise SecretError(f"{where}: no keys")
        checked: dict[int, bytes] = {}
        for version, key in keys.items():
            v = _check_version(version, where)
            checked[v] = _check_key(key, f"{where}, key version {v}")
        if current is None:
            current = max(checked)
        current = _check_version(current, f"{where}, current version")
        if current not in checked:
            raise SecretError(
                f"{where}: current version {current} has no key (versions: {sorted(checked)})"
            )
        self._keys = checked
        self._current = current

    def current_version(self) -> int:
        """The version new ciphertexts are encrypted with."""
        return self._current

    def key(self, version: int) -> bytes:
        """The key of ``version``; UnknownKeyVersion if this provider lacks it."""
        try:
            return self._keys[version]
        except (KeyError, TypeError):
            raise UnknownKeyVersion(
                f"key version {version!r} is unknown to {type(self).__name__} "
                f"(versions: {sorted(self._keys)})"
            ) from None

    def versions(self) -> list[int]:
        """The key versions this provider holds, ascending."""
        return sorted(self._keys)

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._describe()}versions={self.versions()}, "
            f"current={self._current})"
        )

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} holds keys and cannot be pickled")


class EnvKeyProvider(StaticKeyProvider):
    """Keys from environment variables, read once at construction:
    ``<prefix><version>`` holds a base64 32-byte key (e.g.
    ``ALKDEV_SECRET_KEY_1``); ``<prefix>CURRENT`` optionally names the
    version to encrypt with (default: the highest). Any other variable
    starting with the prefix is an error (a typo must not silently leave
    an old key current). ``environ`` replaces ``os.environ`` (tests)."""

    __slots__ = ("_prefix",)

    def __init__(
        self, prefix: str = "ALKDEV_SECRET_KEY_", environ: Mapping[str, str] | None = None
    ) -> None:
        if not prefix:
            raise SecretError("EnvKeyProvider: the prefix must not be empty")
        self._prefix = prefix
        env = os.environ if environ is None else environ
        keys: dict[int, bytes] = {}
        current: int | None = None
        for name, value in env.items():
            if not name.startswith(prefix):
                continue
            suffix = name[len(prefix) :]
            if suffix == "CURRENT":
                current = self._version(value.strip(), name)
            elif re.fullmatch(r"[1-9][0-9]*", suffix):
                keys[self._version(suffix, name)] = _key_from_text(value, name)
            else:
                raise SecretError(
                    f"{name}: the part after {prefix} must be a key version "
                    "(1, 2, ...) or CURRENT"
                )
        if not keys:
            raise SecretError(
                f"EnvKeyProvider: no keys; set {prefix}1 to a base64 32-byte key "
                "(alkdev_storage.domain.secrets.generate_key() makes one)"
            )
        if current is not None and current not in keys:
            raise SecretError(
                f"{prefix}CURRENT is {current} but {prefix}{current} is not set "
                f"(versions: {sorted(keys)})"
            )
        self._init(keys, current, "EnvKeyProvider")

    @staticmethod
    def _version(text: str, name: str) -> int:
        if not re.fullmatch(r"[1-9][0-9]*", text):
            raise SecretError(f"{name}: must be a key version number (1, 2, ...)")
        return _check_version(int(text), name)

    def _describe(self) -> str:
        return f"prefix={self._prefix!r}, "


class FileKeyProvider(StaticKeyProvider):
    """Keys from a JSON file read once at construction::

        {"current": 2, "keys": {"1": "<base64 32 bytes>", "2": "<base64>"}}

    ``current`` is optional (default: the highest version). On POSIX the
    file must not be accessible by group or others (mode 0600 or 0400),
    else SecretError says so; ``check_permissions=False`` accepts it (e.g.
    a read-only secret mount whose mode you do not control). Errors name
    the file and the version, never a key."""

    __slots__ = ("_path",)

    def __init__(self, path: str | os.PathLike[str], *, check_permissions: bool = True) -> None:
        self._path = Path(path)
        where = str(self._path)
        try:
            with open(self._path, "rb") as f:
                info = os.fstat(f.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise SecretError(f"{where}: the key file is not a regular file")
                mode = stat.S_IMODE(info.st_mode)
                if check_permissions and os.name == "posix" and mode & 0o077:
                    raise SecretError(
                        f"{where}: the key file is accessible by group or others "
                        f"(mode {mode:04o}); run `chmod 600 {where}`, or pass "
                        "check_permissions=False"
                    )
                text = f.read()
        except OSError as exc:
            raise SecretError(f"{where}: cannot read the key file ({exc.strerror})") from None
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            line = f" (line {exc.lineno}, column {exc.colno})" if isinstance(
                exc, json.JSONDecodeError
            ) else ""
            raise SecretError(f"{where}: the key file is not valid JSON{line}") from None
        if not isinstance(doc, dict):
            raise SecretError(f"{where}: the key file must hold a JSON object")
        unknown = sorted(set(doc) - {"current", "keys"})
        if unknown:
            raise SecretError(f"{where}: unknown entries {unknown} (allowed: current, keys)")
        entries = doc.get("keys")
        if not isinstance(entries, dict) or not entries:
            raise SecretError(
                f'{where}: "keys" must be a non-empty object of version -> base64 key'
            )
        keys: dict[int, bytes] = {}
        for name, value in entries.items():
            if not re.fullmatch(r"[1-9][0-9]*", name):
                raise SecretError(f'{where}: key name "{name}" is not a version number (1, 2, ...)')
            v = _check_version(int(name), where)
            if not isinstance(value, str):
                raise SecretError(f"{where}, key version {v}: must be a base64 string")
            keys[v] = _key_from_text(value, f"{where}, key version {v}")
        current = doc.get("current")
        if current is not None:
            current = _check_version(current, f'{where}, "current"')
        self._init(keys, current, where)

    def _describe(self) -> str:
        return f"path={str(self._path)!r}, "


# --------------------------------------------------------------------------
# Encrypt and decrypt
# --------------------------------------------------------------------------

Plaintext = str | bytes | bytearray | memoryview | SecretStr | SecretBytes
"""What :func:`encrypt` accepts; ``str`` and ``SecretStr`` are encoded as UTF-8."""


def _plaintext_bytes(plaintext: object) -> bytes:
    if isinstance(plaintext, SecretStr):
        plaintext = plaintext.get_secret_value()
    elif isinstance(plaintext, SecretBytes):
        plaintext = plaintext.get_secret_value()
    if isinstance(plaintext, str):
        try:
            return plaintext.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed(
                "the plaintext str is not encodable as UTF-8 (it holds a lone surrogate)"
            ) from None
    if isinstance(plaintext, bytes | bytearray | memoryview):
        return bytes(plaintext)
    raise ValidationFailed(
        f"a plaintext must be str, bytes, SecretStr or SecretBytes, not {type(plaintext).__name__}"
    )


def _key(provider: KeyProvider, version: int) -> bytes:
    """The provider's key of ``version``, checked (a custom provider
    returning a 16-byte key must not silently get AES-128)."""
    key = provider.key(version)
    return _check_key(key, f"{type(provider).__name__}, key version {version}")


def _check_binding(binding: object) -> Binding:
    if not isinstance(binding, Binding):
        raise ValidationFailed(f"binding must be a Binding, not {type(binding).__name__}")
    return binding


def encrypt(
    plaintext: Plaintext, binding: Binding, provider: KeyProvider, *, key_version: int | None = None
) -> EncryptedData:
    """Encrypt ``plaintext`` for ``binding`` under the provider's current
    key (or ``key_version``), with a fresh random 96-bit nonce.

    Random nonces keep the usual AES-GCM bound: rotate the key well before
    2**32 encryptions under one version."""
    data = _plaintext_bytes(plaintext)
    where = _check_binding(binding)
    version = provider.current_version() if key_version is None else key_version
    version = _check_version(version, f"{type(provider).__name__}")
    nonce = os.urandom(NONCE_SIZE)
    sealed = AESGCM(_key(provider, version)).encrypt(nonce, data, where.associated_data(version))
    return EncryptedData._trusted(f"v{ENVELOPE_VERSION}.{version}.{_b64(nonce + sealed)}")


def decrypt(data: EncryptedData | str, binding: Binding, provider: KeyProvider) -> bytes:
    """The plaintext bytes of ``data``, which must have been encrypted for
    exactly this ``binding``.

    Raises DecryptionFailed for a malformed envelope, a wrong key,
    tampered data or another binding; UnknownKeyVersion when the provider
    lacks the envelope's key version."""
    where = _check_binding(binding)
    try:
        env = _parse(data)
    except ValidationFailed as exc:
        raise DecryptionFailed(f"cannot decrypt the secret for {where.describe()}: {exc}") from None
    key = _key(provider, env.key_version)
    aad = where.associated_data(env.key_version)
    try:
        return AESGCM(key).decrypt(env.nonce, env.ciphertext, aad)
    except InvalidTag:
        raise DecryptionFailed(
            f"cannot decrypt the secret for {where.describe()} with key version "
            f"{env.key_version}: wrong key, tampered data, or a ciphertext that belongs "
            "to another org, table, column or row"
        ) from None


def decrypt_text(data: EncryptedData | str, binding: Binding, provider: KeyProvider) -> str:
    """:func:`decrypt`, decoded as UTF-8 (SecretError, without the bytes,
    when the plaintext is not UTF-8 text)."""
    raw = decrypt(data, binding, provider)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(
            f"the secret for {binding.describe()} decrypted but is not UTF-8 text "
            "(use decrypt() for bytes)"
        ) from None


def reencrypt(data: EncryptedData | str, binding: Binding, provider: KeyProvider) -> EncryptedData:
    """Decrypt ``data`` for ``binding`` and encrypt it again under the
    provider's current key (key rotation). Same errors as :func:`decrypt`."""
    return encrypt(decrypt(data, binding, provider), binding, provider)
