"""Commit-aware dispatch: the post-commit hook (a marker notification in
the caller's transaction, settled by the dispatcher) with native,
async and SQLAlchemy transactions, rollbacks, and refusals."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from events_helpers import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alkdev_storage
from alkdev_storage.events import Event, InProcessEventTarget, after_commit, dispatcher_of


def test_runs_after_commit_never_after_rollback(db) -> None:  # type: ignore[no-untyped-def]
    ran: list[str] = []
    with db.transaction() as tx:
        after_commit(db, tx, lambda: ran.append("c1"))
        after_commit(db, tx, lambda: ran.append("c2"))
        time.sleep(0.1)
        assert ran == []  # the transaction is still open
    with pytest.raises(KeyError), db.transaction() as tx:
        after_commit(db, tx, lambda: ran.append("rb"))
        raise KeyError
    d = dispatcher_of(db)
    assert d.wait_idle(5)
    assert ran == ["c1", "c2"]
    assert d.rolled_back == 1 and d.committed == 2


def test_rollback_is_settled_while_the_database_stays_quiet(db) -> None:  # type: ignore[no-untyped-def]
    tx = db.transaction()
    tx.__enter__()
    after_commit(db, tx, lambda: None)
    tx.rollback()
    d = dispatcher_of(db)
    assert d.pending == 1
    assert d.wait_idle(5)  # settled by a probe, no commit needed
    assert d.rolled_back == 1 and d.probes >= 1


def test_rollback_is_settled_while_the_dispatcher_idles(db) -> None:  # type: ignore[no-untyped-def]
    from alkdev_storage.events import EphemeralEventTarget

    EphemeralEventTarget(db).add_event_listener("x", print)
    d = dispatcher_of(db)
    time.sleep(0.1)  # its thread now waits (long) for notifications
    for _ in range(3):
        with pytest.raises(KeyError), db.transaction() as tx:
            after_commit(db, tx, lambda: None)
            raise KeyError
        assert d.wait_idle(2)  # not the idle check's 15 s
    assert d.rolled_back == 3


def test_a_long_transaction_is_not_settled_early(db) -> None:  # type: ignore[no-untyped-def]
    ran: list[int] = []
    with db.transaction() as tx:
        after_commit(db, tx, lambda: ran.append(1))
        time.sleep(0.3)  # several probe periods: the probe cannot take the writer
        assert dispatcher_of(db).pending == 1
    assert dispatcher_of(db).wait_idle(5)
    assert ran == [1]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(outcomes=st.lists(st.booleans(), min_size=1, max_size=8))
def test_many_transactions_match_their_outcomes(db, outcomes: list[bool]) -> None:  # type: ignore[no-untyped-def]
    ran: list[int] = []
    lock = threading.Lock()

    def hook(i: int) -> Any:
        def f() -> None:
            with lock:
                ran.append(i)

        return f

    for i, commit in enumerate(outcomes):
        try:
            with db.transaction() as tx:
                after_commit(db, tx, hook(i))
                tx.execute("SELECT 1")
                if not commit:
                    raise ValueError
        except ValueError:
            pass
    assert dispatcher_of(db).wait_idle(5)
    assert sorted(ran) == [i for i, c in enumerate(outcomes) if c]


def test_in_process_target_with_tx(db) -> None:  # type: ignore[no-untyped-def]
    t = InProcessEventTarget(db=db)
    got: list[Any] = []
    t.add_event_listener("x", lambda e: got.append(e.detail))
    with db.transaction() as tx:
        assert t.dispatch_event(Event("x", object), tx=tx) is True  # not JSON: never written
        assert got == []
    with pytest.raises(RuntimeError), db.transaction() as tx:
        t.dispatch_event(Event("x", "rolled back"), tx=tx)
        raise RuntimeError
    assert dispatcher_of(db).wait_idle(5)
    assert got == [object]


def test_async_transaction(db) -> None:  # type: ignore[no-untyped-def]
    t = InProcessEventTarget(db=db)

    async def main() -> list[Any]:
        got: list[Any] = []
        done = asyncio.Event()

        async def fn(e: Event) -> None:
            got.append(e.detail)
            done.set()

        t.add_event_listener("x", fn)
        async with db.atransaction() as tx:
            await t.adispatch_event(Event("x", 1), tx=tx)
        await asyncio.wait_for(done.wait(), 5)
        return got

    assert asyncio.run(main()) == [1]


def test_sqlalchemy_session_transaction(db) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from alkdev_storage.sqlalchemy import create_engine, honker_tx

    engine = create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    target = InProcessEventTarget(db=db)
    got: list[Any] = []
    target.add_event_listener("row", lambda e: got.append(e.detail))
    with Session(engine) as s, s.begin():
        s.execute(sa.text("INSERT INTO t VALUES (1)"))
        target.dispatch_event(Event("row", 1), tx=honker_tx(s))
    with pytest.raises(RuntimeError), Session(engine) as s, s.begin():
        s.execute(sa.text("INSERT INTO t VALUES (2)"))
        target.dispatch_event(Event("row", 2), tx=honker_tx(s))
        raise RuntimeError
    assert dispatcher_of(db).wait_idle(5)
    assert got == [1]
    engine.dispose()


def test_a_transaction_of_another_file_is_refused(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = alkdev_storage.open(tmp_path / "other.db")
    try:
        before = other.fetchone("SELECT COUNT(*) FROM _honker_notifications")[0]
        with other.transaction() as tx, pytest.raises(ValueError, match="not of"):
            after_commit(db, tx, lambda: None)
        assert other.fetchone("SELECT COUNT(*) FROM _honker_notifications")[0] == before
    finally:
        other.close()


@pytest.mark.parametrize(
    ("tx", "cb", "exc", "text"),
    [
        (object(), lambda: None, TypeError, "tx must be a transaction"),
        (None, "not callable", TypeError, "callback must be callable"),
    ],
)
def test_bad_arguments(db, tx: Any, cb: Any, exc: type[Exception], text: str) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as real:
        with pytest.raises(exc, match=text):
            after_commit(db, tx if tx is not None else real, cb)
        assert real.fetchone("SELECT COUNT(*) FROM _honker_notifications")[0] == 0


def test_an_ended_transaction_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as tx:
        pass
    with pytest.raises(alkdev_storage.InterfaceError):
        after_commit(db, tx, lambda: None)
    wait_for(lambda: dispatcher_of(db).pending == 0, what="no pending hook")
