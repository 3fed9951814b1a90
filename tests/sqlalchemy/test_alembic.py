"""Alembic through the sqlite+honker dialect: upgrade, downgrade (batch mode
for SQLite ALTERs) and autogenerate on an up-to-date schema."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import registry

alembic = pytest.importorskip("alembic")
from alembic import command  # noqa: E402
from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.migration import MigrationContext  # noqa: E402

registry.register("sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect")

ENV_PY = """
import sqlalchemy as sa
from alembic import context
from sqlalchemy.dialects import registry

from alkdev_storage.sqlalchemy import foreign_keys_disabled

registry.register("sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect")

import models

config = context.config


def run_migrations_online():
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"))
    # honker enforces foreign keys; batch mode copies and drops tables, so
    # enforcement is off during the run, then checked and restored.
    with engine.connect() as connection, foreign_keys_disabled(connection):
        context.configure(
            connection=connection,
            target_metadata=models.metadata,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
"""

MODELS_PY = """
import sqlalchemy as sa

metadata = sa.MetaData()

graphs = sa.Table(
    "graphs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("owner_id", sa.String(40), nullable=True),
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    sa.Index("ix_graphs_owner_id", "owner_id"),
)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("graph_id", sa.Integer, sa.ForeignKey("graphs.id"), nullable=False),
    sa.Column("key", sa.String(100), nullable=False),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.UniqueConstraint("graph_id", "key", name="uq_nodes_graph_key"),
)
"""

REV1 = '''
"""create graphs and nodes"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "graphs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("graph_id", sa.Integer, sa.ForeignKey("graphs.id"), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.UniqueConstraint("graph_id", "key", name="uq_nodes_graph_key"),
    )


def downgrade():
    op.drop_table("nodes")
    op.drop_table("graphs")
'''

REV2 = '''
"""graphs: owner, status; longer names (batch ALTER)"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    with op.batch_alter_table("graphs") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(40), nullable=True))
        batch.add_column(
            sa.Column("status", sa.String(20), nullable=False, server_default="active")
        )
        batch.alter_column("name", type_=sa.String(100), existing_nullable=False)
        batch.create_index("ix_graphs_owner_id", ["owner_id"])


def downgrade():
    with op.batch_alter_table("graphs") as batch:
        batch.drop_index("ix_graphs_owner_id")
        batch.alter_column("name", type_=sa.String(50), existing_nullable=False)
        batch.drop_column("status")
        batch.drop_column("owner_id")
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch):
    root = tmp_path / "migrations"
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(textwrap.dedent(ENV_PY))
    (root / "script.py.mako").write_text(
        '"""${message}"""\n'
        "revision = ${repr(up_revision)}\n"
        "down_revision = ${repr(down_revision)}\n"
        "from alembic import op\nimport sqlalchemy as sa\n\n\n"
        "def upgrade():\n    ${upgrades if upgrades else 'pass'}\n\n\n"
        "def downgrade():\n    ${downgrades if downgrades else 'pass'}\n"
    )
    (root / "versions" / "0001_create.py").write_text(textwrap.dedent(REV1))
    (root / "versions" / "0002_alter.py").write_text(textwrap.dedent(REV2))
    (tmp_path / "models.py").write_text(textwrap.dedent(MODELS_PY))
    monkeypatch.syspath_prepend(str(tmp_path))
    db_file = tmp_path / "tenant.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(root))
    cfg.set_main_option("sqlalchemy.url", f"sqlite+honker:///{db_file}")
    return cfg, db_file


def columns(engine, table):
    return {c["name"]: c for c in sa.inspect(engine).get_columns(table)}


def test_upgrade_downgrade_and_autogenerate(project):
    cfg, db_file = project
    url = f"sqlite+honker:///{db_file}"

    command.upgrade(cfg, "0001")
    engine = sa.create_engine(url)
    try:
        assert sa.inspect(engine).get_table_names() == ["alembic_version", "graphs", "nodes"]
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO graphs (name) VALUES ('g')"))
            c.execute(
                sa.text("INSERT INTO nodes (graph_id, key, attributes) VALUES (1, 'k', '{}')")
            )
        engine.dispose()

        command.upgrade(cfg, "head")
        cols = columns(engine, "graphs")
        assert set(cols) == {"id", "name", "owner_id", "status"}
        assert cols["name"]["type"].length == 100
        assert [i["name"] for i in sa.inspect(engine).get_indexes("graphs")] == [
            "ix_graphs_owner_id"
        ]
        with engine.connect() as c:
            # the batch copy kept the data and the server default filled it
            assert c.execute(sa.text("SELECT name, status FROM graphs")).all() == [("g", "active")]
            assert c.execute(sa.text("SELECT key FROM nodes")).scalars().all() == ["k"]
            assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0002"

            # autogenerate: the schema matches the models, no spurious diffs
            # (honker's own tables are not reported as unknown tables)
            import models

            mc = MigrationContext.configure(c, opts={"render_as_batch": True})
            assert compare_metadata(mc, models.metadata) == []
        # foreign keys are enforced again after the migration
        with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), engine.begin() as c:
            c.execute(
                sa.text("INSERT INTO nodes (graph_id, key, attributes) VALUES (99, 'x', '{}')")
            )
        engine.dispose()

        command.downgrade(cfg, "0001")
        cols = columns(engine, "graphs")
        assert set(cols) == {"id", "name"}
        assert cols["name"]["type"].length == 50
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT name FROM graphs")).scalars().all() == ["g"]
        engine.dispose()

        command.downgrade(cfg, "base")
        assert sa.inspect(engine).get_table_names() == ["alembic_version"]
        # honker's tables are still there, untouched
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM _honker_live")).scalar() == 0
    finally:
        engine.dispose()


def test_autogenerate_sees_real_differences(project):
    cfg, db_file = project
    command.upgrade(cfg, "0001")
    engine = sa.create_engine(f"sqlite+honker:///{db_file}")
    try:
        import models

        with engine.connect() as c:
            diffs = compare_metadata(MigrationContext.configure(c), models.metadata)
        kinds = sorted({d[0] if isinstance(d, tuple) else d[0][0] for d in diffs})
        assert "add_column" in kinds and "add_index" in kinds
        assert not any("_honker" in repr(d) for d in diffs)
    finally:
        engine.dispose()


def test_revision_autogenerate_command_writes_an_empty_migration(project, tmp_path):
    cfg, _db_file = project
    command.upgrade(cfg, "head")
    script = command.revision(cfg, message="noop", autogenerate=True, rev_id="0003")
    text = Path(script.path).read_text()
    assert "op." not in text  # nothing to migrate
    assert "pass" in text


def test_foreign_keys_disabled_reports_violations(db_path):
    from alkdev_storage import IntegrityError
    from alkdev_storage.sqlalchemy import foreign_keys_disabled

    engine = sa.create_engine(f"sqlite+honker:///{db_path}")
    try:
        with engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE p (id INTEGER PRIMARY KEY)")
            c.exec_driver_sql(
                "CREATE TABLE ch (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))"
            )
        with pytest.raises(IntegrityError, match=r"violations.*ch"):
            with engine.connect() as c, foreign_keys_disabled(c):
                c.exec_driver_sql("INSERT INTO ch (p) VALUES (42)")  # not enforced here
                c.commit()
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as c:  # enforced again
            c.exec_driver_sql("INSERT INTO ch (p) VALUES (43)")
        with engine.connect() as c:
            c.exec_driver_sql("INSERT INTO p DEFAULT VALUES")
            with pytest.raises(sa.exc.InvalidRequestError, match="outside a write"):
                with foreign_keys_disabled(c):
                    pass
    finally:
        engine.dispose()
