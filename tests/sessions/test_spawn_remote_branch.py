"""`ao spawn --branch B` where B exists only on the remote (pushed from elsewhere): the session's
branch is the remote's, commits and all, so its pushes and `ao pr create` go through; the sweep
opens no PR in the session's name for a branch it has not pushed to; a rejected push is one clear
line. Real git and tmux, the local SCM on the checkout's bare origin."""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from integrations.registry import plugin_for
from sessions.agents.plugins import token_hash
from sessions.models import Session
from sessions.prs import prsync
from tests.helpers.fixtures import git
from tests.helpers.projects import local_tmux_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return local_tmux_project(path=repo.path, tmux_server=tmux_server)


@pytest.fixture
def elsewhere(repo, tmp_path) -> Path:
    """Another clone of the remote: a person's machine."""
    clone = tmp_path / "elsewhere"
    git("clone", "-q", str(repo.origin), str(clone), cwd=tmp_path)
    return clone


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def commit(workspace: Path, name: str) -> str:
    (workspace / name).write_text(f"{name}\n")
    git("add", name, cwd=workspace)
    git("commit", "-qm", f"add {name}", cwd=workspace)
    return git("rev-parse", "HEAD", cwd=workspace)


def _push_remote_only(elsewhere: Path) -> str:
    git("checkout", "-q", "-b", "remote-only", cwd=elsewhere)
    sha = commit(elsewhere, "started.txt")
    git("push", "-q", "origin", "remote-only", cwd=elsewhere)
    return sha


def _as_the_agent(session: Session, live_server, monkeypatch) -> Path:
    Session.objects.filter(pk=session.pk).update(api_token_hash=token_hash("agent-token"))
    workspace = Path(session.workspace_path)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.setenv("AO_SESSION", session.id)
    monkeypatch.setenv("AO_TOKEN", "agent-token")
    return workspace


def test_a_branch_only_on_the_remote_is_continued_with_its_commits(
    project, repo, elsewhere, live_server, monkeypatch
):
    remote_head = _push_remote_only(elsewhere)
    assert subprocess.run(["git", "rev-parse", "--verify", "-q", "remote-only"], cwd=repo.path).returncode

    run("spawn", "--prompt", "finish what was started", "--branch", "remote-only")

    session = Session.objects.get(pk="web-1")
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    assert git("rev-parse", "HEAD", cwd=workspace) == remote_head
    assert (workspace / "started.txt").is_file()

    # the sweep opens no PR in the session's name for a branch it has not pushed to
    assert prsync.scm_housekeeping(project=project) == []
    assert plugin_for(project, "scm").find_pull_requests(branches=["remote-only"]) == {}

    # the agent's work goes on top: it pushes, and `ao pr create` opens the PR
    _as_the_agent(session, live_server, monkeypatch)
    mine = commit(workspace, "finished.txt")
    assert run("pr", "create", "--title", "Finish it").startswith("opened PR #1 for remote-only")
    assert git("rev-parse", "refs/heads/remote-only", cwd=repo.origin) == mine


def test_a_rejected_push_is_one_clear_line(project, repo, elsewhere, live_server, monkeypatch):
    _push_remote_only(elsewhere)
    run("spawn", "--prompt", "finish what was started", "--branch", "remote-only")
    session = Session.objects.get(pk="web-1")
    workspace = _as_the_agent(session, live_server, monkeypatch)
    commit(elsewhere, "meanwhile.txt")  # the remote moves on
    git("push", "-q", "origin", "remote-only", cwd=elsewhere)
    commit(workspace, "finished.txt")

    with pytest.raises(CommandError) as refused:
        run("pr", "create", "--title", "Finish it")

    said = str(refused.value)
    assert "\n" not in said and "{" not in said, said
    assert said.endswith(
        "could not push remote-only: the remote's remote-only has commits this branch does not "
        "(fetch and rebase onto it, or push with --force)"
    ), said
    assert plugin_for(project, "scm").find_pull_requests(branches=["remote-only"]) == {}
