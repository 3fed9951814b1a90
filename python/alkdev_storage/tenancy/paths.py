"""File names of a hub's databases, built only from validated ids
(docs/0025-hub-and-tenants.md).

A tenant file is ``<root>/tenant-<org id>.db`` where the org id is a ULID
from :func:`alkdev_storage.schema.new_id`: exactly 26 characters of
Crockford base32 (``0-9`` and ``A-Z`` without ``I``, ``L``, ``O``, ``U``),
first character ``0``-``7``. Anything else (``..``, separators, NUL, URI
syntax such as ``file:`` or ``?mode=``, a leading dot, lowercase, spaces,
other lengths, non-str values) is refused with ``ValidationFailed`` naming
``org_id`` before any path is built. The id pattern alone makes the name
safe: it has no character that a path, a URI or a shell could interpret.
"""

from __future__ import annotations

import os
import re

from alkdev_storage.errors import ValidationFailed

__all__ = ["ID_PATTERN", "SYSTEM_FILE", "check_id", "tenant_file_name", "tenant_path"]

ID_PATTERN = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
"""A ULID as :func:`~alkdev_storage.schema.new_id` makes them (matched
with ``fullmatch``)."""

SYSTEM_FILE = "system.db"
"""Name of the hub's system database inside its root."""


def check_id(value: object, field: str = "org_id") -> str:
    """``value`` if it is a ULID id; else ``ValidationFailed`` naming
    ``field`` (the value is shown with ``repr``, so control characters are
    visible and never reach a path)."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else (
            repr(value[:80]) + "...")
        msg = "must be a 26-character ULID id (Crockford base32, as new_id() makes)"
        raise ValidationFailed(
            f"{field}: {msg} (got {shown})",
            errors=[{"loc": (field,), "msg": msg, "type": "value_error"}],
            field=field,
        )
    return value


def tenant_file_name(org_id: str) -> str:
    """``tenant-<org_id>.db`` for a valid id (``ValidationFailed`` otherwise)."""
    return f"tenant-{check_id(org_id)}.db"


def tenant_path(root: str | os.PathLike[str], org_id: str) -> str:
    """Absolute path of the tenant file of ``org_id`` directly inside
    ``root``. Besides validating the id, checks that the joined path's
    directory is ``root`` itself (defence in depth)."""
    base = os.path.abspath(os.fspath(root))
    path = os.path.join(base, tenant_file_name(org_id))
    if os.path.dirname(path) != base:  # cannot happen with a valid id
        raise ValidationFailed(
            f"org_id: {org_id!r} does not name a file inside the hub root",
            errors=[{"loc": ("org_id",), "msg": "outside the hub root", "type": "value_error"}],
            field="org_id",
        )
    return path
