"""The API answers while Redis is down: its rate limiter reads the shared cache in Redis, and a
cache outage lets requests through (logged once) instead of failing every call with a 500 while
the database is fine. A real `ao web` on PostgreSQL and a private Redis the test kills."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from tests.test_embedded import ao_env, ao_process, django_shell, free_port, run_ao, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TOKEN = """
from django.contrib.auth import get_user_model
from sessions.api.tokens import api_token_create
user = get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)
print(api_token_create(user=user, name="ops")[1])
"""


def test_the_api_answers_while_redis_is_down(tmp_path: Path, fresh_postgres, private_redis):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = ao_env(
        tmp_path / "home",
        DATABASE_URL=fresh_postgres,
        REDIS_URL=private_redis.url,
        AO_CHANNEL_PREFIX=f"ao-fault-{secrets.token_hex(4)}",
    )
    assert run_ao(["migrate", "-v", "0"], env).returncode == 0
    token = django_shell(env, TOKEN).strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}

    with ao_process(["web", "--port", str(port)], env, cwd=tmp_path) as web:
        web.wait_for(rf"ao web is serving {base}/")
        wait_http(f"{base}/healthz")
        assert httpx.get(f"{base}/api/v1/projects/", headers=auth, timeout=10).status_code == 200

        private_redis.kill()
        answers = [httpx.get(f"{base}/api/v1/projects/", headers=auth, timeout=30) for _ in range(3)]

        assert [answer.status_code for answer in answers] == [200, 200, 200], answers[-1].text
        assert answers[-1].json()["results"] == []
        assert httpx.get(f"{base}/api/v1/projects/", timeout=30).status_code == 401  # still authenticated
        assert web.output.count("rate limits are not enforced") == 1, web.output
        assert "unhandled error" not in web.output and "Internal Server Error" not in web.output, web.output
        assert "Traceback" not in web.output, web.output
        assert web.output.count("the channel layer cannot reach Redis") <= 1, web.output

        private_redis.start()
        assert httpx.get(f"{base}/api/v1/projects/", headers=auth, timeout=30).status_code == 200
