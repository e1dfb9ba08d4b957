"""Scale-out end to end: `ao web`, `ao worker` and `ao beat` as three processes on PostgreSQL and
Redis; a fact changed in the database reaches a websocket client of `ao web` through the worker
process and the Redis channel layer, even after the layer sat idle longer than redis-py's
default 5 s socket timeout."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from websockets.sync.client import ClientConnection

from tests.test_embedded import (
    PR_MERGED,
    SEED_SESSION,
    ao_env,
    ao_process,
    django_shell,
    free_port,
    is_merged_card,
    login_with_link,
    receive_until,
    run_ao,
    wait_http,
    ws_connect,
)

REDIS_DB = 13  # dedicated to this test module; flushed before and after

ONE_TIME_LINK = """
from django.contrib.auth import get_user_model
from sessions.dashboard.views_auth import one_time_login_url
# a superuser: the board only pushes projects a person has a role in
user = get_user_model().objects.create_user("scaleout", is_staff=True, is_superuser=True)
print(one_time_login_url(user, base_url={base!r}))
"""


def _with_db(url: str, *, path: str, scheme: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit((scheme or parts.scheme, parts.netloc, path, "", ""))


def stay_quiet(ws: ClientConnection, seconds: float, *, limit: float = 30) -> None:
    """Wait until the socket has received nothing for ``seconds`` (earlier pushes, e.g. from the
    first sweep of the new session, restart the clock)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            ws.recv(timeout=seconds)
        except TimeoutError:
            return
    raise AssertionError(f"the board never went quiet for {seconds} s")


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    import psycopg

    name = f"ao_test_{secrets.token_hex(6)}"
    admin = _with_db(postgres_url, path=urlsplit(postgres_url).path, scheme="postgresql")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(postgres_url, path=f"/{name}")
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_redis(redis_url: str) -> Iterator[str]:
    import redis

    url = _with_db(redis_url, path=f"/{REDIS_DB}")
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_fact_change_reaches_websocket_through_worker_and_redis(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = ao_env(
        tmp_path / "home",
        DATABASE_URL=fresh_postgres,
        REDIS_URL=fresh_redis,
        # Pub/sub channels are not per Redis database: keep this run's groups to itself.
        AO_CHANNEL_PREFIX=f"ao-test-{secrets.token_hex(4)}",
        AO_SWEEP_INTERVAL="0.5",
    )
    migrated = run_ao(["migrate", "-v", "0"], env)
    assert migrated.returncode == 0, migrated.stderr

    with (
        ao_process(["web", "--port", str(port)], env, cwd=tmp_path) as web,
        ao_process(["worker", "--host", "scaleout-test", "--concurrency", "2"], env, cwd=tmp_path) as worker,
        ao_process(["beat"], env, cwd=tmp_path) as beat,
    ):
        web.wait_for(rf"ao web is serving {base}/")
        worker.wait_for(r"queues ao, host\.scaleout-test")
        beat.wait_for(r"ao beat is scheduling")
        wait_http(f"{base}/healthz")
        health = httpx.get(f"{base}/healthz", timeout=10).json()
        assert health["status"] == "ok", health
        assert health["mode"] == "distributed"

        link = django_shell(env, ONE_TIME_LINK.format(base=base)).strip().splitlines()[-1]
        cookie = login_with_link(link)
        django_shell(
            env, SEED_SESSION.format(key="scale", path=str(tmp_path), prefix="sc", session_id="sc-1")
        )

        with ws_connect(port, cookie=cookie) as ws:
            # Idle for longer than redis-py's default socket timeout (5 s) before the change.
            stay_quiet(ws, 7)
            assert django_shell(env, PR_MERGED.format(session_id="sc-1")).strip() == "1"

            seen = receive_until(ws, is_merged_card("sc-1"), 15)

        assert 'data-zone="done"' in seen[-1]
        for process in (web, worker, beat):
            assert process.proc.poll() is None, process.output
            assert "Traceback" not in process.output, process.output


@pytest.mark.slow
@pytest.mark.redis
def test_workers_learn_the_address_ao_web_serves(tmp_path: Path, fresh_redis: str) -> None:
    """`ao web` records the address it serves in the shared cache; an `ao worker` elsewhere (its
    own AO_HOME) tells its agents that address, unless the operator set AO_URL."""
    port = free_port()
    web_env = ao_env(tmp_path / "web-home", REDIS_URL=fresh_redis)
    migrated = run_ao(["migrate", "-v", "0"], web_env)
    assert migrated.returncode == 0, migrated.stderr
    told = "from ao_site import served\nprint(served.agent_url())"
    worker_env = ao_env(tmp_path / "worker-home", REDIS_URL=fresh_redis)

    assert django_shell(worker_env, told).strip() == "http://127.0.0.1:8000"  # nothing serves yet
    wildcard = "0.0.0.0"  # noqa: S104 - the wildcard bind is what is tested
    with ao_process(["web", "--port", str(port), "--host", wildcard], web_env, cwd=tmp_path) as web:
        web.wait_for(rf"ao web is serving http://127\.0\.0\.1:{port}/")

        assert django_shell(worker_env, told).strip() == f"http://127.0.0.1:{port}"
        operator = ao_env(tmp_path / "worker-home", REDIS_URL=fresh_redis, AO_URL="https://ao.example/")
        assert django_shell(operator, told).strip() == "https://ao.example"
