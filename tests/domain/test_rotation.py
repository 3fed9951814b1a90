"""Key rotation (alkdev_storage.domain.rotation): a resumable job on the
tenant's secret-rotation queue, on real tenant files; killed with SIGKILL
mid-run in a child process and resumed in another."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rotation_helpers import (
    ORG,
    check_rotated,
    make_tenant,
    populate,
    provider,
    rows,
)

import alkdev_storage
from alkdev_storage.domain.rotation import (
    ROTATION_QUEUE,
    RotationStatus,
    rotate_batch,
    rotation_progress,
    rotation_status,
    run_rotation,
    stale_rows,
    start_rotation,
)
from alkdev_storage.domain.secrets import EncryptedData
from alkdev_storage.errors import DecryptionFailed, SecretError, ValidationFailed

HERE = Path(__file__).parent


@pytest.fixture
def tenant(tmp_path):
    path = tmp_path / "tenant-org1.db"
    graph_id = make_tenant(path)
    db = alkdev_storage.open(path)
    try:
        yield db, graph_id
    finally:
        db.close()


def _count(secrets, table=None):
    return len({(t, r) for t, r, _ in secrets if table in (None, t)})


def test_status_counts_what_is_on_old_keys(tenant):
    db, graph_id = tenant
    secrets = populate(db, graph_id, 40, 15, seed=1, versions=(1, 2))
    found = rows(db)
    expected: dict[str, dict[int, int]] = {"nodes": {}, "edges": {}}
    for (table, _), (_, kv) in found.items():
        if kv is not None and kv < 3:
            expected[table][kv] = expected[table].get(kv, 0) + 1
    status = rotation_status(db, provider(3))
    assert status == RotationStatus(3, expected["nodes"], expected["edges"])
    assert status.remaining == _count(secrets) and not status.done
    # against current version 2 only the version-1 rows are stale
    assert rotation_status(db, provider(2)).remaining == sum(
        1 for (_, kv) in found.values() if kv == 1
    )
    listed = stale_rows(db, provider(3), limit=1000)
    assert sorted(listed) == sorted(
        (t, r, kv) for (t, r), (_, kv) in found.items() if kv is not None
    )
    assert len(stale_rows(db, provider(3), limit=5)) == 5


@pytest.mark.parametrize("table", ["nodes", "edges"])
def test_queries_use_the_key_version_index(tenant, table):
    from alkdev_storage.domain import rotation

    db, _ = tenant
    for sql, params in [
        (rotation._STATUS, (3,)),
        (rotation._REMAINING, (3,)),
        (rotation._STALE, (3, 10)),
        (rotation._SELECT, (3, 10)),
    ]:
        plan = " | ".join(
            str(r[-1]) for r in db.fetchall("EXPLAIN QUERY PLAN " + sql.format(table=table),
                                            params)
        )
        assert f"ix_{table}_key_version" in plan, plan
        assert f"SCAN {table}" not in plan.replace("AS r", ""), plan  # no table scan
        assert "TEMP B-TREE" not in plan, plan  # index order, no sort


def test_rotation_job_end_to_end(tenant):
    db, graph_id = tenant
    secrets = populate(db, graph_id, 60, 25, seed=2, versions=(1, 2))
    before = rows(db)
    p3 = provider(3)
    job_id = start_rotation(db, ORG, p3, batch_size=16)
    seen = []
    progress = run_rotation(db, p3, on_batch=lambda p: seen.append(p.done))
    assert progress is not None and progress.finished
    assert progress.done == _count(secrets) == progress.nodes_done + progress.edges_done
    assert progress.edges_done == _count(secrets, "edges")
    assert seen == sorted(seen) and seen[-1] == progress.done
    assert progress.batches == len(seen)
    check_rotated(db, secrets, 3, len(before))
    # plain attributes untouched; rows without secrets untouched
    after = rows(db)
    for key, (attrs, kv) in before.items():
        assert after[key][0]["name" if key[0] == "nodes" else "label"] == attrs[
            "name" if key[0] == "nodes" else "label"]
        if kv is None:
            assert after[key] == (attrs, None)
    saved = rotation_progress(db, job_id)
    assert saved is not None and saved.done == progress.done and saved.finished
    assert rotation_status(db, p3).done
    assert run_rotation(db, p3) is None  # nothing left to claim


def test_fields_already_current_are_not_touched(tenant):
    db, graph_id = tenant
    populate(db, graph_id, 30, 0, seed=3, versions=(1, 3))
    before = rows(db)
    start_rotation(db, ORG, provider(3), batch_size=7)
    run_rotation(db, provider(3))
    after = rows(db)
    unchanged = 0
    for key, (attrs, _) in before.items():
        for field in ("password", "token"):
            value = attrs.get(field)
            if value is not None and EncryptedData(value).key_version == 3:
                assert after[key][0][field] == value  # the same ciphertext: not re-encrypted
                unchanged += 1
    assert unchanged > 5


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n_nodes=st.integers(0, 30), n_edges=st.integers(0, 12), batch=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
def test_rotation_random_shapes(tmp_path_factory, n_nodes, n_edges, batch, seed):
    path = tmp_path_factory.mktemp("rot") / "tenant.db"
    graph_id = make_tenant(path)
    db = alkdev_storage.open(path)
    try:
        secrets = populate(db, graph_id, n_nodes, n_edges if n_nodes % 10 else 0, seed=seed)
        n_rows = len(rows(db))
        stale = sum(1 for _, kv in rows(db).values() if kv == 1)
        assert rotation_status(db, provider(2)).remaining == stale
        start_rotation(db, ORG, provider(2), batch_size=batch)
        progress = run_rotation(db, provider(2))
        assert progress is not None and progress.finished
        assert progress.done == stale
        assert progress.batches == max(1, -(-stale // batch))
        check_rotated(db, secrets, 2, n_rows)
    finally:
        db.close()


def test_stale_worker_is_refused(tenant):
    db, graph_id = tenant
    populate(db, graph_id, 10, 0, seed=4)
    job_id = start_rotation(db, ORG, provider(3), visibility_timeout_s=1, max_attempts=5)
    before = rows(db)
    with pytest.raises(SecretError, match="older than the rotation's target version 3"):
        run_rotation(db, provider(2))
    assert rows(db) == before
    job = db.queue(ROTATION_QUEUE).get_job(job_id)
    assert job is not None and job["state"] == "pending"  # put back for a later retry
    assert job["attempts"] == 1 and job["run_at"] > time.time() + 10
    assert run_rotation(db, provider(3)) is None  # not claimable before its retry delay


def test_a_row_that_does_not_decrypt_stops_the_batch(tenant):
    db, graph_id = tenant
    populate(db, graph_id, 20, 0, seed=5, versions=(1,))
    # copy one row's ciphertext into another row: it belongs elsewhere
    found = [(r, a) for (t, r), (a, kv) in rows(db).items() if t == "nodes" and a.get("password")]
    (victim, _), (_, source_attrs) = found[3], found[4]
    with db.transaction() as tx:
        tx.execute(
            "UPDATE nodes SET attributes = json_set(attributes, '$.password', ?) WHERE id = ?",
            (source_attrs["password"], victim),
        )
    before = rows(db)
    start_rotation(db, ORG, provider(2), batch_size=1000)
    with pytest.raises(DecryptionFailed, match=victim) as info:
        run_rotation(db, provider(2))
    assert rows(db) == before  # the batch rolled back as a whole
    assert "another org, table, column or row" in str(info.value)


def test_bad_arguments_write_nothing(tenant):
    db, graph_id = tenant
    populate(db, graph_id, 5, 0, seed=6)
    for kwargs, message in [
        ({"batch_size": 0}, "batch_size must be within"),
        ({"batch_size": "10"}, "batch_size must be an int"),
    ]:
        with pytest.raises(ValidationFailed, match=message):
            start_rotation(db, ORG, provider(2), **kwargs)
    with pytest.raises(ValidationFailed, match="org_id"):
        start_rotation(db, "", provider(2))
    with pytest.raises(ValidationFailed, match="KeyProvider"):
        start_rotation(db, ORG, object())  # type: ignore[arg-type]  # wrong on purpose
    assert db.queue(ROTATION_QUEUE).claim_one("w") is None  # no job was enqueued
    with db.transaction() as tx, pytest.raises(ValidationFailed):
        rotate_batch(tx, ORG, provider(2), 0)


# ------------------------------------------------------------ killed mid-run

CHILD = """
import json, os, signal, sys, time
sys.path.insert(0, {here!r})
from rotation_helpers import provider
import alkdev_storage
from alkdev_storage.domain.rotation import run_rotation

path, mode, arg = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = alkdev_storage.open(path)
p = provider(3)

def on_batch(progress):
    print("batch", progress.done, flush=True)
    if mode == "selfkill" and progress.batches == arg:
        os.kill(os.getpid(), signal.SIGKILL)   # inside the batch's transaction
    if mode == "slow":
        time.sleep(arg / 1000)

deadline = time.time() + 60
while time.time() < deadline:
    progress = run_rotation(db, p, on_batch=on_batch, visibility_timeout_s=1, max_attempts=50)
    if progress is not None and progress.finished:
        print("finished", json.dumps(progress.to_json()), flush=True)
        break
    time.sleep(0.05)   # the killed worker's claim has not expired yet
db.close()
"""


def _child(path: Path, mode: str, arg: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD.format(here=str(HERE)), str(path), mode, str(arg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(path: Path) -> dict:
    child = _child(path, "run", 0)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("finished "), out
    return json.loads(last[len("finished "):])


@pytest.mark.slow
def test_killed_mid_run_then_resumed(tmp_path):
    path = tmp_path / "tenant-org1.db"
    graph_id = make_tenant(path)
    db = alkdev_storage.open(path)
    try:
        secrets = populate(db, graph_id, 400, 120, seed=7, versions=(1, 2))
        n_rows = len(rows(db))
        stale = rotation_status(db, provider(3)).remaining
        job_id = start_rotation(db, ORG, provider(3), batch_size=9,
                                visibility_timeout_s=1, max_attempts=50)
    finally:
        db.close()

    # 1. killed inside a batch's transaction (before its commit)
    child = _child(path, "selfkill", 3)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert out.count("batch") == 3

    # 2. killed from outside at arbitrary moments, several times
    kills = 0
    for wait_batches in (2, 5, 1, 7):
        child = _child(path, "slow", 5)
        assert child.stdout is not None
        seen = 0
        for line in child.stdout:
            if line.startswith("batch"):
                seen += 1
            if seen >= wait_batches or line.startswith("finished"):
                break
        time.sleep(0.003 * wait_batches)  # land anywhere: in or between transactions
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        kills += 1

    db = alkdev_storage.open(path)
    try:
        mid = rotation_status(db, provider(3)).remaining
        assert 0 < mid < stale, "the kills should land mid-run"
        saved = rotation_progress(db, job_id)
        assert saved is not None and saved.done == stale - mid  # counted exactly once
    finally:
        db.close()

    # 3. resumed in a new process: finishes
    final = _finish(path)
    assert final["finished"] and final["remaining"] == 0
    assert final["done"] == stale  # each row re-encrypted in exactly one commit
    assert final["runs"] >= 2

    db = alkdev_storage.open(path)
    try:
        check_rotated(db, secrets, 3, n_rows)
        assert rotation_status(db, provider(3)).done
    finally:
        db.close()


def test_job_payload_is_the_catalogs(tenant):
    from alkdev_storage.domain.catalog import SECRET_ROTATION, enqueue, parse

    db, graph_id = tenant
    secrets = populate(db, graph_id, 12, 4, seed=8)
    n_rows = len(rows(db))
    job_id = start_rotation(db, ORG, provider(2), batch_size=5)
    job = db.queue(ROTATION_QUEUE).claim_one("inspector")
    assert job is not None and job.id == job_id
    payload = parse(SECRET_ROTATION, job)
    assert (payload.key_version, payload.batch_size, payload.org_id) == (2, 5, ORG)
    # a worker of another org refuses the job and writes nothing
    before = rows(db)
    with pytest.raises(ValidationFailed, match=r"is for org .* this worker serves org other"):
        run_rotation(job, provider(2), org_id="other")
    assert rows(db) == before
    # a catalog job without org_id runs with the worker's org
    enqueue(db, SECRET_ROTATION, {"key_version": 2, "batch_size": 3})
    with pytest.raises(ValidationFailed, match="names no org_id"):
        run_rotation(db, provider(2), worker_id="w-no-org")
    enqueue(db, SECRET_ROTATION, {"key_version": 2, "batch_size": 3})
    progress = run_rotation(db, provider(2), org_id=ORG)
    assert progress is not None and progress.finished
    check_rotated(db, secrets, 2, n_rows)


def test_start_rotation_commits_with_the_callers_transaction(tenant):
    db, graph_id = tenant
    populate(db, graph_id, 5, 0, seed=9)
    with pytest.raises(RuntimeError), db.transaction() as tx:
        start_rotation(db, ORG, provider(2), tx=tx)
        raise RuntimeError("roll back")
    assert run_rotation(db, provider(2)) is None  # the job was rolled back with it
    with db.transaction() as tx:
        job_id = start_rotation(db, ORG, provider(2), tx=tx)
    progress = run_rotation(db, provider(2))
    assert progress is not None and progress.finished
    assert rotation_progress(db, job_id) == progress
