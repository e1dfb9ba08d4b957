"""What the conflict watch costs each sweep: git runs in a workspace only when something there may
have changed, and every commit (the worker's or the base's) is still seen by the next watch."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from integrations import gitutil
from sessions.models import FileOverlap, Session
from sessions.watchers import conflicts
from tests.factories import ProjectFactory, SessionFactory
from tests.helpers.fixtures import git
from tests.orchestrator.test_conflicts import worker_sessions

pytestmark = pytest.mark.django_db


@pytest.fixture
def git_calls(monkeypatch) -> list[tuple[str, str]]:
    """Every git process ao runs, as (directory, subcommand), the real git still running."""
    calls: list[tuple[str, str]] = []
    real = gitutil.run_git

    def spy(args, *, cwd, **kwargs):
        calls.append((str(Path(cwd).resolve()), str(args[0])))
        return real(args, cwd=cwd, **kwargs)

    monkeypatch.setattr(gitutil, "run_git", spy)
    return calls


@pytest.fixture
def fleet(repo, settings):
    return worker_sessions(
        repo, ("feat/a", "feat/b"), activity="idle", activity_at=timezone.now() - timedelta(minutes=3)
    )


def in_workspaces(calls, repo) -> list[tuple[str, str]]:
    root = str(repo.root.resolve())
    return [call for call in calls if call[0].startswith(root)]


def settle(project, repo, git_calls, timeout: float = 30.0) -> None:
    """Watch until a watch runs no git in the workspaces: ``git status`` rewrites the index while
    it holds entries as new as itself (git's "racily clean" entries), and a moved index is looked
    at again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        git_calls.clear()
        conflicts.conflicts_watch(project=project)
        if not in_workspaces(git_calls, repo):
            return
        time.sleep(0.1)
    raise AssertionError(f"git still runs in the workspaces after {timeout:g} s: {git_calls}")


def test_a_watch_over_unchanged_workspaces_runs_no_git_in_them(repo, fleet, git_calls) -> None:
    project, _s = fleet
    repo.commit_file(repo.root / "web-1", "shared.py", "a\n")
    (repo.root / "web-2" / "shared.py").write_text("b, not committed\n")
    settle(project, repo, git_calls)
    assert FileOverlap.objects.filter(resolved_at__isnull=True).count() == 1
    git_calls.clear()

    conflicts.conflicts_watch(project=project)
    assert in_workspaces(git_calls, repo) == []
    assert [sub for _cwd, sub in git_calls] == ["for-each-ref"]  # the project's refs: one per watch
    assert FileOverlap.objects.filter(resolved_at__isnull=True).count() == 1  # the same answer


def test_a_new_commit_on_either_side_is_seen_by_the_next_watch(repo, fleet, git_calls) -> None:
    project, _s = fleet
    repo.commit_file(repo.root / "web-1", "a.py")
    repo.commit_file(repo.root / "web-2", "b.py")
    settle(project, repo, git_calls)
    assert not FileOverlap.objects.exists()

    # the worker's side: a commit, with no sign of the agent doing anything
    repo.commit_file(repo.root / "web-2", "a.py", "b's version\n")
    assert conflicts.conflicts_watch(project=project) == ["web-1 and web-2 change the same files: a.py"]

    # the base's side: web-2's commits land on origin/main, so its branch changes nothing any more
    git("merge", "-q", "--ff-only", "feat/b", cwd=repo.path)
    git("push", "-q", "origin", "main", cwd=repo.path)
    assert conflicts.conflicts_watch(project=project) == ["web-1 and web-2 no longer share files"]


def test_an_agents_edit_is_seen_by_the_next_watch(repo, fleet, git_calls) -> None:
    project, _s = fleet
    repo.commit_file(repo.root / "web-1", "shared.py", "a\n")
    (repo.root / "web-2" / "shared.py").write_text("b\n")
    git("add", "shared.py", cwd=repo.root / "web-2")
    git("commit", "-q", "-m", "b", cwd=repo.root / "web-2")
    settle(project, repo, git_calls)
    (repo.root / "web-1" / "only_a.py").write_text("a\n")
    git("add", "only_a.py", cwd=repo.root / "web-1")
    git("commit", "-q", "-m", "a", cwd=repo.root / "web-1")
    settle(project, repo, git_calls)

    # the agent edits a committed file in place: no ref or index moves, its activity reading does
    (repo.root / "web-2" / "only_a.py").write_text("b too\n")
    (repo.root / "web-2" / "shared.py").write_text("b, edited again\n")
    Session.objects.filter(pk="web-2").update(activity="active", activity_at=timezone.now())
    notes = conflicts.conflicts_watch(project=project)
    assert notes == ["web-1 and web-2 change the same files: only_a.py, shared.py"]


def test_an_edit_nobody_announced_is_seen_within_the_recheck_interval(
    repo, fleet, git_calls, monkeypatch
) -> None:
    project, _s = fleet
    repo.commit_file(repo.root / "web-1", "shared.py", "a\n")
    settle(project, repo, git_calls)
    (repo.root / "web-2" / "shared.py").write_text("someone else's edit\n")  # the agent is idle
    conflicts.conflicts_watch(project=project)
    assert not FileOverlap.objects.exists()  # not looked at: nothing said the workspace changed

    monkeypatch.setattr(conflicts, "WORKSPACE_RECHECK_SECONDS", 0.0)  # the interval has passed
    assert conflicts.conflicts_watch(project=project) == ["web-1 and web-2 change the same files: shared.py"]


def test_a_clones_new_commit_is_seen_by_the_next_watch(repo, settings, tmp_path, git_calls) -> None:
    """A workspace that is a clone (its branch is not in the project's repository): its new
    commit changes what it changes although its base did not move."""
    project = ProjectFactory(key="cl", session_prefix="cl", path=str(repo.path), tracker="local")
    clones = {}
    for n in (1, 2):
        path = repo.root / f"cl-{n}"
        git("clone", "-q", str(repo.origin), str(path), cwd=tmp_path)
        git("checkout", "-q", "-b", f"feat/{n}", cwd=path)
        clones[n] = path
        SessionFactory(
            project=project,
            number=n,
            id=f"cl-{n}",
            branch=f"feat/{n}",
            workspace_path=str(path),
            host=settings.AO_HOST_NAME,
            activity="idle",
            activity_at=timezone.now() - timedelta(minutes=3),
        )
    repo.commit_file(clones[1], "shared.py", "a\n")
    repo.commit_file(clones[2], "other.py")
    settle(project, repo, git_calls)
    assert not FileOverlap.objects.exists()

    repo.commit_file(clones[2], "shared.py", "b\n")
    assert conflicts.conflicts_watch(project=project) == ["cl-1 and cl-2 change the same files: shared.py"]
