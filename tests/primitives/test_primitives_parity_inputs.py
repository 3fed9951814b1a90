"""Bad input to the primitives: refused with an error naming the argument,
nothing written (issue 8, item 7)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parity_helpers import file_oracle

import alkdev_storage
from alkdev_storage.errors import InterfaceError

NOT_INTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=3),
    st.just(Decimal("1")),
    st.just(b"1"),
)


def _live(db_path: Any) -> int:
    return int(file_oracle(db_path, "SELECT COUNT(*) FROM _honker_live")[0][0])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bad=NOT_INTS,
    arg=st.sampled_from(["delay", "run_at", "priority", "expires"]),
)
def test_enqueue_refuses_non_integers_naming_the_argument(db, db_path, bad, arg) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("inputs")
    with pytest.raises(TypeError, match=arg):
        q.enqueue("x", **{arg: bad})
    assert _live(db_path) == 0  # oracle: nothing was written


def test_integral_floats_and_bools_are_refused_not_truncated(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("trunc")
    for kwargs in ({"delay": 1.0}, {"delay": 1.9}, {"priority": True}, {"expires": 2.5}):
        with pytest.raises(TypeError):
            q.enqueue(1, **kwargs)
    with pytest.raises(TypeError, match="visibility_timeout_s"):
        db.queue("t2", visibility_timeout_s=30.0)
    with pytest.raises(TypeError, match="max_attempts"):
        db.queue("t3", max_attempts=True)
    with pytest.raises(TypeError, match="ttl"):
        db.lock("l", ttl=1.5)
    with pytest.raises(TypeError, match="delay_s"):
        q.retry(1, "w", 1.5, "e")
    with pytest.raises(TypeError, match="extend_s"):
        q.heartbeat(1, "w", 2.0)
    with pytest.raises(TypeError, match="ttl"):
        q.save_result(1, "v", ttl=0.5)
    with pytest.raises(TypeError, match="job_id"):
        q.ack(1.0, "w")  # type: ignore[arg-type]
    # integers of other types (anything with __index__) are fine
    import array

    assert q.enqueue(1, priority=array.array("q", [3])[0]) > 0


def test_out_of_range_integers_name_the_argument(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("range")
    for arg in ("priority", "delay", "run_at", "expires"):
        with pytest.raises(ValueError, match=arg):
            q.enqueue(1, **{arg: 2**63})
    with pytest.raises(ValueError, match="priority"):
        db.scheduler().add("n", "q", "@every 1s", priority=-(2**64))
    with pytest.raises(ValueError, match="n must fit"):
        q.claim_batch("w", 2**64)
    assert q.stats()["pending"] == 0


def test_names_are_checked_with_their_name(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="channel"):
        db.notify(5, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="channel"):
        db.listen(None)  # type: ignore[arg-type]
    q = db.queue("names")
    with pytest.raises(TypeError, match="worker_id"):
        q.ack(1, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="worker_id"):
        q.ack_batch([1], None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="worker_id"):
        q.retry(1, None, 1, "e")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="worker_id"):
        q.fail(1, 3, "e")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="worker_id"):
        q.heartbeat(1, b"w")  # type: ignore[arg-type]


def test_claim_on_a_closed_database_raises_like_claim_one(db_path) -> None:  # type: ignore[no-untyped-def]
    db = alkdev_storage.open(db_path)
    q = db.queue("closed")
    db.close()
    with pytest.raises(InterfaceError) as one:
        q.claim_one("w")
    with pytest.raises(InterfaceError) as it:
        q.claim("w")
    assert str(one.value) == str(it.value)


def test_wait_durations_are_numbers_of_seconds(db) -> None:  # type: ignore[no-untyped-def]
    q = db.queue("durations")
    s = db.stream("durations")
    with pytest.raises(TypeError, match="idle_poll_s"):
        q.claim("w", idle_poll_s="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout"):
        q.claim("w", timeout=True)
    with pytest.raises(ValueError, match="timeout"):
        q.claim("w", timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        q.wait_result_blocking(1, timeout=float("nan"))
    with pytest.raises(TypeError, match="save_every_s"):
        s.subscribe("c", save_every_s="1")  # type: ignore[arg-type]
    # floats are fine for waits: they are durations, not stored values
    assert list(q.claim("w", idle_poll_s=0.05, timeout=0.1)) == []
