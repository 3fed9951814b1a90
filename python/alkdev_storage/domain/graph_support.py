"""Shared pieces of the graph store (:mod:`alkdev_storage.domain.graphs`
and :mod:`alkdev_storage.domain.graph_data`): the :class:`Sealer` and
:class:`Change` hook types, the node/edge batch item shapes, input checks
that raise ``ValidationFailed`` naming the field, and detached ORM objects
for rows. Internal to the domain layer except the documented public names
(``Sealer``, ``Change``, ``NodeSpec``, ``EdgeSpec``, ``UNSET``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import configure_mappers, make_transient_to_detached

from alkdev_storage.domain.modules import version_key
from alkdev_storage.errors import ValidationFailed
from alkdev_storage.schema.tenant import Edge, Graph, GraphType, Node

__all__ = [
    "UNSET",
    "Change",
    "EdgeSpec",
    "NodeSpec",
    "OnChange",
    "Scope",
    "Sealer",
]

GT = cast(sa.Table, GraphType.__table__)
G = cast(sa.Table, Graph.__table__)
N = cast(sa.Table, Node.__table__)
E = cast(sa.Table, Edge.__table__)
CHUNK = 500  # bound parameters per IN (...) list
MAX_KEY = 512

Scope = Literal["system", "tenant", "user"]
_O = TypeVar("_O", GraphType, Graph, Node, Edge)


class Sealer(Protocol):
    """Encrypts one secret attribute value for the row it belongs to: the
    hook the secret graph plugs into :class:`GraphStore` (``sealer=``).

    Called for each secret field (``EncryptedData`` in the attribute model)
    whose value is not None, not equal to the stored value (an envelope
    read back and written again) and not already an ``EncryptedData``,
    before validation, with ``table`` ``"nodes"`` or ``"edges"``,
    ``column`` ``"attributes.<field>"`` and ``row_id`` the id the row will
    have; returns the ``EncryptedData`` envelope to store. With a sealer, a
    ``str``, ``bytes``, ``SecretStr`` or ``SecretBytes`` in a secret field
    is handed to it (pass an ``EncryptedData`` object to keep a ciphertext
    as it is). A sealer with a truthy ``checks_envelopes`` attribute (the
    secret graph's ``SecretSealer``) is handed ``EncryptedData`` values too,
    to check that they belong to the row (a ciphertext copied from another
    row is refused)."""

    def __call__(self, plaintext: Any, *, org_id: str, table: str, column: str,
                 row_id: str) -> object: ...


@dataclass(frozen=True)
class Change:
    """One write of the graph store, handed to ``on_change`` inside its
    transaction: ``entity`` written, ``action``, the ``ids`` of the rows,
    the ``graph_id`` (None for graph types) and, for nodes, their
    ``keys``."""

    entity: Literal["graph_type", "graph", "node", "edge"]
    action: Literal["created", "updated", "deleted"]
    ids: tuple[str, ...]
    graph_id: str | None = None
    keys: tuple[str, ...] = ()


OnChange = Callable[[sa.Connection, Change], None]


def fail(where: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", field=where,
                            errors=[{"loc": tuple(where.split(".")), "msg": message,
                                     "type": kind}])


def prefixed(exc: ValidationFailed, prefix: str) -> ValidationFailed:
    """``exc`` with every location under ``prefix`` (a batch item)."""
    if not prefix:
        return exc
    head = tuple(prefix.rstrip(".").split("."))
    errors: list[dict[str, object]] = []
    for e in exc.errors:
        loc = e.get("loc", ())
        errors.append({**e, "loc": head + (tuple(loc) if isinstance(loc, tuple) else (loc,))})
    return ValidationFailed(f"{prefix}{exc}", errors=errors,
                            field=f"{prefix}{exc.field}" if exc.field else None)


def json_object(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(where, f"expected a JSON object, got {type(value).__name__}", "dict_type")
    try:
        result: dict[str, Any] = json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as exc:
        raise fail(where, f"not JSON: {exc}", "json_type") from None
    return result


def text(value: object, where: str, max_length: int = MAX_KEY) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise fail(where, f"expected a non-empty string of at most {max_length} characters",
                    "string_type")
    return value


def detached(cls: type[_O], values: Mapping[Any, Any]) -> _O:
    """An ORM object of ``cls`` for a row as stored, detached (a Session
    it is added to treats it as an existing row, loaded as it is).

    Built the way the ORM builds loaded rows (the values go into the
    instance's state without attribute events, then it gets its identity):
    several times faster than the constructor for batches."""
    mapper = sa.inspect(cls)
    if not mapper.configured:
        configure_mappers()
    obj = mapper.class_manager.new_instance()
    state = sa.inspect(obj)
    state.dict.update({k: values[k] for k in mapper.columns.keys() if k in values})
    make_transient_to_detached(obj)
    return obj


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]



def newer(a: str, b: str) -> bool:
    return version_key(a) > version_key(b)


# ---------------------------------------------------------------------------
# The graph store
# ---------------------------------------------------------------------------

NodeSpec = tuple[str, str] | tuple[str, str, Mapping[str, Any] | None] | Mapping[str, Any]
"""A node for :meth:`GraphStore.add_nodes`: ``(key, type)``, ``(key,
type, attributes)`` or a mapping with ``key``, ``type`` and optionally
``attributes``."""

EdgeSpec = (tuple[str, str, str] | tuple[str, str, str, Mapping[str, Any] | None]
            | Mapping[str, Any])
"""An edge for :meth:`GraphStore.add_edges`: ``(type, source, target)``,
``(type, source, target, attributes)`` or a mapping with ``type``,
``source``, ``target`` and optionally ``attributes``; source and target are
node keys or ids."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def node_spec(spec: object, where: str) -> tuple[object, object, object]:
    if isinstance(spec, Mapping):
        return spec.get("key"), spec.get("type"), spec.get("attributes")
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        return spec[0], spec[1], spec[2] if len(spec) == 3 else None
    raise fail(where.rstrip("."), "expected (key, type[, attributes]) or a mapping", "node_spec")


def edge_spec(spec: object, where: str) -> tuple[object, object, object, object]:
    if isinstance(spec, Mapping):
        return spec.get("type"), spec.get("source"), spec.get("target"), spec.get("attributes")
    if isinstance(spec, tuple) and len(spec) in (3, 4):
        return spec[0], spec[1], spec[2], spec[3] if len(spec) == 4 else None
    raise fail(where.rstrip("."), "expected (type, source, target[, attributes]) or a mapping",
                "edge_spec")

