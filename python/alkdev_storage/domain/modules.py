"""Graph-type modules: node and edge types, their attribute models, and the
allowed (source, edge, target) triples; the validation every write goes
through (docs/0018-graph-type-modules.md).

A *module* is declared in Python::

    class CallAttrs(Attributes):
        operation_id: str
        timeout_ms: int | None = None

    CALLS = GraphTypeModule(
        name="my-calls", version="1.0.0",
        node_types=[NodeType("call", CallAttrs)],
        edge_types=[EdgeType("calls", Attributes)],
        triples={("call", "calls", "call")},
    )
    register_module(CALLS)

and registered as a graph type of a tenant file
(:meth:`alkdev_storage.domain.graphs.GraphStore.register_graph_type`), which
stores :func:`module_to_db_schema`'s JSON Schemas in ``graph_types``.

* Construction checks the module itself (names, duplicates, triples that
  name unknown types, secrets hidden where they cannot be sealed) and
  raises ``ValueError`` naming what is wrong.
* :func:`validate_node` / :func:`validate_edge` check a write: the type
  exists, the edge's (source type, edge type, target type) is an allowed
  triple, the attributes satisfy the type's pydantic model. They raise
  :class:`~alkdev_storage.errors.ValidationFailed` whose message and
  ``field`` name the field (``attributes.timeout_ms: Input should be a
  valid integer...``) and return the model's JSON-mode dump: exactly what
  is stored.
* Node and edge type names share one namespace per module (a name is a
  node type or an edge type, never both).
* A field whose annotation is (or is ``Optional`` of) a class with a truthy
  class attribute ``__alkdev_encrypted__`` (``domain.secrets.EncryptedData``)
  holds a secret: :func:`encrypted_fields` lists them. Only top-level
  attribute fields can be secrets; a secret type nested anywhere else
  (inside a list, a dict, a nested model) is refused when the module is
  built, because the write path could not seal it.

The process-wide registry (:func:`register_module`, :func:`get_module`,
:func:`modules`) maps ``(name, version)`` to a module; a tenant file's
graph types name the module they were registered from, and writes to them
are validated by the module registered under that name and version in the
writing process.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as _PydanticValidationError
from pydantic.json_schema import models_json_schema

from alkdev_storage.errors import MigrationError, NotFound, ValidationFailed

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "Attributes",
    "EdgeType",
    "GraphTypeModule",
    "NodeType",
    "canonical_json",
    "dump_attributes",
    "encrypted_fields",
    "get_module",
    "is_encrypted_type",
    "module_for_stored",
    "module_to_db_schema",
    "modules",
    "register_module",
    "schema_fingerprint",
    "unregister_module",
    "validate_edge",
    "validate_edge_attributes",
    "validate_node",
    "validate_node_attributes",
    "version_key",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The ``$schema`` of the schemas :func:`module_to_db_schema` produces."""

_MODULE_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
_VERSION = re.compile(r"^[0-9A-Za-z]+(?:[.+-][0-9A-Za-z]+)*$")
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MAX_NAME = 64


class Attributes(BaseModel):
    """Base class for attribute models that refuses unknown attributes
    (``extra="forbid"``), so a misspelt attribute is an error naming it
    rather than silently dropped. Also the attribute model of types that
    carry no attributes. Modules may use any pydantic model; this one is
    what the built-in modules use."""

    model_config = ConfigDict(extra="forbid")


def is_encrypted_type(annotation: object) -> bool:
    """True when ``annotation`` is a class marked as holding a secret (a
    truthy class attribute ``__alkdev_encrypted__``, set by
    ``alkdev_storage.domain.secrets.EncryptedData``)."""
    return isinstance(annotation, type) and bool(getattr(annotation, "__alkdev_encrypted__", False))


def _unwrap(annotation: object) -> object:
    """The annotation without ``Annotated[...]`` and without ``Optional``
    (a union with ``None`` and exactly one other member)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin is typing.Union or origin is types.UnionType:
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _nested_secret(annotation: object, seen: set[int]) -> bool:
    """Whether a secret type appears anywhere inside ``annotation`` (its
    type arguments, or the fields of a nested model)."""
    if is_encrypted_type(annotation):
        return True
    if id(annotation) in seen:
        return False
    seen.add(id(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_nested_secret(f.annotation, seen) for f in annotation.model_fields.values())
    return any(_nested_secret(a, seen) for a in get_args(annotation))


def _check_name(what: str, name: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(name, str) or len(name) > _MAX_NAME or not pattern.match(name):
        raise ValueError(f"{what} {name!r} is invalid: {rule} (at most {_MAX_NAME} characters)")
    return name


def _secret_fields(owner: str, model: type[BaseModel]) -> tuple[str, ...]:
    """Stored keys of the top-level secret fields of ``model``; refuses a
    secret type nested where the write path could not seal it."""
    found = []
    for name, info in model.model_fields.items():
        inner = _unwrap(info.annotation)
        if is_encrypted_type(inner):
            found.append(info.alias or name)
        elif _nested_secret(info.annotation, set()):
            raise ValueError(
                f"{owner}: attribute {name!r} nests an encrypted type inside "
                f"{info.annotation!r}; only top-level attributes (or Optional ones) can be "
                "encrypted"
            )
    return tuple(sorted(found))


@dataclass(frozen=True)
class NodeType:
    """A node type: its name (``[A-Za-z][A-Za-z0-9_]*``) and the pydantic
    model of its attributes."""

    name: str
    attributes: type[BaseModel] = Attributes
    description: str = ""

    def __post_init__(self) -> None:
        _check_type(self, "node")


@dataclass(frozen=True)
class EdgeType:
    """An edge type: its name (``[A-Za-z][A-Za-z0-9_]*``) and the pydantic
    model of its attributes. Where it may go is said by the module's
    triples."""

    name: str
    attributes: type[BaseModel] = Attributes
    description: str = ""

    def __post_init__(self) -> None:
        _check_type(self, "edge")


def _check_type(t: NodeType | EdgeType, kind: str) -> None:
    _check_name(f"{kind} type name", t.name, _TYPE_NAME,
                "letters, digits and '_', starting with a letter")
    if not (isinstance(t.attributes, type) and issubclass(t.attributes, BaseModel)):
        raise ValueError(
            f"{kind} type {t.name!r}: attributes must be a pydantic BaseModel subclass, "
            f"not {t.attributes!r}"
        )


@dataclass(frozen=True)
class GraphTypeModule:
    """A graph-type module: name, version, node types, edge types and the
    allowed ``(source node type, edge type, target node type)`` triples.

    ``name``: lowercase letters and digits in words separated by ``-``,
    ``_`` or ``.`` (``call-graph``). ``version``: letters and digits in
    parts separated by ``.``, ``-`` or ``+`` (``1.0.0``). At least one node
    type. Iterables given for the types and triples are stored as tuples
    and a frozenset. ``admin_writes``: writing the data of graphs of this
    module needs a principal that manages the tenant (the ACL graph: a
    member must not grant itself permissions); it is a rule of the graph
    store, not part of the stored schema. Construction raises
    ``ValueError`` naming what is wrong."""

    name: str
    version: str
    node_types: tuple[NodeType, ...]
    edge_types: tuple[EdgeType, ...] = ()
    triples: frozenset[tuple[str, str, str]] = frozenset()
    description: str = ""
    admin_writes: bool = False
    _index: dict[str, NodeType | EdgeType] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )
    _secrets: dict[str, tuple[str, ...]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )
    _by_edge: dict[str, frozenset[tuple[str, str]]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        _check_name("module name", self.name, _MODULE_NAME,
                    "lowercase letters and digits, words joined by '-', '_' or '.'")
        _check_name(f"module {self.name}: version", self.version, _VERSION,
                    "letters and digits, parts joined by '.', '-' or '+'")
        label = f"module {self.name} {self.version}"
        node_types = tuple(self.node_types)
        edge_types = tuple(self.edge_types)
        expected: list[tuple[object, type]] = [(t, NodeType) for t in node_types]
        expected += [(t, EdgeType) for t in edge_types]
        for item, cls in expected:
            if not isinstance(item, cls):
                raise ValueError(f"{label}: expected a {cls.__name__}, got {item!r}")
        if not node_types:
            raise ValueError(f"{label}: a module needs at least one node type")
        index: dict[str, NodeType | EdgeType] = {}
        all_types: tuple[NodeType | EdgeType, ...] = (*node_types, *edge_types)
        for t in all_types:
            if t.name in index:
                kind = "node" if isinstance(index[t.name], NodeType) else "edge"
                raise ValueError(f"{label}: type name {t.name!r} is defined twice "
                                 f"(already a {kind} type)")
            index[t.name] = t
        triples: set[tuple[str, str, str]] = set()
        for triple in self.triples:
            if not (isinstance(triple, tuple) and len(triple) == 3
                    and all(isinstance(p, str) for p in triple)):
                raise ValueError(f"{label}: triple {triple!r} is not a (source node type, "
                                 "edge type, target node type) tuple of names")
            source, edge, target = triple
            for role, name, cls in (("source", source, NodeType), ("edge", edge, EdgeType),
                                    ("target", target, NodeType)):
                if not isinstance(index.get(name), cls):
                    kind = "edge" if cls is EdgeType else "node"
                    raise ValueError(f"{label}: triple {triple!r} names unknown {kind} type "
                                     f"{name!r} as its {role}")
            triples.add(triple)
        by_edge: dict[str, set[tuple[str, str]]] = {}
        for source, edge, target in triples:
            by_edge.setdefault(edge, set()).add((source, target))
        secrets = {t.name: _secret_fields(f"{label}, type {t.name!r}", t.attributes)
                   for t in index.values()}
        object.__setattr__(self, "node_types", node_types)
        object.__setattr__(self, "edge_types", edge_types)
        object.__setattr__(self, "triples", frozenset(triples))
        self._index.update(index)
        self._secrets.update(secrets)
        self._by_edge.update({k: frozenset(v) for k, v in by_edge.items()})

    def node_type(self, name: str) -> NodeType:
        """The node type called ``name``; ``KeyError`` if there is none."""
        t = self._index.get(name)
        if not isinstance(t, NodeType):
            raise KeyError(f"module {self.name} {self.version} has no node type {name!r}")
        return t

    def edge_type(self, name: str) -> EdgeType:
        """The edge type called ``name``; ``KeyError`` if there is none."""
        t = self._index.get(name)
        if not isinstance(t, EdgeType):
            raise KeyError(f"module {self.name} {self.version} has no edge type {name!r}")
        return t

    @property
    def label(self) -> str:
        """``"<name> <version>"``, as used in messages."""
        return f"{self.name} {self.version}"


# ---------------------------------------------------------------------------
# JSON Schemas
# ---------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the canonical text of a schema (equal
    schemas give equal text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sorted(value: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(canonical_json(value))
    return result


def _kind_schema(m: GraphTypeModule, kind: Literal["node", "edge"],
                 ts: Iterable[NodeType | EdgeType]) -> dict[str, Any]:
    ordered: list[NodeType | EdgeType] = sorted(ts, key=lambda t: t.name)
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"{m.name} {m.version} {kind}s",
        "type": "object",
        "required": ["type", "attributes"],
        "x-module": m.name,
        "x-version": m.version,
    }
    if not ordered:
        schema["not"] = {}  # no type of this kind: nothing is valid
        return _sorted(schema)
    refs, top = models_json_schema(
        [(t.attributes, "validation") for t in ordered], ref_template="#/$defs/{model}"
    )
    # A model's docstring becomes its "description": leave it out, so that
    # editing documentation does not change the stored schema (a changed
    # schema needs a new module version). Field descriptions stay.
    schema["$defs"] = {name: {k: v for k, v in d.items() if k != "description"}
                       for name, d in top.get("$defs", {}).items()}
    schema["properties"] = {
        "type": {"type": "string", "enum": [t.name for t in ordered]},
        "attributes": {"type": "object"},
    }
    branches = []
    for t in ordered:
        branch: dict[str, Any] = {
            "properties": {
                "type": {"const": t.name},
                "attributes": refs[(t.attributes, "validation")],
            },
        }
        if t.description:
            branch["description"] = t.description
        secret = m._secrets[t.name]
        if secret:
            branch["x-encrypted"] = list(secret)
        branches.append(branch)
    schema["oneOf"] = branches
    if kind == "edge":
        schema["x-triples"] = [list(tr) for tr in sorted(m.triples)]
    return _sorted(schema)


def module_to_db_schema(m: GraphTypeModule) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(node_schema, edge_schema)``: the JSON Schemas (draft 2020-12)
    stored in ``graph_types`` for a graph type of module ``m``.

    Each describes one row as ``{"type": ..., "attributes": {...}}``: a
    ``oneOf`` over the types, one branch per type (``type`` const, the
    attribute model's validation-mode schema by ``$ref`` into ``$defs``;
    ``x-encrypted`` lists its secret attributes). ``x-module`` and
    ``x-version`` name the module; the edge schema carries the allowed
    triples as ``x-triples`` (sorted ``[source, edge, target]`` lists). The
    result is deterministic: keys sorted, types and triples in name order,
    so ``canonical_json`` of it can be compared with what a file stores."""
    return _kind_schema(m, "node", m.node_types), _kind_schema(m, "edge", m.edge_types)


def schema_fingerprint(m: GraphTypeModule) -> str:
    """SHA-256 (hex) of the canonical JSON of both schemas: equal for two
    modules exactly when their stored schemas would be equal."""
    node_schema, edge_schema = module_to_db_schema(m)
    return hashlib.sha256(canonical_json([node_schema, edge_schema]).encode()).hexdigest()


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

_registry: dict[tuple[str, str], tuple[GraphTypeModule, str]] = {}
_registry_lock = threading.Lock()


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key of a module version (natural order): numeric parts compare
    as numbers and sort before non-numeric ones (``1.10.0`` > ``1.9.0``)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.split(r"[.+-]", version))


def register_module(m: GraphTypeModule) -> GraphTypeModule:
    """Register ``m`` under ``(m.name, m.version)`` in this process and
    return it. Registering the same definition again is a no-op (the
    registered one is returned); another definition under the same name
    and version raises ``ValueError`` (bump the version instead)."""
    if not isinstance(m, GraphTypeModule):
        raise ValueError(f"expected a GraphTypeModule, got {m!r}")
    fingerprint = schema_fingerprint(m)
    with _registry_lock:
        known = _registry.get((m.name, m.version))
        if known is not None:
            if known[1] != fingerprint:
                raise ValueError(
                    f"module {m.label} is already registered with a different definition; "
                    "give the changed module a new version"
                )
            return known[0]
        _registry[(m.name, m.version)] = (m, fingerprint)
    return m


def unregister_module(name: str, version: str) -> None:
    """Remove a module from this process's registry (for tests and
    reloading); a no-op when it is not registered."""
    with _registry_lock:
        _registry.pop((name, version), None)


def get_module(name: str, version: str | None = None) -> GraphTypeModule:
    """The registered module ``name`` at ``version``, or its highest
    registered version when ``version`` is None. Raises
    :class:`~alkdev_storage.errors.NotFound` naming it."""
    with _registry_lock:
        if version is not None:
            known = _registry.get((name, version))
            if known is None:
                raise NotFound(f"module {name} {version} is not registered in this process")
            return known[0]
        versions = [k[1] for k in _registry if k[0] == name]
        if not versions:
            raise NotFound(f"module {name} is not registered in this process")
        return _registry[(name, max(versions, key=version_key))][0]


def module_for_stored(name: str, version: str, node_schema: object,
                      edge_schema: object) -> GraphTypeModule:
    """The registered module that a stored graph type (its ``module``,
    ``version``, ``node_schema``, ``edge_schema`` columns) was registered
    from. Raises :class:`~alkdev_storage.errors.NotFound` when no module of
    that name and version is registered in this process, and
    :class:`~alkdev_storage.errors.MigrationError` when the registered one
    has other schemas than the stored ones (the code and the file
    disagree: a module changed without a new version)."""
    try:
        m = get_module(name, version)
    except NotFound:
        raise NotFound(
            f"module {name} {version} is not registered in this process; import or register "
            "it to write to graphs of this type"
        ) from None
    node, edge = module_to_db_schema(m)
    if canonical_json(node) != canonical_json(node_schema) or canonical_json(
        edge
    ) != canonical_json(edge_schema):
        raise MigrationError(
            f"module {m.label}: the schemas stored in the file differ from the module "
            "registered in this process (a module changed without a new version)"
        )
    return m


def modules() -> list[GraphTypeModule]:
    """Every registered module, by name then version (natural order)."""
    with _registry_lock:
        found = [v[0] for v in _registry.values()]
    return sorted(found, key=lambda m: (m.name, version_key(m.version)))


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _loc_text(loc: Iterable[object]) -> str:
    return ".".join(str(p) for p in loc)


def _failed(message: str, where: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(
        f"{where}: {message}",
        errors=[{"loc": tuple(where.split(".")), "msg": message, "type": kind}],
        field=where,
    )


def _from_pydantic(exc: _PydanticValidationError, context: str) -> ValidationFailed:
    # Never copy the input into the error: it may be a secret's plaintext.
    details = exc.errors(include_url=False, include_input=False, include_context=False)
    errors: list[dict[str, object]] = [
        {"loc": ("attributes", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in details
    ]
    where = _loc_text(("attributes", *details[0]["loc"]))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationFailed(f"{where}: {details[0]['msg']}{more} ({context})", errors=errors,
                            field=where)


def _model_attributes(model: type[BaseModel], attrs: object, context: str) -> BaseModel:
    if attrs is None:
        attrs = {}
    if isinstance(attrs, model):
        return attrs
    if not isinstance(attrs, Mapping):
        raise _failed(f"expected a mapping of attributes, got {type(attrs).__name__} "
                      f"({context})", "attributes", "dict_type")
    try:
        return model.model_validate(attrs)
    except _PydanticValidationError as exc:
        raise _from_pydantic(exc, context) from None


def dump_attributes(model_instance: BaseModel) -> dict[str, Any]:
    """The stored form of validated attributes: the model's JSON-mode dump
    by alias."""
    return model_instance.model_dump(mode="json", by_alias=True)


def validate_node_attributes(m: GraphTypeModule, type: str, attrs: object) -> BaseModel:
    """Like :func:`validate_node` but returns the attribute model instance
    (whose secret fields hold ``EncryptedData`` objects, e.g. to read their
    ``key_version``)."""
    t = m._index.get(type) if isinstance(type, str) else None
    if not isinstance(t, NodeType):
        known = ", ".join(sorted(n.name for n in m.node_types))
        raise _failed(f"node type {type!r} is not defined by module {m.label} (node types: "
                      f"{known})", "type", "unknown_type")
    return _model_attributes(t.attributes, attrs, f"node type {type!r} of module {m.label}")


def validate_node(m: GraphTypeModule, type: str, attrs: object) -> dict[str, Any]:
    """Validate a node of type ``type`` with attributes ``attrs`` (a
    mapping, None for none, or an instance of the type's model) against
    module ``m`` and return the attributes to store (the model's JSON-mode
    dump). Raises :class:`~alkdev_storage.errors.ValidationFailed` with
    ``field`` ``"type"`` for an unknown type or ``"attributes.<path>"`` for
    an attribute that fails the model."""
    return dump_attributes(validate_node_attributes(m, type, attrs))


def validate_edge_attributes(m: GraphTypeModule, type: str, source_type: str,
                             target_type: str, attrs: object) -> BaseModel:
    """Like :func:`validate_edge` but returns the attribute model
    instance."""
    t = m._index.get(type) if isinstance(type, str) else None
    if not isinstance(t, EdgeType):
        known = ", ".join(sorted(e.name for e in m.edge_types)) or "none"
        raise _failed(f"edge type {type!r} is not defined by module {m.label} (edge types: "
                      f"{known})", "type", "unknown_type")
    ends = m._by_edge.get(type, frozenset())
    if (source_type, target_type) not in ends:
        allowed = ", ".join(f"{s} -{type}-> {d}" for s, d in sorted(ends)) or "none"
        role = "target_type" if any(s == source_type for s, _ in ends) else "source_type"
        raise _failed(f"an edge {source_type!r} -{type}-> {target_type!r} is not allowed by "
                      f"module {m.label} (allowed: {allowed})", role, "triple_not_allowed")
    return _model_attributes(t.attributes, attrs, f"edge type {type!r} of module {m.label}")


def validate_edge(m: GraphTypeModule, type: str, source_type: str, target_type: str,
                  attrs: object) -> dict[str, Any]:
    """Validate an edge of type ``type`` from a node of type
    ``source_type`` to one of type ``target_type`` against module ``m`` and
    return the attributes to store. Raises
    :class:`~alkdev_storage.errors.ValidationFailed`: ``field`` ``"type"``
    for an unknown edge type, ``"source_type"`` / ``"target_type"`` for a
    triple the module does not allow (the source when no allowed triple of
    this edge type starts at it, else the target), ``"attributes.<path>"``
    for attributes failing the model."""
    return dump_attributes(validate_edge_attributes(m, type, source_type, target_type, attrs))


def encrypted_fields(m: GraphTypeModule, type_name: str | NodeType | EdgeType) -> list[str]:
    """The stored keys of the secret (``EncryptedData``) attributes of the
    node or edge type ``type_name`` of module ``m``, sorted. ``KeyError``
    when the module has no such type."""
    name = type_name if isinstance(type_name, str) else type_name.name
    if name not in m._secrets:
        raise KeyError(f"module {m.label} has no node or edge type {name!r}")
    return list(m._secrets[name])
