"""The payload codec: every payload (notify, enqueue, publish, schedules,
task results) is encoded by :func:`encode` and decoded by :func:`decode`.

Decisions (docs/0006-payloads-and-names.md)
-------------------------------------------
* Strict, compact JSON (``allow_nan=False``, separators ``","`` and
  ``":"``): NaN and the infinities are not JSON and other honker bindings
  (Node, Go) cannot parse them.
* Every encoding failure (an object JSON cannot represent, a circular
  reference, NaN, nesting too deep) is a :class:`TypeError` naming the
  payload's type, with the original error as its cause. It is raised
  before any statement runs, so nothing is written.
* The native ``tx.notify`` / ``db.notify`` of ``_native`` encode with the
  same rules and the same message.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["decode", "encode"]

_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode

decode = json.loads
"""JSON text -> Python value (``json.loads``)."""


def encode(payload: Any) -> str:
    """JSON text of ``payload``; ``TypeError`` if it cannot be encoded."""
    try:
        return _encode(payload)
    except Exception as e:
        raise TypeError(
            f"payload of type {type(payload).__name__} cannot be encoded as JSON: {e}"
        ) from e
