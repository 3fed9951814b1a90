"""The README's examples run as written: each ```python block whole, on its
own, in a fresh temporary directory and a fresh namespace (a block relies on
nothing another block or the test defines). The results are checked on the
database file with the stdlib sqlite3 module and on what the block prints."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import alkdev_storage

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks() -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block of the README."""
    text = README.read_text()
    found = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        found.append((text.count("\n", 0, m.start(1)) + 1, m.group(1)))
    return found


def block_with(marker: str) -> tuple[int, str]:
    matching = [b for b in blocks() if marker in b[1]]
    assert len(matching) == 1, f"expected one README block containing {marker!r}"
    return matching[0]


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def run_block(block: tuple[int, str]) -> dict[str, Any]:
    """Execute one block whole in a fresh namespace; tracebacks point at
    README.md lines. Every Database the block leaves in its namespace must
    be closed (samples clean up after themselves)."""
    line, code = block
    ns: dict[str, Any] = {"__name__": "__readme__"}
    # dont_inherit: run as written, without this file's __future__ imports.
    exec(compile("\n" * (line - 1) + code, str(README), "exec", dont_inherit=True), ns)
    for name, value in ns.items():
        if isinstance(value, alkdev_storage.Database):
            assert value.closed, f"README block at line {line} leaves `{name}` open"
    return ns


def oracle(query: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect("app.db")
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("block", blocks(), ids=lambda b: f"line{b[0]}")
def test_every_block_runs_whole_on_its_own(
    in_tmp: Path, block: tuple[int, str], request: pytest.FixtureRequest
) -> None:
    with redis_for(block, request):
        run_block(block)


@contextlib.contextmanager
def redis_for(block: tuple[int, str], request: pytest.FixtureRequest) -> Iterator[None]:
    """A block that talks to Redis gets our own test server (REDIS_URL)."""
    if "import redis" not in block[1]:
        yield
        return
    server = request.getfixturevalue("redis_server")
    server.client().flushall()
    old = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = f"redis://{server.host}:{server.port}/0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["REDIS_URL"]
        else:
            os.environ["REDIS_URL"] = old


def test_there_are_samples_to_run() -> None:
    assert len(blocks()) >= 3


def test_quick_start(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ns = run_block(block_with("db.prepare("))
    assert ns["r"] == alkdev_storage.ExecResult(1, 1)
    assert ns["n"] == (2,)
    out = capsys.readouterr().out.splitlines()
    assert out == ["(1, 'ada')", "(1, 'ada')", "(2, 'grace')"]
    assert oracle("SELECT id, name FROM users ORDER BY id") == [(1, "ada"), (2, "grace")]
    assert oracle("SELECT channel, payload FROM _honker_notifications") == [("users", '{"id":2}')]


def test_primitives(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ns = run_block(block_with("db.queue("))
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "sent {'order': 42}",
        f"{ns['offset']} {{'kind': 'login'}}",
        "orders {'id': 42}",
        "rate limit ok: True",
    ]
    assert oracle("SELECT id FROM orders") == [(42,)]
    assert oracle("SELECT count(*) FROM _honker_live WHERE queue = 'emails'") == [(0,)]
    assert oracle("SELECT name FROM _honker_scheduler_tasks") == [("cleanup",)]


def test_sqlalchemy(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_block(block_with("sqlite+honker://"))
    assert capsys.readouterr().out.splitlines() == ["ada"]
    assert oracle("SELECT id, name FROM users") == [(1, "ada")]
    assert oracle("SELECT channel, payload FROM _honker_notifications") == [
        ("account:created", '{"name":"ada"}')
    ]
    assert oracle("SELECT queue, payload FROM _honker_live") == [
        ("account-maintenance", '{"n":"ada"}')
    ]


def test_async_writes(in_tmp: Path) -> None:
    run_block(block_with("atransaction()"))
    assert oracle("SELECT file FROM uploads") == [("dog.png",)]
    # both jobs were claimed and acked; the notification was written
    assert oracle("SELECT count(*) FROM _honker_live WHERE queue = 'thumbnails'") == [(0,)]
    assert oracle("SELECT channel, payload FROM _honker_notifications") == [
        ("uploads", '{"file":"cat.png"}')
    ]


def test_schema_graph_types_and_secrets(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_block(block_with("SecretSealer(keys)"))
    assert capsys.readouterr().out.splitlines() == [
        "refused: attributes.estimate_h",
        "system-scope types are protected",
        "hunter2",
        "rotated: True",
    ]
    con = sqlite3.connect("tenant-acme.db")
    try:
        rows = con.execute("SELECT key, attributes, key_version FROM nodes ORDER BY key").fetchall()
    finally:
        con.close()
    assert [r[0] for r in rows] == ["a", "b", "db-password"]  # "c" was never written
    secret = rows[-1]
    assert "hunter2" not in secret[1] and secret[2] == 2  # encrypted, on the new key


def test_operations(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_block(block_with("generate(config)"))
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["True None", "hidden from bob"]
    assert out[2] == str(
        sorted(f"notes.{op}" for op in ("create", "get", "list", "update", "patch", "delete"))
    )
    con = sqlite3.connect("tenant-acme.db")
    try:
        assert con.execute("SELECT owner_id, title FROM notes").fetchall() == [("alice", "hello")]
    finally:
        con.close()


def test_events(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                request: pytest.FixtureRequest) -> None:
    block = block_with("RedisRelay(db, r")
    with redis_for(block, request):
        run_block(block)
    assert capsys.readouterr().out.splitlines() == [
        "[{'op': 'created'}, {'op': 'renamed'}]",
        "[('c1', 'requested')]",
        "hub b: call:c1 {'status': 'requested'} hub-a/calls/1",
    ]


def test_hub(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_block(block_with("Hub(\"hub-data\""))
    assert capsys.readouterr().out.splitlines() == ["['acme', 'globex']", "True", "[] []"]
    root = in_tmp / "hub-data"
    assert (root / "system.db").exists()
    assert len(list(root.glob("tenant-*.db"))) == 2
