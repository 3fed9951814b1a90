"""File names come only from validated ids: adversarial ids are refused
before any path is built, and nothing is created outside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alkdev_storage.errors import NotFound, ValidationFailed
from alkdev_storage.schema import new_id
from alkdev_storage.tenancy import Hub, check_id, tenant_file_name
from alkdev_storage.tenancy.paths import ID_PATTERN, tenant_path

BAD_IDS = [
    "", "..", "../system", "../../etc/passwd", "a/b", "a\\b", "/abs", ".hidden",
    "file:tenant.db?mode=rwc", "tenant.db?mode=memory", ":memory:", "x\x00y",
    "01HZZZZZZZZZZZZZZZZZZZZZZ", "01HZZZZZZZZZZZZZZZZZZZZZZZZ", "01hzzzzzzzzzzzzzzzzzzzzzzz",
    "01HZZZZZZZZZZZZZZZZZZZZZZI", "01HZZZZZZZZZZZZZZZZZZZZZZU", "81HZZZZZZZZZZZZZZZZZZZZZZZ",
    " 01HZZZZZZZZZZZZZZZZZZZZZZ", "01HZZZZZZZZZZZZZZZZZZZZZZZ\n", "system", "%2e%2e",
    "..\u2215x", "01HZZZZZZZZZZZZZZZZZZZZZ/Z",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        tenant_file_name(bad)
    assert info.value.field == "org_id"
    assert "org_id" in str(info.value)


@pytest.mark.parametrize("bad", [None, 5, b"01HZZZZZZZZZZZZZZZZZZZZZZZ", ["x"]])
def test_non_strings_are_refused(bad: object) -> None:
    with pytest.raises(ValidationFailed):
        check_id(bad)


def test_new_ids_are_valid_and_stay_in_the_root(tmp_path: Path) -> None:
    for _ in range(100):
        oid = new_id()
        path = tenant_path(tmp_path, oid)
        assert os.path.dirname(path) == str(tmp_path)
        assert os.path.basename(path) == f"tenant-{oid}.db"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_accepted_iff_it_matches_the_ulid_pattern(text: str) -> None:
    ok = ID_PATTERN.fullmatch(text) is not None
    try:
        name = tenant_file_name(text)
    except ValidationFailed:
        assert not ok
    else:
        assert ok and name == f"tenant-{text}.db" and "/" not in name and ".." not in name


@pytest.mark.parametrize("bad", ["../system", "..", "x/../../y", ".hidden", "file:x?mode=rwc"])
def test_hub_entry_points_refuse_bad_ids_and_create_nothing(hub: Hub, bad: str) -> None:
    before = sorted(os.listdir(hub.root))
    for call in (lambda: hub.tenant(bad), lambda: hub.tenant_path(bad),
                 lambda: hub.archive(bad), lambda: hub.destroy(bad),
                 lambda: hub.backup(bad, os.path.join(hub.root, "b.db"))):
        with pytest.raises(ValidationFailed):
            call()
    assert sorted(os.listdir(hub.root)) == before


def test_a_valid_but_unknown_id_is_not_found(hub: Hub) -> None:
    with pytest.raises(NotFound):
        hub.tenant(new_id())


def test_the_tenant_list_comes_from_the_registry_not_the_directory(hub: Hub, org: str) -> None:
    stray = new_id()
    Path(hub.root, f"tenant-{stray}.db").write_bytes(b"")
    assert [t["org_id"] for t in hub.tenants()] == [org]
    with pytest.raises(NotFound):
        hub.tenant(stray)
