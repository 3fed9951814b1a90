"""``create_honker_event_target``: the seeds' ``createHonkerEventTarget``.

``mode="ephemeral"`` (notify/listen, loss acceptable: cache
invalidation, UI push) gives an
:class:`~alkdev_storage.events.ephemeral.EphemeralEventTarget`;
``mode="durable"`` (a stream with a named consumer: call-protocol
events, audit, replay) gives a
:class:`~alkdev_storage.events.durable.DurableEventTarget`. See those
modules for the mapping of each operation and the delivery contracts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from alkdev_storage.events.durable import DurableEventTarget
from alkdev_storage.events.ephemeral import EphemeralEventTarget

if TYPE_CHECKING:
    from alkdev_storage.database import Database

__all__ = ["create_honker_event_target"]


def create_honker_event_target(
    db: Database,
    mode: Literal["ephemeral", "durable"] = "ephemeral",
    *,
    stream: str | None = None,
    consumer: str | None = None,
    prefix: str = "",
    **options: Any,
) -> EphemeralEventTarget | DurableEventTarget:
    """A Honker event target on ``db``: ``mode="ephemeral"`` (``prefix``,
    ``types``, ``origin``) or ``mode="durable"`` (``stream``, default
    ``"events"``; ``consumer``; ``prefix``; and the
    :class:`~alkdev_storage.events.durable.DurableEventTarget` options).
    ``ValueError`` for another mode, or ``stream``/``consumer`` given to
    an ephemeral target."""
    if mode == "ephemeral":
        if stream is not None or consumer is not None:
            raise ValueError("stream= and consumer= are for mode='durable'")
        return EphemeralEventTarget(db, prefix=prefix, **options)
    if mode == "durable":
        return DurableEventTarget(
            db,
            stream=stream if stream is not None else "events",
            consumer=consumer,
            prefix=prefix,
            **options,
        )
    raise ValueError(f"mode must be 'ephemeral' or 'durable', not {mode!r}")
