"""Helpers for tests that run ao as real processes."""

from __future__ import annotations

import os
import shutil
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
def fresh_postgres_database(server_url: str, *, template: str = "") -> Iterator[str]:
    """Create an empty database on the PostgreSQL server (a copy of ``template`` if given), yield
    its URL, drop it afterwards."""
    import psycopg

    name = f"ao_test_{uuid.uuid4().hex[:10]}"
    admin_url = server_url.replace("postgres://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
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


class MigratedDatabases:
    """Databases with ao's schema, copied from one migrated once per test process (the
    ``migrated_databases`` fixture): `migrate` from nothing takes 3 s of CPU, 15-20 s on a loaded
    machine, and is not what the tests that use these are about (tests/test_scaleout.py and
    tests/test_cli.py migrate empty databases through the real commands). A test that runs its
    own `migrate` on one finds nothing to do."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._postgres: dict[str, str] = {}  # server URL -> template database
        self._sqlite: Path | None = None

    @contextmanager
    def postgres(self, server_url: str) -> Iterator[str]:
        """A database of the caller's alone on the server, migrated; dropped afterwards."""
        with fresh_postgres_database(server_url, template=self._postgres_template(server_url)) as url:
            yield url

    def sqlite_into(self, home: Path) -> None:
        """Put a migrated SQLite database where ao looks for it in the AO_HOME ``home``."""
        if self._sqlite is None:
            template_home = self.workdir / "sqlite"
            manage(
                "migrate", "-v", "0", env={"AO_HOME": str(template_home), "DATABASE_URL": "", "REDIS_URL": ""}
            )
            self._sqlite = template_home / "ao.sqlite3"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self._sqlite, home / self._sqlite.name)

    def _postgres_template(self, server_url: str) -> str:
        if server_url not in self._postgres:
            import psycopg

            name = f"ao_test_template_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(server_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self._postgres[server_url] = name
            url = f"{server_url.rsplit('/', 1)[0]}/{name}"
            home = self.workdir / name
            manage("migrate", "-v", "0", env={"AO_HOME": str(home), "DATABASE_URL": url, "REDIS_URL": ""})
        return self._postgres[server_url]

    def drop(self) -> None:
        import psycopg

        for server_url, name in self._postgres.items():
            with psycopg.connect(server_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._postgres.clear()
