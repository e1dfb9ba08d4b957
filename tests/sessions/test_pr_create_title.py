"""`ao pr create` run again by an agent (local SCM): the PR keeps the title it has unless a new
one is given; the issue title is only the first title of a PR opened without one."""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from sessions.agents.plugins import token_hash
from sessions.models import Session
from tests.helpers.projects import local_tmux_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AGENT = "import time\nprint('> ', flush=True)\ntime.sleep(120)\n"


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return local_tmux_project(path=repo.path, tmux_server=tmux_server, agent=AGENT)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def commit(workspace: Path, name: str) -> None:
    (workspace / name).write_text(f"{name}\n")
    subprocess.run(["git", "add", name], cwd=workspace, check=True)
    subprocess.run(["git", "commit", "-qm", f"add {name}"], cwd=workspace, check=True)


def test_pr_create_again_without_a_title_keeps_the_agents_title(project, live_server, monkeypatch):
    run("issue", "add", "Add the feature")
    run("spawn", "1")
    session = Session.objects.get(pk="web-1")
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    Session.objects.filter(pk=session.pk).update(api_token_hash=token_hash("agent-token"))
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.setenv("AO_SESSION", session.id)
    monkeypatch.setenv("AO_TOKEN", "agent-token")

    commit(workspace, "feature.txt")
    assert run("pr", "create", "--title", "Feature: a careful title").startswith("opened PR #1")
    commit(workspace, "more.txt")
    again = run("pr", "create")

    assert again.startswith("updated PR #1")
    session.refresh_from_db()
    assert session.pull_request.title == "Feature: a careful title"
    assert "Feature: a careful title" in again


def test_pr_create_without_a_title_first_takes_the_issue_title(project, live_server, monkeypatch):
    run("issue", "add", "Add the feature")
    run("spawn", "1")
    session = Session.objects.get(pk="web-1")
    workspace = Path(session.workspace_path)
    Session.objects.filter(pk=session.pk).update(api_token_hash=token_hash("agent-token"))
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.setenv("AO_SESSION", session.id)
    monkeypatch.setenv("AO_TOKEN", "agent-token")

    commit(workspace, "feature.txt")
    run("pr", "create")

    session.refresh_from_db()
    assert session.pull_request.title == "Add the feature"
