"""Helpers for tests that run ao as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def manage(
    *args: str, env: dict[str, str], timeout: float = 60, check: bool = True
) -> subprocess.CompletedProcess:
    """Run ``manage.py`` in a fresh interpreter with ``env`` layered over ours."""
    full_env = {**os.environ, **env}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=full_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the PostgreSQL server, yield its URL, drop it afterwards."""
    import psycopg

    name = f"ao_test_{uuid.uuid4().hex[:10]}"
    admin_url = server_url.replace("postgres://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = server_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# How long work a dead process held waits before another process redoes it (docs/OPERATIONS.md):
# the production leases are 30 s (a claimed message), 45 s (a sweep) and 60 s (a start nobody
# began). Fault tests that kill processes on purpose wait for the same recovery with these, still
# long enough that a live worker on a loaded machine (typing takes well under a second, a running
# sweep renews every 5 s) never loses what it holds.
SHORT_LEASES = {"AO_MESSAGE_CLAIM_LEASE": "10", "AO_SWEEP_LEASE": "15", "AO_START_RETRY_AFTER": "5"}
