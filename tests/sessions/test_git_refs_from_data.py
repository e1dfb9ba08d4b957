"""Branch names from the database reach git as revisions, never as options.

A project's ``default_branch`` is refused by the model unless it is a branch name
(``tests/api/test_project_fields.py``); a row written before that check, or around it, still must
not make git read ``--output=FILE`` as an option (``git rev-list`` truncates FILE): every git call
that takes a ref from data passes it after ``--end-of-options``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from integrations.errors import IntegrationError
from integrations.records import PullRequestInfo
from sessions.agents import starting
from sessions.models import Project, Session
from sessions.prs import prsync
from tests.factories import ProjectFactory, SessionFactory

pytestmark = pytest.mark.django_db


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=a", *args], cwd=cwd, check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    _git(path, "commit", "-q", "--allow-empty", "-m", "first")
    _git(path, "branch", "feat")
    return path


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("precious data\n")
    return path


def _session_with_default_branch(repo: Path, default_branch: str) -> Session:
    project = ProjectFactory(path=str(repo))
    # stored around the model's validation (an older row, a raw update)
    Project.objects.filter(pk=project.pk).update(default_branch=default_branch)
    session = SessionFactory(project=project, branch="feat", workspace_path=str(repo), host="")
    return Session.objects.select_related("project").get(pk=session.pk)


def test_pr_adoption_passes_the_default_branch_to_git_as_a_revision(repo, victim) -> None:
    session = _session_with_default_branch(repo, f"--output={victim}")
    info = PullRequestInfo(number=7, branch="feat", state="open", head_sha="f" * 40)

    prsync._head_is_the_sessions(session, info)

    assert victim.read_text() == "precious data\n"


def test_pr_adoption_still_counts_the_sessions_own_commits(repo) -> None:
    session = _session_with_default_branch(repo, "main")
    _git(repo, "checkout", "-q", "feat")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "the session's work")
    someone_elses = PullRequestInfo(number=7, branch="feat", state="open", head_sha="f" * 40)

    assert prsync._head_is_the_sessions(session, someone_elses) is False


def test_deleting_a_fresh_branch_passes_the_default_branch_to_git_as_a_revision(repo, victim) -> None:
    session = _session_with_default_branch(repo, f"--output={victim}")

    try:
        starting._delete_branch_if_fresh(session)
    except IntegrationError:
        pass  # git says there is no such revision

    assert victim.read_text() == "precious data\n"


def test_a_fresh_branch_is_still_deleted(repo) -> None:
    session = _session_with_default_branch(repo, "main")

    starting._delete_branch_if_fresh(session)

    branches = subprocess.run(["git", "branch", "--list", "feat"], cwd=repo, capture_output=True, text=True)
    assert branches.stdout.strip() == ""
