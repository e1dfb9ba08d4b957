"""A session never silently takes another session's PR: with the `local` SCM and real git, opening a
PR for a branch whose open PR another session opened is refused, naming that session, and changes
nothing; the session that claimed the PR may update it."""

from __future__ import annotations

import pytest

from integrations.base import PermanentIntegrationError
from integrations.models import LocalPullRequest
from sessions.agents import claiming
from sessions.models import PullRequest
from sessions.prs import prsync
from tests.factories import ProjectFactory, SessionFactory
from tests.integrations.test_scm_local import commit_and_push, worktree


@pytest.mark.django_db
def test_opening_a_pr_another_session_opened_is_refused_naming_it(repo):
    project = ProjectFactory(key="web", session_prefix="web", path=str(repo.path), scm="local")
    path = worktree(repo, "feat/shared")
    commit_and_push(repo, path, "feat/shared", {"a.txt": "a\n"})
    first = SessionFactory(project=project, number=1, branch="feat/shared", workspace_path=str(path))
    second = SessionFactory(project=project, number=2, branch="feat/shared", workspace_path=str(path))
    prsync.session_pull_request_open(session=first, title="First's work")

    with pytest.raises(PermanentIntegrationError, match=r"opened by the session web-1.*not web-2's PR"):
        prsync.session_pull_request_open(session=second, title="Second's title")

    row = LocalPullRequest.objects.get()
    assert (row.title, row.created_by) == ("First's work", "web-1")
    assert PullRequest.objects.get(number=row.number).session_id == first.pk
    assert not PullRequest.objects.filter(session=second).exists()


@pytest.mark.django_db
def test_the_session_that_claimed_the_pr_may_update_it(repo):
    project = ProjectFactory(key="web", session_prefix="web", path=str(repo.path), scm="local")
    path = worktree(repo, "feat/taken")
    commit_and_push(repo, path, "feat/taken", {"a.txt": "a\n"})
    first = SessionFactory(project=project, number=1, branch="feat/taken", workspace_path=str(path))
    second = SessionFactory(project=project, number=2, branch="feat/other", workspace_path=str(path))
    opened = prsync.session_pull_request_open(session=first, title="First's work")
    first.delete()
    claiming.session_pr_claim(session=second, number=opened["number"])
    second.refresh_from_db()

    result = prsync.session_pull_request_open(session=second, title="Taken over")

    assert (result["number"], result["created"]) == (opened["number"], False)
    assert LocalPullRequest.objects.get().title == "Taken over"
    assert PullRequest.objects.get(session=second).number == opened["number"]
