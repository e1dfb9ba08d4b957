"""A project created by mistake can be deleted (its agents stopped first, its sessions and timeline
with it), in the admin and with `ao project rm`; and while several projects exist, commands run
inside one of them (its checkout, or a session's worktree) act on that one without --project."""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions.models import AuditEntry, Event, Project, Session
from tests.factories import ProjectFactory, UserFactory
from tests.helpers.projects import local_tmux_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AGENT = "import time\nprint('> ', flush=True)\ntime.sleep(120)\n"


def tmux_has(socket_name: str, name: str) -> bool:
    found = subprocess.run(["tmux", "-L", socket_name, "has-session", "-t", f"={name}"], capture_output=True)
    return found.returncode == 0


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return local_tmux_project(path=repo.path, tmux_server=tmux_server, agent=AGENT)


@pytest.fixture
def stray(tmp_path):
    """A second project, created by mistake, in another repository."""
    other = tmp_path / "stray"
    other.mkdir()
    return ProjectFactory(key="stray", session_prefix="stray", path=str(other), tracker="local", scm="local")


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def running_session(project) -> Session:
    run("spawn", "--project", project.key, "--prompt", "work")
    session = Session.objects.get(project=project)
    assert session.phase == "running", session.error
    return session


def test_a_superuser_deletes_a_project_in_the_admin_and_its_agents_stop(project, tmux_server, client):
    session = running_session(project)
    name = session.runtime_handle["name"]
    assert tmux_has(tmux_server, name)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = f"/admin/agent_sessions/project/{project.pk}/delete/"

    confirm = client.get(url)

    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "permission to delete" not in page
    assert "Yes, I’m sure" in page

    done = client.post(url, {"post": "yes"})

    assert done.status_code == 302
    assert not Project.objects.filter(key="web").exists()
    assert not Session.objects.exists() and not Event.objects.exists()
    assert not tmux_has(tmux_server, name)  # the agent was stopped, not orphaned
    entry = AuditEntry.objects.get(action="project.delete")
    assert entry.data == {"key": "web", "sessions": 1}


def test_ao_project_rm_asks_unless_yes_then_stops_and_deletes(project, tmux_server, monkeypatch):
    session = running_session(project)
    name = session.runtime_handle["name"]
    monkeypatch.setattr("sys.stdin", StringIO(""))  # not a terminal: nobody to ask

    with pytest.raises(CommandError, match="without confirmation — add --yes"):
        run("project", "rm", "web")
    assert Project.objects.filter(key="web").exists() and tmux_has(tmux_server, name)

    out = run("project", "rm", "web", "--yes")

    assert f"stopped {session.id}" in out
    assert not Project.objects.exists() and not Session.objects.exists()
    assert not tmux_has(tmux_server, name)


def test_ao_project_rm_of_one_made_by_mistake_says_what_stays_and_what_would_add_it_again(
    stray, settings, tmp_path
) -> None:
    """ao started from the wrong directory made a project of it: deleting it names the bare remote
    ao made (kept: it may hold the only copy of work) and the config file the next start reads."""
    settings.AO_HOME = tmp_path / "home"
    remote = settings.AO_HOME / "remotes" / f"{stray.key}.git"
    remote.mkdir(parents=True)
    config = Path(stray.path) / "ao.config.yaml"
    config.write_text("projects: {}\n")
    Project.objects.filter(pk=stray.pk).update(config_source=str(config))

    out = run("project", "rm", stray.key, "--yes")

    assert f"kept {remote}: the bare repository its agents pushed to" in out
    assert (
        f"{config} still defines it: the next `ao start` (or `ao config apply`) that reads that file adds it again"
        in out
    )
    assert remote.is_dir() and not Project.objects.filter(key=stray.key).exists()


def test_commands_act_on_the_project_that_holds_the_current_directory(project, stray, monkeypatch):
    monkeypatch.chdir(stray.path)
    assert run("issue", "add", "For the stray one").startswith("created #1")

    monkeypatch.chdir(project.path)
    run("issue", "add", "For web")
    session = running_session(project)
    monkeypatch.chdir(Path(session.workspace_path))  # inside a session's worktree
    assert "For web" in run("issue", "ls")

    monkeypatch.chdir(Path(project.path).parent)  # in neither
    with pytest.raises(CommandError, match=r"several projects \(.*\) and none holds this directory"):
        run("issue", "ls")
