"""What agents run, as processes: `ao report` and `ao pr create` reach a real ao over HTTP, and
start without Django (an agent calls them many times per task; loading Django cost ~1 CPU-s each).

"Without Django" is shown by running them with a `django` package on PYTHONPATH that cannot be
imported: the agent's commands and `ao version` still work, the others do not.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from sessions.agents.plugins import token_hash
from sessions.cli import light_commands
from sessions.domain.lifecycle import Reported
from sessions.models import Event, PullRequest, Session
from tests.factories import SessionFactory
from tests.helpers.projects import local_tmux_project
from tests.test_embedded import ao_env, run_ao

AGENT = "import time\nprint('> ', flush=True)\ntime.sleep(120)\n"


@pytest.fixture
def no_django(tmp_path: Path) -> str:
    """A PYTHONPATH entry whose `django` package refuses to import."""
    shadow = tmp_path / "shadow"
    (shadow / "django").mkdir(parents=True)
    (shadow / "django" / "__init__.py").write_text("raise ImportError('this command must not load Django')\n")
    return str(shadow)


def agent_env(home: Path, url: str, session_id: str, token: str, pythonpath: str) -> dict[str, str]:
    return ao_env(home, AO_URL=url, AO_SESSION=session_id, AO_TOKEN=token, PYTHONPATH=pythonpath)


def test_the_report_states_are_the_lifecycles() -> None:
    assert list(light_commands.REPORT_STATES) == [value for value in Reported.values if value]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_ao_report_reaches_ao_without_loading_django(live_server, tmp_path: Path, no_django: str) -> None:
    session = SessionFactory(phase="running", runtime_state="alive", api_token_hash=token_hash("agent-token"))
    env = agent_env(tmp_path, live_server.url, session.id, "agent-token", no_django)

    result = run_ao(["report", "needs_input", "Which", "database?"], env)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"reported needs_input; {session.id} is now needs_input\n"
    session.refresh_from_db()
    assert (session.reported_state, session.status) == ("needs_input", "needs_input")
    assert "Which database?" in Event.objects.get(session=session, kind="agent.report").summary

    refused = run_ao(["report", "done"], {**env, "AO_TOKEN": "stolen-or-wrong"})

    assert refused.returncode == 1
    assert refused.stderr.startswith("ao: ao refused the request (401)")
    assert len(refused.stderr.splitlines()) == 1
    session.refresh_from_db()
    assert session.reported_state == "needs_input"


@pytest.mark.slow
def test_ao_version_runs_without_django_but_other_commands_need_it(tmp_path: Path, no_django: str) -> None:
    env = ao_env(tmp_path, PYTHONPATH=no_django)

    version = run_ao(["version"], env)
    status = run_ao(["status"], env)

    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines()[0].startswith("ao ")
    assert status.returncode == 2
    assert "this command must not load Django" in status.stderr


@pytest.mark.slow
def test_bad_arguments_to_report_still_print_one_usage_line(tmp_path: Path) -> None:
    env = ao_env(tmp_path, AO_URL="http://127.0.0.1:9", AO_SESSION="web-1", AO_TOKEN="t")

    result = run_ao(["report", "sleeping"], env)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "usage: ao report [options] state [note ...]",
        "ao report: error: argument state: invalid choice: 'sleeping' "
        "(choose from 'working', 'needs_input', 'blocked', 'done')",
    ]
    assert result.stdout == ""


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return local_tmux_project(path=repo.path, tmux_server=tmux_server, agent=AGENT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_ao_pr_create_from_the_agents_worktree_without_loading_django(
    project, live_server, tmp_path: Path, no_django: str
) -> None:
    call_command("spawn", "--prompt", "add the feature", stdout=io.StringIO())
    session = Session.objects.get(pk="web-1")
    assert session.phase == "running", session.error
    Session.objects.filter(pk=session.pk).update(api_token_hash=token_hash("agent-token"))
    workspace = Path(session.workspace_path)
    (workspace / "feature.txt").write_text("feature\n")
    subprocess.run(["git", "add", "feature.txt"], cwd=workspace, check=True)
    subprocess.run(["git", "commit", "-qm", "add the feature"], cwd=workspace, check=True)
    env = agent_env(tmp_path / "agent-home", live_server.url, session.id, "agent-token", no_django)

    result = run_ao(["pr", "create", "--title", "Add the feature"], env, cwd=workspace)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"opened PR #1 for {session.branch}: ")
    pr = PullRequest.objects.get(session=session)
    assert (pr.number, pr.title, pr.branch, pr.state) == (1, "Add the feature", session.branch, "open")
