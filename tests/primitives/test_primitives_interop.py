"""Interop with honker's own SQLite extension on one file.

A plain apsw connection loads honker's loadable extension (the registry
package ``honker-extension``, built by scripts/build_honker_ext.sh) and calls
honker's SQL functions; this API must see what it writes, and the reverse.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from primitives_helpers import honker_extension

import alkdev_storage
from alkdev_storage.primitives import LockHeld

apsw = pytest.importorskip("apsw")


@pytest.fixture(scope="module")
def ext_path() -> str:
    path = honker_extension()
    if path is None:
        msg = "honker's SQLite extension is not available (run scripts/build_honker_ext.sh)"
        if os.environ.get("ALKDEV_REQUIRE_INTEROP") == "1":
            pytest.fail(msg)  # scripts/test.sh builds it: never skip there
        pytest.skip(msg)
    return path


def connect(path: str, ext: str):  # type: ignore[no-untyped-def]
    conn = apsw.Connection(str(path))
    conn.enable_load_extension(True)
    conn.load_extension(ext, "sqlite3_honkerext_init")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def one(conn, sql, params=()):  # type: ignore[no-untyped-def]
    return conn.execute(sql, params).fetchone()[0]


def test_extension_writes_are_seen_by_this_api(db, db_path, ext_path) -> None:  # type: ignore[no-untyped-def]
    ext = connect(db_path, ext_path)
    listener = db.listen("ext-channel")
    with ext:  # one transaction in the extension's connection
        jid = one(
            ext,
            "SELECT honker_enqueue('ext-q', ?, NULL, NULL, 5, 4, NULL)",
            (json.dumps({"from": "ext"}),),
        )
        off = one(ext, "SELECT honker_stream_publish('ext-s', 'k', ?)", (json.dumps([1, 2]),))
        nid = one(ext, "SELECT notify('ext-channel', ?)", (json.dumps("hello"),))
        one(ext, "SELECT honker_result_save(?, ?, 0)", (jid, json.dumps({"r": 1})))
        one(
            ext,
            "SELECT honker_scheduler_register('ext-sched', 'ext-q', '0 * * * *', '{}', 0, NULL)",
        )
        one(ext, "SELECT honker_lock_acquire('ext-lock', 'ext-owner', 60)")
        one(ext, "SELECT honker_stream_save_offset('ext-consumer', 'ext-s', ?)", (off,))

    n = listener.get(5)
    assert (n.id, n.payload) == (nid, "hello")
    info = db.queue("ext-q").get_job(jid)
    assert (info["priority"], info["max_attempts"], info["state"]) == (5, 4, "pending")
    job = db.queue("ext-q").claim_one("ours")
    assert (job.id, job.payload, job.attempts) == (jid, {"from": "ext"}, 1)
    assert db.queue("ext-q").get_result(jid) == (True, {"r": 1})
    assert job.ack()
    ev = db.stream("ext-s").read()
    assert [(e.offset, e.key, e.payload) for e in ev] == [(off, "k", [1, 2])]
    assert db.stream("ext-s").get_offset("ext-consumer") == off
    assert [r["name"] for r in db.scheduler().list()] == ["ext-sched"]
    with pytest.raises(LockHeld):
        with db.lock("ext-lock"):
            pass
    ext.close()


def test_this_api_writes_are_seen_by_the_extension(db, db_path, ext_path) -> None:  # type: ignore[no-untyped-def]
    ext = connect(db_path, ext_path)
    q = db.queue("our-q")
    jid = q.enqueue({"from": "us"}, priority=3)
    s = db.stream("our-s")
    offs = [s.publish({"i": i}) for i in range(3)]
    s.save_offset("c", offs[1])
    nid = db.notify("our-channel", {"n": 1})
    sched = db.scheduler()
    sched.add("our-sched", "our-q", "@every 1s", payload={"tick": True})

    claimed = json.loads(one(ext, "SELECT honker_claim_batch('our-q', 'ext-worker', 10, 60)"))
    assert [(c["id"], json.loads(c["payload"])) for c in claimed] == [(jid, {"from": "us"})]
    assert one(ext, "SELECT honker_ack(?, 'ext-worker')", (jid,)) == 1
    rows = json.loads(one(ext, "SELECT honker_stream_read_since('our-s', 0, 100)"))
    assert [r["offset"] for r in rows] == offs
    assert json.loads(rows[0]["payload"]) == {"i": 0}
    assert one(ext, "SELECT honker_stream_get_offset('c', 'our-s')") == offs[1]
    assert ext.execute(
        "SELECT channel, payload FROM _honker_notifications WHERE id = ?", (nid,)
    ).fetchall() == [("our-channel", '{"n":1}')]
    nxt = one(ext, "SELECT next_fire_at FROM _honker_scheduler_tasks WHERE name = 'our-sched'")
    fires = json.loads(one(ext, "SELECT honker_scheduler_tick(?)", (nxt,)))
    assert [f["name"] for f in fires] == ["our-sched"]
    assert q.claim_one("ours").payload == {"tick": True}
    with db.lock("our-lock", ttl=60):
        assert one(ext, "SELECT honker_lock_acquire('our-lock', 'ext', 60)") == 0
    assert one(ext, "SELECT honker_lock_acquire('our-lock', 'ext', 60)") == 1
    assert db.try_rate_limit("rl", 2, 3600)
    assert one(ext, "SELECT honker_rate_limit_try('rl', 2, 3600)") == 1
    assert not db.try_rate_limit("rl", 2, 3600)
    ext.close()


def test_extension_rollback_is_invisible_and_wakes_nothing(db, db_path, ext_path) -> None:  # type: ignore[no-untyped-def]
    ext = connect(db_path, ext_path)
    listener = db.listen("rb")
    with pytest.raises(RuntimeError):
        with ext:
            one(ext, "SELECT honker_enqueue('rb-q', '1', NULL, NULL, 0, 3, NULL)")
            one(ext, "SELECT honker_stream_publish('rb-s', NULL, '1')")
            one(ext, "SELECT notify('rb', '1')")
            raise RuntimeError("rollback")
    assert db.queue("rb-q").claim_one("w") is None
    assert db.stream("rb-s").read() == []
    assert listener.get(0.1) is None
    ext.close()


def test_file_created_by_the_extension_opens_here(tmp_path, ext_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "ext-first.db")
    ext = connect(path, ext_path)
    ext.execute("PRAGMA journal_mode = WAL")
    assert one(ext, "SELECT honker_bootstrap()") == 1
    one(ext, "SELECT honker_enqueue('q', '\"early\"', NULL, NULL, 0, 3, NULL)")
    ext.close()
    with alkdev_storage.open(path) as db:
        assert db.queue("q").claim_one("w").payload == "early"


def test_async_listener_woken_by_extension_commit(db, db_path, ext_path) -> None:  # type: ignore[no-untyped-def]
    ext = connect(db_path, ext_path)

    async def main() -> object:
        listener = db.listen("wake")

        async def later() -> None:
            await asyncio.sleep(0.05)
            one(ext, "SELECT notify('wake', '\"ping\"')")

        t = asyncio.create_task(later())
        n = await asyncio.wait_for(listener.__anext__(), 30)
        await t
        return n.payload

    assert asyncio.run(main()) == "ping"
    ext.close()


# -- our claim indexes on honker's tables (docs/0010) ----------------------


OUR_INDEXES = {"_alkdev_live_exhausted_run_at", "_alkdev_live_exhausted_claim"}
INDEX_NAMES = "SELECT name FROM sqlite_master WHERE type = 'index' AND name GLOB '_alkdev_*'"


def _indexes(conn) -> set[str]:  # type: ignore[no-untyped-def]
    """Our index names in the file (``conn``: apsw or a Database)."""
    fetch = conn.fetchall if hasattr(conn, "fetchall") else conn.execute
    return {r[0] for r in fetch(INDEX_NAMES)}


def test_extension_writes_a_file_with_our_claim_indexes(db, db_path, ext_path) -> None:  # type: ignore[no-untyped-def]
    """A file opened here (so carrying our partial indexes) is written by
    honker's extension: its enqueue, claim (with its own dead-letter
    sweep), retry and ack keep the indexes consistent, and we read on."""
    q = db.queue("ix", max_attempts=2)
    ours = [q.enqueue(i) for i in range(30)]
    ext = connect(db_path, ext_path)
    assert _indexes(ext) == OUR_INDEXES
    with ext:
        theirs = [
            one(ext, "SELECT honker_enqueue('ix', ?, NULL, NULL, 0, 2, NULL)", (str(i),))
            for i in range(30, 40)
        ]
        # three jobs on their last attempt, claim expired: exhausted
        ext.execute(
            "UPDATE _honker_live SET state = 'processing', worker_id = 'gone', "
            "attempts = 2, claim_expires_at = unixepoch() - 5 WHERE id IN (?, ?, ?)",
            (ours[3], ours[10], theirs[2]),
        )
    claimed = json.loads(one(ext, "SELECT honker_claim_batch('ix', 'ext', 5, 60)"))
    assert [c["id"] for c in claimed] == [i for i in ours if i not in (ours[3], ours[10])][:5]
    dead = {r[0] for r in ext.execute("SELECT id FROM _honker_dead WHERE queue = 'ix'")}
    assert dead == {ours[3], ours[10], theirs[2]}
    assert one(ext, "SELECT honker_retry(?, 'ext', 0, 'again')", (claimed[0]["id"],)) == 1
    for c in claimed[1:]:
        assert one(ext, "SELECT honker_ack(?, 'ext')", (c["id"],)) == 1
    assert one(ext, "PRAGMA integrity_check") == "ok"
    ext.close()
    # back here: the retried job (attempts 1) and the rest, in order
    jobs = q.claim_batch("us", 100)
    assert len(jobs) == 40 - 3 - 4
    assert {j.id for j in jobs if j.attempts == 2} == {claimed[0]["id"]}
    assert q.ack_batch([j.id for j in jobs], "us") == len(jobs)
    assert db.fetchone("PRAGMA integrity_check")[0] == "ok"


def test_file_from_the_extension_gets_our_indexes_and_stays_theirs(tmp_path, ext_path) -> None:  # type: ignore[no-untyped-def]
    """A file created and filled by honker's extension (exhausted rows
    included) is opened here: our indexes are built over the existing rows,
    our sweep dead-letters what honker's would, and the extension uses the
    file afterwards."""
    path = str(tmp_path / "ext-made.db")
    ext = connect(path, ext_path)
    ext.execute("PRAGMA journal_mode = WAL")
    assert one(ext, "SELECT honker_bootstrap()") == 1
    with ext:
        ids = [
            one(ext, "SELECT honker_enqueue('q', ?, NULL, NULL, 0, 3, NULL)", (str(i),))
            for i in range(200)
        ]
        ext.execute(
            "UPDATE _honker_live SET attempts = 3 WHERE id IN (?, ?, ?)",
            (ids[0], ids[99], ids[199]),
        )
    ext.close()
    with alkdev_storage.open(path) as db:
        assert _indexes(db) == OUR_INDEXES
        q = db.queue("q")
        job = q.claim_one("w")
        assert job is not None and job.id == ids[1]
        dead = db.fetchall("SELECT id, last_error FROM _honker_dead ORDER BY id")
        assert dead == [(i, "max attempts exceeded") for i in (ids[0], ids[99], ids[199])]
        assert job.ack()
    ext = connect(path, ext_path)
    claimed = json.loads(one(ext, "SELECT honker_claim_batch('q', 'ext', 500, 60)"))
    assert [c["id"] for c in claimed] == [i for i in ids[2:] if i not in (ids[99], ids[199])]
    assert one(ext, "PRAGMA integrity_check") == "ok"
    ext.close()
