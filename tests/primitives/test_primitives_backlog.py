"""Claims at any backlog (docs/0010).

* Every statement on the claim path is answered through an index: no
  full scan of the queue's due rows remains (EXPLAIN QUERY PLAN, with and
  without ANALYZE statistics, on a deep backlog).
* A deep backlog with exhausted rows buried in it: one claim dead-letters
  all of them, as honker's semantics require.
* Batching never costs a job an attempt: workers killed with SIGKILL while
  holding a batch leave attempts spent only on jobs that reached user code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from primitives_helpers import kill9, read_line

from alkdev_storage.primitives import _sql

CLAIM_PATH = {
    "dead_letter": (_sql.DEAD_LETTER_EXHAUSTED, ("q",)),
    "claim_1": (_sql.claim_sql(1), ("q", "w", 1, 60)),
    "claim_32": (_sql.claim_sql(32), ("q", "w", 32, 60)),
    "claim_n": (_sql.CLAIM, ("q", "w", 500, 60)),
    "reserve_31": (_sql.reserve_sql(31), ("q", "w", 31, 60)),
    "spend": (_sql.SPEND, (1, "w", 60, 0)),
    "ack": (_sql.ACK, (1, "w")),
    "ack_many": (_sql.ACK_MANY, ("[1, 2]", "w")),
    "unclaim": (_sql.UNCLAIM, ("[1, 2]", "w")),
    "enqueue": (_sql.ENQUEUE, ("q", "1", None, None, 0, 3, None)),
    "next_claim_at": (_sql.NEXT_CLAIM_AT, ("q",)),
}


def _backlog(db: Any, n: int, queue: str = "q") -> None:
    """``n`` due pending jobs, written with one executemany."""
    with db.transaction() as tx:
        now = tx.fetchone("SELECT unixepoch()")[0]
        tx.executemany(
            "INSERT INTO _honker_live (queue, payload, run_at) VALUES (?, ?, ?)",
            [(queue, str(i), now - 100) for i in range(n)],
        )


@pytest.mark.parametrize("analyze", [False, True])
def test_every_claim_statement_uses_an_index(db, analyze) -> None:  # type: ignore[no-untyped-def]
    _backlog(db, 20_000)
    # some in-flight jobs, some on their last attempt
    db.execute(
        "UPDATE _honker_live SET state = 'processing', worker_id = 'x', attempts = 3, "
        "claim_expires_at = unixepoch() + 60 WHERE id % 100 = 0"
    )
    if analyze:
        db.execute("ANALYZE")
    for name, (sql, params) in CLAIM_PATH.items():
        plan = [r[3] for r in db.fetchall("EXPLAIN QUERY PLAN " + sql, params)]
        scans = [p for p in plan if p.startswith("SCAN _honker")]  # a walk, not a search
        assert not scans, (name, plan)
        if name == "dead_letter":
            used = " ".join(plan)
            assert "_alkdev_live_exhausted_run_at" in used, plan
            assert "_alkdev_live_exhausted_claim" in used, plan
            assert "_deadline" not in used, plan  # not the walk over due rows


def test_exhausted_rows_buried_in_a_deep_backlog_die_on_the_next_claim(db) -> None:  # type: ignore[no-untyped-def]
    _backlog(db, 30_000)
    ids = [r[0] for r in db.fetchall("SELECT id FROM _honker_live ORDER BY id")]
    buried = [ids[5], ids[12_345], ids[-1]]
    db.execute("UPDATE _honker_live SET attempts = 3 WHERE id IN (?, ?)", (buried[0], buried[1]))
    db.execute(  # a crashed worker's last attempt, claim expired
        "UPDATE _honker_live SET state = 'processing', worker_id = 'gone', attempts = 3, "
        "claim_expires_at = unixepoch() - 1 WHERE id = ?",
        (buried[2],),
    )
    q = db.queue("q")
    job = q.claim_one("w")
    assert job is not None and job.id == ids[0]
    dead = db.fetchall("SELECT id, last_error FROM _honker_dead ORDER BY id")
    assert dead == [(i, "max attempts exceeded") for i in buried]
    assert job.ack()


# -- SIGKILL while holding a batch --------------------------------------------

CHILD = r"""
import json, sys, time
import alkdev_storage
db = alkdev_storage.open(sys.argv[1])
q = db.queue("kill", visibility_timeout_s=2, max_attempts=2)
it = q.claim("worker", batch_size=32)
handed = [next(it).id for _ in range(int(sys.argv[2]))]
print(json.dumps({"handed": handed, "buffered": it.buffered}), flush=True)
time.sleep(600)
"""


def _worker_killed_holding_a_batch(path: str, take: int) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, path, str(take)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = read_line(proc, 30)
    finally:
        kill9(proc)
    return out


def test_sigkill_while_holding_a_batch_spends_no_unhanded_attempt(db, db_path) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("kill", visibility_timeout_s=2, max_attempts=2)
    ids = [q.enqueue(i) for i in range(60)]
    handed_count = dict.fromkeys(ids, 0)

    for _ in range(2):
        out = _worker_killed_holding_a_batch(str(db_path), 5)
        assert out["buffered"] > 0, out  # it really held an unhanded batch
        for i in out["handed"]:
            handed_count[i] += 1
        rows = dict(db.fetchall("SELECT id, attempts FROM _honker_live WHERE queue = 'kill'"))
        held = db.fetchone(
            "SELECT COUNT(*) FROM _honker_live WHERE queue = 'kill' AND state = 'processing' "
            "AND claim_expires_at >= unixepoch()"
        )[0]
        assert held == len(out["handed"]) + out["buffered"]
        # attempts spent == times a job reached user code, nothing more
        assert rows == {i: n for i, n in handed_count.items() if i in rows}
        time.sleep(3.1)  # the dead worker's claims expire

    # The next claim dead-letters only the jobs handed out twice.
    jobs = q.claim_batch("final", 100)
    twice = {i for i, n in handed_count.items() if n == 2}
    assert twice  # the second worker got the first one's jobs back first
    dead = db.fetchall("SELECT id, attempts FROM _honker_dead WHERE queue = 'kill'")
    assert sorted(dead) == sorted((i, 2) for i in twice)
    assert sorted(j.id for j in jobs) == sorted(set(ids) - twice)
    assert all(j.attempts == handed_count[j.id] + 1 for j in jobs)
    assert q.ack_batch([j.id for j in jobs], "final") == len(jobs)
    assert json.loads(json.dumps(dead))  # plain rows
