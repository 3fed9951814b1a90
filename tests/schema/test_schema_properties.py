"""Random accounts and organizations against a plain Python model of the
CHECK rules: raw SQL stores exactly what the model accepts; whatever the
Python validators accept, the database accepts; for ASCII input the
validators accept exactly what normalizes to a storable value."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alkdev_storage.errors import ValidationFailed
from alkdev_storage.schema import SystemBase, normalize_email, validate_slug
from alkdev_storage.schema.system import ACCESS_LEVELS, ACCOUNT_STATUSES
from alkdev_storage.sqlalchemy import create_engine

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# ---------------------------------------------------------------------
# The oracle: the CHECK constraints, in plain Python
# ---------------------------------------------------------------------


def sqlite_lower(s: str) -> str:
    """SQLite's lower() without ICU: ASCII letters only."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def email_storable(s: str) -> bool:
    if "\x00" in s:
        return False
    if s != sqlite_lower(s):
        return False
    if any(ord(c) <= 32 or ord(c) == 127 for c in s):
        return False
    return 3 <= len(s) <= 254 and "@" in s[1:-1]


def slug_storable(s: str) -> bool:
    return (
        "\x00" not in s
        and 3 <= len(s) <= 63
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in s)
        and not s.startswith("-")
        and not s.endswith("-")
    )


# ---------------------------------------------------------------------
# Inputs: mostly near the rules, sometimes anything
# ---------------------------------------------------------------------

TRICKY = st.sampled_from(
    ["@", "@", "@", "-", " ", "\t", "\n", "\x00", "\x7f", "\x1f", "A", "Z", "É", "é",
     "\u00a0", "\u2003", "ß", "İ", "K", "_", ".", "0", "9", "a", "z"]
)
CHARS = st.one_of(
    st.characters(min_codepoint=0x61, max_codepoint=0x7A),
    TRICKY,
    st.characters(exclude_categories=("Cs",)),
)
emails = st.one_of(
    st.text(CHARS, min_size=0, max_size=12),
    st.builds(
        lambda a, b, c: f"{a}@{b}{c}",
        st.text(CHARS, max_size=6),
        st.text(CHARS, max_size=6),
        st.sampled_from(["", ".com", " ", "\n"]),
    ),
    st.builds(lambda n: "a@" + "b" * n, st.integers(min_value=0, max_value=260)),
)
slugs = st.one_of(
    st.text(st.sampled_from("abcz09-"), min_size=0, max_size=70),
    st.text(CHARS, min_size=0, max_size=10),
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = create_engine(tmp_path_factory.mktemp("props") / "system.db")
    SystemBase.metadata.create_all(engine)
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO accounts (id, email) VALUES ('owner', 'owner@example.com')")
    yield engine
    engine.dispose()


def stored(engine: sa.Engine, sql: str, params: tuple[object, ...]) -> bool:
    """Run an INSERT in a transaction that is always rolled back: True if
    the database took the row, False on IntegrityError."""
    with engine.connect() as c:
        try:
            c.exec_driver_sql(sql, params)
            return True
        except sa.exc.IntegrityError:
            return False
        finally:
            c.rollback()


def store_email(engine: sa.Engine, email: str, level: str = "user", status: str = "active") -> bool:
    return stored(
        engine,
        "INSERT INTO accounts (id, email, access_level, status) VALUES ('x', ?, ?, ?)",
        (email, level, status),
    )


def store_slug(engine: sa.Engine, slug: str) -> bool:
    return stored(
        engine,
        "INSERT INTO organizations (id, slug, name, owner_id) VALUES ('o', ?, 'n', 'owner')",
        (slug,),
    )


@SETTINGS
@given(emails)
def test_raw_sql_stores_exactly_the_emails_the_rules_allow(engine, email) -> None:
    assert store_email(engine, email) == email_storable(email)


@SETTINGS
@given(emails)
def test_what_normalize_email_accepts_is_storable(engine, email) -> None:
    try:
        normalized = normalize_email(email)
    except ValidationFailed as e:
        assert e.field == "email"
        if email.isascii():
            assert not email_storable(email.strip().lower())
        return
    assert email_storable(normalized)
    assert store_email(engine, normalized)
    assert normalize_email(normalized) == normalized  # idempotent
    if email.isascii():
        assert normalized == email.strip().lower()


@SETTINGS
@given(slugs)
def test_raw_sql_and_validate_slug_agree_with_the_rules(engine, slug) -> None:
    allowed = slug_storable(slug)
    assert store_slug(engine, slug) == allowed
    if allowed:
        assert validate_slug(slug) == slug
    else:
        with pytest.raises(ValidationFailed) as info:
            validate_slug(slug)
        assert info.value.field == "slug"


@SETTINGS
@given(
    st.one_of(st.sampled_from(ACCESS_LEVELS), st.text(max_size=8)),
    st.one_of(st.sampled_from(ACCOUNT_STATUSES), st.text(max_size=8)),
)
def test_levels_and_statuses(engine, level, status) -> None:
    ok = level in ACCESS_LEVELS and status in ACCOUNT_STATUSES
    assert store_email(engine, "someone@example.com", level, status) == ok
