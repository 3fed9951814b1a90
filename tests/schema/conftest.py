"""Fixtures of the schema tests: engines on real files with the system or
tenant tables (created by the shipped migrations or by ``create_all``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import alkdev_storage
from alkdev_storage.schema import SystemBase, TenantBase, migrate
from alkdev_storage.sqlalchemy import create_engine


@pytest.fixture
def tenant_db(tmp_path) -> Iterator[alkdev_storage.Database]:
    """An open Database on a tenant file migrated to head."""
    db = alkdev_storage.open(tmp_path / "tenant.db")
    try:
        migrate(db, "tenant")
        yield db
    finally:
        db.close()


@pytest.fixture
def tenant_engine(tenant_db) -> Iterator[sa.Engine]:
    engine = create_engine(tenant_db)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def system_db(tmp_path) -> Iterator[alkdev_storage.Database]:
    """An open Database on a system file migrated to head."""
    db = alkdev_storage.open(tmp_path / "system.db")
    try:
        migrate(db, "system")
        yield db
    finally:
        db.close()


@pytest.fixture
def system_engine(system_db) -> Iterator[sa.Engine]:
    engine = create_engine(system_db)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=["migrations", "create_all"])
def tenant_engine_any(request, tmp_path) -> Iterator[sa.Engine]:
    """A tenant file made by the migrations or by ``create_all`` (the
    behaviour must not depend on which)."""
    engine = create_engine(tmp_path / f"tenant-{request.param}.db")
    try:
        if request.param == "migrations":
            migrate(engine, "tenant")
        else:
            TenantBase.metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=["migrations", "create_all"])
def system_engine_any(request, tmp_path) -> Iterator[sa.Engine]:
    engine = create_engine(tmp_path / f"system-{request.param}.db")
    try:
        if request.param == "migrations":
            migrate(engine, "system")
        else:
            SystemBase.metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
