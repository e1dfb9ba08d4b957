"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.helpers.fixtures"]

# AO_HOME and the embedded-mode environment are set by the root conftest.py, before Django loads.

POSTGRES_URL = os.environ.get("AO_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _require_services() -> bool:
    return os.environ.get("AO_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def service_unavailable(what: str, why: str) -> None:
    """Skip locally, fail in CI (AO_REQUIRE_SERVICES=1), when PostgreSQL or Redis is missing."""
    message = f"{what} is not reachable ({why})"
    if _require_services():
        pytest.fail(message + " and AO_REQUIRE_SERVICES is set", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_unavailable("Redis", str(exc))
    return REDIS_URL


@pytest.fixture
def postgres_url() -> str:
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"), connect_timeout=3).close()
    except psycopg.Error as exc:
        service_unavailable("PostgreSQL", str(exc).strip())
    return POSTGRES_URL
