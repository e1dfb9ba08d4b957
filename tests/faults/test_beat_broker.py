"""`ao beat` rides out a broker outage: Redis killed and restarted empty while a real `ao beat`
runs (its lock key vanished with the data, no other beat took it) leaves it running and
scheduling, with one line about the outage rather than a traceback per attempt."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.test_embedded import ao_env, ao_process, run_ao

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def eventually(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def test_beat_keeps_scheduling_after_redis_restarts_empty(tmp_path: Path, fresh_postgres, private_redis):
    prefix = f"ao-fault-{secrets.token_hex(4)}"
    env = ao_env(
        tmp_path / "home",
        DATABASE_URL=fresh_postgres,
        REDIS_URL=private_redis.url,
        AO_CHANNEL_PREFIX=prefix,
        AO_SWEEP_INTERVAL="0.5",
    )
    migrated = run_ao(["migrate", "-v", "0"], env)
    assert migrated.returncode == 0, migrated.stderr
    lock = f"{prefix}:beat-lock"

    with ao_process(["beat"], env, cwd=tmp_path) as beat:
        beat.wait_for(r"ao beat is scheduling")
        owner = private_redis.client().get(lock)
        assert owner
        assert eventually(lambda: private_redis.client().llen("ao") > 0, 30)  # sweeps are queued

        private_redis.kill()
        time.sleep(12)  # longer than a lock refresh: the beat meets the outage
        private_redis.start()
        assert private_redis.client().get(lock) is None and private_redis.client().llen("ao") == 0

        # The beat takes its vanished lock back and its sweeps reach the new, empty broker.
        assert eventually(lambda: private_redis.client().get(lock) == owner, 40), beat.output
        assert eventually(lambda: private_redis.client().llen("ao") > 0, 30), beat.output
        beat.wait_for(r"the broker is back after \d+ s")
        beat.wait_for(r"the beat lock had vanished")
        assert beat.proc.poll() is None, beat.output
        assert "lost its lock" not in beat.output
        assert "Traceback" not in beat.output, beat.output
        assert beat.output.count("the broker is unreachable") == 1, beat.output
