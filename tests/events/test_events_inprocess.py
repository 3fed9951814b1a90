"""The EventTarget protocol on the in-process target: DOM semantics,
patterns, sync and async listeners, errors, closing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alkdev_storage.errors import InterfaceError
from alkdev_storage.events import (
    CompositeEventTarget,
    DurableEventTarget,
    EphemeralEventTarget,
    Event,
    EventTarget,
    InProcessEventTarget,
    RedisEventTarget,
)
from alkdev_storage.events.event import from_envelope, pattern_matcher, to_envelope


def test_every_target_implements_the_protocol(db) -> None:  # type: ignore[no-untyped-def]
    eph = EphemeralEventTarget(db)
    targets = [
        InProcessEventTarget(),
        eph,
        DurableEventTarget(db),
        CompositeEventTarget(eph),
        RedisEventTarget(object(), group="g", consumer="c"),
    ]
    for t in targets:
        assert isinstance(t, EventTarget), t


def test_dispatch_calls_listeners_in_order_once_each() -> None:
    t = InProcessEventTarget()
    calls: list[tuple[str, Any]] = []

    def a(e: Event) -> None:
        calls.append(("a", e.detail))

    def b(e: Event) -> None:
        calls.append(("b", e.detail))

    t.add_event_listener("x", a)
    t.add_event_listener("x", b)
    t.add_event_listener("x", a)  # same listener, same type: kept once
    assert t.listener_count("x") == 2
    assert t.dispatch_event(Event("x", 1)) is True
    assert calls == [("a", 1), ("b", 1)]
    assert t.dispatch_event(Event("y", 2)) is False  # nobody listens
    t.remove_event_listener("x", a)
    t.remove_event_listener("x", a)  # unknown: no-op
    t.dispatch_event(Event("x", 3))
    assert calls[-1] == ("b", 3) and len(calls) == 3


def test_patterns_and_one_call_per_listener() -> None:
    t = InProcessEventTarget()
    got: list[str] = []

    def fn(e: Event) -> None:
        got.append(e.type)

    t.add_event_listener("graph:1", fn)
    t.add_event_listener("graph:*", fn)
    t.add_event_listener("*:created", fn)
    t.dispatch_event(Event("graph:1", None))  # matches two keys: called once
    t.dispatch_event(Event("graph:2", None))
    t.dispatch_event(Event("org:created", None))
    t.dispatch_event(Event("org:deleted", None))
    assert got == ["graph:1", "graph:2", "org:created"]
    t.remove_event_listener("graph:*", fn)
    t.dispatch_event(Event("graph:2", None))
    assert got == ["graph:1", "graph:2", "org:created"]


@given(
    pattern=st.text(alphabet="ab:*", min_size=1, max_size=6),
    type_=st.text(alphabet="ab:", min_size=1, max_size=8),
)
def test_pattern_matcher_matches_fnmatch_star(pattern: str, type_: str) -> None:
    import fnmatch

    # Oracle: fnmatch ('?' and '[' are not in the alphabet, so only '*' is special).
    assert pattern_matcher(pattern)(type_) == fnmatch.fnmatchcase(type_, pattern)


def test_listener_errors_reach_the_dispatcher_after_every_listener_ran() -> None:
    t = InProcessEventTarget()
    ran: list[str] = []

    def bad(e: Event) -> None:
        ran.append("bad")
        raise KeyError("boom")

    t.add_event_listener("x", bad)
    t.add_event_listener("x", lambda e: ran.append("good"))
    with pytest.raises(KeyError, match="boom"):
        t.dispatch_event(Event("x"))
    assert ran == ["bad", "good"]


@pytest.mark.parametrize(
    ("call", "exc", "text"),
    [
        (lambda t: t.dispatch_event("x"), TypeError, "takes an Event"),
        (lambda t: t.dispatch_event(Event("")), ValueError, "must not be empty"),
        (lambda t: t.dispatch_event(Event(3)), TypeError, "must be a str"),  # type: ignore[arg-type]
        (lambda t: t.dispatch_event(Event("a:*")), ValueError, "patterns are for listening"),
        (lambda t: t.add_event_listener("x", 3), TypeError, "must be callable"),
        (lambda t: t.add_event_listener("", print), ValueError, "must not be empty"),
        (lambda t: t.dispatch_event(Event("x"), tx=object()), TypeError, "needs the database"),
    ],
)
def test_bad_input_is_refused(call: Any, exc: type[Exception], text: str) -> None:
    t = InProcessEventTarget()
    got: list[Event] = []
    t.add_event_listener("x", got.append)
    with pytest.raises(exc, match=text):
        call(t)
    assert got == []


def test_async_listener_must_be_added_in_a_loop() -> None:
    async def fn(e: Event) -> None:
        pass

    with pytest.raises(TypeError, match="running event loop"):
        InProcessEventTarget().add_event_listener("x", fn)


def test_async_listeners_run_on_their_loop_from_any_thread() -> None:
    t = InProcessEventTarget()
    got: list[tuple[Any, int]] = []
    done = asyncio.Event()

    async def main() -> None:
        loop_thread = threading.get_ident()

        async def fn(e: Event) -> None:
            got.append((e.detail, threading.get_ident()))
            if len(got) == 2:
                done.set()

        t.add_event_listener("x", fn)
        t.dispatch_event(Event("x", "same thread"))
        th = threading.Thread(target=lambda: t.dispatch_event(Event("x", "other thread")))
        th.start()
        await asyncio.wait_for(done.wait(), 5)
        th.join()
        assert {d for d, _ in got} == {"same thread", "other thread"}
        assert all(tid == loop_thread for _, tid in got)

    asyncio.run(main())


def test_close_removes_listeners_and_refuses_dispatch() -> None:
    t = InProcessEventTarget()
    got: list[Event] = []
    t.add_event_listener("x", got.append)
    t.close()
    assert t.listener_count() == 0
    with pytest.raises(InterfaceError, match="closed"):
        t.dispatch_event(Event("x"))
    with pytest.raises(InterfaceError, match="closed"):
        t.add_event_listener("x", got.append)
    assert got == []


@given(
    detail=st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=8,
    ),
    origin=st.none() | st.text(max_size=8),
    eid=st.none() | st.text(max_size=8),
)
def test_envelope_round_trips(detail: Any, origin: str | None, eid: str | None) -> None:
    import json

    env = json.loads(json.dumps(to_envelope(Event("t", detail, id=eid), origin)))
    assert from_envelope("t", env) == (detail, origin, eid)


def test_a_foreign_payload_is_its_own_detail() -> None:
    assert from_envelope("t", {"graph_id": "g"}) == ({"graph_id": "g"}, None, None)
    assert from_envelope("t", [1, 2]) == ([1, 2], None, None)
