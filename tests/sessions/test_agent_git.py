"""What ao tells an agent about git works, as written, in that agent's worktree; merged work
reaches the next session and the user's checkout; cleaning up a merged session works and a
refused clean-up changes nothing; claiming a PR; branch names free on the remote too.

The user's repository is the one a new user has: no remote at all (ao's local SCM makes the
bare remote under AO_HOME and names it ``origin``), or an ``origin`` somewhere else (kept as it
is; ao's remote is then ``ao``). Agents are real processes in tmux; git is real.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from integrations.registry import plugin_for
from reactions import messages
from sessions.agents import claiming, starting
from sessions.core import selectors
from sessions.domain import lifecycle
from sessions.domain.lifecycle import Phase, RuntimeState
from sessions.models import Event, Session
from sessions.prs import prsync
from tests.helpers.fixtures import GIT_IDENTITY, git
from tests.helpers.projects import local_tmux_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AGENT = "import time\nprint('> ', flush=True)\ntime.sleep(300)\n"
GIT_CMD = re.compile(r"`(git [^`]+)`|^\s+(git .+)$", re.MULTILINE)


@pytest.fixture
def user_repo(tmp_path, git_identity) -> Path:
    """A new user's repository: one commit on main, no remote."""
    path = tmp_path / "myrepo"
    git("init", "-q", "-b", "main", str(path), cwd=tmp_path)
    (path / "README.md").write_text("hello\n")
    git("add", "README.md", cwd=path)
    git("commit", "-qm", "initial", cwd=path)
    return path


def make_project(path: Path, tmux_server: str, settings, tmp_path: Path):
    settings.AO_HOME = tmp_path / "home"
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_INLINE_DELIVERY_WAIT = 0.0
    return local_tmux_project(path=path, tmux_server=tmux_server, agent=AGENT, scm={"require_review": False})


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def spawn(title: str) -> Session:
    run("issue", "add", title)
    before = set(Session.objects.values_list("pk", flat=True))
    ref = run("issue", "ls").strip().splitlines()[-1].split()[0].lstrip("#")
    run("spawn", ref)
    (session,) = Session.objects.exclude(pk__in=before)
    assert session.phase == Phase.RUNNING, session.error
    return session


def commit(workspace: Path, name: str, text: str, message: str) -> None:
    (workspace / name).write_text(text)
    git("add", name, cwd=workspace)
    git("commit", "-qm", message, cwd=workspace)


def git_commands(text: str) -> list[list[str]]:
    """Every git command in an instruction, as argv lists (`a && b` is two commands)."""
    found = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue  # a note on what to do by hand (fix the conflicts), not a command
        for quoted, indented in GIT_CMD.findall(line):
            found += [shlex.split(part) for part in (quoted or indented).split("&&") if part.strip()]
    return found


def run_in(workspace: Path, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **GIT_IDENTITY, "GIT_EDITOR": "true"}
    return subprocess.run(argv, cwd=workspace, capture_output=True, text=True, env=env, timeout=60)


def remote_sha(project, branch: str) -> str | None:
    return plugin_for(project, "scm").branch_sha(branch)


@pytest.mark.parametrize("origin", [None, "https://git.example.invalid/me/myrepo.git"])
def test_every_git_instruction_works_as_written_in_the_worktree(
    origin, user_repo, tmux_server, settings, tmp_path
):
    if origin:
        git("remote", "add", "origin", origin, cwd=user_repo)
    project = make_project(user_repo, tmux_server, settings, tmp_path)
    first = spawn("Add the feature")
    ws = Path(first.workspace_path)
    scm = plugin_for(project, "scm")
    remote = scm.workspace_remote(create=False)
    assert remote == ("ao" if origin else "origin")
    if origin:  # the user's own origin is untouched
        assert git("remote", "get-url", "origin", cwd=user_repo) == origin

    # the worker prompt: push the branch, bring in merged work
    prompt = starting.worker_prompt(first)
    commands = git_commands(prompt)
    assert [argv[:2] for argv in commands] == [["git", "push"], ["git", "fetch"], ["git", "rebase"]]
    commit(ws, "feature.txt", "feature\n", "add the feature")
    for argv in commands:
        done = run_in(ws, argv)
        assert done.returncode == 0, (argv, done.stderr)
    assert remote_sha(project, first.branch) == git("rev-parse", "HEAD", cwd=ws)

    # "commit and push" (CI failed, changes requested, idle nudge): a bare `git push` works
    commit(ws, "more.txt", "more\n", "more")
    assert "commit and push" in messages.ci_failed_lead(lifecycle.PRFact(number=1))
    done = run_in(ws, ["git", "push"])
    assert done.returncode == 0, done.stderr
    assert remote_sha(project, first.branch) == git("rev-parse", "HEAD", cwd=ws)

    # merged in the remote; the next session starts from the merged code, not the stale local main
    row, _ = scm.open_pull_request(branch=first.branch, title="Add the feature")
    scm.merge(number=row.number)
    second = spawn("Change the readme")
    ws2 = Path(second.workspace_path)
    assert (ws2 / "feature.txt").read_text() == "feature\n"
    assert not (user_repo / "feature.txt").exists()

    # the merge-conflict message, with the commands it gives, on a real conflict
    commit(ws2, "README.md", "mine\n", "my readme")
    assert run_in(ws2, ["git", "push", remote, second.branch]).returncode == 0
    other = tmp_path / "other"
    git("clone", "-q", str(scm.remote_path()), str(other), cwd=tmp_path)
    commit(other, "README.md", "theirs\n", "their readme")
    git("push", "-q", "origin", "main", cwd=other)
    scm.open_pull_request(branch=second.branch, title="Change the readme")
    prsync.pull_requests_sync(project=project, session_ids=[second.id])
    second.refresh_from_db()
    facts = selectors.reaction_facts(second, now=timezone.now())
    assert facts.pr.conflicts
    text = messages.merge_conflicts_details(facts.pr)
    fetch, rebase, push = git_commands(text)
    assert run_in(ws2, fetch).returncode == 0
    assert run_in(ws2, rebase).returncode != 0  # stops at the conflict, as the message says
    (ws2 / "README.md").write_text("theirs and mine\n")
    assert run_in(ws2, ["git", "add", "README.md"]).returncode == 0
    cont = run_in(ws2, ["git", "rebase", "--continue"])
    assert cont.returncode == 0, cont.stderr
    done = run_in(ws2, push)
    assert done.returncode == 0, (push, done.stderr)
    assert remote_sha(project, second.branch) == git("rev-parse", "HEAD", cwd=ws2)
    prsync.pull_requests_sync(project=project, session_ids=[second.id])
    second.refresh_from_db()
    assert second.pull_request.conflicts is False

    # the user's checkout gets the merged commit with the command the README gives
    git("pull", "-q", "--ff-only", remote, "main", cwd=user_repo)
    assert (user_repo / "feature.txt").read_text() == "feature\n"


def test_merged_session_is_cleaned_up_as_the_dry_run_said(user_repo, tmux_server, settings, tmp_path):
    project = make_project(user_repo, tmux_server, settings, tmp_path)
    session = spawn("Add the feature")
    ws = Path(session.workspace_path)
    commit(ws, "feature.txt", "feature\n", "add the feature")
    scm = plugin_for(project, "scm")
    scm.push_branch(source=ws, branch=session.branch)
    row, _ = scm.open_pull_request(branch=session.branch, title="Add the feature", created_by=session.id)
    prsync.pull_requests_sync(project=project, session_ids=[session.id])
    scm.merge(number=row.number)  # squashed: the branch's own commits are on no remote branch
    # the agent's remote-tracking ref is gone, as after a fresh clone: only the merge says it is safe
    git("update-ref", "-d", f"refs/remotes/origin/{session.branch}", cwd=user_repo)
    prsync.pull_requests_sync(project=project, session_ids=[session.id])
    session.refresh_from_db()
    assert session.pull_request.state == "merged"

    assert f"would clean up {session.id}" in run("session", "cleanup", "--dry-run")
    assert ws.is_dir()
    assert f"cleaned up {session.id}" in run("session", "cleanup")

    session.refresh_from_db()
    assert (session.phase, session.runtime_state) == (Phase.CLEANED, RuntimeState.LOST)
    assert not ws.exists()
    assert Event.objects.filter(session=session, kind="session.cleaned").exists()
    tmux = subprocess.run(["tmux", "-L", tmux_server, "has-session", "-t", session.id], capture_output=True)
    assert tmux.returncode != 0


def test_refused_cleanup_changes_nothing(user_repo, tmux_server, settings, tmp_path):
    make_project(user_repo, tmux_server, settings, tmp_path)
    session = spawn("Add the feature")
    ws = Path(session.workspace_path)
    commit(ws, "wip.txt", "wip\n", "work in progress, never pushed")
    Session.objects.filter(pk=session.pk).update(phase=Phase.KILLED)  # a candidate, agent still alive

    dry = run("session", "cleanup", "--dry-run")
    assert f"would keep {session.id}" in dry
    assert "work in progress, never pushed" in dry and "initial" not in dry
    with pytest.raises(CommandError):
        run("session", "cleanup")

    session.refresh_from_db()
    assert session.phase == Phase.KILLED
    assert ws.is_dir() and (ws / "wip.txt").exists()
    tmux = subprocess.run(["tmux", "-L", tmux_server, "has-session", "-t", session.id], capture_output=True)
    assert tmux.returncode == 0  # the agent was not killed
    refused = Event.objects.filter(session=session, kind__startswith="session.clean")
    assert [e.kind for e in refused] == ["session.cleanup_refused"]


def test_claim_pr_refuses_closed_and_checks_out_an_open_prs_branch(
    user_repo, tmux_server, settings, tmp_path
):
    project = make_project(user_repo, tmux_server, settings, tmp_path)
    scm = plugin_for(project, "scm")
    remote = scm.workspace_remote()
    helper = tmp_path / "helper"
    git("clone", "-q", str(scm.remote_path()), str(helper), cwd=tmp_path)
    for branch in ("fix/closed", "fix/open"):
        git("checkout", "-q", "-b", branch, "origin/main", cwd=helper)
        commit(helper, f"{branch.split('/')[1]}.txt", "x\n", branch)
        git("push", "-q", "origin", branch, cwd=helper)
    closed, _ = scm.open_pull_request(branch="fix/closed", title="closed")
    scm.close_pull_request(number=closed.number)
    opened, _ = scm.open_pull_request(branch="fix/open", title="open")
    session = spawn("Take over")
    ws = Path(session.workspace_path)

    with pytest.raises(claiming.ClaimRefused, match="closed"):
        claiming.session_pr_claim(session=session, number=closed.number)
    session.refresh_from_db()
    assert getattr(session, "pull_request", None) is None
    assert git("symbolic-ref", "--short", "HEAD", cwd=ws) == session.branch

    claiming.session_pr_claim(session=session, number=opened.number)
    session.refresh_from_db()
    assert (session.branch, session.pull_request.number) == ("fix/open", opened.number)
    assert git("symbolic-ref", "--short", "HEAD", cwd=ws) == "fix/open"
    assert (ws / "open.txt").exists()
    commit(ws, "more.txt", "more\n", "more")
    assert run_in(ws, ["git", "push"]).returncode == 0
    assert remote_sha(project, "fix/open") == git("rev-parse", "HEAD", cwd=ws)
    assert remote  # the helper pushed through ao's remote


def test_a_new_session_does_not_reuse_a_branch_name_the_remote_has(
    user_repo, tmux_server, settings, tmp_path
):
    project = make_project(user_repo, tmux_server, settings, tmp_path)
    scm = plugin_for(project, "scm")
    scm.workspace_remote()
    helper = tmp_path / "helper"
    git("clone", "-q", str(scm.remote_path()), str(helper), cwd=tmp_path)
    git("checkout", "-q", "-b", "feat/1-add-the-feature", cwd=helper)
    commit(helper, "old.txt", "old\n", "an earlier session's work")
    git("push", "-q", "origin", "feat/1-add-the-feature", cwd=helper)

    session = spawn("Add the feature")

    assert session.branch == f"feat/1-add-the-feature-{session.id}"
    assert not (Path(session.workspace_path) / "old.txt").exists()
