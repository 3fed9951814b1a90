"""Shared fixtures: database files, and a real ``redis-server`` of our own
on 127.0.0.1 on a free port (session scope, temp dir, no persistence) for
the Redis transport tests and the README's Redis sample.

``scripts/test.sh`` installs Debian's ``redis-server`` when it is missing
(``scripts/redis_server.sh``) and sets ``ALKDEV_REQUIRE_REDIS=1``: then a
missing server fails the Redis tests instead of skipping them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import alkdev_storage


@pytest.fixture
def db_path(tmp_path):
    """Path of a database file in a fresh temporary directory (never :memory:)."""
    return tmp_path / "t.db"


@pytest.fixture
def db(db_path):
    """An open alkdev_storage Database on a real file, closed after the test."""
    database = alkdev_storage.open(db_path)
    try:
        yield database
    finally:
        database.close()


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    process: subprocess.Popen[bytes]

    def client(self, **kwargs: Any) -> Any:
        import redis

        return redis.Redis(host=self.host, port=self.port, **kwargs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(exe: str, workdir: Path) -> RedisServer:
    import redis

    last = ""
    for _ in range(5):
        port = _free_port()
        log = workdir / f"redis-{port}.log"
        proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping():
                    return RedisServer("127.0.0.1", port, proc)
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        proc.kill()
        proc.wait(5)
        last = log.read_text() if log.exists() else ""
    raise RuntimeError(f"redis-server did not start: {last[-2000:]}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Our own redis-server for the session (stopped at the end)."""
    exe = shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        if os.environ.get("ALKDEV_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server or redis-py is missing (run scripts/redis_server.sh)")
        pytest.skip("redis-server or redis-py is not installed (scripts/redis_server.sh)")
    server = _start(exe, tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[Any]:
    """A client (bytes replies) on an emptied server."""
    client = redis_server.client()
    client.flushall()
    try:
        yield client
    finally:
        client.close()
