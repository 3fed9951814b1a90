"""The README's examples run as written."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

import alkdev_storage

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.fixture
def in_tmp(tmp_path: Path) -> Any:
    old = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old)


def test_quick_start(in_tmp: Path) -> None:
    ns: dict[str, Any] = {}
    exec(blocks()[0], ns)
    assert ns["r"].lastrowid == 1 and ns["n"] == (2,)
    assert ns["db"].closed


def test_primitives(in_tmp: Path) -> None:
    sent: list[Any] = []
    db = alkdev_storage.open("app.db")
    db.executescript("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    ns: dict[str, Any] = {"db": db, "send": sent.append}
    try:
        exec(blocks()[1], ns)
        assert sent == [{"order": 42}]
        assert ns["offset"] >= 1
        assert [row["name"] for row in ns["sched"].list()] == ["cleanup"]
    finally:
        db.close()


def test_sqlalchemy(in_tmp: Path) -> None:
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, mapped_column

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        id = mapped_column(sa.Integer, primary_key=True)
        name = mapped_column(sa.String, nullable=False)

    engine = sa.create_engine("sqlite+honker:///app.db")
    Base.metadata.create_all(engine)
    ns: dict[str, Any] = {"User": User}
    exec(blocks()[2], ns)
    assert ns["user"].name == "ada"
    db = ns["honker_database"](ns["engine"])
    assert db.fetchone("SELECT count(*) FROM _honker_notifications")[0] == 1
    ns["engine"].dispose()
    engine.dispose()
