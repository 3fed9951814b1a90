"""Stream consumer offsets: validated, reset, deleted; the at-least-once
contract and the exactly-once ``save_offset(..., tx=tx)`` recipe."""

from __future__ import annotations

import pytest
from parity_helpers import file_oracle


def test_offsets_out_of_range_are_refused(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("v")
    other = db.stream("w")
    with pytest.raises(ValueError, match="past the end"):
        s.save_offset("c", 1)  # nothing published yet
    offs = [s.publish(i) for i in range(3)]
    last = other.publish("elsewhere")  # offsets are one sequence for every topic
    s.save_offset("c", offs[-1])
    s.save_offset("c", last)  # valid: nothing of topic v is skipped
    with pytest.raises(ValueError, match="past the end"):
        s.save_offset("c", last + 1)
    with pytest.raises(ValueError, match=">= 0"):
        s.save_offset("c", -1)
    with pytest.raises(TypeError, match="offset"):
        s.save_offset("c", 1.0)
    with pytest.raises(ValueError, match="from_offset"):
        s.subscribe("c", from_offset=last + 5)
    with pytest.raises(ValueError, match="from_offset"):
        s.read(-3)
    with pytest.raises(ValueError, match="limit"):
        s.read(0, limit=-1)
    assert s.get_offset("c") == last


def test_past_the_end_is_by_sequence_not_by_surviving_rows(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("pruned")
    offs = [s.publish(i) for i in range(4)]
    db.execute("DELETE FROM _honker_stream")  # retention removed every event
    s.save_offset("c", offs[-1])  # still a real offset
    with pytest.raises(ValueError):
        s.save_offset("c", offs[-1] + 1)


def test_reset_rewinds_and_delete_consumer_forgets(db, db_path) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("r")
    offs = [s.publish(i) for i in range(5)]
    s.save_offset("c", offs[3])
    s.save_offset("c", offs[1])  # save_offset never rewinds
    assert s.get_offset("c") == offs[3]
    s.reset("c", offs[1])  # reset does
    assert s.get_offset("c") == offs[1]
    sub = s.subscribe("c", timeout=0)
    assert [e.payload for e in sub] == [2, 3, 4]
    sub.close()
    s.reset("c")  # to 0: replay everything
    assert s.get_offset("c") == 0 and s.consumers() == {"c": 0}
    with pytest.raises(ValueError, match="past the end"):
        s.reset("c", offs[-1] + 1)
    assert s.delete_consumer("c") is True and s.delete_consumer("c") is False
    assert s.consumers() == {}
    assert file_oracle(db_path, "SELECT COUNT(*) FROM _honker_stream_consumers") == [(0,)]


def test_exactly_once_recipe_offset_commits_with_the_effect(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE ledger (event INTEGER PRIMARY KEY, amount INTEGER)")
    s = db.stream("billing")
    for amount in (10, 20, 30):
        s.publish({"amount": amount})

    def handle(crash_at: int | None) -> None:
        sub = s.subscribe("billing", save_every_n=0, save_every_s=0, timeout=0)
        try:
            for event in sub:
                with db.transaction() as tx:
                    tx.execute(
                        "INSERT INTO ledger VALUES (?, ?)", (event.offset, event.payload["amount"])
                    )
                    if event.payload["amount"] == crash_at:
                        raise RuntimeError("crash before commit")
                    s.save_offset("billing", event.offset, tx=tx)
        finally:
            sub.close()

    with pytest.raises(RuntimeError):
        handle(crash_at=20)
    handle(crash_at=None)  # resumes at the event whose transaction rolled back
    rows = db.fetchall("SELECT amount FROM ledger ORDER BY event")
    assert [r[0] for r in rows] == [10, 20, 30]  # each effect exactly once


def test_at_least_once_redelivers_the_event_being_handled(db) -> None:  # type: ignore[no-untyped-def]
    s = db.stream("alo")
    for i in range(3):
        s.publish(i)
    seen = []
    with pytest.raises(RuntimeError):
        with s.subscribe("c", timeout=0) as sub:
            for e in sub:
                seen.append(e.payload)
                if e.payload == 1:
                    raise RuntimeError("handler failed")
    with s.subscribe("c", timeout=0) as sub:
        seen += [e.payload for e in sub]
    assert seen == [0, 1, 1, 2]
