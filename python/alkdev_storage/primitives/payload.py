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
* There is one codec: :func:`encode` *is* the native
  ``_native.encode_payload``, which the native ``tx.notify`` uses too.
"""

from __future__ import annotations

import json

from alkdev_storage import _native

__all__ = ["decode", "encode"]

encode = _native.encode_payload
"""Python value -> JSON text: the native ``_native.encode_payload`` itself
(no wrapper on the hot path). ``TypeError`` naming the payload's type if it
cannot be encoded."""

decode = json.loads
"""JSON text -> Python value (``json.loads``)."""
