"""Property tests across the layers: JSON payloads through queues, streams
and notifications; DB-API parameters against the stdlib sqlite3 oracle;
typed values through prepared queries against SQLAlchemy's own execution."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alkdev_storage
from alkdev_storage import dbapi
from alkdev_storage.sqlalchemy import prepare

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def as_json(value: Any) -> Any:
    """What a JSON round trip gives back (tuples become lists, etc.)."""
    return json.loads(json.dumps(value))


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = alkdev_storage.open(tmp_path_factory.mktemp("props") / "p.db")
    yield db
    db.close()


@SETTINGS
@given(payload=json_values)
def test_queue_payload_round_trip(shared_db: Any, payload: Any) -> None:
    q = shared_db.queue("props")
    jid = q.enqueue(payload)
    job = q.claim_one("w")
    assert job is not None and job.id == jid
    assert job.payload == as_json(payload)
    assert job.ack()


@SETTINGS
@given(payloads=st.lists(json_values, min_size=1, max_size=5))
def test_stream_payloads_round_trip_in_order(shared_db: Any, payloads: list[Any]) -> None:
    s = shared_db.stream("props")
    start = s.get_offset("reader-props")
    offsets = [s.publish(p) for p in payloads]
    assert offsets == sorted(offsets) and offsets[0] > start
    got = []
    for event in s.subscribe("reader-props", timeout=0):
        got.append((event.offset, event.payload))
        if event.offset == offsets[-1]:
            break
    assert got == [(o, as_json(p)) for o, p in zip(offsets, payloads, strict=True)]
    s.save_offset("reader-props", offsets[-1])


@SETTINGS
@given(payload=json_values, channel=st.text(min_size=1, max_size=20))
def test_notification_payload_round_trip(shared_db: Any, payload: Any, channel: str) -> None:
    with shared_db.transaction() as tx:
        nid = tx.notify(channel, payload)
    row = shared_db.fetchone(
        "SELECT channel, payload FROM _honker_notifications WHERE id = ?", (nid,)
    )
    assert row is not None
    assert row[0] == channel and json.loads(row[1]) == as_json(payload)


sql_values = (
    st.none()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(blacklist_categories=["Cs"]))
    | st.binary()
)


@SETTINGS
@given(rows=st.lists(st.tuples(sql_values, sql_values), max_size=6), named=st.booleans())
def test_dbapi_matches_stdlib_sqlite3(tmp_path: Path, rows: list[Any], named: bool) -> None:
    d = tmp_path / f"oracle-{abs(hash((repr(rows), named)))}"
    d.mkdir()
    ours = dbapi.connect(str(d / "ours.db"))
    oracle = sqlite3.connect(str(d / "oracle.db"))
    try:
        for conn in (ours, oracle):
            cur = conn.cursor()
            cur.execute("CREATE TABLE t (a, b)")
            if named:
                cur.executemany(
                    "INSERT INTO t VALUES (:a, :b)", [{"a": a, "b": b} for a, b in rows]
                )
            else:
                cur.executemany("INSERT INTO t VALUES (?, ?)", rows)
            conn.commit()
        q = "SELECT a, b, typeof(a), typeof(b) FROM t ORDER BY rowid"
        mine = ours.cursor().execute(q).fetchall()
        theirs = oracle.cursor().execute(q).fetchall()
        assert mine == theirs
        c1, c2 = ours.cursor(), oracle.cursor()
        c1.execute(q)
        c2.execute(q)
        assert [x[0] for x in c1.description] == [x[0] for x in c2.description]
        assert c1.fetchmany(2) == c2.fetchmany(2)
    finally:
        ours.close()
        oracle.close()


metadata = sa.MetaData()
typed = sa.Table(
    "typed",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ts", sa.DateTime),
    sa.Column("day", sa.Date),
    sa.Column("flag", sa.Boolean),
    sa.Column("doc", sa.JSON),
    sa.Column("amount", sa.Numeric(12, 2)),
    sa.Column("label", sa.String),
)


@pytest.fixture(scope="module")
def typed_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    eng = sa.create_engine(f"sqlite+honker:///{tmp_path_factory.mktemp('typed') / 't.db'}")
    metadata.create_all(eng)
    yield eng
    eng.dispose()


@SETTINGS
@given(
    ts=st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
    day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 1, 1)),
    flag=st.booleans(),
    doc=json_values,
    amount=st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False),
    label=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
)
def test_prepared_queries_type_values_like_sqlalchemy(
    typed_engine: Any,
    ts: dt.datetime,
    day: dt.date,
    flag: bool,
    doc: Any,
    amount: Decimal,
    label: str,
) -> None:
    ins = prepare(typed.insert().returning(typed.c.id), typed_engine)
    sel = prepare(sa.select(typed).where(typed.c.id == sa.bindparam("id")), typed_engine)
    values = {"ts": ts, "day": day, "flag": flag, "doc": doc, "amount": amount, "label": label}
    new_id = ins.scalar(**values)
    mine = sel.one(id=new_id)
    with typed_engine.connect() as conn:
        theirs = conn.execute(sa.select(typed).where(typed.c.id == new_id)).one()
    assert tuple(mine) == tuple(theirs)
    assert mine._mapping["ts"] == ts and mine._mapping["amount"] == amount
    assert mine._mapping["doc"] == as_json(doc) and mine._mapping["flag"] is flag
