"""honker-compatible shapes: query() dicts, tx.execute/query/notify and the
``_honker_notifications`` rows."""

from __future__ import annotations

import json
import time

import pytest

import alkdev_storage
from alkdev_storage import ExecResult


def test_query_returns_list_of_dicts_in_column_order(db):
    db.executescript(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, score REAL, avatar BLOB);"
        "INSERT INTO users VALUES (1, 'ann', 1.5, x'00ff'), (2, 'bob', NULL, NULL);"
    )
    rows = db.query("SELECT id, name, score, avatar FROM users ORDER BY id")
    assert rows == [
        {"id": 1, "name": "ann", "score": 1.5, "avatar": b"\x00\xff"},
        {"id": 2, "name": "bob", "score": None, "avatar": None},
    ]
    assert all(type(r) is dict for r in rows)
    assert [list(r) for r in rows] == [["id", "name", "score", "avatar"]] * 2
    assert db.query('SELECT name AS n, id * 10 AS "ten x" FROM users WHERE id = ?', [2]) == [
        {"n": "bob", "ten x": 20}
    ]
    assert db.query("SELECT * FROM users WHERE id = :id", {"id": 99}) == []
    assert db.query(db.prepare("SELECT count(*) AS c FROM users")) == [{"c": 2}]


def test_query_on_empty_table_and_without_params(db):
    db.executescript("CREATE TABLE e (x)")
    assert db.query("SELECT x FROM e") == []
    assert db.query("SELECT 1 AS one") == [{"one": 1}]


def test_transaction_execute_query_notify(db):
    db.executescript("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    with db.transaction() as tx:
        r = tx.execute("INSERT INTO orders (item) VALUES (?)", ["book"])
        assert isinstance(r, ExecResult)
        assert (r.changes, r.lastrowid) == (1, 1)
        assert tx.query("SELECT id, item FROM orders") == [{"id": 1, "item": "book"}]
        first = tx.notify("orders", {"id": r.lastrowid, "item": "book"})
        second = tx.notify("orders", "plain string")
        assert isinstance(first, int) and second > first
    rows = db.fetchall(
        "SELECT id, channel, payload, created_at FROM _honker_notifications ORDER BY id"
    )
    assert [(i, c, p) for i, c, p, _ in rows] == [
        (first, "orders", json.dumps({"id": 1, "item": "book"}, separators=(",", ":"))),
        (second, "orders", json.dumps("plain string")),
    ]


PAYLOADS = [
    None,
    True,
    0,
    -12345678901234,
    3.25,
    "",
    "h\u00e9llo \U0001f600",
    [],
    [1, "two", None, [3.5]],
    {},
    {"nested": {"list": [1, 2, {"deep": True}]}, "n": None},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=[repr(p)[:30] for p in PAYLOADS])
def test_notification_rows_have_honker_shape(db, payload):
    before = int(time.time())
    nid = db.notify("chan", payload)
    after = int(time.time())
    rows = db.query("SELECT * FROM _honker_notifications WHERE id = ?", (nid,))
    assert len(rows) == 1
    row = rows[0]
    assert list(row) == ["id", "channel", "payload", "created_at"]
    assert row["id"] == nid
    assert row["channel"] == "chan"
    assert isinstance(row["payload"], str)
    assert json.loads(row["payload"]) == payload
    assert isinstance(row["created_at"], int)
    assert before - 1 <= row["created_at"] <= after + 1


@pytest.mark.parametrize("payload", PAYLOADS, ids=[repr(p)[:30] for p in PAYLOADS])
def test_db_notify_and_tx_notify_store_the_same_text(db, payload):
    # One payload, one JSON text, whichever notify() wrote it: listeners
    # (and other honker bindings) must not see two encodings.
    a = db.notify("chan", payload)
    with db.transaction() as tx:
        b = tx.notify("chan", payload)
    (pa,) = db.fetchone("SELECT payload FROM _honker_notifications WHERE id = ?", (a,))
    (pb,) = db.fetchone("SELECT payload FROM _honker_notifications WHERE id = ?", (b,))
    assert pa == pb


@pytest.mark.parametrize(
    "payload", [float("nan"), float("inf"), [1, float("-inf")]], ids=["nan", "inf", "list-inf"]
)
def test_non_json_floats_are_rejected_by_db_notify_and_tx_notify(db, payload):
    # NaN / Infinity are not JSON: db.notify rejects them with TypeError and
    # writes nothing; tx.notify must do the same.
    with pytest.raises(TypeError):
        db.notify("chan", payload)
    with db.transaction() as tx:
        with pytest.raises(TypeError):
            tx.notify("chan", payload)
    assert db.fetchall("SELECT * FROM _honker_notifications") == []


def test_notification_ids_increase_across_paths(db):
    ids = [db.notify("a", 1)]
    with db.transaction() as tx:
        ids.append(tx.notify("b", 2))
    ids.append(db.fetchone("SELECT notify('c', '3')")[0])
    ids.append(db.notify("a", 4))
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert db.fetchall("SELECT channel, payload FROM _honker_notifications ORDER BY id") == [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("a", "4"),
    ]


def test_select_notify_from_a_read_method_is_written_exactly_once(db):
    stmt = db.prepare("SELECT notify(?, ?)")
    # Classified when prepared: a read whose function writes runs on the writer.
    assert stmt.kind == "read_writes" and stmt.readonly is False
    nid = db.fetchone(stmt, ("x", '"one"'))[0]
    nid2 = db.fetchall(stmt, ("x", '"two"'))[0][0]
    nid3 = db.query("SELECT notify('x', '\"three\"') AS id")[0]["id"]
    nid4 = db.query("SELECT notify('x', '\"three\"') AS id")[0]["id"]
    assert nid < nid2 < nid3 < nid4
    assert db.fetchall("SELECT payload FROM _honker_notifications ORDER BY id") == [
        ('"one"',),
        ('"two"',),
        ('"three"',),
        ('"three"',),
    ]


def test_notify_inside_transaction_is_visible_to_it_only_until_commit(db):
    with db.transaction() as tx:
        nid = tx.notify("c", {"a": 1})
        assert tx.query("SELECT channel FROM _honker_notifications WHERE id = ?", [nid]) == [
            {"channel": "c"}
        ]
        assert db.query("SELECT * FROM _honker_notifications") == []
    assert db.query("SELECT channel FROM _honker_notifications") == [{"channel": "c"}]


def test_bootstrap_honker_schema_is_idempotent(db):
    db.bootstrap_honker_schema()
    db.bootstrap_honker_schema()
    names = {n for (n,) in db.fetchall("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert {"_honker_notifications", "_honker_live", "_honker_dead"} <= names
    with db.transaction() as tx:
        tx.bootstrap_honker_schema()
        tx.execute("INSERT INTO _honker_live (queue, payload) VALUES ('q', '{}')")
    assert db.fetchone("SELECT count(*) FROM _honker_live") == (1,)


def test_notifications_table_exists_on_open(db_path):
    with alkdev_storage.open(db_path) as db:
        cols = [r[1] for r in db.fetchall("PRAGMA table_info(_honker_notifications)")]
        assert cols == ["id", "channel", "payload", "created_at"]


def test_version_helpers():
    v = alkdev_storage.sqlite_version()
    assert isinstance(v, str) and v.count(".") == 2
    major, minor, patch = (int(p) for p in v.split("."))
    assert alkdev_storage.sqlite_version_number == major * 1_000_000 + minor * 1000 + patch
