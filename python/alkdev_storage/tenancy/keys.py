"""API key format, peppers and hashing (docs/0026-api-keys.md).

A key looks like::

    alk_01J9Z3...26 chars key id..._<32 base62 chars of secret><6 base62 checksum>

* ``alk_``: the type prefix (a secret scanner's anchor; :data:`KEY_RE`).
* the public key id: a ULID (the ``api_keys.id`` row), looked up directly;
* 32 base62 characters from :func:`secrets.choice` (190 bits of randomness);
* a 6-character base62 CRC-32 of everything before it: a typo is caught
  without a lookup (and a scanner can confirm a match offline).

Only ``HMAC-SHA256(pepper[v], key id + "." + secret)`` is stored (32 bytes,
``api_keys.key_hash``) with the pepper version ``v``. Peppers come from a
:class:`PepperProvider` (the environment, a file, or a mapping), so a
stolen ``system.db`` alone cannot be used to test guesses offline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from alkdev_storage.errors import StorageError, UnknownKeyVersion

__all__ = [
    "KEY_PREFIX",
    "KEY_RE",
    "SECRET_LENGTH",
    "EnvPepperProvider",
    "FilePepperProvider",
    "ParsedKey",
    "PepperProvider",
    "StaticPepperProvider",
    "format_key",
    "hash_secret",
    "new_secret",
    "parse_key",
]

KEY_PREFIX = "alk_"
"""Type prefix of every API key."""

SECRET_LENGTH = 32
"""Base62 characters of randomness in a key (32 * log2(62) = 190 bits)."""

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECK_LEN = 6
_ID = r"[0-7][0-9A-HJKMNP-TV-Z]{25}"

KEY_RE = re.compile(
    rf"\b{KEY_PREFIX}(?P<id>{_ID})_(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})"
    rf"(?P<check>[0-9A-Za-z]{{{_CHECK_LEN}}})\b"
)
"""Regular expression a secret scanner can use to find keys in text
(``KEY_RE.finditer(text)``; confirm with :func:`parse_key`)."""

_KEY_LEN = len(KEY_PREFIX) + 26 + 1 + SECRET_LENGTH + _CHECK_LEN


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _b62(binascii.crc32(body.encode("ascii")), _CHECK_LEN)


def new_secret() -> str:
    """A fresh random secret: :data:`SECRET_LENGTH` base62 characters."""
    return "".join(_secrets.choice(_B62) for _ in range(SECRET_LENGTH))


def format_key(key_id: str, secret: str) -> str:
    """The full key text for ``key_id`` and ``secret`` (with its checksum)."""
    body = f"{KEY_PREFIX}{key_id}_{secret}"
    return body + _checksum(body)


@dataclass(frozen=True)
class ParsedKey:
    """A well-formed key: its public id and its secret."""

    key_id: str
    secret: str


# A well-formed text with a wrong checksum: a malformed key is replaced by
# it, so the match and the checksum do the same work on every input.
_FILLER = f"{KEY_PREFIX}{'0' * 26}_{'0' * SECRET_LENGTH}{'0' * _CHECK_LEN}"


def parse_key(key: object) -> ParsedKey | None:
    """The id and secret of ``key`` if it is well formed (prefix, lengths,
    alphabet, checksum), else None. Never raises, never looks anything up;
    a malformed text costs the same work as a well-formed one (the match
    and the checksum run on a well-formed filler instead)."""
    good_type = isinstance(key, str) and len(key) == _KEY_LEN and key.isascii()
    text = key if good_type else _FILLER
    assert isinstance(text, str)
    m = KEY_RE.fullmatch(text) or KEY_RE.fullmatch(_FILLER)
    assert m is not None
    expected = _checksum(text[:-_CHECK_LEN])
    parsed = ParsedKey(m.group("id"), m.group("secret"))
    ok = hmac.compare_digest(expected, text[-_CHECK_LEN:]) & good_type & (m.string is text)
    return parsed if ok else None


def hash_secret(pepper: bytes, key_id: str, secret: str) -> bytes:
    """``HMAC-SHA256(pepper, key_id + "." + secret)``: the stored 32 bytes."""
    return hmac.new(pepper, f"{key_id}.{secret}".encode(), hashlib.sha256).digest()


@runtime_checkable
class PepperProvider(Protocol):
    """Where the server-side peppers come from (like the secret layer's
    key providers): versioned, the current one hashes new keys."""

    def current_version(self) -> int:
        """Version of the pepper new keys are hashed with."""

    def pepper(self, version: int) -> bytes:
        """The pepper of ``version`` (at least 16 bytes); raises
        ``UnknownKeyVersion`` if there is none."""


def _check_pepper(version: int, value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) < 16:
        raise StorageError(f"pepper version {version}: must be at least 16 bytes")
    return value


class StaticPepperProvider:
    """Peppers from a mapping ``{version: bytes}``; ``current`` defaults to
    the highest version."""

    def __init__(self, peppers: Mapping[int, bytes], current: int | None = None) -> None:
        if not peppers:
            raise StorageError("StaticPepperProvider needs at least one pepper")
        self._peppers = {int(v): _check_pepper(int(v), p) for v, p in peppers.items()}
        self._current = max(self._peppers) if current is None else int(current)
        if self._current not in self._peppers:
            raise UnknownKeyVersion(f"pepper version {self._current} is not among the peppers")

    def current_version(self) -> int:
        """The current version."""
        return self._current

    def pepper(self, version: int) -> bytes:
        """The pepper of ``version``."""
        try:
            return self._peppers[version]
        except KeyError:
            raise UnknownKeyVersion(f"no pepper of version {version}") from None


def _decode(text: str, what: str) -> bytes:
    text = text.strip()
    try:
        if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
            return bytes.fromhex(text)
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise StorageError(f"{what}: not hex or base64") from None


class EnvPepperProvider(StaticPepperProvider):
    """Peppers from environment variables ``<prefix><version>`` (hex or
    base64), e.g. ``ALKDEV_API_KEY_PEPPER_1``; the current version is
    ``<prefix>CURRENT`` if set, else the highest."""

    def __init__(self, prefix: str = "ALKDEV_API_KEY_PEPPER_",
                 environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        peppers: dict[int, bytes] = {}
        for name, value in env.items():
            rest = name[len(prefix):] if name.startswith(prefix) else ""
            if rest.isdigit():
                peppers[int(rest)] = _decode(value, name)
        if not peppers:
            raise StorageError(f"no pepper in the environment (variables {prefix}<version>)")
        cur = env.get(prefix + "CURRENT")
        super().__init__(peppers, int(cur) if cur else None)


class FilePepperProvider(StaticPepperProvider):
    """Peppers from a JSON file ``{"current": 2, "peppers": {"1": "<hex or
    base64>", "2": "..."}}`` (``current`` optional)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get("peppers"), dict):
            raise StorageError(f"{os.fspath(path)}: expected {{'peppers': {{version: value}}}}")
        peppers = {int(v): _decode(str(p), f"pepper {v}") for v, p in data["peppers"].items()}
        cur = data.get("current")
        super().__init__(peppers, None if cur is None else int(cur))
