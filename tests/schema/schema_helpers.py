"""Helpers of the schema tests (imported by the test modules)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa


def normalize_sql(sql: str | None) -> str:
    return re.sub(r"\s+", " ", sql or "").strip()


def schema_snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Everything about a file's schema (ours, not honker's or Alembic's):
    per table its columns, keys, constraints and indexes as reflected, plus
    the SQL of every index and trigger."""
    insp = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for name in insp.get_table_names():
        if name == "alembic_version":
            continue
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c["default"], c["primary_key"])
                for c in insp.get_columns(name)
            ],
            "pk": insp.get_pk_constraint(name),
            "fks": sorted(insp.get_foreign_keys(name), key=lambda f: f["name"] or ""),
            "uniques": sorted(insp.get_unique_constraints(name), key=lambda u: u["name"] or ""),
            "checks": sorted(
                (c["name"], normalize_sql(c["sqltext"])) for c in insp.get_check_constraints(name)
            ),
        }
    with engine.connect() as c:
        rows = c.exec_driver_sql(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE type IN ('index', 'trigger') AND name NOT LIKE 'sqlite_%' "
            "AND tbl_name NOT LIKE '\\_honker%' ESCAPE '\\' "
            "AND tbl_name != 'alembic_version' ORDER BY name"
        ).all()
    objects = [(t, n, tbl, normalize_sql(sql)) for t, n, tbl, sql in rows]
    return {"tables": tables, "objects": objects}


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as c:
        return int(c.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())
