"""Events, event types and patterns, and the wire envelope.

An :class:`Event` is a DOM ``CustomEvent``: a ``type`` (``"graph:created"``,
``"graph:<id>"``) and a ``detail`` payload. Targets that cross a process
boundary also carry the ``origin`` of the target that dispatched it (how
a composite target recognises its own events coming back) and an optional
user ``id``.

Types and patterns
------------------
* A type is a non-empty ``str`` without ``*``.
* A listener key may be a pattern: ``*`` matches any run of characters
  (``graph:*`` is every type starting with ``graph:``; ``*:created``; a
  lone ``*`` is every type). A pattern ending in its only ``*`` is checked
  with ``str.startswith`` (the common case), any other with a compiled
  regular expression.

Wire envelope
-------------
Across processes an event travels as the JSON object
``{"alkdev.event": 1, "detail": ..., "origin": ..., "id": ...}`` (``id``
only when set); the type travels as the channel name (ephemeral), the
stream event's ``key`` (durable) or the Redis entry's ``key`` field. A
payload that is not an envelope (a plain ``db.notify`` from another
honker binding) is received as an event whose ``detail`` is the payload
and whose ``origin`` is None.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any, Self

from pydantic import BaseModel

__all__ = [
    "ENVELOPE_KEY",
    "Event",
    "check_key",
    "check_type",
    "from_envelope",
    "is_pattern",
    "pattern_matcher",
    "to_envelope",
    "wire_detail",
]

ENVELOPE_KEY = "alkdev.event"
"""Marker key (value 1) of the JSON envelope of an event on the wire."""


class Event:
    """One event: ``type`` and ``detail`` (as a DOM ``CustomEvent``).

    ``origin`` is the origin id of the target that dispatched it when it
    came through Honker or Redis (None for a plain notification from
    elsewhere); ``id`` is an optional id of the caller's, carried across
    processes unchanged. Durable and Redis deliveries are subclasses with
    their position (``offset``, ``message_id``)."""

    __slots__ = ("detail", "id", "origin", "type")

    def __init__(
        self,
        type: str,
        detail: Any = None,
        *,
        origin: str | None = None,
        id: str | None = None,
    ) -> None:
        self.type = type
        self.detail = detail
        self.origin = origin
        self.id = id

    def with_detail(self, detail: Any) -> Self:
        """A copy with another ``detail`` (the same type, origin, id and, for
        a subclass, its position fields)."""
        new = copy.copy(self)
        new.detail = detail
        return new

    def __repr__(self) -> str:
        extra = f", origin={self.origin!r}" if self.origin is not None else ""
        return f"{type(self).__name__}(type={self.type!r}, detail={self.detail!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.type, self.detail, self.origin, self.id) == (
            other.type,
            other.detail,
            other.origin,
            other.id,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable value object: not hashable


def check_type(value: Any, what: str = "event type") -> str:
    """An event type to dispatch: a non-empty ``str`` without ``*``
    (``TypeError`` / ``ValueError`` naming ``what`` otherwise)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "*" in value:
        raise ValueError(f"{what} {value!r} contains '*' (patterns are for listening only)")
    return value


def check_key(value: Any, what: str = "event type") -> str:
    """A listener key: a type or a pattern (non-empty ``str``)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


def is_pattern(key: str) -> bool:
    """True when ``key`` is a pattern (contains ``*``)."""
    return "*" in key


def pattern_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate for ``pattern`` (``*``: any run of characters)."""
    if pattern.count("*") == 1 and pattern.endswith("*"):
        prefix = pattern[:-1]
        if not prefix:
            return lambda t: True
        return lambda t: t.startswith(prefix)
    rx = re.compile("".join(".*" if p == "*" else re.escape(p) for p in _split_star(pattern)))
    return lambda t: rx.fullmatch(t) is not None


def _split_star(pattern: str) -> list[str]:
    out: list[str] = []
    for i, part in enumerate(pattern.split("*")):
        if i:
            out.append("*")
        if part:
            out.append(part)
    return out


def wire_detail(detail: Any) -> Any:
    """``detail`` as JSON-ready data: a pydantic model becomes
    ``model_dump(mode="json")``; anything else is kept (the payload codec
    refuses what JSON cannot carry, naming its type)."""
    if isinstance(detail, BaseModel):
        return detail.model_dump(mode="json")
    return detail


def to_envelope(event: Event, origin: str | None) -> dict[str, Any]:
    """The JSON envelope of ``event`` (see the module docstring)."""
    env: dict[str, Any] = {ENVELOPE_KEY: 1, "detail": wire_detail(event.detail), "origin": origin}
    if event.id is not None:
        env["id"] = event.id
    return env


def from_envelope(type: str, payload: Any) -> tuple[Any, str | None, str | None]:
    """``(detail, origin, id)`` of a received payload: unwrapped when it is
    an envelope, else the payload itself with no origin."""
    if isinstance(payload, dict) and payload.get(ENVELOPE_KEY) == 1:
        origin = payload.get("origin")
        eid = payload.get("id")
        return (
            payload.get("detail"),
            origin if isinstance(origin, str) else None,
            eid if isinstance(eid, str) else None,
        )
    return payload, None, None
