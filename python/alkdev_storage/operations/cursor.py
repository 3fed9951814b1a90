"""Opaque list cursors authenticated with HMAC (docs/0023-operation-specs.md,
"Cursors").

A cursor is ``<payload>.<tag>``, both base64url: the payload is the JSON
``[op_id, order column, descending, filter fingerprint, last sort value,
last primary key...]``, the tag the first 16 bytes of HMAC-SHA256 under the
file's cursor key. A cursor whose tag does not match (tampered with, cut,
made up, or from another file) is refused with ``ValidationFailed`` on
``cursor``; so is a genuine one used with another operation, ordering or
filters.

The key is 32 random bytes in the file's ``operation_keys`` table (name
``cursor``), created by the first dispatcher that needs it: cursors survive
restarts and work in every process that opens the file. It authenticates
positions, not access: every page is still read under the caller's access
predicate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from typing import Any

from alkdev_storage.database import Database
from alkdev_storage.errors import ValidationFailed

__all__ = ["CURSOR_KEY_NAME", "CursorCodec", "load_key"]

CURSOR_KEY_NAME = "cursor"
_TAG = 16


def _fail(msg: str) -> ValidationFailed:
    return ValidationFailed(f"cursor: {msg}", [{"loc": ("cursor",), "msg": msg,
                                                "type": "cursor_invalid"}], "cursor")


def load_key(db: Database, name: str = CURSOR_KEY_NAME) -> bytes:
    """The file's key ``name`` from ``operation_keys``, created (32 random
    bytes) on first use; concurrent creators agree on one."""
    sql = "SELECT key FROM operation_keys WHERE name = ?"
    row = db.fetchone(sql, (name,))
    if row is None:
        with db.transaction() as tx:
            tx.execute("INSERT OR IGNORE INTO operation_keys (name, key) VALUES (?, ?)",
                       (name, secrets.token_bytes(32)))
            row = tx.fetchone(sql, (name,))
    assert row is not None
    key: bytes = row[0]
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Encodes and checks cursors under one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG]

    def encode(self, op_id: str, order: str, descending: bool, filters: str,
               position: Sequence[Any]) -> str:
        """The cursor after ``position`` (sort value, then primary key)."""
        payload = json.dumps([op_id, order, descending, filters, *position],
                             separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def decode(self, cursor: str, op_id: str, order: str, descending: bool, filters: str,
               width: int) -> list[Any]:
        """The position in ``cursor``; ``ValidationFailed`` on ``cursor``
        when it is not authentic or belongs to another listing."""
        if not isinstance(cursor, str) or cursor.count(".") != 1 or len(cursor) > 4096:
            raise _fail("not a cursor returned by this operation")
        body, tag = cursor.split(".")
        try:
            payload, got = _unb64(body), _unb64(tag)
        except (ValueError, TypeError):
            raise _fail("not a cursor returned by this operation") from None
        if not hmac.compare_digest(self._tag(payload), got):
            raise _fail("invalid or tampered with (its signature does not match)")
        data = json.loads(payload)
        if data[:4] != [op_id, order, descending, filters]:
            raise _fail(f"belongs to another listing (operation {data[0]!r}, order "
                        f"{data[1]!r}{' descending' if data[2] else ''}, other filters)")
        position: list[Any] = data[4:]
        if len(position) != width:
            raise _fail("does not match this listing's ordering")
        return position
