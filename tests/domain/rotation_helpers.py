"""Shared by the rotation tests and their child processes: a test module
with encrypted node and edge attributes, tenant files populated with
secrets under several key versions, and the checks that nothing was lost
or encrypted twice."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

import alkdev_storage
from alkdev_storage.database import Database
from alkdev_storage.domain.builtin.secret_graph import seal_attributes
from alkdev_storage.domain.modules import (
    Attributes,
    EdgeType,
    GraphTypeModule,
    NodeType,
    module_to_db_schema,
    register_module,
    validate_edge,
    validate_node,
)
from alkdev_storage.domain.secrets import Binding as _Binding
from alkdev_storage.domain.secrets import (
    EncryptedData,
    StaticKeyProvider,
    decrypt_text,
)
from alkdev_storage.schema import migrate, new_id

KEYS = {v: bytes([v]) * 32 for v in (1, 2, 3)}
ORG = "01HORG0000000000000000ORG1"


class AccountAttributes(Attributes):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    name: str
    password: EncryptedData | None = None
    token: EncryptedData | None = None


class PlainAttributes(Attributes):
    name: str


class LinkAttributes(Attributes):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    label: str
    credential: EncryptedData | None = None


TEST_MODULE = register_module(GraphTypeModule(
    name="rotation-test",
    version="1.0.0",
    node_types=(NodeType("account", AccountAttributes), NodeType("plain", PlainAttributes)),
    edge_types=(EdgeType("link", LinkAttributes),),
    triples=frozenset({("account", "link", "account"), ("plain", "link", "account")}),
))


def provider(current: int, versions: tuple[int, ...] = (1, 2, 3)) -> StaticKeyProvider:
    return StaticKeyProvider({v: KEYS[v] for v in versions}, current)


def make_tenant(path: Path) -> str:
    """A migrated tenant file with a graph of TEST_MODULE; its graph id."""
    migrate(path, "tenant")
    node_schema, edge_schema = module_to_db_schema(TEST_MODULE)
    db = alkdev_storage.open(path)
    try:
        type_id, graph_id = new_id(), new_id()
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO graph_types (id, name, version, scope, module, node_schema, "
                "edge_schema) VALUES (?, ?, ?, 'tenant', ?, ?, ?)",
                (type_id, TEST_MODULE.name, TEST_MODULE.version, TEST_MODULE.name,
                 json.dumps(node_schema), json.dumps(edge_schema)),
            )
            tx.execute("INSERT INTO graphs (id, graph_type_id, name) VALUES (?, ?, 'g')",
                       (graph_id, type_id))
    finally:
        db.close()
    return graph_id


def populate(
    db: Database, graph_id: str, n_nodes: int, n_edges: int, seed: int,
    versions: tuple[int, ...] = (1, 2),
) -> dict[tuple[str, str, str], str]:
    """Nodes and edges with secrets sealed under random versions among
    ``versions`` (fields of one row may differ); a few rows without
    secrets. Returns {(table, row id, field): plaintext}."""
    rng = random.Random(seed)
    secrets: dict[tuple[str, str, str], str] = {}
    node_ids: list[str] = []
    with db.transaction() as tx:
        for i in range(n_nodes):
            row = new_id()
            if i % 10 == 9:
                attrs: dict[str, Any] = {"name": f"plain{i}"}
                tx.execute(
                    "INSERT INTO nodes (id, graph_id, key, type, attributes, key_version) "
                    "VALUES (?, ?, ?, 'plain', ?, NULL)",
                    (row, graph_id, f"k{i}", json.dumps(validate_node(TEST_MODULE, "plain",
                                                                      attrs))),
                )
                continue
            attrs = {"name": f"acct{i}"}
            key_version: int | None = None
            for field in ("password", "token"):
                if rng.random() < 0.2:
                    continue  # this field left empty
                plain = f"{field}-{i}-{rng.random()}"
                sealed, kv = seal_attributes(TEST_MODULE, "account", {field: plain},
                                             (ORG, "nodes", row), provider(rng.choice(versions)))
                attrs[field] = sealed[field]
                secrets[("nodes", row, field)] = plain
                assert kv is not None
                key_version = kv if key_version is None else min(key_version, kv)
            stored = validate_node(TEST_MODULE, "account", attrs)
            tx.execute(
                "INSERT INTO nodes (id, graph_id, key, type, attributes, key_version) "
                "VALUES (?, ?, ?, 'account', ?, ?)",
                (row, graph_id, f"k{i}", json.dumps(stored), key_version),
            )
            node_ids.append(row)
        for i in range(n_edges):
            row = new_id()
            source, target = rng.choice(node_ids), rng.choice(node_ids)
            plain = f"cred-{i}-{rng.random()}"
            sealed, kv = seal_attributes(TEST_MODULE, "link", {"label": "l", "credential": plain},
                                         (ORG, "edges", row), provider(rng.choice(versions)))
            secrets[("edges", row, "credential")] = plain
            stored = validate_edge(TEST_MODULE, "link", "account", "account", sealed)
            tx.execute(
                "INSERT INTO edges (id, graph_id, type, source_id, target_id, attributes, "
                "key_version) VALUES (?, ?, 'link', ?, ?, ?, ?)",
                (row, graph_id, source, target, json.dumps(stored), kv),
            )
    return secrets


def rows(db: Database) -> dict[tuple[str, str], tuple[dict[str, Any], int | None]]:
    """{(table, id): (attributes, key_version)} of every node and edge."""
    found = {}
    for table in ("nodes", "edges"):
        for row_id, raw, kv in db.fetchall(f"SELECT id, attributes, key_version FROM {table}"):
            found[(table, row_id)] = (json.loads(raw), kv)
    return found


def check_rotated(db: Database, secrets: dict[tuple[str, str, str], str], current: int,
                  n_rows: int) -> None:
    """Every secret decrypts (once) to its plaintext under the current
    version, every row is there, key_version is the lowest version."""
    found = rows(db)
    assert len(found) == n_rows, "a row was lost"
    p = provider(current)
    for (table, row_id, field), plain in secrets.items():
        attrs, kv = found[(table, row_id)]
        envelope = EncryptedData(attrs[field])
        assert envelope.key_version == current
        where = _Binding(ORG, table, f"attributes.{field}", row_id)
        assert decrypt_text(envelope, where, p) == plain
    for (table, row_id), (_, kv) in found.items():
        has = [f for (t, r, f) in secrets if (t, r) == (table, row_id)]
        assert kv == (current if has else None)
