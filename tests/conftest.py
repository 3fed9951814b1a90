"""Shared fixtures. Keep this file small: every test module may add to it."""

from __future__ import annotations

import pytest

import alkdev_storage


@pytest.fixture
def db_path(tmp_path):
    """Path of a database file in a fresh temporary directory (never :memory:)."""
    return tmp_path / "t.db"


@pytest.fixture
def db(db_path):
    """An open alkdev_storage Database on a real file, closed after the test."""
    database = alkdev_storage.open(db_path)
    try:
        yield database
    finally:
        database.close()
