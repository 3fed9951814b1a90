"""The README-ready example of the report: define a table, generate its
operations, call one (kept here so it stays true)."""

from __future__ import annotations

import pytest


def test_define_a_table_generate_its_operations_and_call_one(tmp_path) -> None:
    import sqlalchemy as sa

    import alkdev_storage
    from alkdev_storage.domain import Principal
    from alkdev_storage.errors import NotFound, ValidationFailed
    from alkdev_storage.operations import (
        CallContext,
        Dispatcher,
        Registry,
        TableConfig,
        generate,
        owner_rules,
    )
    from alkdev_storage.schema import UTCDateTime, migrate, new_id, utcnow
    from alkdev_storage.sqlalchemy import create_engine

    # 1. A table of your own (plus the operations tables, via migrate()).
    metadata = sa.MetaData()
    notes = sa.Table(
        "notes", metadata,
        sa.Column("id", sa.Text, primary_key=True, default=new_id),
        sa.Column("owner_id", sa.Text, nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
        sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    )
    db = alkdev_storage.open(tmp_path / "tenant-acme.db")
    migrate(db, "tenant")
    engine = create_engine(db)
    metadata.create_all(engine)
    engine.dispose()

    # 2. Its operations: notes.create/get/list/update/patch/delete, each
    #    with JSON Schemas, a scope (notes:read / notes:write) and the
    #    owner rule compiled into its SQL.
    config = TableConfig(
        notes, owner_rules("owner_id"),
        presets={"owner_id": lambda call, values: call.ctx.principal.account_id},
    )
    ops = Dispatcher(db, "tenant", registry=Registry("tenant", generate(config)))

    # 3. Call them.
    alice = CallContext(Principal.user("alice", "acme", "member"))
    note = ops.call("notes.create", {"title": "hello"}, alice)
    assert note["owner_id"] == "alice"
    page = ops.call("notes.list", {"limit": 10}, alice)
    assert [n["title"] for n in page["items"]] == ["hello"]
    bob = CallContext(Principal.user("bob", "acme", "member"))
    assert ops.call("notes.list", {}, bob)["items"] == []
    with pytest.raises(NotFound):  # hidden rows look missing
        ops.call("notes.patch", {"id": note["id"], "title": "mine now"}, bob)
    with pytest.raises(ValidationFailed, match="title"):
        ops.call("notes.create", {"title": "x" * 201}, alice)
    assert ops.registry.get("notes.create").to_json()["input"]["required"] == ["title"]
    db.close()
