"""Admission caps hold under concurrent spawns: real processes racing on PostgreSQL (READ COMMITTED,
where counting before locking let them through). SQLite's IMMEDIATE transactions serialize spawns
anyway (tests/sessions/test_services.py races them for session ids)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.procs import REPO, MigratedDatabases, manage

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PROCESSES = 4
SPAWNS_EACH = 2
CAP = 3

SETUP_SCRIPT = f"""
from django.core.management import call_command
call_command("migrate", verbosity=0)
from tests.factories import ProjectFactory
ProjectFactory(key="capped", session_prefix="c", max_sessions={CAP}, refuse_over_cap=True)
ProjectFactory(key="free1", session_prefix="f", max_sessions=None, refuse_over_cap=True)
ProjectFactory(key="free2", session_prefix="g", max_sessions=None, refuse_over_cap=True)
"""

# Every process waits at a barrier (a file per process in RACE_DIR), then spawns.
SPAWN_SCRIPT = """
import os, time
from pathlib import Path
from sessions.agents import spawning
from sessions.core import hosts
from sessions.models import Project

spawning._enqueue_start = lambda session: None  # the start itself is not under test
keys = os.environ["RACE_PROJECTS"].split(",")
index = int(os.environ["RACE_INDEX"])
barrier = Path(os.environ["RACE_DIR"])
(barrier / str(index)).touch()
while len(list(barrier.iterdir())) < int(os.environ["RACE_PROCESSES"]):
    time.sleep(0.01)
spawned = refused = 0
for n in range(int(os.environ["RACE_SPAWNS"])):
    project = Project.objects.get(key=keys[(index + n) % len(keys)])
    try:
        spawning.session_spawn(project=project, prompt="race")
        spawned += 1
    except spawning.SpawnRefused as exc:
        assert "cap" in str(exc), exc
        refused += 1
print("RESULT", spawned, refused)
"""

COUNT_SCRIPT = """
from sessions.agents import spawning
from sessions.core import hosts
print("LIVE", hosts.live_sessions().count(), hosts.live_sessions(host="racehost").count())
"""


def _race(env: dict[str, str], tmp_path: Path, projects: str) -> tuple[int, int, int]:
    """PROCESSES processes spawn SPAWNS_EACH sessions each into ``projects`` at the same time.
    Returns (spawned, refused, live sessions afterwards)."""
    env = {**env, "AO_HOST_NAME": "racehost"}
    manage("shell", "-c", SETUP_SCRIPT, env=env)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    base = {**os.environ, **env}
    base.pop("DJANGO_SETTINGS_MODULE", None)
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "shell", "-c", SPAWN_SCRIPT],
            env={
                **base,
                "RACE_PROJECTS": projects,
                "RACE_INDEX": str(index),
                "RACE_DIR": str(barrier),
                "RACE_PROCESSES": str(PROCESSES),
                "RACE_SPAWNS": str(SPAWNS_EACH),
            },
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(PROCESSES)
    ]
    spawned = refused = 0
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        result = next(line for line in out.splitlines() if line.startswith("RESULT "))
        spawned += int(result.split()[1])
        refused += int(result.split()[2])
    live_line = manage("shell", "-c", COUNT_SCRIPT, env=env).stdout
    live = int(next(line for line in live_line.splitlines() if line.startswith("LIVE ")).split()[1])
    return spawned, refused, live


def _expect_cap_held(result: tuple[int, int, int]) -> None:
    spawned, refused, live = result
    assert (spawned, live) == (CAP, CAP)
    assert refused == PROCESSES * SPAWNS_EACH - CAP


def test_project_cap_holds_under_concurrent_spawns_on_postgres(
    tmp_path, postgres_url, migrated_databases: MigratedDatabases
) -> None:
    with migrated_databases.postgres(postgres_url) as url:
        env = {"AO_HOME": str(tmp_path), "DATABASE_URL": url, "REDIS_URL": ""}
        _expect_cap_held(_race(env, tmp_path, "capped"))


def test_host_cap_holds_across_projects_under_concurrent_spawns_on_postgres(
    tmp_path, postgres_url, migrated_databases: MigratedDatabases
) -> None:
    with migrated_databases.postgres(postgres_url) as url:
        env = {
            "AO_HOME": str(tmp_path),
            "DATABASE_URL": url,
            "REDIS_URL": "",
            "AO_MAX_SESSIONS_PER_HOST": str(CAP),
        }
        _expect_cap_held(_race(env, tmp_path, "free1,free2"))
