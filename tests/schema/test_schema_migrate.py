"""The shipped migrations: migrate() to head on an empty file, the
migrations and the models agree (autogenerate finds no difference, and the
reflected schema, indexes and triggers are the same as create_all's),
upgrading from every earlier revision keeps the rows, downgrade to base
and back, migrating twice is a no-op, and bad input is a MigrationError
that changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from schema_helpers import schema_snapshot

import alkdev_storage
from alkdev_storage.errors import MigrationError
from alkdev_storage.schema import (
    SystemBase,
    TenantBase,
    alembic_config,
    current_revision,
    head_revision,
    migrate,
    revisions,
)
from alkdev_storage.schema.migrate import MIGRATIONS_DIR
from alkdev_storage.sqlalchemy import create_engine

BASES = {"system": SystemBase, "tenant": TenantBase}
KINDS = ["system", "tenant"]

# The expression index on graph_types cannot be reflected by SQLAlchemy's
# SQLite dialect, so autogenerate skips it (with a warning);
# schema_snapshot() compares its SQL instead.
EXPRESSION_INDEX_WARNINGS = [
    "ignore:Skipped unsupported reflection of expression-based index",
    "ignore:autogenerate skipping metadata-specified expression-based index",
]


def test_revisions_are_linear_and_readable() -> None:
    assert revisions("system") == ["system_0001", "system_0002", "system_0003", "system_0004"]
    assert revisions("tenant") == ["tenant_0001", "tenant_0002", "tenant_0003", "tenant_0004"]
    assert head_revision("system") == "system_0004"
    assert head_revision("tenant") == "tenant_0004"


def test_the_environment_files_are_in_the_package() -> None:
    # run against the installed wheel by scripts/test.sh: the .mako template
    # and the versions folder must be shipped
    for kind in KINDS:
        folder = MIGRATIONS_DIR / kind
        assert (folder / "env.py").is_file()
        assert (folder / "script.py.mako").is_file()
        assert len(list((folder / "versions").glob(f"{kind}_*.py"))) == len(revisions(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_migrate_an_empty_file_to_head(tmp_path, kind) -> None:
    path = tmp_path / f"{kind}.db"
    assert migrate(path, kind) == head_revision(kind)
    assert current_revision(path, kind) == head_revision(kind)
    engine = create_engine(path)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert tables == set(BASES[kind].metadata.tables) | {"alembic_version"}
        # foreign keys are enforced again after the run
        with engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.filterwarnings(*EXPRESSION_INDEX_WARNINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_migrations_and_models_agree(tmp_path, kind) -> None:
    migrated = create_engine(tmp_path / "migrated.db")
    created = create_engine(tmp_path / "created.db")
    try:
        migrate(migrated, kind)
        with migrated.connect() as c:
            mc = MigrationContext.configure(
                c, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(mc, BASES[kind].metadata) == []
        BASES[kind].metadata.create_all(created)
        # what autogenerate does not compare: CHECK constraints, ON DELETE,
        # partial-index conditions, expression indexes, triggers
        assert schema_snapshot(migrated) == schema_snapshot(created)
    finally:
        migrated.dispose()
        created.dispose()


@pytest.mark.filterwarnings(*EXPRESSION_INDEX_WARNINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_autogenerate_writes_an_empty_revision(tmp_path, kind) -> None:
    """`alembic revision --autogenerate` through the shipped environment and
    template finds nothing to do at head."""
    path = tmp_path / f"{kind}.db"
    migrate(path, kind)
    cfg = alembic_config(kind)
    cfg.set_main_option(
        "version_locations", os.pathsep.join([str(MIGRATIONS_DIR / kind / "versions"),
                                              str(tmp_path / "new")])
    )
    (tmp_path / "new").mkdir()
    engine = create_engine(path)
    try:
        with engine.connect() as c:
            cfg.attributes["connection"] = c
            script = command.revision(
                cfg,
                message="nothing",
                autogenerate=True,
                rev_id=f"{kind}_9999",
                version_path=str(tmp_path / "new"),
            )
    finally:
        engine.dispose()
    assert script is not None and not isinstance(script, list)
    text = Path(script.path).read_text()
    assert Path(script.path).parent == tmp_path / "new"
    assert f"down_revision: str | None = '{head_revision(kind)}'" in text
    body = text.split("def upgrade() -> None:", 1)[1]
    assert "op." not in body  # nothing to migrate, either way
    assert body.count("pass") == 2
    # the package's own revisions are untouched
    assert revisions(kind)[-1] == head_revision(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_sql_rows_written_at_every_earlier_revision_survive_the_upgrade(tmp_path, kind) -> None:
    for start in revisions(kind)[:-1]:
        path = tmp_path / f"{kind}-{start}.db"
        assert migrate(path, kind, start) == start
        rows = write_sample_rows(path, kind)
        assert migrate(path, kind) == head_revision(kind)
        after = read_sample_rows(path, kind)
        assert {table: after[table] for table in rows} == rows


def write_sample_rows(path: Path, kind: str) -> dict[str, list[tuple[object, ...]]]:
    db = alkdev_storage.open(path)
    try:
        with db.transaction() as tx:
            if kind == "system":
                tx.execute("INSERT INTO accounts (id, email) VALUES ('a1', 'a@b.c')")
                tx.execute(
                    "INSERT INTO organizations (id, slug, name, owner_id) "
                    "VALUES ('o1', 'acme', 'Acme', 'a1')"
                )
                tx.execute(
                    "INSERT INTO organization_memberships (org_id, account_id, level) "
                    "VALUES ('o1', 'a1', 'owner')"
                )
                tx.execute(
                    "INSERT INTO api_keys (id, account_id, org_id, name, prefix, key_hash, "
                    "pepper_version) VALUES ('k1', 'a1', 'o1', 'ci', 'p', ?, 1)",
                    [bytes(32)],
                )
                tx.execute("INSERT INTO tenants (org_id, status) VALUES ('o1', 'ready')")
            else:
                tx.execute(
                    "INSERT INTO graph_types (id, name, version, scope, module, node_schema, "
                    "edge_schema) VALUES ('t1', 'calls', '1', 'tenant', 'm', '{}', '{}')"
                )
                tx.execute("INSERT INTO graphs (id, graph_type_id, name) VALUES ('g1', 't1', 'g')")
                tx.execute(
                    "INSERT INTO nodes (id, graph_id, key, type, key_version) VALUES "
                    "('n1', 'g1', 'a', 'x', 1), ('n2', 'g1', 'b', 'x', NULL)"
                )
                tx.execute(
                    "INSERT INTO edges (id, graph_id, type, source_id, target_id, key_version) "
                    "VALUES ('e1', 'g1', 'y', 'n1', 'n2', 2)"
                )
    finally:
        db.close()
    return read_sample_rows(path, kind)


def read_sample_rows(path: Path, kind: str) -> dict[str, list[tuple[object, ...]]]:
    db = alkdev_storage.open(path)
    try:
        tables = db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        present = {r["name"] for r in tables}
        return {
            table: db.query(f"SELECT * FROM {table} ORDER BY rowid")
            for table in BASES[kind].metadata.tables
            if table in present  # tables of later revisions are not there yet
        }
    finally:
        db.close()


@pytest.mark.parametrize("kind", KINDS)
def test_downgrade_to_base_and_up_again(tmp_path, kind) -> None:
    path = tmp_path / f"{kind}.db"
    db = alkdev_storage.open(path)
    try:
        migrate(db, kind)
        for rev in reversed(revisions(kind)[:-1]):
            assert migrate(db, kind, rev) == rev
            assert current_revision(db, kind) == rev
        assert migrate(db, kind, "base") == "base"
        assert current_revision(db, kind) is None
        left = {r["name"] for r in db.query("SELECT name FROM sqlite_master")}
        assert not left & set(BASES[kind].metadata.tables)
        assert not any(n.startswith(("ix_", "uq_", "graph_types_", "edges_")) for n in left)
        assert migrate(db, kind) == head_revision(kind)
        # honker's own tables were never touched
        assert db.query("SELECT count(*) AS n FROM _honker_live") == [{"n": 0}]
        db.queue("q").enqueue({"still": "works"})
    finally:
        db.close()


@pytest.mark.parametrize("kind", KINDS)
def test_migrating_twice_changes_nothing(tmp_path, kind) -> None:
    path = tmp_path / f"{kind}.db"
    migrate(path, kind)
    db = alkdev_storage.open(path)
    try:
        schema = db.query("PRAGMA schema_version")
        changes = db.query("SELECT total_changes() AS n")
        assert migrate(db, kind) == head_revision(kind)
        assert migrate(db, kind, head_revision(kind)) == head_revision(kind)
        assert db.query("PRAGMA schema_version") == schema
        assert db.query("SELECT total_changes() AS n") == changes
    finally:
        db.close()


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_target(tmp_path, kind) -> None:
    # a path (as str and as Path), an open Database (left open), an Engine,
    # a Connection
    assert migrate(str(tmp_path / "a.db"), kind) == head_revision(kind)
    assert migrate(tmp_path / "b.db", kind) == head_revision(kind)
    db = alkdev_storage.open(tmp_path / "c.db")
    try:
        assert migrate(db, kind) == head_revision(kind)
        assert db.query("SELECT count(*) AS n FROM alembic_version") == [{"n": 1}]
    finally:
        db.close()
    engine = create_engine(tmp_path / "d.db")
    try:
        assert migrate(engine, kind) == head_revision(kind)
        with engine.connect() as c:
            assert migrate(c, kind, revisions(kind)[0]) == revisions(kind)[0]
            assert current_revision(c, kind) == revisions(kind)[0]
            assert not c.in_transaction() or c.get_transaction() is not None
    finally:
        engine.dispose()


def test_concurrent_migrators_of_one_file_all_succeed(tmp_path) -> None:
    path = tmp_path / "t.db"
    results: list[object] = []

    def run() -> None:
        try:
            results.append(migrate(path, "tenant"))
        except Exception as e:  # collected and asserted below
            results.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [head_revision("tenant")] * 4


def test_concurrent_migrating_processes(tmp_path) -> None:
    path = tmp_path / "t.db"
    code = (
        "import sys\n"
        "from alkdev_storage.schema import migrate\n"
        "print(migrate(sys.argv[1], 'tenant'))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert [o.strip() for o, _ in outs] == [head_revision("tenant")] * 3
    assert current_revision(path, "tenant") == head_revision("tenant")


# ---------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------


def test_unknown_kind(tmp_path) -> None:
    for fn in (lambda: migrate(tmp_path / "x.db", "tenants"), lambda: revisions("hub"),
               lambda: head_revision(""), lambda: current_revision(tmp_path / "x.db", "Tenant")):
        with pytest.raises(MigrationError, match="unknown schema kind"):
            fn()
    assert not (tmp_path / "x.db").exists()


def test_unknown_revision(tmp_path) -> None:
    path = tmp_path / "t.db"
    migrate(path, "tenant", "tenant_0001")
    for bad in ("tenant_9999", "system_0001", "+1", "", "heads"):
        with pytest.raises(MigrationError, match=re.escape(f"unknown tenant revision {bad!r}")):
            migrate(path, "tenant", bad)
    assert current_revision(path, "tenant") == "tenant_0001"


def set_revision(path: Path, rev: str) -> None:
    db = alkdev_storage.open(path)
    try:
        db.execute("UPDATE alembic_version SET version_num = ?", [rev])
    finally:
        db.close()


def test_a_file_newer_than_head_is_refused(tmp_path) -> None:
    path = tmp_path / "t.db"
    migrate(path, "tenant")
    set_revision(path, "tenant_0042")
    for fn in (lambda: migrate(path, "tenant"), lambda: migrate(path, "tenant", "base"),
               lambda: current_revision(path, "tenant")):
        with pytest.raises(MigrationError, match="revision 'tenant_0042', which this package"):
            fn()
    db = alkdev_storage.open(path)
    try:  # nothing was dropped
        assert len(db.query("SELECT name FROM sqlite_master WHERE name = 'graph_types'")) == 1
    finally:
        db.close()


def test_the_other_kinds_file_is_refused(tmp_path) -> None:
    path = tmp_path / "system.db"
    migrate(path, "system")
    msg = r"is a system database \(at revision system_0004\), not a tenant one"
    with pytest.raises(MigrationError, match=msg):
        migrate(path, "tenant")
    db = alkdev_storage.open(path)
    try:
        assert db.query("SELECT name FROM sqlite_master WHERE name = 'graphs'") == []
    finally:
        db.close()


def test_a_target_that_is_not_sqlite_honker_is_refused(tmp_path) -> None:
    plain = sa.create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        msg = r"not a sqlite\+honker database \(sqlite\+pysqlite"
        with pytest.raises(MigrationError, match=msg):
            migrate(plain, "tenant")
        with plain.connect() as c, pytest.raises(MigrationError, match="not a sqlite"):
            current_revision(c, "tenant")
    finally:
        plain.dispose()
    for bad in (42, None, object(), ":memory:", ""):
        with pytest.raises(MigrationError):
            migrate(bad, "tenant")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MigrationError, match="cannot"):
        migrate(garbage, "tenant")
    assert garbage.read_bytes() == b"this is not a database" * 100


def test_a_connection_inside_a_write_transaction_is_refused(tmp_path) -> None:
    engine = create_engine(tmp_path / "t.db")
    try:
        with engine.connect() as c:
            c.exec_driver_sql("CREATE TABLE mine (x)")
            with pytest.raises(MigrationError, match="outside a write transaction"):
                migrate(c, "tenant")
            c.rollback()
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_a_failing_step_leaves_nothing_of_the_run(tmp_path) -> None:
    # An index already named like one of tenant_0002's makes that step fail:
    # tenant_0001's tables, created earlier in the same run, go too.
    path = tmp_path / "t.db"
    db = alkdev_storage.open(path)
    try:
        db.execute("CREATE TABLE squatter (x)")
        db.execute("CREATE INDEX ix_edges_key_version ON squatter (x)")
        msg = "tenant migration from base to tenant_0004 failed"
        with pytest.raises(MigrationError, match=msg):
            migrate(db, "tenant")
        assert current_revision(db, "tenant") is None
        names = {r["name"] for r in db.query("SELECT name FROM sqlite_master")}
        assert "graph_types" not in names and "alembic_version" not in names
        assert db.query("PRAGMA foreign_keys") == [{"foreign_keys": 1}]
    finally:
        db.close()


def test_another_sqlite_library_reads_the_tenant_file_and_hits_the_triggers(tmp_path) -> None:
    """Every honker binding and tool must open a tenant file: the schema
    (constant trigger messages) parses with the stdlib's SQLite, whatever
    its version, and its triggers protect system types there too (in a
    child process: never open a file with two SQLite libraries in one
    process)."""
    path = tmp_path / "t.db"
    migrate(path, "tenant")
    code = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "n = c.execute(\"SELECT count(*) FROM sqlite_master WHERE type='trigger'\").fetchone()[0]\n"
        "try:\n"
        "    c.execute(\"INSERT INTO graph_types (id, name, version, scope, module, node_schema,"
        " edge_schema, created_at, updated_at) VALUES ('x', 'n', '1', 'system', 'm', '{}', '{}',"
        " 'a', 'a')\")\n"
        "    print('ok', n, 'inserted')\n"
        "except sqlite3.DatabaseError as e:\n"
        "    print('ok', n, str(e).replace(' ', '_'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["ok", "6", "graph_type_is_system-scope_and_cannot_be_changed"]


def test_no_warnings_from_migrate(tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        migrate(tmp_path / "t.db", "tenant")
        migrate(tmp_path / "t.db", "tenant", "base")
