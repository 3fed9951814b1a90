"""Hot-path statements on honker's tables, with the semantics of
honker-core 0.5.0's SQL functions.

Why not call the ``honker_*`` functions on the hot paths
---------------------------------------------------------
honker-core's scalar functions run their statements on the connection
handle they get from the function context, which is a fresh handle on every
call: its statement cache is empty each time, so every call parses and
plans every statement again. Measured on a release build, one
``honker_claim_batch`` costs about 240 µs even on an empty queue (twice a
whole enqueue transaction), ``honker_ack`` adds ~40 µs and
``honker_enqueue`` ~10 µs to their transactions.

So the operations that run once per job or per event (enqueue, claim, ack,
ack_batch, retry, fail, heartbeat, the next-claim deadline, stream publish,
consumer offsets) run these statements instead, prepared once per
connection (``db.notify``'s insert is ``notify.SQL_NOTIFY``, same idea).
Each reproduces the corresponding honker-core function step by step: the
same rows selected, the same columns written, the same order of
statements, in one transaction. One exception, same rows: the dead-letter
step before a claim is written so that SQLite finds the exhausted rows
through our partial indexes instead of walking every due row (docs/0010).
``tests/primitives/test_primitives_equivalence.py`` runs both on identical
randomized states (hypothesis) and compares results and table contents.
Everything else (scheduler, locks, rate limits, results, cancel, get_job,
sweep) calls the ``honker_*`` functions.

The statements are written for this package (not copied from honker-core).
"""

from __future__ import annotations

__all__ = [
    "ACK",
    "ACK_MANY",
    "CLAIM",
    "CLAIM_LITERAL_MAX",
    "DEAD_LETTER_EXHAUSTED",
    "DELETE_JOB",
    "ENQUEUE",
    "EXHAUSTED_INDEXES",
    "FAIL_TAKE",
    "GIVE_BACK",
    "HEARTBEAT",
    "INSERT_DEAD",
    "NEXT_CLAIM_AT",
    "RETRY_FIND",
    "RETRY_TO_PENDING",
    "SPEND",
    "STREAM_GET_OFFSET",
    "STREAM_PUBLISH",
    "STREAM_SAVE_OFFSET",
    "UNCLAIM",
    "claim_sql",
    "reserve_sql",
]

# The row a claim may take: pending and due, or processing with an expired
# claim; never expired (``expires_at``) rows.
_CLAIMABLE = (
    "(expires_at IS NULL OR expires_at > unixepoch()) "
    "AND ((state = 'pending' AND run_at <= unixepoch()) "
    "OR (state = 'processing' AND claim_expires_at < unixepoch()))"
)

# ?1 queue ?2 payload ?3 run_at ?4 delay ?5 priority ?6 max_attempts
# ?7 expires (seconds from now). delay wins over run_at; neither = now.
ENQUEUE = (
    "INSERT INTO _honker_live (queue, payload, run_at, priority, max_attempts, expires_at) "
    "SELECT ?1, ?2, CASE WHEN ?4 IS NOT NULL THEN t.now + ?4 ELSE coalesce(?3, t.now) END, "
    "?5, ?6, t.now + ?7 FROM (SELECT unixepoch() AS now) AS t RETURNING id"
)

# Claimable rows that have used up their attempts go to the dead table
# before a claim (so a worker that died on the last attempt does not leave
# a row that can never be claimed nor dies). ?1 queue.
#
# honker-core writes this as one DELETE with ``state = 'pending' AND run_at
# <= now OR state = 'processing' AND claim_expires_at < now``, which SQLite
# answers by walking every due row of the queue (its deadline indexes):
# O(backlog) per claim. The same rows, written as the union of the two
# branches, each with ``attempts >= max_attempts`` and an equality on
# ``state``, are found through EXHAUSTED_INDEXES (partial indexes holding
# only rows whose attempts are used up: the last attempt of in-flight jobs
# and rare leftovers), so the sweep costs O(log n) (docs/0010).
DEAD_LETTER_EXHAUSTED = (
    "DELETE FROM _honker_live WHERE id IN ("
    "SELECT id FROM _honker_live WHERE queue = ?1 AND state = 'pending' "
    "AND attempts >= max_attempts AND run_at <= unixepoch() "
    "AND (expires_at IS NULL OR expires_at > unixepoch()) "
    "UNION ALL "
    "SELECT id FROM _honker_live WHERE queue = ?1 AND state = 'processing' "
    "AND attempts >= max_attempts AND claim_expires_at < unixepoch() "
    "AND (expires_at IS NULL OR expires_at > unixepoch())) "
    "RETURNING id, queue, payload, priority, run_at, max_attempts, attempts, created_at"
)

# Ours, on honker's table, created idempotently when a Database opens
# (database.py). Harmless to every other binding: SQLite maintains them on
# their writes too, and honker's own statements may use them.
EXHAUSTED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS _alkdev_live_exhausted_run_at "
    "ON _honker_live(queue, state, run_at) WHERE attempts >= max_attempts; "
    "CREATE INDEX IF NOT EXISTS _alkdev_live_exhausted_claim "
    "ON _honker_live(queue, state, claim_expires_at) WHERE attempts >= max_attempts"
)

# ?1 id ?2 queue ?3 payload ?4 priority ?5 run_at ?6 max_attempts
# ?7 attempts ?8 created_at ?9 last_error
INSERT_DEAD = (
    "INSERT INTO _honker_dead (id, queue, payload, priority, run_at, max_attempts, "
    "attempts, created_at, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
)

# ?1 queue ?2 worker ?3 how many ?4 visibility timeout (s)
CLAIM = (
    "UPDATE _honker_live SET state = 'processing', worker_id = ?2, "
    "claim_expires_at = unixepoch() + ?4, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM _honker_live WHERE queue = ?1 "
    "AND state IN ('pending', 'processing') AND attempts < max_attempts AND "
    + _CLAIMABLE
    + " ORDER BY priority DESC, run_at ASC, id ASC LIMIT ?3) "
    "RETURNING id, queue, payload, worker_id, attempts, claim_expires_at"
)

# Up to this batch size, claims use a statement with the batch size as a
# literal LIMIT: SQLite 3.53 plans ``LIMIT ?`` on this query several times
# slower (about 10 µs instead of 1.5 µs for the inner SELECT).
CLAIM_LITERAL_MAX = 128


def claim_sql(n: int) -> str:
    """CLAIM for batches of ``n`` (``?3`` is then ignored but still bound)."""
    if 0 < n <= CLAIM_LITERAL_MAX:
        return CLAIM.replace("LIMIT ?3)", f"LIMIT {int(n)})")
    return CLAIM


# Not a honker function: what claim() takes beyond the job it hands out
# at once. The same rows a claim would take, marked ours for the visibility
# timeout but with no attempt spent: the attempt is spent by SPEND when the
# job is handed out, so a worker killed while holding a batch costs the
# jobs it never handed out nothing (they are reclaimed after the timeout).
def reserve_sql(n: int) -> str:
    """claim_sql(n) without ``attempts = attempts + 1``."""
    return claim_sql(n).replace(", attempts = attempts + 1", "")


# ?1 id ?2 worker ?3 visibility timeout (s) ?4 attempts when reserved: hand
# out a reserved job (spend its attempt, restart its claim), only while the
# reservation is still ours.
SPEND = (
    "UPDATE _honker_live SET attempts = attempts + 1, claim_expires_at = unixepoch() + ?3 "
    "WHERE id = ?1 AND worker_id = ?2 AND state = 'processing' AND attempts = ?4 "
    "AND claim_expires_at >= unixepoch() RETURNING attempts, claim_expires_at"
)


# ?1 id ?2 worker: only while the claim is still valid
ACK = (
    "DELETE FROM _honker_live WHERE id = ?1 AND worker_id = ?2 AND claim_expires_at >= unixepoch()"
)

# ?1 JSON array of ids ?2 worker
ACK_MANY = (
    "DELETE FROM _honker_live WHERE id IN (SELECT value FROM json_each(?1)) "
    "AND worker_id = ?2 AND claim_expires_at >= unixepoch()"
)

# Not a honker function: the inverse of a reservation, for jobs claim()
# reserved and never handed out (no attempt was spent on them).
# ?1 JSON array of ids ?2 worker
# ?1 id ?2 worker: a handed-out job returned unrun (worker shutdown), its
# attempt refunded; only while the claim is still ours.
GIVE_BACK = (
    "UPDATE _honker_live SET state = 'pending', worker_id = NULL, claim_expires_at = NULL, "
    "run_at = unixepoch(), attempts = max(attempts - 1, 0) "
    "WHERE id = ?1 AND worker_id = ?2 AND state = 'processing' "
    "AND claim_expires_at >= unixepoch()"
)

UNCLAIM = (
    "UPDATE _honker_live SET state = 'pending', worker_id = NULL, "
    "claim_expires_at = NULL "
    "WHERE id IN (SELECT value FROM json_each(?1)) AND worker_id = ?2 "
    "AND state = 'processing' AND claim_expires_at >= unixepoch()"
)

# ?1 id ?2 worker: our valid claim, with what a dead row needs
RETRY_FIND = (
    "SELECT id, queue, payload, priority, run_at, max_attempts, attempts, created_at "
    "FROM _honker_live WHERE id = ?1 AND worker_id = ?2 "
    "AND claim_expires_at >= unixepoch() AND state = 'processing'"
)

DELETE_JOB = "DELETE FROM _honker_live WHERE id = ?1"

# ?1 id ?2 delay (s)
RETRY_TO_PENDING = (
    "UPDATE _honker_live SET state = 'pending', run_at = unixepoch() + ?2, "
    "worker_id = NULL, claim_expires_at = NULL WHERE id = ?1"
)

# ?1 id ?2 worker: take our valid claim out of the live table
FAIL_TAKE = (
    "DELETE FROM _honker_live WHERE id = ?1 AND worker_id = ?2 "
    "AND claim_expires_at >= unixepoch() "
    "RETURNING id, queue, payload, priority, run_at, max_attempts, attempts, created_at"
)

# ?1 id ?2 worker ?3 seconds from now
HEARTBEAT = (
    "UPDATE _honker_live SET claim_expires_at = unixepoch() + ?3 "
    "WHERE id = ?1 AND worker_id = ?2 AND state = 'processing' "
    "AND claim_expires_at >= unixepoch()"
)

# ?1 queue: the next future time a claim could succeed (a pending row's
# run_at, or one second after a live claim expires), or 0.
NEXT_CLAIM_AT = (
    "SELECT coalesce(min(t), 0) FROM ("
    "SELECT min(run_at) AS t FROM _honker_live WHERE queue = ?1 AND state = 'pending' "
    "AND attempts < max_attempts AND (expires_at IS NULL OR expires_at > unixepoch()) "
    "AND run_at > unixepoch() "
    "UNION ALL "
    "SELECT min(claim_expires_at) + 1 FROM _honker_live WHERE queue = ?1 "
    "AND state = 'processing' AND attempts < max_attempts "
    "AND (expires_at IS NULL OR expires_at > unixepoch()) "
    "AND claim_expires_at >= unixepoch())"
)

# ?1 topic ?2 key ?3 payload
STREAM_PUBLISH = (
    "INSERT INTO _honker_stream (topic, key, payload) VALUES (?1, ?2, ?3) RETURNING offset"
)

# ?1 consumer ?2 topic ?3 offset: never moves backwards
STREAM_SAVE_OFFSET = (
    "INSERT INTO _honker_stream_consumers (name, topic, offset) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (name, topic) DO UPDATE SET offset = excluded.offset "
    "WHERE excluded.offset > _honker_stream_consumers.offset"
)

STREAM_GET_OFFSET = "SELECT offset FROM _honker_stream_consumers WHERE name = ?1 AND topic = ?2"
