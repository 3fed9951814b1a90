"""Scope protection below every API (ADR-043): the triggers refuse INSERT,
UPDATE and DELETE of system-scope graph types through raw SQL, Core and
the ORM (and the REPLACE tricks that would displace one); protection_lifted
allows it inside its transaction only, and the triggers are back after
commit and after rollback without another connection ever missing them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from schema_helpers import count
from sqlalchemy.orm import Session

import alkdev_storage
from alkdev_storage.schema import (
    PROTECTION_TRIGGER_NAMES,
    GraphType,
    ensure_protection,
    protection_lifted,
)
from alkdev_storage.sqlalchemy import create_engine

# Constant (readable by every SQLite version); the domain layer names the type.
MSG = "graph type is system-scope and cannot be changed"
COLUMNS = "(id, name, version, scope, owner_id, module, node_schema, edge_schema)"


def triggers(db: alkdev_storage.Database) -> set[str]:
    """The protection triggers a reader (another connection) sees."""
    rows = db.query("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    return {r["name"] for r in rows} & set(PROTECTION_TRIGGER_NAMES)


@pytest.fixture
def seeded(tenant_db) -> Iterator[alkdev_storage.Database]:
    """A tenant file with a system type `acl`, a tenant type `calls` and a
    user type `mine` (owner u1)."""
    with tenant_db.transaction() as tx, protection_lifted(tx):
        tx.execute(
            f"INSERT INTO graph_types {COLUMNS} VALUES "
            "('sys', 'acl', '1', 'system', NULL, 'acl', '{}', '{}'), "
            "('ten', 'calls', '1', 'tenant', NULL, 'call', '{}', '{}'), "
            "('usr', 'mine', '1', 'user', 'u1', 'mine', '{}', '{}')"
        )
    assert triggers(tenant_db) == set(PROTECTION_TRIGGER_NAMES)
    yield tenant_db


def snapshot(db: alkdev_storage.Database) -> list[dict[str, object]]:
    return db.query("SELECT * FROM graph_types ORDER BY id")


RAW_ATTEMPTS = [
    ("update", "UPDATE graph_types SET version = '2' WHERE id = 'sys'", "acl"),
    ("update all", "UPDATE graph_types SET module = 'evil'", "acl"),
    ("demote", "UPDATE graph_types SET scope = 'tenant' WHERE id = 'sys'", "acl"),
    ("promote", "UPDATE graph_types SET scope = 'system' WHERE id = 'ten'", "calls"),
    ("delete", "DELETE FROM graph_types WHERE id = 'sys'", "acl"),
    ("delete all", "DELETE FROM graph_types", "acl"),
    (
        "insert system",
        f"INSERT INTO graph_types {COLUMNS} VALUES ('s2', 'x', '1', 'system', NULL, 'm', '{{}}', "
        "'{}')",
        "x",
    ),
    (
        "replace by id",
        f"INSERT OR REPLACE INTO graph_types {COLUMNS} VALUES "
        "('sys', 'acl', '1', 'tenant', NULL, 'evil', '{}', '{}')",
        "acl",
    ),
    (
        "replace by unique key",
        f"REPLACE INTO graph_types {COLUMNS} VALUES "
        "('new', 'acl', '1', 'tenant', NULL, 'evil', '{}', '{}')",
        "acl",
    ),
    (
        "replace by unique key with an empty owner",
        f"REPLACE INTO graph_types {COLUMNS} VALUES "
        "('new', 'acl', '1', 'user', '', 'evil', '{}', '{}')",
        "acl",
    ),
    (
        "upsert",
        f"INSERT INTO graph_types {COLUMNS} VALUES "
        "('sys', 'acl', '1', 'tenant', NULL, 'evil', '{}', '{}') "
        "ON CONFLICT (id) DO UPDATE SET module = 'evil'",
        "acl",
    ),
    (
        "update or replace id",
        "UPDATE OR REPLACE graph_types SET id = 'sys' WHERE id = 'ten'",
        "acl",
    ),
    (
        "update or replace key",
        "UPDATE OR REPLACE graph_types SET name = 'acl' WHERE id = 'ten'",
        "acl",
    ),
]


@pytest.mark.parametrize(("what", "sql", "name"), RAW_ATTEMPTS, ids=[a[0] for a in RAW_ATTEMPTS])
def test_raw_sql_cannot_change_system_types(seeded, what, sql, name) -> None:
    before = snapshot(seeded)
    with pytest.raises(alkdev_storage.IntegrityError, match=MSG):
        seeded.execute(sql)
    with pytest.raises(alkdev_storage.IntegrityError, match=MSG):
        with seeded.transaction() as tx:
            tx.execute(sql)
    assert snapshot(seeded) == before


def test_core_and_orm_cannot_change_system_types(seeded) -> None:
    before = snapshot(seeded)
    engine = create_engine(seeded)
    try:
        core: list[sa.Executable] = [
            sa.update(GraphType).where(GraphType.id == "sys").values(version="9"),
            sa.delete(GraphType).where(GraphType.scope == "system"),
            sa.insert(GraphType).values(
                id="s3", name="n", version="1", scope="system", module="m",
                node_schema={}, edge_schema={},
            ),
        ]
        for stmt in core:
            with pytest.raises(sa.exc.IntegrityError, match="is system-scope and cannot be"):
                with engine.begin() as c:
                    c.execute(stmt)

        orm: list[Callable[[Session], None]] = [
            lambda s: setattr(s.get_one(GraphType, "sys"), "node_schema", {"type": "object"}),
            lambda s: s.delete(s.get_one(GraphType, "sys")),
            lambda s: setattr(s.get_one(GraphType, "ten"), "scope", "system"),
            lambda s: s.add(GraphType(name="new", version="1", scope="system", module="m",
                                      node_schema={}, edge_schema={})),
            lambda s: s.merge(GraphType(id="sys", name="acl", version="1", scope="tenant",
                                        module="evil", node_schema={}, edge_schema={})),
        ]
        for act in orm:
            with pytest.raises(sa.exc.IntegrityError, match="is system-scope and cannot be"):
                with Session(engine) as s, s.begin():
                    act(s)
    finally:
        engine.dispose()
    assert snapshot(seeded) == before


def test_tenant_and_user_types_stay_writable(seeded) -> None:
    seeded.execute("UPDATE graph_types SET version = '2' WHERE scope != 'system'")
    seeded.execute(
        f"INSERT INTO graph_types {COLUMNS} VALUES ('t2', 'acl', '2', 'tenant', NULL, 'm', '{{}}', "
        "'{}')"
    )
    seeded.execute("DELETE FROM graph_types WHERE id IN ('ten', 't2')")
    # a user type may share a system type's name and version (another owner)
    seeded.execute(
        f"INSERT INTO graph_types {COLUMNS} VALUES ('u2', 'acl', '1', 'user', 'u2', 'm', '{{}}', "
        "'{}')"
    )
    assert [r["id"] for r in snapshot(seeded)] == ["sys", "u2", "usr"]


def test_protection_lifted_on_a_native_transaction_commit(seeded) -> None:
    with seeded.transaction() as tx:
        with protection_lifted(tx):
            tx.execute("UPDATE graph_types SET version = '2', module = 'acl2' WHERE id = 'sys'")
            # lifted only inside this transaction: another connection still
            # sees the triggers
            assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)
        # back already, before the commit
        with pytest.raises(alkdev_storage.IntegrityError, match=MSG):
            tx.execute("DELETE FROM graph_types WHERE id = 'sys'")
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)
    assert seeded.query("SELECT version, module FROM graph_types WHERE id = 'sys'") == [
        {"version": "2", "module": "acl2"}
    ]
    with pytest.raises(alkdev_storage.IntegrityError, match=MSG):
        seeded.execute("DELETE FROM graph_types WHERE id = 'sys'")


def test_a_rollback_undoes_the_lifting(seeded) -> None:
    before = snapshot(seeded)
    tx = seeded.begin()
    with protection_lifted(tx):
        tx.execute("DELETE FROM graph_types WHERE id = 'sys'")
        assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)
    tx.rollback()
    assert snapshot(seeded) == before
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)
    with pytest.raises(alkdev_storage.IntegrityError):
        seeded.execute("DELETE FROM graph_types WHERE id = 'sys'")


def test_a_native_transaction_ended_inside_the_block(seeded) -> None:
    before = snapshot(seeded)
    tx = seeded.begin()
    with pytest.raises(sa.exc.InvalidRequestError, match=r"call .*ensure_protection"):
        with protection_lifted(tx):
            tx.rollback()
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)  # the rollback restored them
    assert ensure_protection(seeded) == []
    tx = seeded.begin()
    with pytest.raises(sa.exc.InvalidRequestError, match="ended inside protection_lifted"):
        with protection_lifted(tx):
            tx.commit()
    assert triggers(seeded) == set()  # committed without them: the caller must repair
    assert ensure_protection(seeded) == list(PROTECTION_TRIGGER_NAMES)
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)
    assert snapshot(seeded) == before


def test_a_session_committed_inside_the_block_is_repaired(seeded) -> None:
    engine = create_engine(seeded)
    try:
        with Session(engine) as s:
            s.begin()
            with pytest.raises(sa.exc.InvalidRequestError, match="restored in a new transaction"):
                with protection_lifted(s):
                    s.get_one(GraphType, "sys").version = "7"
                    s.commit()
    finally:
        engine.dispose()
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)
    assert seeded.query("SELECT version FROM graph_types WHERE id = 'sys'") == [{"version": "7"}]


def test_ensure_protection_refuses_other_targets(seeded) -> None:
    with pytest.raises(TypeError, match="takes a Database or a native Transaction"):
        ensure_protection("tenant.db")


def test_an_error_in_the_block_rolls_back_with_the_transaction(seeded) -> None:
    before = snapshot(seeded)
    with pytest.raises(RuntimeError, match="boom"):
        with seeded.transaction() as tx, protection_lifted(tx):
            tx.execute("DELETE FROM graph_types WHERE id = 'sys'")
            raise RuntimeError("boom")
    assert snapshot(seeded) == before
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)


def test_triggers_come_back_even_if_the_caller_swallows_the_error(seeded) -> None:
    with seeded.transaction() as tx:
        try:
            with protection_lifted(tx):
                raise KeyError("swallowed")
        except KeyError:
            pass
        with pytest.raises(alkdev_storage.IntegrityError):
            tx.execute("DELETE FROM graph_types WHERE id = 'sys'")
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)


def test_protection_lifted_through_a_session_and_a_connection(seeded) -> None:
    engine = create_engine(seeded)
    try:
        with Session(engine) as s, s.begin():
            with protection_lifted(s):
                s.get_one(GraphType, "sys").version = "3"  # flushed by protection_lifted
                s.add(GraphType(id="sys2", name="secrets", version="1", scope="system",
                                module="secret", node_schema={}, edge_schema={}))
            assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)
        with engine.begin() as c:
            with protection_lifted(c):
                c.execute(sa.delete(GraphType).where(GraphType.id == "sys2"))
        with engine.connect() as c:
            c.execute(sa.select(1)).all()  # autobegun by a read: still a transaction
            with protection_lifted(c):
                c.execute(sa.update(GraphType).values(module="m").where(GraphType.id == "sys"))
            c.rollback()
    finally:
        engine.dispose()
    rows = seeded.query("SELECT id, version, module FROM graph_types WHERE scope = 'system'")
    assert rows == [{"id": "sys", "version": "3", "module": "acl"}]
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)


def test_protection_lifted_needs_a_transaction(seeded) -> None:
    before = snapshot(seeded)
    engine = create_engine(seeded)
    try:
        with engine.connect() as c:
            with pytest.raises(sa.exc.InvalidRequestError, match="inside a transaction"):
                with protection_lifted(c):
                    pass
        auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        with auto.connect() as c:
            c.execute(sa.select(1)).all()
            with pytest.raises(sa.exc.InvalidRequestError, match="AUTOCOMMIT"):
                with protection_lifted(c):
                    pass
        with Session(engine) as s:
            with pytest.raises(sa.exc.InvalidRequestError, match="inside a transaction"):
                with protection_lifted(s):
                    pass
    finally:
        engine.dispose()
    tx = seeded.begin()
    tx.commit()
    with pytest.raises(sa.exc.InvalidRequestError, match="has ended"):
        with protection_lifted(tx):
            pass
    for wrong in (seeded, None, "graph_types"):
        with pytest.raises(TypeError, match="takes a SQLAlchemy Connection or Session"):
            with protection_lifted(wrong):
                pass
    assert snapshot(seeded) == before
    assert triggers(seeded) == set(PROTECTION_TRIGGER_NAMES)


def test_other_writers_wait_and_never_write_unprotected(seeded) -> None:
    """While one transaction has the protection lifted, another thread's
    write waits for the writer slot and then meets the triggers again."""
    entered = threading.Event()
    outcome: list[str] = []

    def other() -> None:
        entered.wait()
        try:
            seeded.execute("DELETE FROM graph_types WHERE id = 'sys'")
            outcome.append("deleted")
        except alkdev_storage.IntegrityError as e:
            outcome.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    with seeded.transaction() as tx, protection_lifted(tx):
        tx.execute("UPDATE graph_types SET version = '5' WHERE id = 'sys'")
        entered.set()
        t.join(timeout=0.3)  # it is blocked on the writer slot meanwhile
        assert t.is_alive()
    t.join()
    assert outcome == [MSG]
    assert count_rows(seeded) == 3


def count_rows(db: alkdev_storage.Database) -> int:
    return int(db.query("SELECT count(*) AS n FROM graph_types")[0]["n"])


def test_sqlalchemy_count_helper_agrees(seeded) -> None:
    engine = create_engine(seeded)
    try:
        assert count(engine, "graph_types") == count_rows(seeded) == 3
    finally:
        engine.dispose()
