"""Helpers shared by the tenancy tests."""

from __future__ import annotations

import json
from typing import Any

from alkdev_storage.tenancy import StaticPepperProvider

PEPPER = b"tenancy-tests-pepper-0123456789ab"


def peppers(*versions: int, current: int | None = None) -> StaticPepperProvider:
    """A provider with the given versions (default: version 1)."""
    vs = versions or (1,)
    return StaticPepperProvider({v: PEPPER[:-1] + bytes([v]) for v in vs}, current)


def notifications(db: Any, channel: str | None = None) -> list[dict[str, Any]]:
    """Payloads of the notifications in a database, oldest first."""
    rows = db.fetchall("SELECT channel, payload FROM _honker_notifications ORDER BY id")
    return [json.loads(p) for c, p in rows if channel is None or c == channel]
