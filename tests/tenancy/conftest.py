"""Fixtures of the tenancy tests: a hub on a temporary directory with a
static pepper, an owner account and an organization."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tenancy_helpers import peppers

from alkdev_storage.tenancy import Hub


@pytest.fixture
def hub_root(tmp_path: Path) -> Path:
    return tmp_path / "hub"


@pytest.fixture
def hub(hub_root: Path) -> Iterator[Hub]:
    h = Hub(hub_root, peppers=peppers(), last_used_flush_s=3600)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def owner(hub: Hub) -> str:
    return hub.create_account("owner@example.com", "Owner")


@pytest.fixture
def org(hub: Hub, owner: str) -> str:
    return hub.create_organization("acme", "Acme", owner)

