"""Fault fixtures: a private Redis the test starts, kills and restarts empty, and a fresh
PostgreSQL database with ao's schema."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.procs import MigratedDatabases
from tests.test_embedded import free_port


@pytest.fixture
def fresh_postgres(postgres_url: str, migrated_databases: MigratedDatabases) -> Iterator[str]:
    """A database of this test alone, with ao's migrations applied (a copy: tests/helpers/procs.py,
    MigratedDatabases); the tests still run `ao migrate`, which finds nothing to do."""
    with migrated_databases.postgres(postgres_url) as url:
        yield url


class PrivateRedis:
    """A redis-server of this test alone, on a free port, without persistence: ``kill`` is a
    SIGKILL, ``start`` after it brings back an empty server on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.client().ping():
                return
        raise AssertionError("the private redis-server did not start")

    def client(self):
        import redis

        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
            client.ping()
            return client
        except redis.ConnectionError:
            time.sleep(0.1)
            return _Down()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


class _Down:
    def ping(self) -> bool:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = PrivateRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
