"""Typed events: payload models by event type.

A target (or a pubsub) may be given payload models: a mapping of type to a
pydantic model class, or catalog definitions (anything with a ``name``
``str`` and a ``payload`` model class, such as the constants of
``alkdev_storage.domain.catalog``; :func:`catalog_types` lists them by
kind of database). Then:

* dispatching an event of a typed type validates its ``detail`` first (a
  dict, or an instance of the model) and refuses a mismatch with
  :class:`~alkdev_storage.errors.ValidationFailed` naming the field,
  **before anything is written**; listeners get the model instance;
* a received event of a typed type (from another process) is validated
  into the model; one that does not match is dropped and counted
  (``TypeRegistry.invalid``), never handed to a listener.

Which model applies to a type: the exact type, else the longest
registered name that is a prefix of the type followed by ``:`` (so
``graph:created:<id>``, what ``pubsub.publish("graph:created", id, p)``
dispatches, takes the model of ``graph:created``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from alkdev_storage.errors import ValidationFailed

__all__ = ["TypeRegistry", "TypesArg", "catalog_types", "definition_of", "validate_detail"]

TypesArg = Mapping[str, type[BaseModel]] | Iterable[Any] | None
"""What ``types=`` accepts: a mapping type -> model, or catalog definitions."""


def catalog_types(kind: str | None = None) -> list[Any]:
    """The definitions of the event catalog (``alkdev_storage.domain.catalog``)
    of one kind of database (``"system"`` / ``"tenant"``), or of both, for
    ``types=``: ``EphemeralEventTarget(db, types=catalog_types("tenant"))``."""
    from alkdev_storage.domain.catalog import CATALOG

    if kind is None:
        return [d for defs in CATALOG.values() for d in defs]
    if kind not in CATALOG:
        raise ValueError(f"kind must be one of {', '.join(CATALOG)} or None, not {kind!r}")
    return list(CATALOG[kind])  # type: ignore[index]  # checked against the keys above


def definition_of(value: Any) -> tuple[str, type[BaseModel]] | None:
    """``(name, model)`` of a catalog definition (an object with a ``name``
    str and a ``payload`` pydantic model class), else None."""
    name = getattr(value, "name", None)
    model = getattr(value, "payload", None)
    if isinstance(name, str) and isinstance(model, type) and issubclass(model, BaseModel):
        return name, model
    return None


def validate_detail(model: type[BaseModel], detail: Any, type_: str) -> BaseModel:
    """``detail`` as an instance of ``model``; ``ValidationFailed`` naming
    the field (and the event type) otherwise."""
    if isinstance(detail, model):
        return detail
    if isinstance(detail, BaseModel):
        msg = f"event {type_!r} takes a {model.__name__} (or a dict), not a {type(detail).__name__}"
        raise ValidationFailed(msg, [{"loc": (), "msg": msg, "type": "model_type"}], None)
    try:
        if isinstance(detail, (str, bytes, bytearray)):
            return model.model_validate_json(detail)
        return model.model_validate(detail)
    except ValidationError as e:
        errors: list[dict[str, object]] = [dict(err) for err in e.errors()]
        first = errors[0] if errors else {}
        loc = first.get("loc", ())
        field = ".".join(str(p) for p in loc) if isinstance(loc, tuple) and loc else None
        what = f" field {field!r}" if field else ""
        msg = f"event {type_!r}: {model.__name__}{what}: {first.get('msg', 'invalid')}"
        raise ValidationFailed(msg, errors, field) from None


class TypeRegistry:
    """Payload models by event type (see the module docstring)."""

    def __init__(self, types: TypesArg = None) -> None:
        self.models: dict[str, type[BaseModel]] = {}
        """The registered models by type name (read-only: use :meth:`add`)."""
        self._cache: dict[str, type[BaseModel] | None] = {}
        self._lock = threading.Lock()
        self.invalid = 0
        """Received events dropped because their detail did not match."""
        if types is not None:
            self.add(types)

    def add(self, types: TypesArg) -> None:
        """Register more models (same forms as the constructor). A type
        registered twice with two different models is a ``ValueError``."""
        pairs: list[tuple[str, type[BaseModel]]] = []
        if isinstance(types, Mapping):
            for name, model in types.items():
                if not isinstance(name, str) or not name or "*" in name:
                    raise ValueError(
                        f"typed event names must be non-empty str without '*': {name!r}"
                    )
                if not (isinstance(model, type) and issubclass(model, BaseModel)):
                    raise TypeError(f"the model of {name!r} must be a pydantic model class")
                pairs.append((name, model))
        elif types is not None:
            for item in types:
                d = definition_of(item)
                if d is None:
                    raise TypeError(
                        "types= takes a mapping of type to pydantic model, or catalog "
                        f"definitions (with .name and .payload), not {type(item).__name__}"
                    )
                pairs.append(d)
        with self._lock:
            for name, model in pairs:
                have = self.models.get(name)
                if have is not None and have is not model:
                    raise ValueError(
                        f"event type {name!r} already has the model {have.__name__}, "
                        f"not {model.__name__}"
                    )
            for name, model in pairs:
                self.models[name] = model
            self._cache.clear()

    def __bool__(self) -> bool:
        return bool(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def model_for(self, type_: str) -> type[BaseModel] | None:
        """The model of ``type_`` (exact, else longest ``name:`` prefix)."""
        if not self.models:
            return None
        try:
            return self._cache[type_]
        except KeyError:
            pass
        found = self.models.get(type_)
        if found is None:
            best = -1
            for name, model in self.models.items():
                if len(name) > best and type_.startswith(name + ":"):
                    best, found = len(name), model
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[type_] = found
        return found

    def outgoing(self, type_: str, detail: Any) -> Any:
        """``detail`` checked for dispatch: the model instance for a typed
        type (``ValidationFailed`` if it does not match), else unchanged."""
        model = self.model_for(type_)
        return detail if model is None else validate_detail(model, detail, type_)

    def incoming(self, type_: str, detail: Any) -> tuple[bool, Any]:
        """``(ok, detail)`` for a received event: the model instance for a
        typed type, ``(False, None)`` (counted in :attr:`invalid`) when it
        does not match."""
        model = self.model_for(type_)
        if model is None:
            return True, detail
        try:
            return True, validate_detail(model, detail, type_)
        except ValidationFailed:
            self.invalid += 1
            return False, None
