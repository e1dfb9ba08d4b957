"""Conflict watch on real branches and worktrees: overlaps recorded once per set, the rebase message after a merge."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from reactions.models import Notification
from sessions.core import services
from sessions.models import Event, FileOverlap, Message, Session
from sessions.watchers import conflicts
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory
from tests.helpers.fixtures import git

pytestmark = pytest.mark.django_db


def worker_sessions(repo, branches, **fields) -> tuple:
    """Project ``web`` with a worker session per branch, each in its own worktree of ``main``."""
    project = ProjectFactory(key="web", session_prefix="web", path=str(repo.path), tracker="local")
    sessions = {}
    for n, branch in enumerate(branches, start=1):
        path = repo.root / f"web-{n}"
        git("worktree", "add", "-q", "-b", branch, str(path), "main", cwd=repo.path)
        sessions[n] = SessionFactory(
            project=project,
            number=n,
            id=f"web-{n}",
            branch=branch,
            workspace_path=str(path),
            host=django_settings.AO_HOST_NAME,
            **fields,
        )
    return project, sessions


@pytest.fixture
def fleet(repo, settings):
    settings.AO_INLINE_DELIVERY_WAIT = 0.0
    project, sessions = worker_sessions(repo, ("feat/a", "feat/b", "feat/c"))
    orchestrator = SessionFactory(project=project, id="web-orchestrator", number=None, kind="orchestrator")
    return project, sessions, orchestrator


def test_overlaps_between_parallel_workers(repo, fleet) -> None:
    project, s, orchestrator = fleet
    repo.commit_file(repo.root / "web-1", "shared.py", "a\n")
    repo.commit_file(repo.root / "web-1", "a_only.py")
    repo.commit_file(repo.root / "web-2", "b_only.py")
    (repo.root / "web-2" / "shared.py").write_text("b, not committed yet\n")
    repo.commit_file(repo.root / "web-3", "c_only.py")

    notes = conflicts.conflicts_watch(project=project)
    assert notes == ["web-1 and web-2 change the same files: shared.py"]
    overlap = FileOverlap.objects.get()
    assert (overlap.session_a_id, overlap.session_b_id, overlap.files) == ("web-1", "web-2", ["shared.py"])
    assert [(o.other, o.files) for o in conflicts.overlaps_for(s[1])] == [("web-2", ("shared.py",))]
    assert [o.other for o in conflicts.overlaps_for(s[2])] == ["web-1"]
    assert conflicts.overlaps_for(s[3]) == []
    assert set(conflicts.overlaps_by_session(project=project)) == {"web-1", "web-2"}
    events = Event.objects.filter(kind="conflict.overlap")
    assert sorted((e.session_id, e.summary) for e in events) == [
        ("web-1", "changes the same files as web-2: shared.py"),
        ("web-2", "changes the same files as web-1: shared.py"),
    ]
    told = Message.objects.get(session=orchestrator)
    assert told.text.startswith("Conflict watch: web-1 and web-2 change the same files (shared.py).")
    assert Notification.objects.filter(rule="conflict-overlap", priority="warning").count() == 1

    # the same set again: nobody is told twice
    assert conflicts.conflicts_watch(project=project) == []
    assert Event.objects.filter(kind="conflict.overlap").count() == 2
    assert Message.objects.filter(session=orchestrator).count() == 1

    # a new file in common is a new set
    repo.commit_file(repo.root / "web-1", "more.py")
    repo.commit_file(repo.root / "web-3", "more.py")
    repo.commit_file(repo.root / "web-2", "more.py")
    notes = conflicts.conflicts_watch(project=project)
    assert sorted(notes) == [
        "web-1 and web-2 change the same files: more.py, shared.py",
        "web-1 and web-3 change the same files: more.py",
        "web-2 and web-3 change the same files: more.py",
    ]
    assert Message.objects.filter(session=orchestrator).count() == 4
    assert Event.objects.filter(kind="conflict.overlap", session=s[3]).count() == 2


def test_disjoint_workers_are_left_alone(repo, fleet) -> None:
    project, _s, _orchestrator = fleet
    for n in (1, 2, 3):
        repo.commit_file(repo.root / f"web-{n}", f"only_{n}.py")
    assert conflicts.conflicts_watch(project=project) == []
    assert not FileOverlap.objects.exists()
    assert not Message.objects.exists() and not Notification.objects.exists()


def test_the_other_one_is_told_to_rebase_after_a_merge(repo, fleet) -> None:
    project, s, _orchestrator = fleet
    repo.commit_file(repo.root / "web-1", "shared.py", "a\n")
    repo.commit_file(repo.root / "web-2", "shared.py", "b\n")
    conflicts.conflicts_watch(project=project)
    assert FileOverlap.objects.filter(resolved_at__isnull=True).count() == 1

    PullRequestFactory(session=s[1], state="merged")
    web1 = Session.objects.get(pk="web-1")
    services.session_rederive(session=web1)
    assert web1.zone == "done"
    notes = conflicts.conflicts_watch(project=project)
    assert notes == ["web-2 asked to rebase after web-1 merged"]
    message = Message.objects.get(session=s[2])
    assert message.text.startswith("web-1 merged and touched the same files: rebase on origin/main")
    assert message.sender == "system" and message.sender_name == "conflict-watch"
    assert Event.objects.filter(session=s[2], kind="conflict.rebase_requested").count() == 1
    assert conflicts.overlaps_for(s[2]) == []

    assert conflicts.conflicts_watch(project=project) == []  # once
    assert Message.objects.filter(session=s[2]).count() == 1
    assert not Message.objects.filter(session=s[1]).exists()


def test_an_overlap_that_goes_away_is_resolved(repo, fleet) -> None:
    project, s, _orchestrator = fleet
    repo.commit_file(repo.root / "web-1", "shared.py", "a\n")
    (repo.root / "web-2" / "shared.py").write_text("b\n")
    conflicts.conflicts_watch(project=project)
    (repo.root / "web-2" / "shared.py").unlink()
    assert conflicts.conflicts_watch(project=project) == ["web-1 and web-2 no longer share files"]
    assert conflicts.overlaps_for(s[1]) == []
