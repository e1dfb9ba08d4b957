"""Fault fixtures: a private Redis the test starts, kills and restarts empty, and a fresh
PostgreSQL database with ao's schema."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.test_embedded import ao_env, free_port, run_ao
from tests.test_scaleout import _with_db


class _MigratedTemplate:
    """A PostgreSQL database migrated once per test process, copied for each fault test: `ao
    migrate` from nothing takes 3 s of CPU (20 s on a loaded machine) and is not what these tests
    are about (tests/test_scaleout.py migrates an empty database through the real commands)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.name = ""
        self.admin = ""

    def copy(self, server_url: str) -> str:
        import psycopg

        self.admin = _with_db(server_url, path=urlsplit(server_url).path, scheme="postgresql")
        if not self.name:
            name = f"ao_test_template_{secrets.token_hex(6)}"
            with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            migrated = run_ao(
                ["migrate", "-v", "0"], ao_env(self.home, DATABASE_URL=_with_db(server_url, path=f"/{name}"))
            )
            assert migrated.returncode == 0, migrated.stderr
            self.name = name
        copy = f"ao_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{self.name}"')
        return copy

    def drop(self) -> None:
        import psycopg

        if self.name:
            with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory) -> Iterator[_MigratedTemplate]:
    template = _MigratedTemplate(tmp_path_factory.mktemp("template-home"))
    try:
        yield template
    finally:
        template.drop()


@pytest.fixture
def fresh_postgres(postgres_url: str, _migrated_template: _MigratedTemplate) -> Iterator[str]:
    """A database of this test alone, with ao's migrations applied (the tests still run `ao
    migrate`, which finds nothing to do)."""
    import psycopg

    name = _migrated_template.copy(postgres_url)
    try:
        yield _with_db(postgres_url, path=f"/{name}")
    finally:
        with psycopg.connect(_migrated_template.admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
