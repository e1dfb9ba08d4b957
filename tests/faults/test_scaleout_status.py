"""`ao status` of a scale-out install says what runs: `ao web`'s address, the workers that answer
and the beat that holds the lock (it used to read only `ao start`'s pid file and say "ao is not
running" while all three ran)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.test_embedded import ao_env, ao_process, free_port, run_ao, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_status_shows_the_scale_out_processes(tmp_path: Path, fresh_postgres, private_redis):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = ao_env(
        tmp_path / "home",
        DATABASE_URL=fresh_postgres,
        REDIS_URL=private_redis.url,
        AO_CHANNEL_PREFIX=f"ao-fault-{secrets.token_hex(4)}",
    )
    assert run_ao(["migrate", "-v", "0"], env).returncode == 0

    with (
        ao_process(["web", "--port", str(port)], env, cwd=tmp_path) as web,
        ao_process(["worker", "--host", "fault-w1", "--concurrency", "1"], env, cwd=tmp_path) as worker,
        ao_process(["beat"], env, cwd=tmp_path) as beat,
    ):
        web.wait_for(rf"ao web is serving {base}/")
        worker.wait_for(r"queues ao, host\.fault-w1")
        beat.wait_for(r"ao beat is scheduling")
        wait_http(f"{base}/healthz")

        shown = run_ao(["status"], env)
        snapshot = json.loads(run_ao(["status", "--json"], env).stdout)

        assert shown.returncode == 0, shown.stderr
        assert "not running" not in shown.stdout
        assert f"ao web at {base}" in shown.stdout
        assert "1 worker (fault-w1)" in shown.stdout
        assert "ao beat running" in shown.stdout
        assert snapshot["server"]["running"] is True
        assert snapshot["server"]["url"] == base
        assert snapshot["scale_out"]["workers"] == ["fault-w1"]
        assert snapshot["scale_out"]["beat"]
