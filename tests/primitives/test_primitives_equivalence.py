"""Differential tests: the prepared hot-path statements (primitives/_sql.py)
against honker-core's own ``honker_*`` SQL functions.

Each example builds a random state of honker's tables inside one write
transaction, applies an operation once through this package and once
through the honker function (each in a savepoint that is rolled back), and
requires the same result and the same table contents. Examples that cross
a second boundary (``unixepoch()`` moved) are rejected, so both sides see
the same clock.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import alkdev_storage
from alkdev_storage.primitives import Queue

DELTAS = [-100, -1, 0, 1, 100]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def mdb(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = alkdev_storage.open(str(tmp_path_factory.mktemp("equiv") / "equiv.db"))
    yield d
    d.close()


@st.composite
def live_row(draw: Any) -> dict[str, Any]:
    processing = draw(st.booleans())
    row = {
        "queue": draw(st.sampled_from(["a", "b"])),
        "payload": json.dumps(draw(st.integers(0, 9))),
        "state": "processing" if processing else "pending",
        "priority": draw(st.integers(0, 2)),
        "run_at": draw(st.sampled_from(DELTAS)),
        "worker_id": draw(st.sampled_from(["w1", "w2"])) if processing else None,
        "claim_expires_at": draw(st.sampled_from(DELTAS)) if processing else None,
        "attempts": draw(st.integers(0, 4)),
        "max_attempts": draw(st.integers(1, 4)),
        "expires_at": draw(st.sampled_from([None, -5, 0, 5])),
    }
    return row


def _insert_rows(tx: Any, now: int, rows: list[dict[str, Any]]) -> list[int]:
    ids = []
    for r in rows:

        def rel(v: int | None) -> int | None:
            return None if v is None else now + v

        res = tx.execute(
            "INSERT INTO _honker_live (queue, payload, state, priority, run_at, worker_id, "
            "claim_expires_at, attempts, max_attempts, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r["queue"],
                r["payload"],
                r["state"],
                r["priority"],
                now + r["run_at"],
                r["worker_id"],
                rel(r["claim_expires_at"]),
                r["attempts"],
                r["max_attempts"],
                now - 10,
                rel(r["expires_at"]),
            ),
        )
        ids.append(res.lastrowid)
    return ids


def _dump(tx: Any) -> tuple[Any, ...]:
    return (
        tx.fetchall("SELECT * FROM _honker_live ORDER BY id"),
        tx.fetchall("SELECT * FROM _honker_dead ORDER BY id"),
        tx.fetchall("SELECT * FROM _honker_stream ORDER BY offset"),
        tx.fetchall("SELECT * FROM _honker_stream_consumers ORDER BY name, topic"),
        tx.fetchall("SELECT * FROM _honker_notifications ORDER BY id"),
        tx.fetchall("SELECT * FROM sqlite_sequence ORDER BY name"),
    )


def _both(db: Any, setup: Any, ours: Any, theirs: Any) -> None:
    tx = db.begin()
    try:
        now = tx.fetchone("SELECT unixepoch()")[0]
        ctx = setup(tx, now)
        results = []
        for fn in (ours, theirs):
            sp = tx.savepoint()
            sp.__enter__()
            r = fn(tx, ctx)
            results.append((r, _dump(tx)))
            sp.rollback()
        if tx.fetchone("SELECT unixepoch()")[0] != now:
            reject()
    finally:
        tx.rollback()
    (r1, d1), (r2, d2) = results
    assert r1 == r2
    assert d1 == d2


def _pick(ids: list[int], i: int) -> int:
    return ids[i % len(ids)] if ids else 999_999


queue_op = st.one_of(
    st.tuples(
        st.just("claim"),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["w1", "w3"]),
        st.sampled_from([1, 2, 3, 5, 200]),
        st.integers(1, 300),
    ),
    st.tuples(st.just("ack"), st.integers(0, 20), st.sampled_from(["w1", "w2"])),
    st.tuples(
        st.just("ack_batch"),
        st.lists(st.integers(0, 20), max_size=5),
        st.sampled_from(["w1", "w2"]),
    ),
    st.tuples(
        st.just("retry"),
        st.integers(0, 20),
        st.sampled_from(["w1", "w2"]),
        st.integers(0, 50),
        st.text(max_size=5),
    ),
    st.tuples(
        st.just("fail"), st.integers(0, 20), st.sampled_from(["w1", "w2"]), st.text(max_size=5)
    ),
    st.tuples(
        st.just("heartbeat"), st.integers(0, 20), st.sampled_from(["w1", "w2"]), st.integers(1, 500)
    ),
    st.tuples(st.just("next_claim_at"), st.sampled_from(["a", "b"])),
    st.tuples(
        st.just("enqueue"),
        st.sampled_from(["a", "b"]),
        st.sampled_from([None, *DELTAS]),
        st.sampled_from([None, 0, 5]),
        st.integers(-1, 3),
        st.integers(1, 5),
        st.sampled_from([None, 0, 60]),
    ),
)


@SETTINGS
@given(rows=st.lists(live_row(), max_size=12), op=queue_op)
def test_queue_operations_match_honker_functions(mdb, rows, op) -> None:  # type: ignore[no-untyped-def]
    kind = op[0]

    def setup(tx: Any, now: int) -> dict[str, Any]:
        return {"ids": _insert_rows(tx, now, rows), "now": now}

    def q(name: str, vt: int = 300, ma: int = 3) -> Queue:
        return Queue(mdb, name, visibility_timeout_s=vt, max_attempts=ma)

    if kind == "claim":
        _, name, worker, n, vt = op

        def ours(tx: Any, c: Any) -> Any:
            return [
                (j.id, j.queue_name, j._payload_raw, j.worker_id, j.attempts, j.claim_expires_at)
                for j in q(name, vt)._claim_in(tx, worker, n)
            ]

        def theirs(tx: Any, c: Any) -> Any:
            raw = tx.fetchone("SELECT honker_claim_batch(?, ?, ?, ?)", (name, worker, n, vt))[0]
            return [
                (
                    r["id"],
                    r["queue"],
                    r["payload"],
                    r["worker_id"],
                    r["attempts"],
                    r["claim_expires_at"],
                )
                for r in json.loads(raw)
            ]

    elif kind == "ack":
        _, i, worker = op

        def ours(tx: Any, c: Any) -> Any:
            return q("a").ack(_pick(c["ids"], i), worker, tx=tx)

        def theirs(tx: Any, c: Any) -> Any:
            return bool(tx.fetchone("SELECT honker_ack(?, ?)", (_pick(c["ids"], i), worker))[0])

    elif kind == "ack_batch":
        _, idx, worker = op

        def ours(tx: Any, c: Any) -> Any:
            return q("a").ack_batch([_pick(c["ids"], i) for i in idx], worker, tx=tx)

        def theirs(tx: Any, c: Any) -> Any:
            ids = json.dumps([_pick(c["ids"], i) for i in idx])
            return tx.fetchone("SELECT honker_ack_batch(?, ?)", (ids, worker))[0] if idx else 0

    elif kind == "retry":
        _, i, worker, delay, err = op

        def ours(tx: Any, c: Any) -> Any:
            return q("a")._retry_in(tx, _pick(c["ids"], i), worker, delay, err)

        def theirs(tx: Any, c: Any) -> Any:
            params = (_pick(c["ids"], i), worker, delay, err)
            return bool(tx.fetchone("SELECT honker_retry(?, ?, ?, ?)", params)[0])

    elif kind == "fail":
        _, i, worker, err = op

        def ours(tx: Any, c: Any) -> Any:
            return q("a")._fail_in(tx, _pick(c["ids"], i), worker, err)

        def theirs(tx: Any, c: Any) -> Any:
            params = (_pick(c["ids"], i), worker, err)
            return bool(tx.fetchone("SELECT honker_fail(?, ?, ?)", params)[0])

    elif kind == "heartbeat":
        _, i, worker, extend = op

        def ours(tx: Any, c: Any) -> Any:
            stmt = mdb.statement(q("a")._s_heartbeat.sql)
            return tx.execute(stmt, (_pick(c["ids"], i), worker, extend)).changes > 0

        def theirs(tx: Any, c: Any) -> Any:
            params = (_pick(c["ids"], i), worker, extend)
            return bool(tx.fetchone("SELECT honker_heartbeat(?, ?, ?)", params)[0])

    elif kind == "next_claim_at":
        _, name = op

        def ours(tx: Any, c: Any) -> Any:
            return tx.fetchone(q(name)._s_next, (name,))[0]

        def theirs(tx: Any, c: Any) -> Any:
            return tx.fetchone("SELECT honker_queue_next_claim_at(?)", (name,))[0]

    else:  # enqueue
        _, name, run_at, delay, priority, ma, expires = op

        def args(c: Any) -> tuple[Any, ...]:
            return (
                name,
                '{"x":1}',
                None if run_at is None else c["now"] + run_at,
                delay,
                priority,
                ma,
                expires,
            )

        def ours(tx: Any, c: Any) -> Any:
            return tx.fetchone(q(name)._s_enqueue, args(c))[0]

        def theirs(tx: Any, c: Any) -> Any:
            return tx.fetchone("SELECT honker_enqueue(?, ?, ?, ?, ?, ?, ?)", args(c))[0]

    _both(mdb, setup, ours, theirs)


stream_op = st.one_of(
    st.tuples(
        st.just("publish"),
        st.sampled_from(["s", "t"]),
        st.sampled_from([None, "k"]),
        st.integers(0, 9),
    ),
    st.tuples(
        st.just("save_offset"),
        st.sampled_from(["c1", "c2"]),
        st.sampled_from(["s", "t"]),
        st.integers(-1, 12),
    ),
    st.tuples(
        st.just("get_offset"), st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(["s", "t"])
    ),
    st.tuples(st.just("notify"), st.sampled_from(["ch", "other"]), st.integers(0, 9)),
)


@SETTINGS
@given(
    events=st.lists(st.tuples(st.sampled_from(["s", "t"]), st.integers(0, 9)), max_size=6),
    offsets=st.lists(
        st.tuples(st.sampled_from(["c1", "c2"]), st.sampled_from(["s", "t"]), st.integers(0, 8)),
        max_size=3,
        unique_by=lambda x: (x[0], x[1]),
    ),
    op=stream_op,
)
def test_stream_and_notify_match_honker_functions(mdb, events, offsets, op) -> None:  # type: ignore[no-untyped-def]
    def setup(tx: Any, now: int) -> None:
        for topic, p in events:
            tx.execute(
                "INSERT INTO _honker_stream (topic, key, payload) VALUES (?, NULL, ?)",
                (topic, str(p)),
            )
        for name, topic, off in offsets:
            tx.execute(
                "INSERT INTO _honker_stream_consumers (name, topic, offset) VALUES (?, ?, ?)",
                (name, topic, off),
            )

    kind = op[0]
    if kind == "publish":
        _, topic, key, p = op

        def ours(tx: Any, c: Any) -> Any:
            return tx.fetchone(mdb.stream(topic)._s_publish, (topic, key, str(p)))[0]

        def theirs(tx: Any, c: Any) -> Any:
            return tx.fetchone("SELECT honker_stream_publish(?, ?, ?)", (topic, key, str(p)))[0]

    elif kind == "save_offset":
        _, name, topic, off = op

        def ours(tx: Any, c: Any) -> Any:
            # The statement save_offset runs, after the argument checks
            # (which refuse negative and past-the-end offsets).
            tx.execute(mdb.stream(topic)._s_save_offset, (name, topic, off))
            return None

        def theirs(tx: Any, c: Any) -> Any:
            tx.fetchone("SELECT honker_stream_save_offset(?, ?, ?)", (name, topic, off))
            return None

    elif kind == "get_offset":
        _, name, topic = op
        from alkdev_storage.primitives import _sql

        def ours(tx: Any, c: Any) -> Any:
            row = tx.fetchone(mdb.statement(_sql.STREAM_GET_OFFSET), (name, topic))
            return 0 if row is None else row[0]

        def theirs(tx: Any, c: Any) -> Any:
            return tx.fetchone("SELECT honker_stream_get_offset(?, ?)", (name, topic))[0]

    else:
        _, channel, p = op
        from alkdev_storage.primitives.notify import SQL_NOTIFY

        def ours(tx: Any, c: Any) -> Any:
            return tx.fetchone(mdb.statement(SQL_NOTIFY), (channel, str(p)))[0]

        def theirs(tx: Any, c: Any) -> Any:
            return tx.fetchone("SELECT notify(?, ?)", (channel, str(p)))[0]

    _both(mdb, setup, ours, theirs)


# -- claims over deep backlogs with exhausted rows (docs/0010) -------------


@st.composite
def deep_state(draw: Any) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
    """A due backlog of ``depth`` plain pending rows, and a few rows that
    have used up their attempts (or are on their last one), each placed at
    a random depth of the claim order (by ``run_at``)."""
    depth = draw(st.sampled_from([0, 1, 7, 60, 400]))
    special = draw(
        st.lists(
            st.tuples(
                st.integers(0, max(depth, 1)),
                st.fixed_dictionaries(
                    {
                        "state": st.sampled_from(["pending", "processing"]),
                        "claim_expires_at": st.sampled_from([-100, -1, 0, 1, 100]),
                        "attempts": st.integers(1, 4),
                        "max_attempts": st.integers(1, 3),
                        "expires_at": st.sampled_from([None, None, -5, 5]),
                        "future": st.booleans(),
                    }
                ),
            ),
            max_size=8,
        )
    )
    return depth, special


def _insert_deep(tx: Any, now: int, depth: int, special: list[tuple[int, dict[str, Any]]]) -> None:
    rows = [
        ("a", f'"{i}"', "pending", 0, now - 10_000 + i, None, None, 0, 3, now, None)
        for i in range(depth)
    ]
    for pos, r in special:
        proc = r["state"] == "processing"
        run_at = now + 50 if r["future"] and not proc else now - 10_000 + pos
        rows.append(
            (
                "a",
                '"x"',
                r["state"],
                0,
                run_at,
                "w2" if proc else None,
                now + r["claim_expires_at"] if proc else None,
                r["attempts"],
                r["max_attempts"],
                now,
                None if r["expires_at"] is None else now + r["expires_at"],
            )
        )
    rows.append(("b", '"other"', "pending", 0, now - 5, None, None, 3, 3, now, None))
    tx.executemany(
        "INSERT INTO _honker_live (queue, payload, state, priority, run_at, worker_id, "
        "claim_expires_at, attempts, max_attempts, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _theirs_claim(tx: Any, name: str, worker: str, n: int, vt: int) -> list[tuple[Any, ...]]:
    raw = tx.fetchone("SELECT honker_claim_batch(?, ?, ?, ?)", (name, worker, n, vt))[0]
    return [
        (r["id"], r["queue"], r["payload"], r["worker_id"], r["attempts"], r["claim_expires_at"])
        for r in json.loads(raw)
    ]


def _job_tuple(j: Any) -> tuple[Any, ...]:
    return (j.id, j.queue_name, j._payload_raw, j.worker_id, j.attempts, j.claim_expires_at)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(state=deep_state(), n=st.sampled_from([1, 2, 5, 40]), vt=st.integers(1, 300))
def test_claim_over_deep_backlog_matches_honker(mdb, state, n, vt) -> None:  # type: ignore[no-untyped-def]
    """Our indexed dead-letter sweep + claim == honker_claim_batch, with
    exhausted rows at any depth of a due backlog."""
    depth, special = state
    q = Queue(mdb, "a", visibility_timeout_s=vt)

    def setup(tx: Any, now: int) -> None:
        _insert_deep(tx, now, depth, special)

    def ours(tx: Any, c: Any) -> Any:
        return [_job_tuple(j) for j in q._claim_in(tx, "w1", n)]

    def theirs(tx: Any, c: Any) -> Any:
        return _theirs_claim(tx, "a", "w1", n, vt)

    _both(mdb, setup, ours, theirs)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(state=deep_state(), n=st.sampled_from([2, 5, 40]), vt=st.integers(1, 300))
def test_reserved_batch_handed_out_matches_honker_claim_batch(mdb, state, n, vt) -> None:  # type: ignore[no-untyped-def]
    """claim()'s batch (claim one, reserve n - 1, spend each on hand-out)
    ends in the same rows as honker_claim_batch(n) once every job was
    handed out; before hand-out the reserved rows carry no spent attempt."""
    depth, special = state
    q = Queue(mdb, "a", visibility_timeout_s=vt)

    def setup(tx: Any, now: int) -> None:
        _insert_deep(tx, now, depth, special)

    def ours(tx: Any, c: Any) -> Any:
        first = q._claim_in(tx, "w1", 1)
        reserved = q._reserve_in(tx, "w1", n - 1) if first else []
        spend = mdb.statement(q._s_spend.sql)
        out = [_job_tuple(j) for j in first]
        for j in reserved:
            before = tx.fetchone("SELECT attempts FROM _honker_live WHERE id = ?", (j.id,))[0]
            assert before == j.attempts  # nothing spent yet
            row = tx.fetchone(spend, (j.id, j.worker_id, vt, j.attempts))
            assert row is not None
            j.attempts, j.claim_expires_at = row
            out.append(_job_tuple(j))
        # Compared as sets of jobs: claim() hands out in claim order
        # (priority, run_at, id), while an UPDATE ... RETURNING returns its
        # rows in the order it updated them (rowid), which SQLite does not
        # specify; the rows taken and the table afterwards must be equal.
        return sorted(out)

    def theirs(tx: Any, c: Any) -> Any:
        return sorted(_theirs_claim(tx, "a", "w1", n, vt))

    _both(mdb, setup, ours, theirs)
