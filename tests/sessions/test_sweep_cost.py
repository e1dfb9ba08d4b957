"""What a sweep costs per session, pinned without timing anything: the SQL statements of a sweep
grow by a small constant per session (the observation's own write), the reactions and the
derivation read their facts for all sessions at once, and a sweep over unchanged workspaces runs
no git in them. Behaviour stays: a session whose facts change is reacted to within one sweep.

Real pieces: agents as real processes (the ``process`` runtime) read through the Claude Code
plugin, real git worktrees for the conflict watch, the reactions engine and its bookkeeping."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations import gitutil
from reactions import services as reactions
from reactions.models import Notification, ReactionAttempt
from sessions.core import realtime
from sessions.flows import sweep as sweeps
from sessions.models import Message, Project, Session
from sessions.prs import prsync
from tests.factories import CheckRunFactory, ProjectFactory, PullRequestFactory, ReviewThreadFactory
from tests.helpers.fixtures import git, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

PROMPT = "import sys, time\nprint('> ', flush=True)\ntime.sleep(600)\n"


@pytest.fixture
def git_calls(monkeypatch) -> list[str]:
    """The directory of every git process ao runs (the real git still runs)."""
    calls: list[str] = []
    real = gitutil.run_git

    def spy(args, *, cwd, **kwargs):
        calls.append(str(Path(cwd).resolve()))
        return real(args, cwd=cwd, **kwargs)

    monkeypatch.setattr(gitutil, "run_git", spy)
    return calls


@pytest.fixture
def fleet(repo, process_runtime, settings, tmp_path, monkeypatch):
    """A project whose running sessions are real processes at a prompt, each with a worktree and
    an open PR (green, approved, one review thread)."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))  # no transcripts: the pane
    project = ProjectFactory(key="cost", session_prefix="cost", path=str(repo.path), runtime="process")
    handles = []

    def add(count: int) -> None:
        start = Session.objects.filter(project=project).count()
        for n in range(start + 1, start + count + 1):
            path = repo.root / f"cost-{n}"
            git("worktree", "add", "-q", "-b", f"feat/{n}", str(path), "main", cwd=repo.path)
            handle = process_runtime.start(
                name=f"cost-{n}-{id(project)}", cwd=path, command=[sys.executable, "-c", PROMPT], env={}
            )
            handles.append(handle)
            session = Session.objects.create(
                id=f"cost-{n}",
                project=project,
                number=n,
                branch=f"feat/{n}",
                phase="running",
                agent="claude-code",
                host=settings.AO_HOST_NAME,
                workspace_path=str(path),
                runtime_handle={"runtime": "process", "name": handle.name, "data": handle.data},
            )
            pr = PullRequestFactory(
                session=session,
                branch=f"feat/{n}",
                review_decision="approved",
                ci_state="passing",
                mergeable=True,
            )
            CheckRunFactory(pull_request=pr, name="test")
            CheckRunFactory(pull_request=pr, name="lint")
            ReviewThreadFactory(pull_request=pr, author="someone", author_association="NONE")
        for handle in handles:
            assert wait_for(lambda h=handle: "> " in process_runtime.read_output(h), timeout=30)

    yield project, add
    for handle in handles:
        process_runtime.kill(handle)


def sweep(project) -> int:
    with CaptureQueriesContext(connection) as queries:
        sweeps.project_sweep(project=Project.objects.get(pk=project.pk))
    return len(queries)


def in_workspaces(git_calls, repo) -> list[str]:
    root = str(repo.root.resolve())
    return [cwd for cwd in git_calls if cwd.startswith(root)]


def settle(project, repo, git_calls, timeout: float = 30.0) -> None:
    """Sweep until a sweep runs no git in the workspaces: ``git status`` rewrites an index while
    it holds entries as new as itself (git's "racily clean" entries), and a moved index is looked
    at again by the next sweep (three sweeps were not always enough: 2 runs in 5 failed)."""

    def quiet() -> bool:
        git_calls.clear()
        sweep(project)
        return not in_workspaces(git_calls, repo)

    assert wait_for(quiet, timeout=timeout, interval=0.1), f"git still runs in the workspaces: {git_calls}"


def test_a_sweeps_statements_grow_by_a_small_constant_per_session(fleet, repo, git_calls) -> None:
    project, add = fleet
    add(2)
    for _ in range(2):  # first observations, first reactions (told once)
        sweep(project)
    settle(project, repo, git_calls)
    assert Notification.objects.filter(rule="approved-and-green").count() == 2  # reactions ran
    skipped = ReactionAttempt.objects.filter(rule="untrusted-comment")
    assert skipped.count() == 2
    few = sweep(project)

    add(6)
    for _ in range(2):
        sweep(project)
    settle(project, repo, git_calls)
    git_calls.clear()
    many = sweep(project)

    # the goal is at most 6 statements per session: each observation's transaction and
    # its write; the rest is read for all sessions at once
    assert (many - few) / 6 <= 3, f"{few} statements for 2 sessions, {many} for 8"
    assert Notification.objects.filter(rule="approved-and-green").count() == 8  # each told once
    assert skipped.count() == 8 and not Message.objects.exists()
    # unchanged worktrees: no git in them, only the project's refs (one process per sweep)
    assert in_workspaces(git_calls, repo) == []


def test_a_session_whose_facts_change_is_reacted_to_within_one_sweep(fleet, repo) -> None:
    project, add = fleet
    add(3)
    for _ in range(2):
        sweep(project)
    assert not Message.objects.exists()

    # CI fails on one session's head: the next sweep tells that agent, and only that one
    session = Session.objects.select_related("pull_request").get(pk="cost-2")
    session.pull_request.checks.filter(name="test").update(conclusion="failure")
    type(session.pull_request).objects.filter(pk=session.pull_request.pk).update(ci_state="failing")
    sweep(project)
    sent = Message.objects.filter(sender="reaction", sender_name="ci-failed")
    assert [m.session_id for m in sent] == ["cost-2"]
    sweep(project)
    assert sent.count() == 1  # once


def test_a_pr_syncs_card_pushes_and_reactions_are_folded_per_session(monkeypatch) -> None:
    """Storing a changed PR announces its card several times (the facts, each timeline entry, the
    new status) and names its session as recorded: outside the web server's loop (a worker) the
    sweep's PR sync pushes each card once and asks the reactions for all its sessions together."""
    project = ProjectFactory(key="fold", session_prefix="fold")
    sessions = [Session.objects.create(id=f"fold-{n}", project=project, number=n) for n in (1, 2)]
    rendered: list[str] = []
    real = realtime._card_renderer

    def counting(session_id, **kwargs):
        rendered.append(session_id)
        return real(session_id, **kwargs) if real is not None else None

    monkeypatch.setattr(realtime, "_card_renderer", counting)
    monkeypatch.setattr(realtime, "_server_loop", None)
    monkeypatch.setattr(realtime, "_may_be_listening", lambda session_id: True)  # a board is open
    asked: list[list[str]] = []
    real_react = reactions.sessions_react

    def recording(*, session_ids, **kwargs):
        asked.append(list(session_ids))
        return real_react(session_ids=session_ids, **kwargs)

    monkeypatch.setattr(reactions, "sessions_react", recording)

    def pr_sync(*, project):  # what storing the two sessions' changed PRs announces and returns
        for session in sessions:
            for _ in range(3):
                realtime.card_changed(session.pk)
        assert rendered == [] and asked == []  # nothing yet: at the end
        return prsync.SyncResult(synced=[1, 2], recorded=[s.pk for s in sessions])

    monkeypatch.setattr(prsync, "pull_requests_sweep", pr_sync)
    sweeps.pull_requests_sweep(project=project)
    assert sorted(rendered) == ["fold-1", "fold-2"]
    assert asked == [["fold-1", "fold-2"]]

    realtime.card_changed("fold-1")  # outside: at once, as before
    assert rendered.count("fold-1") == 2
