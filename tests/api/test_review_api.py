"""POST /api/v1/sessions/<id>/review: the dashboard's review of a `local` PR, over the API."""

from __future__ import annotations

import pytest

from integrations.models import LocalReview
from integrations.registry import plugin_for
from sessions.models import AuditEntry, Event, PullRequest, Session
from sessions.prs import prsync
from tests.helpers.fixtures import Repo
from tests.integrations.test_scm_local import push_branch

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_pr(world, repo: Repo) -> PullRequest:
    project = world.project
    project.path, project.scm = str(repo.path), "local"
    project.save()
    Session.objects.filter(pk=world.session.pk).update(branch="feat/api")
    push_branch(repo, "feat/api", {"api.py": "x = 1\n"})
    plugin_for(project, "scm").open_pull_request(branch="feat/api", created_by=world.session.id)
    prsync.pull_requests_sync(project=project)
    return PullRequest.objects.get(session=world.session)


def test_an_operator_reviews_the_sessions_local_pr(world, local_pr) -> None:
    url = f"/api/v1/sessions/{world.session.id}/review"
    client = world.client("operator")

    refused = client.post(url, {"decision": "request_changes"}, format="json")
    assert refused.status_code == 409 and "needs a comment" in refused.json()["error"]["message"]

    done = client.post(url, {"decision": "request_changes", "body": "Name x"}, format="json")

    assert done.status_code == 200, done.content
    assert done.json() == {
        "session": world.session.id,
        "number": local_pr.number,
        "state": "changes_requested",
        "review_decision": "changes_requested",
    }
    assert LocalReview.objects.get().reviewer == "operator"
    event = Event.objects.get(session=world.session, kind="pr.review")
    assert event.actor_user == world.users["operator"] and "via the API" in event.summary
    assert AuditEntry.objects.filter(action="pr.review", target_id=world.session.id).exists()
    approved = client.post(url, {"decision": "approve"}, format="json")
    assert approved.json()["review_decision"] == "approved"


def test_viewers_cannot_review_and_a_hosted_scm_is_refused(world) -> None:
    url = f"/api/v1/sessions/{world.session.id}/review"
    assert world.client("viewer").post(url, {"decision": "approve"}, format="json").status_code == 403
    no_pr = world.client("operator").post(url, {"decision": "approve"}, format="json")
    assert no_pr.status_code == 409

    from tests.factories import PullRequestFactory

    PullRequestFactory(session=world.session)  # the project's SCM is the in-memory test one
    other = world.client("operator").post(url, {"decision": "approve"}, format="json")
    assert other.status_code == 409 and other.json()["error"]["code"] == "not_supported"
    assert not Event.objects.filter(kind="pr.review").exists()
