"""tenant: graph types, graphs, nodes, edges; the same-graph and
scope-protection triggers.

Revision ID: tenant_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "tenant_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

NOW = sa.text("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")

# Frozen copies of the trigger SQL of alkdev_storage.schema.tenant at this
# revision (a later revision that changes a trigger drops and re-creates it).
EDGE_TRIGGERS = {
    "edges_same_graph_insert": """CREATE TRIGGER edges_same_graph_insert
BEFORE INSERT ON edges FOR EACH ROW
WHEN EXISTS (
    SELECT 1 FROM nodes
    WHERE nodes.id IN (NEW.source_id, NEW.target_id) AND nodes.graph_id IS NOT NEW.graph_id
)
BEGIN
    SELECT RAISE(ABORT, 'edge source and target must be nodes of the edge''s graph');
END""",
    "edges_same_graph_update": """CREATE TRIGGER edges_same_graph_update
BEFORE UPDATE OF graph_id, source_id, target_id ON edges FOR EACH ROW
WHEN EXISTS (
    SELECT 1 FROM nodes
    WHERE nodes.id IN (NEW.source_id, NEW.target_id) AND nodes.graph_id IS NOT NEW.graph_id
)
BEGIN
    SELECT RAISE(ABORT, 'edge source and target must be nodes of the edge''s graph');
END""",
    "nodes_keep_edges_in_graph": """CREATE TRIGGER nodes_keep_edges_in_graph
BEFORE UPDATE OF graph_id ON nodes FOR EACH ROW
WHEN NEW.graph_id IS NOT OLD.graph_id AND EXISTS (
    SELECT 1 FROM edges
    WHERE (edges.source_id = OLD.id OR edges.target_id = OLD.id)
        AND edges.graph_id IS NOT NEW.graph_id
)
BEGIN
    SELECT RAISE(ABORT, 'a node with edges cannot move to another graph');
END""",
}

PROTECTION_TRIGGERS = {
    "graph_types_protect_insert": """CREATE TRIGGER graph_types_protect_insert
BEFORE INSERT ON graph_types FOR EACH ROW
WHEN NEW.scope = 'system' OR EXISTS (
    SELECT 1 FROM graph_types AS g
    WHERE g.scope = 'system' AND (g.id = NEW.id OR (g.name = NEW.name
        AND g.version = NEW.version AND ifnull(g.owner_id, '') = ifnull(NEW.owner_id, '')))
)
BEGIN
    SELECT RAISE(ABORT, 'graph type is system-scope and cannot be changed');
END""",
    "graph_types_protect_update": """CREATE TRIGGER graph_types_protect_update
BEFORE UPDATE ON graph_types FOR EACH ROW
WHEN OLD.scope = 'system' OR NEW.scope = 'system' OR EXISTS (
    SELECT 1 FROM graph_types AS g
    WHERE g.scope = 'system' AND g.id IS NOT OLD.id AND (g.id = NEW.id OR (g.name = NEW.name
        AND g.version = NEW.version AND ifnull(g.owner_id, '') = ifnull(NEW.owner_id, '')))
)
BEGIN
    SELECT RAISE(ABORT, 'graph type is system-scope and cannot be changed');
END""",
    "graph_types_protect_delete": """CREATE TRIGGER graph_types_protect_delete
BEFORE DELETE ON graph_types FOR EACH ROW
WHEN OLD.scope = 'system'
BEGIN
    SELECT RAISE(ABORT, 'graph type is system-scope and cannot be changed');
END""",
}


def _timestamps() -> list[sa.Column[str]]:
    return [
        sa.Column("created_at", sa.Text(), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.Text(), nullable=False, server_default=NOW),
    ]


def _json_object(table: str, column: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"json_valid({column}) AND json_type({column}) = 'object'",
        name=op.f(f"ck_{table}_{column}_object"),
    )


def upgrade() -> None:
    op.create_table(
        "graph_types",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("module", sa.Text(), nullable=False),
        sa.Column("node_schema", sa.JSON(), nullable=False),
        sa.Column("edge_schema", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graph_types")),
        sa.CheckConstraint(
            "(scope = 'user') = (owner_id IS NOT NULL)",
            name=op.f("ck_graph_types_owner_for_user_scope"),
        ),
        _json_object("graph_types", "node_schema"),
        _json_object("graph_types", "edge_schema"),
        sa.CheckConstraint(
            "scope IN ('system', 'tenant', 'user')", name=op.f("ck_graph_types_scope")
        ),
    )
    op.create_index(
        "uq_graph_types_name_version_owner",
        "graph_types",
        ["name", "version", sa.text("ifnull(owner_id, '')")],
        unique=True,
    )
    op.create_table(
        "graphs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("graph_type_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False, server_default="active"),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("project_id", sa.Text(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}"),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graphs")),
        _json_object("graphs", "attributes"),
        sa.ForeignKeyConstraint(
            ["graph_type_id"],
            ["graph_types.id"],
            name=op.f("fk_graphs_graph_type_id_graph_types"),
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint("status IN ('active', 'archived')", name=op.f("ck_graphs_status")),
    )
    op.create_index(op.f("ix_graphs_owner_id_project_id"), "graphs", ["owner_id", "project_id"])
    op.create_index(op.f("ix_graphs_project_id"), "graphs", ["project_id"])
    op.create_index(op.f("ix_graphs_graph_type_id"), "graphs", ["graph_type_id"])
    op.create_table(
        "nodes",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("graph_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("key_version", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        _json_object("nodes", "attributes"),
        sa.UniqueConstraint("graph_id", "key", name=op.f("uq_nodes_graph_id_key")),
        sa.ForeignKeyConstraint(
            ["graph_id"], ["graphs.id"], name=op.f("fk_nodes_graph_id_graphs"), ondelete="CASCADE"
        ),
    )
    op.create_index(op.f("ix_nodes_graph_id_type"), "nodes", ["graph_id", "type"])
    op.create_table(
        "edges",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("graph_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("target_id", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("key_version", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edges")),
        _json_object("edges", "attributes"),
        sa.ForeignKeyConstraint(
            ["graph_id"], ["graphs.id"], name=op.f("fk_edges_graph_id_graphs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["nodes.id"], name=op.f("fk_edges_source_id_nodes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["nodes.id"], name=op.f("fk_edges_target_id_nodes"), ondelete="CASCADE"
        ),
    )
    op.create_index(op.f("ix_edges_graph_id_type"), "edges", ["graph_id", "type"])
    op.create_index(op.f("ix_edges_source_id_type"), "edges", ["source_id", "type"])
    op.create_index(op.f("ix_edges_target_id_type"), "edges", ["target_id", "type"])
    for sql in (*EDGE_TRIGGERS.values(), *PROTECTION_TRIGGERS.values()):
        op.execute(sql)


def downgrade() -> None:
    # Dropping a table drops its indexes and triggers.
    op.drop_table("edges")
    op.drop_table("nodes")
    op.drop_table("graphs")
    op.drop_table("graph_types")
