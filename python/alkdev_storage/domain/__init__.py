"""The domain layer: graph-type modules and validation, generated pydantic
models, the event catalog and encrypted secrets.

* :mod:`~alkdev_storage.domain.models`: ``model_for(table, mode)``
  (ADR-046), ``validate``, ``row_values``.
* :mod:`~alkdev_storage.domain.catalog`: the channels, streams and queues of
  DESIGN.md's event catalog with their payload models; ``notify``,
  ``publish``, ``enqueue`` validate before writing, ``parse`` for listeners.
"""

from alkdev_storage.domain import catalog
from alkdev_storage.domain.models import (
    MODES,
    Mode,
    model_for,
    row_values,
    validate,
    validation_failed,
)

__all__ = [
    "MODES",
    "Mode",
    "catalog",
    "model_for",
    "row_values",
    "validate",
    "validation_failed",
]
