"""Parity with honker's Python binding (docs/0013-honker-parity.md):
watcher_backend, Lock.renew's bool, queue re-declaration conflicts, the
legacy-table migration, RuntimeError-compatible errors, the scheduler
leader keeping its lock, extension_info / load_extension."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest
from primitives_helpers import honker_extension

import alkdev_storage
from alkdev_storage import errors
from alkdev_storage.errors import ExtensionNotAvailable, LockHeld

# -- open(watcher_backend=) ----------------------------------------------


@pytest.mark.parametrize("backend", [None, "polling", "kernel", "shm"])
def test_open_accepts_honker_watcher_backends(db_path, backend) -> None:  # type: ignore[no-untyped-def]
    with alkdev_storage.open(db_path, watcher_backend=backend) as db:
        db.notify("c", 1)
        # the one watcher wakes listeners whatever the value
        it = db.listen("c", timeout=2)
        db.notify("c", 2)
        assert next(iter(it)).payload == 2
        it.close()


def test_open_refuses_unknown_watcher_backend(db_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="watcher_backend"):
        alkdev_storage.open(db_path, watcher_backend="inotify")
    assert not db_path.exists()  # nothing was opened or written


# -- Lock.renew ----------------------------------------------------------


def test_lock_renew_returns_true_then_false_once_stolen(db) -> None:  # type: ignore[no-untyped-def]
    lk = db.lock("r", ttl=10, owner="me")
    assert lk.acquire()
    assert lk.renew() is True
    db.execute("UPDATE _honker_locks SET expires_at = unixepoch() - 1 WHERE name = 'r'")
    assert db.lock("r", owner="thief").acquire()
    assert lk.renew() is False and not lk.acquired
    assert db.fetchone("SELECT owner FROM _honker_locks WHERE name = 'r'")[0] == "thief"


# -- queue re-declaration ------------------------------------------------


def test_queue_redeclared_identically_returns_the_cached_queue(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("same", visibility_timeout_s=30, max_attempts=5)
    assert db.queue("same", visibility_timeout_s=30, max_attempts=5) is q
    assert db.queue("same") is q  # options left out: take it as it is
    assert db.queue("same", max_attempts=5) is q
    d = db.queue("defaults")
    assert db.queue("defaults", visibility_timeout_s=300, max_attempts=3) is d


@pytest.mark.parametrize(
    ("first", "second", "option"),
    [
        ({"max_attempts": 5}, {"max_attempts": 6}, "max_attempts"),
        ({"max_attempts": 5}, {"max_attempts": 3}, "max_attempts"),  # explicit default
        ({}, {"max_attempts": 4}, "max_attempts"),
        ({"visibility_timeout_s": 10}, {"visibility_timeout_s": 300}, "visibility_timeout_s"),
        ({}, {"visibility_timeout_s": 60}, "visibility_timeout_s"),
    ],
)
def test_queue_redeclared_with_conflicting_options_raises(db, first, second, option) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("conflict", **first)
    with pytest.raises(ValueError, match=option):
        db.queue("conflict", **second)
    assert db.queue("conflict") is q
    assert (q.visibility_timeout_s, q.max_attempts) == (
        first.get("visibility_timeout_s", 300),
        first.get("max_attempts", 3),
    )


# -- legacy _honker_pending / _honker_processing ---------------------------


LEGACY = """
PRAGMA journal_mode=WAL;
CREATE TABLE _honker_pending (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  payload TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  run_at INTEGER NOT NULL DEFAULT (unixepoch()),
  max_attempts INTEGER NOT NULL DEFAULT 3,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX _honker_pending_claim ON _honker_pending(queue, priority DESC, run_at, id);
CREATE TABLE _honker_processing (
  id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  payload TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  claim_expires_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL DEFAULT 3,
  priority INTEGER NOT NULL DEFAULT 0,
  run_at INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX _honker_processing_reclaim ON _honker_processing(claim_expires_at);
INSERT INTO _honker_pending (id, queue, payload, priority, attempts)
  VALUES (1, 'old', '{"k": "due"}', 5, 1);
INSERT INTO _honker_pending (id, queue, payload, run_at)
  VALUES (2, 'old', '{"k": "later"}', unixepoch() + 3600);
INSERT INTO _honker_processing (id, queue, payload, worker_id, claim_expires_at, attempts)
  VALUES (3, 'old', '{"k": "inflight"}', 'old-worker', unixepoch() - 5, 1);
INSERT INTO _honker_processing (id, queue, payload, worker_id, claim_expires_at, attempts)
  VALUES (4, 'old', '{"k": "held"}', 'old-worker', unixepoch() + 600, 1);
"""


def test_legacy_tables_are_migrated_on_open(db_path) -> None:  # type: ignore[no-untyped-def]
    raw = sqlite3.connect(db_path)
    raw.executescript(LEGACY)
    raw.close()
    with alkdev_storage.open(db_path) as db:
        rows = db.fetchall(
            "SELECT id, state, payload, priority, worker_id, attempts FROM _honker_live ORDER BY id"
        )
        assert [tuple(r) for r in rows] == [
            (1, "pending", '{"k": "due"}', 5, None, 1),
            (2, "pending", '{"k": "later"}', 0, None, 0),
            (3, "processing", '{"k": "inflight"}', 0, "old-worker", 1),
            (4, "processing", '{"k": "held"}', 0, "old-worker", 1),
        ]
        left = db.fetchall(
            "SELECT name FROM sqlite_master WHERE name IN ('_honker_pending', "
            "'_honker_processing', '_honker_pending_claim', '_honker_processing_reclaim')"
        )
        assert left == []
        q = db.queue("old")
        got = []
        while (job := q.claim_one("new")) is not None:
            got.append((job.payload["k"], job.attempts))
            assert job.ack()
        # due first (priority 5), then the expired claim (reclaimed as attempt 2)
        assert got == [("due", 2), ("inflight", 2)]
        assert q.stats()["processing"] == 1 and q.stats()["scheduled"] == 1
        new_id = q.enqueue("fresh")
        assert new_id > 4  # ids keep growing past the migrated ones
    # reopening is a no-op
    with alkdev_storage.open(db_path) as db:
        assert db.fetchone("SELECT COUNT(*) FROM _honker_live")[0] == 3


def test_legacy_rows_whose_id_is_taken_get_new_ids(db_path) -> None:  # type: ignore[no-untyped-def]
    with alkdev_storage.open(db_path) as db:
        db.queue("cur").enqueue("current")  # id 1
    raw = sqlite3.connect(db_path)
    raw.executescript(LEGACY.replace("PRAGMA journal_mode=WAL;", ""))
    raw.close()
    with alkdev_storage.open(db_path) as db:
        rows = db.fetchall("SELECT queue, payload FROM _honker_live ORDER BY id")
        payloads = sorted(r[1] for r in rows)
        assert len(rows) == 5 and '"current"' in payloads and '{"k": "due"}' in payloads
        assert db.fetchone("SELECT COUNT(DISTINCT id) FROM _honker_live")[0] == 5


# -- RuntimeError-compatible errors ----------------------------------------


def test_errors_are_runtime_errors_and_still_pep249() -> None:
    assert issubclass(errors.Error, RuntimeError) and issubclass(errors.Error, Exception)
    for cls in errors.PEP249:
        if cls is not errors.Warning:
            assert issubclass(cls, RuntimeError), cls
    assert not issubclass(errors.Warning, errors.Error)


def test_open_failure_is_catchable_as_runtime_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError) as info:
        alkdev_storage.open(tmp_path / "no-such-dir" / "x.db")
    assert isinstance(info.value, errors.OperationalError)


def test_write_to_read_only_file_is_catchable_as_runtime_error(db_path) -> None:  # type: ignore[no-untyped-def]
    with alkdev_storage.open(db_path) as db:
        db.execute("CREATE TABLE t (x)")
    uri = "file:" + str(db_path) + "?mode=ro"
    raw = sqlite3.connect(uri, uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError):
            raw.execute("INSERT INTO t VALUES (1)")
    finally:
        raw.close()
    with alkdev_storage.open(db_path) as db:
        try:
            db.execute("INSERT INTO nope VALUES (1)")
        except RuntimeError as exc:  # how honker code catches it
            assert isinstance(exc, errors.OperationalError)
        else:
            raise AssertionError("no error")


# -- scheduler leader keeps its lock while it sleeps ------------------------


def test_scheduler_leader_renews_within_its_ttl(db) -> None:  # type: ignore[no-untyped-def]
    sched = db.scheduler()
    sched.LOCK_TTL = 3  # type: ignore[misc]
    sched.HEARTBEAT_INTERVAL = 30  # type: ignore[misc]  # longer than the TTL
    sched.add("yearly", "yq", "0 0 1 1 *")  # nothing due for months
    errs: list[BaseException] = []

    def run() -> None:
        try:
            sched.run_blocking()
        except BaseException as e:  # pragma: no cover - reported below
            errs.append(e)

    t = threading.Thread(target=run)
    t.start()
    try:
        time.sleep(0.3)
        owner = db.fetchone("SELECT owner FROM _honker_locks WHERE name = 'honker-scheduler'")[0]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            row = db.fetchone(
                "SELECT owner, expires_at - unixepoch() FROM _honker_locks "
                "WHERE name = 'honker-scheduler'"
            )
            assert row is not None and row[0] == owner and row[1] > 0, row
            time.sleep(0.25)
        with pytest.raises(LockHeld):
            db.scheduler().run_blocking()
    finally:
        sched.stop()
        t.join(10)
    assert not t.is_alive() and errs == []


# -- honker's SQLite extension ---------------------------------------------


def test_extension_info_reports_where_it_looked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "libhonker_ext.so"
    info = alkdev_storage.extension_info(missing)
    assert info["available"] is False and info["path"] is None
    assert info["searched"] == [str(missing)] and info["entrypoint"] == "sqlite3_honkerext_init"
    conn = sqlite3.connect(tmp_path / "x.db")
    try:
        with pytest.raises(ExtensionNotAvailable, match="not found"):
            alkdev_storage.load_extension(conn, missing)
    finally:
        conn.close()
    assert issubclass(ExtensionNotAvailable, RuntimeError)


def test_extension_info_uses_the_environment(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "libhonker_ext.so"
    fake.write_bytes(b"")
    monkeypatch.setenv("HONKER_EXT_PATH", str(fake))
    info = alkdev_storage.extension_info()
    assert info == {
        "available": True,
        "path": str(fake),
        "entrypoint": "sqlite3_honkerext_init",
        "searched": [str(fake)],
        "source": "env",
    }


def _ext_or_skip() -> str:
    path = honker_extension()
    if path is None:
        msg = "honker's SQLite extension is not available (run scripts/build_honker_ext.sh)"
        if os.environ.get("ALKDEV_REQUIRE_INTEROP") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def test_load_extension_into_a_connection(db_path) -> None:  # type: ignore[no-untyped-def]
    ext = _ext_or_skip()
    apsw = pytest.importorskip("apsw")
    with alkdev_storage.open(db_path) as db:
        q = db.queue("ext")
        conn = apsw.Connection(str(db_path))
        try:
            assert alkdev_storage.load_extension(conn, ext) == ext
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute(
                "SELECT honker_enqueue('ext', ?, NULL, NULL, 0, 3, NULL)", ('{"from": "ext"}',)
            )
        finally:
            conn.close()
        job = q.claim_one("w")
        assert job is not None and job.payload == {"from": "ext"}
    # stdlib sqlite3: loads where this Python allows it, else a clear error
    std = sqlite3.connect(db_path)
    try:
        if hasattr(std, "enable_load_extension"):
            assert alkdev_storage.load_extension(std, ext) == ext
            assert std.execute("SELECT honker_lock_acquire('l', 'o', 5)").fetchone()[0] == 1
        else:
            with pytest.raises(ExtensionNotAvailable, match="cannot load SQLite extensions"):
                alkdev_storage.load_extension(std, ext)
    finally:
        std.close()
