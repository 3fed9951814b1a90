"""new_id(), utcnow() and UTCDateTime: ids sort by creation, are 26
URL-safe characters and never repeat; timestamps round-trip through a real
file and their text sorts by time; naive datetimes are refused."""

from __future__ import annotations

import itertools
import os
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alkdev_storage.schema import UTCDateTime, new_id, utcnow
from alkdev_storage.sqlalchemy import create_engine

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def decode(ulid: str) -> int:
    value = 0
    for ch in ulid:
        value = value * 32 + CROCKFORD.index(ch)
    return value


def ulid_ms(ulid: str) -> int:
    return decode(ulid) >> 80


@given(st.integers(min_value=2, max_value=300))
def test_ids_sort_in_creation_order_and_are_url_safe(n: int) -> None:
    ids = [new_id() for _ in range(n)]
    assert ids == sorted(ids)
    assert len(set(ids)) == n
    for i in ids:
        assert len(i) == 26
        assert set(i) <= set(CROCKFORD)
        assert urllib.parse.quote(i, safe="") == i
        assert i[0] in "01234567"  # 128 bits: the first character carries 3


def test_id_time_part_is_the_creation_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    i = new_id()
    after = time.time_ns() // 1_000_000
    # monotonic ids may borrow at most a millisecond ahead under a burst
    assert before <= ulid_ms(i) <= after + 1


def test_ids_in_one_millisecond_increment_the_random_part() -> None:
    ids = [new_id() for _ in range(2000)]
    by_ms: dict[int, list[int]] = {}
    for i in ids:
        by_ms.setdefault(ulid_ms(i), []).append(decode(i))
    burst = max(by_ms.values(), key=len)
    assert len(burst) > 1  # 2000 ids do not each get a millisecond of their own
    assert [b - a for a, b in itertools.pairwise(burst)] == [1] * (len(burst) - 1)


def test_ids_from_many_threads_are_unique_and_increase_per_thread() -> None:
    per_thread: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def work(out: list[str]) -> None:
        start.wait()
        for _ in range(2000):
            out.append(new_id())

    threads = [threading.Thread(target=work, args=(o,)) for o in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for o in per_thread for i in o]
    assert len(set(everything)) == len(everything) == 16000
    for o in per_thread:
        assert o == sorted(o)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_does_not_continue_the_parents_sequence() -> None:
    new_id()  # the parent has a last id
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.write(w, ",".join(new_id() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(w)
    parent = [new_id() for _ in range(50)]
    with os.fdopen(r) as f:
        child = f.read().split(",")
    os.waitpid(pid, 0)
    assert len(child) == 50
    assert not set(child) & set(parent)


def test_utcnow_is_aware_utc_in_milliseconds() -> None:
    now = utcnow()
    assert now.tzinfo is UTC
    assert now.microsecond % 1000 == 0
    assert abs(datetime.now(UTC) - now) < timedelta(seconds=5)


# ---------------------------------------------------------------------
# UTCDateTime through a real file
# ---------------------------------------------------------------------

META = sa.MetaData()
STAMPS = sa.Table(
    "stamps",
    META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=True),
)


@pytest.fixture(scope="module")
def stamps_engine(tmp_path_factory):
    engine = create_engine(tmp_path_factory.mktemp("types") / "stamps.db")
    META.create_all(engine)
    yield engine
    engine.dispose()


def truncated_utc(value: datetime) -> datetime:
    v = value.astimezone(UTC)
    return v.replace(microsecond=v.microsecond // 1000 * 1000)


aware = st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.one_of(
        st.just(UTC),
        st.timezones(),
        st.builds(
            timezone,
            st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)),
        ),
    ),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(aware, min_size=1, max_size=10))
def test_datetimes_round_trip_and_text_sorts_by_time(stamps_engine, values) -> None:
    with stamps_engine.begin() as c:
        c.execute(STAMPS.delete())
        c.execute(STAMPS.insert(), [{"id": i, "at": v} for i, v in enumerate(values)])
    with stamps_engine.connect() as c:
        back = dict(c.execute(sa.select(STAMPS.c.id, STAMPS.c.at)).all())
        raw = dict(c.exec_driver_sql("SELECT id, at FROM stamps").all())
    for i, v in enumerate(values):
        assert back[i] == truncated_utc(v)
        assert back[i].tzinfo == UTC
        assert len(raw[i]) == 24 and raw[i].endswith("Z") and raw[i][10] == "T"
    # text order is time order
    by_text = sorted(range(len(values)), key=lambda i: raw[i])
    by_time = sorted(range(len(values)), key=lambda i: truncated_utc(values[i]))
    assert [truncated_utc(values[i]) for i in by_text] == [
        truncated_utc(values[i]) for i in by_time
    ]


def test_utcnow_round_trips_exactly(stamps_engine) -> None:
    now = utcnow()
    with stamps_engine.begin() as c:
        c.execute(STAMPS.delete())
        c.execute(STAMPS.insert().values(id=1, at=now))
    with stamps_engine.connect() as c:
        assert c.execute(sa.select(STAMPS.c.at)).scalar_one() == now


def test_the_server_default_format_matches(stamps_engine) -> None:
    from alkdev_storage.schema.types import UTC_NOW_SQL, parse_utc

    with stamps_engine.connect() as c:
        text = c.exec_driver_sql(f"SELECT {UTC_NOW_SQL}").scalar_one()
    assert len(text) == 24
    assert abs(parse_utc(text) - utcnow()) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("value", "exc", "match"),
    [
        (datetime(2024, 1, 2, 3, 4, 5), ValueError, "naive datetime 2024-01-02T03:04:05 refused"),
        ("2024-01-02T03:04:05.000Z", TypeError, "expected a datetime, not str"),
        (1700000000, TypeError, "expected a datetime, not int"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(stamps_engine, value, exc, match) -> None:
    with stamps_engine.begin() as c:
        c.execute(STAMPS.delete())
    with pytest.raises(sa.exc.StatementError, match=match) as info:
        with stamps_engine.begin() as c:
            c.execute(STAMPS.insert().values(id=1, at=value))
    assert isinstance(info.value.orig, exc)
    with stamps_engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM stamps").scalar_one() == 0


def test_none_is_null(stamps_engine) -> None:
    with stamps_engine.begin() as c:
        c.execute(STAMPS.delete())
        c.execute(STAMPS.insert().values(id=1, at=None))
    with stamps_engine.connect() as c:
        assert c.exec_driver_sql("SELECT at IS NULL FROM stamps").scalar_one() == 1
        assert c.execute(sa.select(STAMPS.c.at)).scalar_one() is None


def test_comparisons_bind_through_the_type(stamps_engine) -> None:
    base = datetime(2030, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    with stamps_engine.begin() as c:
        c.execute(STAMPS.delete())
        c.execute(
            STAMPS.insert(), [{"id": i, "at": base + timedelta(minutes=i)} for i in range(5)]
        )
    plus_two = timezone(timedelta(hours=2))
    with stamps_engine.connect() as c:
        ids = c.execute(
            sa.select(STAMPS.c.id)
            .where(STAMPS.c.at >= (base + timedelta(minutes=2)).astimezone(plus_two))
            .order_by(STAMPS.c.id)
        ).scalars()
        assert list(ids) == [2, 3, 4]


def test_python_type_is_datetime() -> None:
    assert UTCDateTime().python_type is datetime
