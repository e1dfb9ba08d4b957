"""The `ao` command as a user runs it: help, version, status, and one-line failures."""

from __future__ import annotations

import importlib.util
import json
import platform
import re
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import django
import pytest

import ao_site
from tests.helpers.procs import MigratedDatabases
from tests.test_embedded import (
    REPO_ROOT,
    SEED_SESSION,
    AoProcess,
    ao_command,
    ao_env,
    django_shell,
    free_port,
    git_repo,
    run_ao,
)


def run_many(*calls: tuple[list[str], dict[str, str]]) -> list[subprocess.CompletedProcess]:
    """Run several `ao` commands at once (each one starts Django: about 2 s)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: run_ao(*call), calls))


CORE_COMMANDS = ("start", "stop", "status", "web", "worker", "beat", "version")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """AO_HOME for the ao subprocesses, and a tmux socket directory of this test's own: an agent a
    command starts (ao's default tmux server) lives there and is killed afterwards, never left
    running in the machine's default tmux server."""
    path = tmp_path / "home"
    path.mkdir()
    sockets = tmp_path / "tmux"
    sockets.mkdir()
    monkeypatch.setenv("TMUX_TMPDIR", str(sockets))
    yield path
    subprocess.run(["tmux", "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.fixture
def migrated_home(home: Path, migrated_databases: MigratedDatabases) -> Path:
    """``home`` with a migrated database in it (a copy: tests/helpers/procs.py, MigratedDatabases);
    the tests still run their own `migrate`, which finds nothing to do."""
    migrated_databases.sqlite_into(home)
    return home


@pytest.mark.slow
def test_help_lists_aos_commands_with_one_line_each(home: Path) -> None:
    for result in run_many(([], ao_env(home)), (["--help"], ao_env(home))):
        assert result.returncode == 0, result.stderr
        listed = {
            line.split()[0]: line
            for line in result.stdout.splitlines()
            if line.startswith("  ") and line.strip()
        }
        for name in CORE_COMMANDS:
            assert name in listed, result.stdout
            assert len(listed[name].split()) > 2, f"{name} has no help line"
    assert "migrate" not in listed  # Django's own commands are not listed, only mentioned


@pytest.mark.slow
def test_version_prints_ao_python_and_django(home: Path) -> None:
    result = run_ao(["version"], ao_env(home))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"ao {ao_site.__version__}",
        f"Python {platform.python_version()}",
        f"Django {django.get_version()}",
    ]


@pytest.mark.slow
def test_status_json_lists_seeded_projects_and_sessions(migrated_home: Path, tmp_path: Path) -> None:
    env = ao_env(migrated_home)
    seed = SEED_SESSION.format(key="web", path=str(tmp_path), prefix="web", session_id="web-1")
    django_shell(
        env, "from django.core.management import call_command\ncall_command('migrate', verbosity=0)" + seed
    )

    result, table = run_many((["status", "--json"], env), (["status"], env))

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"generated_at", "mode", "server", "projects", "sessions"}
    assert data["mode"] == "embedded"
    assert data["server"] == {"running": False, "pid": None, "url": None}
    assert [
        (p["key"], p["path"], p["session_prefix"], p["live_sessions"], p["sessions"])
        for p in data["projects"]
    ] == [("web", str(tmp_path), "web", 1, 1)]
    [session] = data["sessions"]
    assert {k: session[k] for k in ("id", "project", "status", "zone", "agent", "issue", "kind")} == {
        "id": "web-1",
        "project": "web",
        "status": "working",
        "zone": "working",
        "agent": "claude-code",
        "issue": "42",
        "kind": "worker",
    }
    assert set(session) == {
        "id", "project", "kind", "status", "zone", "reason", "agent", "issue", "issue_title",
        "branch", "host", "created_at", "status_changed_at", "age_seconds",
    }  # fmt: skip
    assert session["age_seconds"] >= 0

    assert table.returncode == 0, table.stderr
    header = next(line for line in table.stdout.splitlines() if line.startswith("ID"))
    assert header.split() == ["ID", "PROJECT", "STATUS", "ZONE", "AGENT", "ISSUE", "AGE"]
    assert any(line.split()[:6] == ["web-1", "web", "working", "working", "claude-code", "42"] for line in
               table.stdout.splitlines())  # fmt: skip


# What `ao status`, `ao session ls` and `ao send` never use when they run themselves (no ao
# running): the URLconf (the dashboard's and the API's views, DRF, the admin), which Django's system
# checks and reversing through the root URLconf load; and for the two reads, Celery and the
# plugins (GitHub, tmux, the notifiers), which only work they do not do needs. Each start paid for
# them (0.7-1.1 CPU-s a command; docs/PERFORMANCE.md).
NOT_LOADED_BY_COMMANDS = (
    "ao_site.urls", "sessions.api.views", "sessions.admin", "rest_framework.views", "drf_spectacular.openapi", "daphne",
)  # fmt: skip
NOT_LOADED_BY_READS = (
    "celery", "kombu", "github", "libtmux", "integrations.scm.github", "integrations.notifier.slack",
    "integrations.agent.claude_code", "integrations.runtime.tmux",
    # run outside any project (no config file to read), and decrypting no secret
    "yaml", "sessions.core.config.schema", "cryptography",
)  # fmt: skip


def imported_modules(stderr: str) -> set[str]:
    """The modules a process imported (its PYTHONPROFILEIMPORTTIME lines)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.slow
def test_reads_and_send_without_a_running_ao_load_only_what_they_use(
    migrated_home: Path, tmp_path: Path
) -> None:
    env = ao_env(migrated_home, AO_INLINE_DELIVERY_WAIT="0")
    seed = SEED_SESSION.format(key="web", path=str(tmp_path), prefix="web", session_id="web-1")
    django_shell(env, seed)
    traced = dict(env, PYTHONPROFILEIMPORTTIME="1")

    status, listed = run_many((["status"], traced), (["session", "ls", "--json"], traced))
    sent = run_ao(["send", "web-1", "hello"], traced)

    assert status.returncode == 0, status.stderr[-2000:]
    assert re.search(r"^web-1\s+web\s+working", status.stdout, re.M), status.stdout
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [row["id"] for row in json.loads(listed.stdout)] == ["web-1"]
    assert (
        "web-1" in sent.stdout + sent.stderr
    )  # queued, or refused with the reason (the agent is not running)
    for result, unused in (
        (status, NOT_LOADED_BY_COMMANDS + NOT_LOADED_BY_READS),
        (listed, NOT_LOADED_BY_COMMANDS + NOT_LOADED_BY_READS),
        (
            sent,
            NOT_LOADED_BY_COMMANDS,
        ),  # it queues the message: its delivery task runs here (Celery, the plugins)
    ):
        modules = imported_modules(result.stderr)
        assert "django.db.models" in modules  # it did read the database itself
        loaded = sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in unused))
        assert not loaded, (result.args[1:], loaded[:12])


@pytest.mark.slow
def test_start_on_a_busy_port_says_so_in_one_line(home: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = run_ao(["start", "--port", str(port)], ao_env(home), cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ao: port {port} is in use — stop the other process or run `ao start --port {port + 1}`"
    ]
    assert not (home / "ao.sqlite3").exists()  # nothing was started or migrated
    assert not (home / "ao.pid").exists()


@pytest.mark.slow
def test_start_with_unreachable_database_says_so_in_one_line(home: Path, tmp_path: Path) -> None:
    env = ao_env(home, DATABASE_URL="postgres://postgres@127.0.0.1:1/x")

    result = run_ao(["start", "--port", str(free_port())], env, cwd=tmp_path)

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ao: cannot reach the database at 127.0.0.1:1 (")
    assert line.endswith("— start it or fix DATABASE_URL (unset it to use the built-in SQLite database)")
    assert not (home / "ao.pid").exists()


@pytest.mark.slow
def test_commands_before_the_first_start_say_so_in_one_line(home: Path) -> None:
    fresh, unreachable = run_many(
        (["session", "ls"], ao_env(home)),
        (["spawn", "1"], ao_env(home, DATABASE_URL="postgres://postgres@127.0.0.1:1/x")),
    )

    assert fresh.returncode == 1 and "Traceback" not in fresh.stderr
    [line] = fresh.stderr.strip().splitlines()
    assert line.startswith("ao: the database failed: no such table: ")
    assert "run `ao start` (or `ao migrate`)" in line
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert unreachable.stderr.startswith("ao: the database failed: ")
    assert "check DATABASE_URL" in unreachable.stderr


@pytest.mark.slow
def test_scale_out_roles_need_redis(home: Path) -> None:
    roles = ("web", "worker", "beat")
    for role, result in zip(roles, run_many(*(([role], ao_env(home)) for role in roles)), strict=True):
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"ao: `ao {role}` is for scale-out and needs REDIS_URL — without it, `ao start` runs the web "
            "server, worker and beat in one process"
        ]


@pytest.mark.slow
def test_worker_rejects_a_bad_host_name(home: Path) -> None:
    result = run_ao(["worker", "--host", "x;rm -rf /"], ao_env(home, REDIS_URL="redis://127.0.0.1:1/0"))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ao: 'x;rm -rf /' is not a valid agent host name — use 1-63 letters, digits, '.', '_' or '-', "
        "e.g. `--host build-1`"
    ]


@pytest.mark.slow
def test_stop_when_nothing_runs(home: Path) -> None:
    result = run_ao(["stop"], ao_env(home))

    assert result.returncode == 0
    assert result.stdout.strip() == f"ao is not running (no live pid file in {home})."


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("sessions.core.config") is None, reason="no config module in this build"
)
def test_start_with_a_broken_config_lists_problems_and_exits_2(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "ao.config.yaml"
    config.write_text("projects:\n  web:\n    path: 12\n    bogusKey: true\n")

    result = run_ao(["start", "--port", str(free_port())], ao_env(home, AO_CONFIG=str(config)), cwd=tmp_path)

    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("ao: warning:")]
    assert lines[0] == f"ao: the config {config} has problems — fix them and run `ao start` again:"
    assert len(lines) >= 2
    assert all(line.startswith(f"  {config}") for line in lines[1:]), lines
    assert "ao is running" not in result.stdout
    assert not (home / "ao.pid").exists()


@pytest.mark.slow
def test_a_bad_flag_prints_one_usage_line_and_the_error(home: Path) -> None:
    spawn, pr_create = run_many(
        (["spawn", "--bogus"], ao_env(home)), (["pr", "create", "--titel", "x"], ao_env(home))
    )

    assert spawn.returncode == 2
    assert spawn.stderr.splitlines() == [
        "usage: ao spawn [options] [issue]",
        "ao spawn: error: unrecognized arguments: --bogus",
    ]
    assert pr_create.returncode == 2
    assert pr_create.stderr.splitlines() == [
        "usage: ao pr [options] {create,ls,show,review,merge,close,ci} ...",
        "ao pr: error: unrecognized arguments: --titel x",
    ]
    assert not (home / "ao.sqlite3").exists()  # nothing ran


def test_an_unknown_command_says_so_in_one_line_with_the_nearest_and_exits_2(home: Path) -> None:
    typo, nonsense, helped = run_many(
        (["statsu"], ao_env(home)), (["frobnicate", "--x"], ao_env(home)), (["help", "statsu"], ao_env(home))
    )

    assert (typo.returncode, typo.stderr) == (
        2,
        "ao: unknown command 'statsu'; did you mean `ao status`? (`ao help` lists the commands)\n",
    )
    assert (nonsense.returncode, nonsense.stderr) == (
        2,
        "ao: unknown command 'frobnicate' (`ao help` lists the commands)\n",
    )
    assert (helped.returncode, helped.stderr) == (typo.returncode, typo.stderr)
    assert not (home / "ao.sqlite3").exists()


def test_one_shot_commands_log_warnings_only_unless_ao_log_level_says(migrated_home: Path) -> None:
    code = "import logging; log = logging.getLogger('sessions.x'); log.info('an-info-line'); log.warning('a-warning')"
    unset = {k: v for k, v in ao_env(migrated_home).items() if k != "AO_LOG_LEVEL"}  # a user's shell
    quiet, verbose = run_many(
        (["shell", "-c", code], unset),
        (["shell", "-c", code], {**ao_env(migrated_home), "AO_LOG_LEVEL": "INFO"}),
    )

    assert quiet.returncode == 0 and "a-warning" in quiet.stderr and "an-info-line" not in quiet.stderr
    assert "an-info-line" in verbose.stderr


def _local_project(home: Path, repo: Path) -> dict[str, str]:
    """A project for ``repo`` (local tracker and SCM) applied to the database of ``home``."""
    env = ao_env(home)
    for args in (["migrate", "-v", "0"], ["init"], ["config", "apply"]):
        result = run_ao(args, env, cwd=repo)
        assert result.returncode == 0, result.stderr
    return env


@pytest.mark.slow
def test_spawn_on_an_issue_the_tracker_does_not_know_is_refused(migrated_home: Path, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    repo = git_repo(tmp_path / "app")
    env = _local_project(migrated_home, repo)

    result = run_ao(["spawn", "99999"], env, cwd=repo)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "ao: issue #99999 not found in project app — check the number (`ao issue ls`), or spawn without "
        "it: `ao spawn 99999 --no-issue-check`"
    ]
    listed = run_ao(["session", "ls", "--json"], env, cwd=repo)
    assert json.loads(listed.stdout) == []  # no session, no agent


@pytest.mark.slow
def test_a_broken_config_is_reported_once_per_command(migrated_home: Path, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    repo = git_repo(tmp_path / "app")
    env = _local_project(migrated_home, repo)
    assert run_ao(["issue", "add", "Do it"], env, cwd=repo).returncode == 0
    config = repo / "ao.config.yaml"
    config.write_text(config.read_text() + "    maxSessions: '3'\n")

    result = run_ao(["spawn", "1"], env, cwd=repo)

    problem = f"{config}:"
    assert result.stderr.count(problem) == 1, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["make -C ao run, in the repository", "make run REPO=..., in ao"])
def test_make_run_manages_the_users_repository(home: Path, tmp_path: Path, how: str) -> None:
    """The README's first run for someone who cloned ao and has a repository of their own."""
    (tmp_path / "app").mkdir()
    repo = git_repo(tmp_path / "app")
    port = free_port()
    env = ao_env(home)
    if how.startswith("make -C"):
        args, cwd = ["-C", str(REPO_ROOT), "run", f"PORT={port}"], repo
        env["PWD"] = str(repo)  # what the person's shell says
    else:
        args, cwd = ["run", f"REPO={repo}", f"PORT={port}"], REPO_ROOT
        env["PWD"] = str(REPO_ROOT)

    started = AoProcess(args, env, cwd=cwd, command=["make", "--no-print-directory"])
    try:
        started.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
    finally:
        started.kill()

    assert f"Created {repo / 'ao.config.yaml'} for {repo}" in started.output
    assert "created project app (" in started.output
    assert not (REPO_ROOT / "ao.config.yaml").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args", [["session", "ls"], ["status", "--json"], ["status"]])
def test_output_into_a_closed_pipe_ends_quietly(migrated_home: Path, args: list[str]) -> None:
    """`ao session ls | head -1` when ao is not running: the reader is gone before ao writes (here
    closed at once, so always before), and ao stops as other commands do, without a traceback."""
    env = ao_env(migrated_home)
    command = subprocess.Popen(
        [*ao_command(), *args], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    command.stdout.close()  # `head` has read what it wanted
    stderr = command.stderr.read().decode()
    command.stderr.close()

    assert command.wait(60) == 141  # 128 + SIGPIPE, as the shell reports a command `head` stopped
    assert stderr == ""
