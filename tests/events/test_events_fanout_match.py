"""The primitives hook the events layer needs: a fan-out listener with a
``match`` function (prefix/pattern/set-of-channels subscriptions) fed by
the Database's one read per commit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alkdev_storage.primitives.fanout import fanout_of
from alkdev_storage.primitives.notify import Listener


def drain(lst: Listener) -> list[tuple[str, Any]]:
    out = []
    while (n := lst.get(0)) is not None:
        out.append((n.channel, n.payload))
    return out


def test_match_listener_gets_matching_channels_from_the_same_read(db) -> None:  # type: ignore[no-untyped-def]
    exact = db.listen("graph:1")
    pref = Listener(db, "graph:*", match=lambda c: c.startswith("graph:"))
    fan = fanout_of(db)
    with db.transaction() as tx:
        tx.notify("graph:1", 1)
        tx.notify("graph:2", 2)
        tx.notify("other", 3)
    q0 = fan.queries
    got = [pref.get(5)]
    got += [n for n in [pref.get(0)] if n is not None]
    assert [(n.channel, n.payload) for n in got] == [("graph:1", 1), ("graph:2", 2)]
    assert pref.get(0) is None
    e = exact.get(5)
    assert (e.channel, e.payload) == ("graph:1", 1)
    # The exact listener's rows came from the read the match listener's wait
    # triggered: one read (one or two SELECTs) for the commit, not one each.
    assert fan.queries - q0 <= 2
    assert fan.listener_count() == 2
    pref.close()
    exact.close()
    assert fan.listener_count() == 0


def test_match_listener_has_no_history_and_is_ordered(db) -> None:  # type: ignore[no-untyped-def]
    db.notify("a:1", "old")
    lst = Listener(db, "a", match=lambda c: c.startswith("a:"))
    for i in range(5):
        db.notify(f"a:{i}", i)
    got = [lst.get(5) for _ in range(5)]
    assert [n.payload for n in got] == list(range(5))
    assert [n.id for n in got] == sorted(n.id for n in got)
    lst.close()


def test_a_raising_match_counts_as_no_match_and_spares_the_others(db) -> None:  # type: ignore[no-untyped-def]
    def bad(channel: str) -> bool:
        raise RuntimeError("boom")

    broken = Listener(db, "bad", match=bad)
    good = db.listen("x")
    db.notify("x", 1)
    assert good.get(5).payload == 1
    assert broken.get(0.05) is None
    broken.close()
    good.close()


def test_match_must_be_callable(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="match must be callable"):
        Listener(db, "x", match="graph:*")  # type: ignore[arg-type]


def test_retention_floor_counts_match_listeners(db) -> None:  # type: ignore[no-untyped-def]
    fan = fanout_of(db)
    assert fan.floor() is None
    lst = Listener(db, "all", match=lambda c: True)
    assert fan.floor() is not None
    lst.close()
    assert fan.floor() is None


def test_closing_a_blocked_match_listener_wakes_it(db) -> None:  # type: ignore[no-untyped-def]
    lst = Listener(db, "m", match=lambda c: c == "m")
    box: list[Any] = []
    t = threading.Thread(target=lambda: box.append(list(lst)))
    t.start()
    db.notify("m", 1)
    import time

    time.sleep(0.1)
    lst.close()
    t.join(5)
    assert not t.is_alive()
    assert [n.payload for n in box[0]] == [1]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(st.sampled_from(["g:1", "g:2", "h:1", "g", "x:g:1", "h:22"]), max_size=25),
    prefixes=st.sets(st.sampled_from(["g:", "h:", "x:", "g"]), min_size=1, max_size=3),
)
def test_match_delivery_matches_an_oracle(db, writes: list[str], prefixes: set[str]) -> None:  # type: ignore[no-untyped-def]
    def match(c: str) -> bool:
        return any(c.startswith(p) for p in prefixes)

    lst = Listener(db, "oracle", match=match)
    try:
        if writes:
            with db.transaction() as tx:
                for i, ch in enumerate(writes):
                    tx.notify(ch, i)
        expected = [(ch, i) for i, ch in enumerate(writes) if match(ch)]
        got: list[tuple[str, Any]] = []
        while len(got) < len(expected):
            n = lst.get(5)
            assert n is not None
            got.append((n.channel, n.payload))
        assert lst.get(0.02) is None
        assert got == expected
    finally:
        lst.close()
