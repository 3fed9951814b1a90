"""prune_notifications (honker's rules: age OR per-channel rank) and the
opt-in automatic retention that never outruns a live listener (docs/0014)."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alkdev_storage.primitives.fanout import fanout_of


def model(
    rows: list[tuple[int, str, int]], now: int, older_than_s: int | None, max_keep: int | None
) -> set[int]:
    """Plain-Python rules: ids deleted from rows (id, channel, created_at)."""
    gone: set[int] = set()
    if older_than_s is not None:
        gone |= {i for i, _, created in rows if created < now - older_than_s}
    if max_keep is not None:
        by_channel: dict[str, list[int]] = {}
        for i, c, _ in rows:
            by_channel.setdefault(c, []).append(i)
        for ids in by_channel.values():
            gone |= set(sorted(ids, reverse=True)[max_keep:])
    return gone


def all_rows(db) -> list[tuple[int, str, int]]:  # type: ignore[no-untyped-def]
    sql = "SELECT id, channel, created_at FROM _honker_notifications ORDER BY id"
    return [tuple(r) for r in db.fetchall(sql)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(st.sampled_from(["a", "b", "c:1", "c:2"]), st.integers(0, 500))),
    older_than_s=st.none() | st.integers(0, 600),
    max_keep=st.none() | st.integers(0, 6),
)
def test_prune_matches_model(db, rows, older_than_s, max_keep) -> None:  # type: ignore[no-untyped-def]
    db.execute("DELETE FROM _honker_notifications")
    now = db.fetchone("SELECT unixepoch()")[0]
    with db.transaction() as tx:
        for channel, age in rows:
            tx.execute(
                "INSERT INTO _honker_notifications (channel, payload, created_at) VALUES (?, ?, ?)",
                (channel, "1", now - age),
            )
    before = all_rows(db)
    expected = model(before, now, older_than_s, max_keep)
    deleted = db.prune_notifications(older_than_s=older_than_s, max_keep=max_keep)
    after = all_rows(db)
    assert deleted == len(expected)
    assert {r[0] for r in after} == {r[0] for r in before} - expected


def test_max_keep_is_per_channel(db) -> None:  # type: ignore[no-untyped-def]
    busy = [db.notify("busy", i) for i in range(10)]
    quiet = db.notify("quiet", 0)
    assert db.prune_notifications(max_keep=2) == 8
    assert {r[0] for r in all_rows(db)} == {busy[-2], busy[-1], quiet}


def test_bad_arguments_write_nothing(db) -> None:  # type: ignore[no-untyped-def]
    db.notify("x", 1)
    with pytest.raises(ValueError, match="max_keep"):
        db.prune_notifications(max_keep=-1)
    with pytest.raises(ValueError, match="older_than_s"):
        db.prune_notifications(older_than_s=-5)
    with pytest.raises(ValueError, match="every_s"):
        db.set_notification_retention(max_keep=1, every_s=0)
    with pytest.raises(ValueError, match="max_keep"):
        db.set_notification_retention(max_keep=-1)
    assert len(all_rows(db)) == 1


def test_prune_sees_rows_committed_before_it_took_the_lock(db) -> None:  # type: ignore[no-untyped-def]
    result: list[int] = []
    with db.transaction() as tx:
        for i in range(5):
            tx.notify("late", i)
        t = threading.Thread(target=lambda: result.append(db.prune_notifications(max_keep=0)))
        t.start()
        time.sleep(0.2)  # the prune waits for the writer
        assert not result
    t.join(10)
    assert result == [5]
    assert all_rows(db) == []


def test_automatic_retention_never_outruns_a_live_listener(db) -> None:  # type: ignore[no-untyped-def]
    listener = db.listen("r")
    ids = [db.notify("r", i) for i in range(10)]  # committed, not read yet
    db.set_notification_retention(max_keep=0, every_s=0.05)
    try:
        time.sleep(0.3)
        assert [r[0] for r in all_rows(db)] == ids  # nothing the listener lacks
        assert [listener.get(5).id for _ in range(10)] == ids
        assert fanout_of(db).floor() == ids[-1]
        deadline = time.monotonic() + 5
        while all_rows(db) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all_rows(db) == []  # read by the fan-out: may go
        listener.close()
        db.notify("r", "x")
        deadline = time.monotonic() + 5
        while all_rows(db) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all_rows(db) == []  # no listener: no floor
    finally:
        db.set_notification_retention()  # off
    assert db._retention is None


def test_retention_stops_with_database(db_path) -> None:  # type: ignore[no-untyped-def]
    import alkdev_storage

    db = alkdev_storage.open(db_path)
    db.set_notification_retention(older_than_s=3600, every_s=0.02)
    thread = db._retention._thread
    db.close()
    thread.join(5)
    assert not thread.is_alive()
