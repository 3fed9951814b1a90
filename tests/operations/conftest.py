"""Fixtures of the operations tests: a tenant file (``tenant-o1.db``,
built-in graph types registered) and a system file, each with its
dispatcher."""

from __future__ import annotations

import pytest

import alkdev_storage
from alkdev_storage.domain import init_tenant
from alkdev_storage.operations import Dispatcher
from alkdev_storage.schema import migrate

ORG = "o1"


@pytest.fixture
def tenant_db(tmp_path):
    db = alkdev_storage.open(tmp_path / f"tenant-{ORG}.db")
    init_tenant(db, ORG)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def tenant_ops(tenant_db):
    return Dispatcher(tenant_db, "tenant", org_id=ORG)


@pytest.fixture
def system_db(tmp_path):
    db = alkdev_storage.open(tmp_path / "system.db")
    migrate(db, "system")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def system_ops(system_db):
    return Dispatcher(system_db, "system")
