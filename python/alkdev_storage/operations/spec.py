"""Operation specs (ADR-048; docs/0023-operation-specs.md).

An :class:`OperationSpec` is plain data plus a handler: ``id``
(``graphs.create``), ``kind`` (``query`` or ``mutation``), a description,
the input and output pydantic models (their JSON Schemas are the spec's
``input``/``output``), the ``scope`` a call needs, a description of the
row ``access`` rule, the catalogued ``events`` a mutation publishes, and
the named SQL ``statements`` it runs (builders of SQLAlchemy statements,
compiled once per spec and access shape by the dispatcher).
:meth:`OperationSpec.to_json` leaves out the handler and the builders, so
another process or language can list the operations and call them.

A :class:`Registry` holds the specs of one database kind (``system`` or
``tenant``): :meth:`~Registry.list`, :meth:`~Registry.get`,
:meth:`~Registry.export`.
"""

from __future__ import annotations

import builtins
import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from alkdev_storage.errors import NotFound

if TYPE_CHECKING:
    from alkdev_storage.operations.context import AccessView, CallContext
    from alkdev_storage.operations.sqlc import Compiled

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "CallResult",
    "CallTiming",
    "Handler",
    "Invocation",
    "OperationKind",
    "OperationSpec",
    "Registry",
    "StatementBuilder",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
OperationKind = Literal["query", "mutation"]

StatementBuilder = Callable[["AccessView", Any], sa.Executable]
"""Builds one statement of a spec for an access view and a variant (e.g.
the set of columns an UPDATE sets); the statement's structure may depend
only on ``view.shape`` and the variant (its values are bound)."""

Handler = Callable[["Invocation", Any], Any]
"""``handler(invocation, data)``: ``data`` is the validated input model
instance; returns the output (JSON-ready values)."""

class Invocation:
    """One call of a spec as its handler sees it: the ``ctx``
    (:class:`CallContext`), its :class:`AccessView` ``view``, the native
    ``session`` (a Transaction for mutations, a Snapshot for queries), the
    ``db``, the ``spec``, the dispatcher's ``services`` (sealer, cursor
    key, ...), and :meth:`sql` to get a spec statement compiled once."""

    __slots__ = ("_ops_compile", "ctx", "db", "services", "session", "spec", "view")

    def __init__(self, spec: OperationSpec, ctx: CallContext, view: AccessView, session: Any,
                 db: Any, services: Any,
                 compile: Callable[[OperationSpec, str, AccessView, Any], Compiled]) -> None:
        self.spec = spec
        self.ctx = ctx
        self.view = view
        self.session = session
        self.db = db
        self.services = services
        self._ops_compile = compile

    def sql(self, name: str, variant: Any = None) -> Compiled:
        """The spec's statement ``name`` for this call's access shape and
        ``variant``, compiled once per dispatcher."""
        return self._ops_compile(self.spec, name, self.view, variant)


@dataclass(frozen=True)
class OperationSpec:
    """One operation (see the module docstring). Frozen; build variants
    with :meth:`replace`."""

    id: str
    kind: OperationKind
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel] | None
    scope: str
    access: str
    handler: Handler = field(compare=False, repr=False)
    statements: Mapping[str, StatementBuilder] = field(default_factory=dict, compare=False,
                                                        repr=False)
    events: tuple[str, ...] = ()
    table: str | None = None
    output_is_list: bool = False
    output_check: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("query", "mutation"):
            raise ValueError(f"kind: {self.kind!r} is not query or mutation")
        if not self.id or "." not in self.id:
            raise ValueError(f"id: {self.id!r} should look like '<resource>.<verb>'")
        object.__setattr__(self, "statements", MappingProxyType(dict(self.statements)))
        object.__setattr__(self, "events", tuple(self.events))

    def replace(self, **changes: Any) -> OperationSpec:
        """A copy with ``changes`` (e.g. another ``id`` or ``handler``)."""
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        values.update(changes)
        return OperationSpec(**values)

    @property
    def input_schema(self) -> dict[str, Any]:
        """The input's JSON Schema (2020-12)."""
        return _schema(self.input_model, "validation")

    @property
    def output_schema(self) -> dict[str, Any]:
        """The output's JSON Schema (2020-12; ``{"type": "null"}`` when the
        operation returns nothing)."""
        if self.output_model is None:
            return {"$schema": JSON_SCHEMA_DIALECT, "type": "null"}
        schema = _schema(self.output_model, "serialization")
        if self.output_is_list:
            defs = schema.pop("$defs", None)
            item = {k: v for k, v in schema.items() if k != "$schema"}
            schema = {"$schema": JSON_SCHEMA_DIALECT, "type": "array", "items": item}
            if defs:
                schema["$defs"] = defs
        return schema

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON data (no handler, no statement builders)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "table": self.table,
            "scope": self.scope,
            "access": self.access,
            "events": list(self.events),
            "statements": sorted(self.statements),
            "input": self.input_schema,
            "output": self.output_schema,
        }


def _schema(model: type[BaseModel], mode: Literal["validation", "serialization"]
            ) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


class Registry:
    """The specs of one database kind, by id. ``list()`` (sorted by id),
    ``get(id)`` (``NotFound`` naming an unknown id and the closest known
    ones), ``export()`` (JSON data), ``export_json()`` (its text)."""

    def __init__(self, kind: str, specs: Iterable[OperationSpec] = ()) -> None:
        if kind not in ("system", "tenant"):
            raise ValueError(f"kind: {kind!r} is not system or tenant")
        self.kind = kind
        self._specs: dict[str, OperationSpec] = {}
        for s in specs:
            self.add(s)

    def add(self, spec: OperationSpec, *, replace: bool = False) -> OperationSpec:
        """Register ``spec`` (``ValueError`` if its id is taken, unless
        ``replace``)."""
        if not isinstance(spec, OperationSpec):
            raise TypeError(f"expected an OperationSpec, not {type(spec).__name__}")
        if spec.id in self._specs and not replace:
            raise ValueError(f"operation {spec.id!r} is already registered")
        self._specs[spec.id] = spec
        return spec

    def list(self) -> builtins.list[OperationSpec]:
        """Every spec, sorted by id."""
        return [self._specs[k] for k in sorted(self._specs)]

    def ids(self) -> builtins.list[str]:
        """Every operation id, sorted."""
        return sorted(self._specs)

    def get(self, op_id: str) -> OperationSpec:
        """The spec ``op_id``; ``NotFound`` naming it when unknown."""
        try:
            return self._specs[op_id]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(op_id), self._specs, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise NotFound(f"unknown operation {op_id!r} in the {self.kind} registry{hint}"
                           ) from None

    def __contains__(self, op_id: object) -> bool:
        return op_id in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def export(self) -> dict[str, Any]:
        """``{"kind", "jsonSchemaDialect", "operations": [spec.to_json()...]}``."""
        return {
            "kind": self.kind,
            "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
            "operations": [s.to_json() for s in self.list()],
        }

    def export_json(self, indent: int | None = None) -> str:
        """:meth:`export` as JSON text."""
        return json.dumps(self.export(), indent=indent, sort_keys=True)


@dataclass(frozen=True)
class CallTiming:
    """How long a call took, in seconds: ``validate_input``, ``run`` (the
    handler inside its transaction, commit included), ``validate_output``
    and ``total``; ``replayed`` when a repeated request id returned the
    stored result."""

    op_id: str
    validate_input: float
    run: float
    validate_output: float
    total: float
    replayed: bool = False


@dataclass(frozen=True)
class CallResult:
    """What :meth:`Dispatcher.call_result` returns: the ``value`` and its
    :class:`CallTiming`."""

    value: Any
    timing: CallTiming
