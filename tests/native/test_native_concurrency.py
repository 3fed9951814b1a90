"""Threads and processes sharing one database file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import alkdev_storage

LIVENESS_TIMEOUT = 120  # seconds; only reached when something deadlocks


def run_threads(targets):
    """Start every (fn, args) in its own thread behind a barrier, join them,
    and return the list of exceptions raised (empty when all succeeded)."""
    barrier = threading.Barrier(len(targets))
    errors = []
    lock = threading.Lock()

    def wrap(fn, args):
        try:
            barrier.wait()
            fn(*args)
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=wrap, args=(fn, args), daemon=True) for fn, args in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(LIVENESS_TIMEOUT)
        assert not th.is_alive(), "thread deadlocked"
    return errors


TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
MODULE = os.path.splitext(os.path.basename(__file__))[0]


def isolated(body, *args):
    """Run ``body(*args)`` (a function of this module) in a fresh Python
    process that plays "this process" against the other processes the body
    starts. A crash there (e.g. SIGBUS from the shared-memory file being
    truncated under a broken lock) then fails this one test instead of
    killing the whole test run."""
    code = (
        f"import sys; sys.path.insert(0, {TESTS_DIR!r}); "
        f"import {MODULE} as m; m.{body.__name__}(*{args!r})"
    )
    try:
        r = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", code],
            capture_output=True,
            text=True,
            timeout=LIVENESS_TIMEOUT * 2,
            cwd=os.path.dirname(TESTS_DIR),
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{body.__name__} hung: {e.stderr}")
    if r.returncode < 0:
        pytest.fail(
            f"{body.__name__}: the process died with signal {-r.returncode} "
            f"({signal.Signals(-r.returncode).name})\n{r.stderr[-3000:]}"
        )
    if r.returncode != 0:
        pytest.fail(f"{body.__name__} failed:\n{r.stderr[-3000:]}")


@pytest.fixture
def counter(db):
    db.executescript(
        "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
        "INSERT INTO counter VALUES (1, 0);"
        "CREATE TABLE log (who TEXT, i INTEGER, n INTEGER)"
    )
    return db


def test_transaction_increments_from_many_threads_lose_nothing(counter):
    db = counter
    n_writers, m = 4, 60
    n_readers = 4
    stop = threading.Event()
    reads = []

    def writer(w):
        for i in range(m):
            with db.transaction() as tx:
                (n,) = tx.fetchone("SELECT n FROM counter WHERE id = 1")
                tx.execute("UPDATE counter SET n = ? WHERE id = 1", (n + 1,))
                tx.execute("INSERT INTO log VALUES (?, ?, ?)", (f"w{w}", i, n + 1))

    def reader(r):
        last = 0
        count = 0
        while not stop.is_set() or count < 5:
            (n,) = db.fetchone("SELECT n FROM counter WHERE id = 1")
            assert n >= last, "a reader saw the counter go backwards"
            last = n
            with db.read() as snap:
                (a,) = snap.fetchone("SELECT n FROM counter")
                (b,) = snap.fetchone("SELECT count(*) FROM log")
                assert a == b, "snapshot not consistent"
            rows = list(db.iterate("SELECT n FROM log ORDER BY n"))
            assert [x for (x,) in rows] == list(range(1, len(rows) + 1))
            count += 1
        reads.append(count)

    reader_threads = []
    reader_errors = []

    def reader_wrap(r):
        try:
            reader(r)
        except BaseException as e:
            reader_errors.append(e)

    for r in range(n_readers):
        th = threading.Thread(target=reader_wrap, args=(r,), daemon=True)
        th.start()
        reader_threads.append(th)
    errors = run_threads([(writer, (w,)) for w in range(n_writers)])
    stop.set()
    for th in reader_threads:
        th.join(LIVENESS_TIMEOUT)
        assert not th.is_alive()
    assert errors == []
    assert reader_errors == []
    assert len(reads) == n_readers
    assert db.fetchone("SELECT n FROM counter") == (n_writers * m,)
    assert db.fetchone("SELECT count(*), count(DISTINCT n) FROM log") == (n_writers * m,) * 2


def test_autocommit_increments_from_many_threads(counter):
    db = counter
    n_threads, m = 6, 80
    stmt = db.prepare("UPDATE counter SET n = n + 1 WHERE id = 1")

    def work(k):
        for i in range(m):
            if i % 2:
                r = db.execute(stmt)
            else:
                r = db.execute("UPDATE counter SET n = n + 1 WHERE id = ?", (1,))
            assert r.changes == 1
            db.fetchone("SELECT n FROM counter")

    assert run_threads([(work, (k,)) for k in range(n_threads)]) == []
    assert db.fetchone("SELECT n FROM counter") == (n_threads * m,)


def test_contending_transactions_all_succeed(counter):
    db = counter
    n = 8

    def one(k):
        # several rounds so the threads really queue on the writer
        for round_ in range(10):
            with db.transaction() as tx:
                tx.execute("INSERT INTO log VALUES (?, ?, 0)", (f"t{k}", round_))
                with tx.savepoint():
                    tx.execute("UPDATE counter SET n = n + 1")
            tx2 = db.begin()
            tx2.execute("INSERT INTO log VALUES (?, ?, 1)", (f"t{k}", round_))
            tx2.commit()
            db.executemany("INSERT INTO log VALUES (?, ?, 2)", [(f"t{k}", round_)])
            db.notify("done", {"k": k, "round": round_})

    assert run_threads([(one, (k,)) for k in range(n)]) == []
    assert db.fetchone("SELECT n FROM counter") == (n * 10,)
    assert db.fetchone("SELECT count(*) FROM log") == (n * 10 * 3,)
    assert db.fetchone("SELECT count(*) FROM _honker_notifications") == (n * 10,)


def test_more_reader_threads_than_readers(tmp_path):
    with alkdev_storage.open(tmp_path / "few.db", max_readers=2) as db:
        db.executescript(
            "CREATE TABLE t (x); "
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 500) "
            "INSERT INTO t SELECT n FROM c;"
        )
        stmt = db.prepare("SELECT sum(x) FROM t WHERE x <= ?")

        def reads(k):
            for _ in range(40):
                assert db.fetchone(stmt, (500,)) == (125250,)
                assert sum(x for (x,) in db.iterate("SELECT x FROM t")) == 125250
                with db.read() as snap:
                    (c,) = snap.fetchone("SELECT count(*) FROM t")
                    assert 500 <= c <= 550
                    assert len(snap.fetchall("SELECT x FROM t")) == c
                [d] = db.query("SELECT count(*) AS c, sum(x) AS s FROM t")
                assert 500 <= d["c"] <= 550 and d["s"] == 125250

        def writes():
            for _ in range(50):
                db.execute("INSERT INTO t VALUES (0)")

        assert run_threads([(reads, (k,)) for k in range(6)] + [(writes, ())]) == []
        assert db.open_readers <= 2
        assert db.fetchone("SELECT count(*) FROM t") == (550,)


# ---------------------------------------------------------------------------
# Other processes
# ---------------------------------------------------------------------------

CHILD_WRITER = textwrap.dedent(
    """
    import sys
    import alkdev_storage
    path, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with alkdev_storage.open(path) as db:
        for i in range(start, start + count):
            if i % 3 == 0:
                with db.transaction() as tx:
                    tx.execute("INSERT INTO shared (src, i) VALUES ('child', ?)", (i,))
            elif i % 3 == 1:
                db.execute("INSERT INTO shared (src, i) VALUES ('child', ?)", (i,))
            else:
                db.executemany("INSERT INTO shared (src, i) VALUES ('child', ?)", [(i,)])
    print("child-done")
    """
)


def spawn_writer(db_path, start, count):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITER, str(db_path), str(start), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )


def finish(proc):
    try:
        out, err = proc.communicate(timeout=LIVENESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"child process hung: {err}")
    assert proc.returncode == 0, err
    assert "child-done" in out, err


def _other_process_writes_while_this_one_reads_and_writes(db_path):
    with alkdev_storage.open(db_path) as db:
        _body_other_process_writes_while_this_one_reads_and_writes(db, db_path)


def _body_other_process_writes_while_this_one_reads_and_writes(db, db_path):
    db.executescript("CREATE TABLE shared (src TEXT, i INTEGER, UNIQUE (src, i))")
    n_child = 150
    procs = [spawn_writer(db_path, 0, n_child), spawn_writer(db_path, 1000, n_child)]
    seen_max = 0
    mine = 0
    # Read (and write) here while the children write.
    while any(p.poll() is None for p in procs) or mine < 20:
        (n,) = db.fetchone("SELECT count(*) FROM shared WHERE src = 'child'")
        assert n >= seen_max, f"count went back from {seen_max} to {n}"
        seen_max = n
        with db.transaction() as tx:
            tx.execute("INSERT INTO shared (src, i) VALUES ('parent', ?)", (mine,))
        mine += 1
        with db.read() as snap:
            a = snap.fetchone("SELECT count(*) FROM shared")[0]
            b = sum(1 for _ in snap.iterate("SELECT i FROM shared"))
            assert a == b, (a, b)
    for p in procs:
        finish(p)
    got = [i for (i,) in db.fetchall("SELECT i FROM shared WHERE src = 'child' ORDER BY i")]
    assert got == list(range(n_child)) + list(range(1000, 1000 + n_child)), got
    got = db.fetchone("SELECT count(*) FROM shared WHERE src = 'parent'")
    assert got == (mine,), (got, mine)


def _update_subscription_wakes_on_other_process_commit(db_path):
    with alkdev_storage.open(db_path) as db:
        _body_update_subscription_wakes_on_other_process_commit(db, db_path)


def _body_update_subscription_wakes_on_other_process_commit(db, db_path):
    db.executescript("CREATE TABLE shared (src TEXT, i INTEGER)")
    sub = db.subscribe_updates()
    try:
        # Drain ticks from our own setup.
        while sub.wait(0.2):
            pass
        proc = spawn_writer(db_path, 0, 1)
        finish(proc)
        assert sub.wait(LIVENESS_TIMEOUT) is True, "no wake-up for the other process's commit"
        got = db.fetchall("SELECT src, i FROM shared")
        assert got == [("child", 0)], got
    finally:
        sub.close()


def test_update_subscription_wakes_on_commit_from_another_thread(db):
    db.executescript("CREATE TABLE t (x)")
    sub = db.subscribe_updates()
    while sub.wait(0.2):
        pass
    woke = []

    def waiter():
        woke.append(sub.wait(LIVENESS_TIMEOUT))

    th = threading.Thread(target=waiter, daemon=True)
    th.start()
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1)")
    th.join(LIVENESS_TIMEOUT)
    assert not th.is_alive()
    assert woke == [True]
    sub.close()
    with pytest.raises(alkdev_storage.InterfaceError):
        sub.wait(0)


def test_subscription_wait_rejects_bad_timeout(db):
    sub = db.subscribe_updates()
    with pytest.raises(ValueError):
        sub.wait(-1)
    with pytest.raises(ValueError):
        sub.wait(float("nan"))
    sub.close()


# ---------------------------------------------------------------------------
# SQLite's file locks must hold across everything this process does
# ---------------------------------------------------------------------------

CHILD_SQLITE3 = textwrap.dedent(
    """
    import sqlite3, sys
    path, action = sys.argv[1], sys.argv[2]
    con = sqlite3.connect(path, isolation_level=None, timeout=0)
    if action == "write":
        try:
            con.execute("BEGIN IMMEDIATE")
            con.executemany("INSERT INTO shared (src, i) VALUES ('child', ?)",
                            [(i,) for i in range(100)])
            con.execute("COMMIT")
            print("committed")
        except sqlite3.OperationalError as e:
            print("locked:", e)
    elif action == "update-and-checkpoint":
        con.execute("UPDATE big SET x = 2")
        print("checkpoint", con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
    elif action == "ping":
        con.execute("PRAGMA busy_timeout = 10000")
        for line in sys.stdin:
            con.execute("UPDATE ping SET v = ?", (int(line),))
            print("ok", flush=True)
    """
)


PROBE_SHM_LOCKS = textwrap.dedent(
    """
    import fcntl, json, os, sys
    fd = os.open(sys.argv[1] + "-shm", os.O_RDWR)
    # SQLite's WAL-index locks: byte 120 the write lock, 123..127 the read
    # marks, 128 the "dead man switch" every open connection holds shared.
    slots = [("write", 120), ("dms", 128)] + [(f"read{i}", 123 + i) for i in range(5)]
    state = {}
    for name, offset in slots:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError:
            state[name] = "held"
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)
            state[name] = "free"
    print(json.dumps(state))
    """
)


def probe_shm_locks(db_path):
    """Which WAL-index locks another process sees as held on ``db_path``."""
    r = subprocess.run(
        [sys.executable, "-c", PROBE_SHM_LOCKS, str(db_path)],
        capture_output=True,
        text=True,
        timeout=LIVENESS_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_other_processes_see_this_process_locks(db, db_path):
    db.executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
    assert probe_shm_locks(db_path)["dms"] == "held"
    # Reads open reader connections; the locks must survive that.
    assert db.fetchone("SELECT count(*) FROM t") == (1,)
    assert probe_shm_locks(db_path)["dms"] == "held", "open Database lost its DMS lock"
    tx = db.begin()
    tx.execute("INSERT INTO t VALUES (2)")
    with db.read() as snap:
        assert snap.fetchone("SELECT count(*) FROM t") == (1,)
        assert db.fetchone("SELECT count(*) FROM t") == (1,)  # another reader
        locks = probe_shm_locks(db_path)
        assert locks["dms"] == "held", locks
        assert locks["write"] == "held", f"write transaction open, but {locks}"
        assert "held" in [locks[f"read{i}"] for i in range(5)], f"snapshot open, but {locks}"
    tx.commit()


def run_sqlite3_child(db_path, action):
    r = subprocess.run(
        [sys.executable, "-c", CHILD_SQLITE3, str(db_path), action],
        capture_output=True,
        text=True,
        timeout=LIVENESS_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def _write_lock_holds_against_other_process_while_a_reader_opens(db_path):
    with alkdev_storage.open(db_path) as db:
        _body_write_lock_holds_against_other_process_while_a_reader_opens(db, db_path)


def _body_write_lock_holds_against_other_process_while_a_reader_opens(db, db_path):
    db.executescript("CREATE TABLE shared (src TEXT, i INTEGER)")
    tx = db.begin()
    tx.execute("INSERT INTO shared (src, i) VALUES ('parent', 0)")
    # A read outside the transaction (it opens a reader connection).
    got = db.fetchone("SELECT count(*) FROM shared")
    assert got == (0,), got
    out = run_sqlite3_child(db_path, "write")
    tx.commit()
    rows = dict(db.fetchall("SELECT src, count(*) FROM shared GROUP BY src"))
    if "committed" in out:
        # The other process was told its commit succeeded: it must not be lost.
        assert rows.get("child") == 100, f"acknowledged commit of the other process lost: {rows}"
    # While this process holds BEGIN IMMEDIATE no other process may write.
    assert out.startswith("locked"), out
    assert rows == {"parent": 1}, rows


def _snapshot_stays_consistent_when_other_process_checkpoints(db_path):
    with alkdev_storage.open(db_path) as db:
        _body_snapshot_stays_consistent_when_other_process_checkpoints(db, db_path)


def _body_snapshot_stays_consistent_when_other_process_checkpoints(db, db_path):
    db.executescript("CREATE TABLE big (id INTEGER PRIMARY KEY, x INTEGER, pad BLOB)")
    db.executemany("INSERT INTO big (x, pad) VALUES (1, randomblob(500))", [()] * 3000)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with db.read() as snap:
        assert snap.fetchone("SELECT x FROM big WHERE id = 1") == (1,)
        # Another read while the snapshot holds its reader (opens a reader).
        assert db.fetchone("SELECT 1") == (1,)
        out = run_sqlite3_child(db_path, "update-and-checkpoint")
        # The other process's checkpoint must not overwrite pages this
        # snapshot still reads.
        got = snap.fetchone("SELECT count(*), sum(x) FROM big")
        assert got == (3000, 3000), f"snapshot saw {got} after the other process ran: {out}"
        got = snap.fetchone("PRAGMA integrity_check")
        assert got == ("ok",), got
    got = db.fetchone("SELECT count(*), sum(x) FROM big")
    assert got == (3000, 6000), got


def _reads_see_every_commit_of_another_process_at_once(db_path):
    with alkdev_storage.open(db_path) as db:
        _body_reads_see_every_commit_of_another_process_at_once(db, db_path)


def _body_reads_see_every_commit_of_another_process_at_once(db, db_path):
    db.executescript("CREATE TABLE ping (v INTEGER); INSERT INTO ping VALUES (0);")
    stmt = db.prepare("SELECT v FROM ping")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_SQLITE3, str(db_path), "ping"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert db.fetchone(stmt) == (0,)
        for i in range(1, 40):
            proc.stdin.write(f"{i}\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "ok"
            # committed and acknowledged: every read method sees it now
            got = (
                db.fetchone(stmt),
                db.fetchall("SELECT v FROM ping"),
                db.query("SELECT v FROM ping"),
                list(db.iterate("SELECT v FROM ping")),
            )
            assert got == ((i,), [(i,)], [{"v": i}], [(i,)]), (i, got)
    finally:
        proc.stdin.close()
        proc.wait(LIVENESS_TIMEOUT)
    assert proc.returncode == 0, proc.stderr.read()


def test_other_process_writes_while_this_one_reads_and_writes(db_path):
    isolated(_other_process_writes_while_this_one_reads_and_writes, str(db_path))


def test_update_subscription_wakes_on_other_process_commit(db_path):
    isolated(_update_subscription_wakes_on_other_process_commit, str(db_path))


def test_write_lock_holds_against_other_process_while_a_reader_opens(db_path):
    isolated(_write_lock_holds_against_other_process_while_a_reader_opens, str(db_path))


def test_snapshot_stays_consistent_when_other_process_checkpoints(db_path):
    isolated(_snapshot_stays_consistent_when_other_process_checkpoints, str(db_path))


def test_reads_see_every_commit_of_another_process_at_once(db_path):
    isolated(_reads_see_every_commit_of_another_process_at_once, str(db_path))
