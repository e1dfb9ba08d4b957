"""The whole PR loop offline on one machine: `scm: local` + local CI + the local tracker.

An agent (a real process in tmux) works in its worktree; the test does what the agent would do
(commit, `ao pr create` through ao's API with its session token), and sweeps observe the rest:
the PR, the local CI run on the pushed head, a person's review, the merge.
"""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from sessions.agents.plugins import token_hash
from sessions.flows.sweep import project_sweep
from sessions.models import CheckRun, Event, Session
from tests.helpers.projects import local_tmux_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AGENT = "import sys, time\nprint('> ', flush=True)\ntime.sleep(120)\n"
CHECK = (
    "import pathlib, sys\nprint('checking ok.txt')\nsys.exit(0 if pathlib.Path('ok.txt').exists() else 1)\n"
)


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return local_tmux_project(
        path=repo.path,
        tmux_server=tmux_server,
        agent=AGENT,
        scm={"check_command": [sys.executable, "-c", CHECK], "check_name": "unit"},
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def commit(workspace: Path, name: str) -> None:
    (workspace / name).write_text(f"{name}\n")
    subprocess.run(["git", "add", name], cwd=workspace, check=True)
    subprocess.run(["git", "commit", "-qm", f"add {name}"], cwd=workspace, check=True)


def sweep(project, session_id: str) -> Session:
    project_sweep(project=project)
    return Session.objects.get(pk=session_id)


def test_issue_to_merge_offline(project, repo, live_server, monkeypatch):
    run("issue", "add", "Add the feature")
    run("spawn", "1")
    session = Session.objects.get(pk="web-1")
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)

    # the agent commits and opens its PR through ao's API, as `ao pr create` does in its worktree
    Session.objects.filter(pk=session.pk).update(api_token_hash=token_hash("agent-token"))
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.setenv("AO_SESSION", session.id)
    monkeypatch.setenv("AO_TOKEN", "agent-token")
    commit(workspace, "feature.txt")
    assert "opened PR #1" in run("pr", "create", "--title", "Add the feature")
    session.refresh_from_db()
    assert session.pull_request.number == 1
    assert session.status == "ci_pending"
    for name in ("AO_URL", "AO_SESSION", "AO_TOKEN"):
        monkeypatch.delenv(name)

    # the sweep runs the check on the pushed head: it fails, with the log on the check
    session = sweep(project, "web-1")
    assert (session.status, session.zone) == (
        "ci_failed",
        "working",
    )  # the ci-failed rule hands it to the agent
    check = CheckRun.objects.get(pull_request__session=session)
    assert (check.name, check.source, check.conclusion) == ("unit", "local", "failure")
    assert "checking ok.txt" in check.log_excerpt
    assert Event.objects.filter(session=session, kind="ci.changed", summary__contains="unit").exists()

    # the agent pushes a fix (plain git push would do too; the sweep finds the new head)
    commit(workspace, "ok.txt")
    subprocess.run(["git", "push", "-q", "origin", session.branch], cwd=workspace, check=True)
    session = sweep(project, "web-1")  # sees the new head, schedules and runs its check
    session = sweep(project, "web-1")
    assert session.pull_request.ci_state == "passing"
    assert (session.status, session.zone) == ("review_pending", "review")  # a person is asked to review

    # a person approves; the PR is ready to merge
    run("pr", "review", "1", "--approve", "--as", "ana")
    session = sweep(project, "web-1")
    assert (session.status, session.zone) == ("mergeable", "merge")

    # merge into main in the remote; the session is done
    assert "merged PR #1" in run("pr", "merge", "1")
    session = sweep(project, "web-1")
    assert (session.status, session.zone) == ("merged", "done")
    log = subprocess.run(
        ["git", "log", "--format=%s", "main"], cwd=repo.origin, capture_output=True, text=True, check=True
    ).stdout
    assert "Add the feature" in log.splitlines()[0]
    # the project's own checkout was never touched
    assert not (repo.path / "feature.txt").exists()
