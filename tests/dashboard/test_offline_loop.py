"""The offline loop from the dashboard: review a `local` PR, add a `local` issue, and the SCM budget
banner on the board."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from integrations.models import LocalIssue, LocalReview
from integrations.registry import plugin_for
from sessions.models import AuditEntry, Event, PullRequest, Session
from sessions.prs import prsync
from tests.factories import PullRequestFactory
from tests.helpers.fixtures import Repo
from tests.integrations.test_scm_local import push_branch

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_pr(team, repo: Repo) -> PullRequest:
    """web-1 on a pushed branch with an open local PR, its facts synced into ao."""
    project = team.project
    project.path, project.scm, project.tracker = str(repo.path), "local", "local"
    project.save()
    Session.objects.filter(pk="web-1").update(branch="feat/board")
    push_branch(repo, "feat/board", {"board.py": "live = True\n"}, message="Make the board live")
    plugin_for(project, "scm").open_pull_request(branch="feat/board", created_by="web-1")
    prsync.pull_requests_sync(project=project)
    return PullRequest.objects.get(session_id="web-1")


# --- reviewing a local PR --------------------------------------------------------------------------------
def test_an_operator_sees_the_review_form_a_viewer_does_not(client, team, local_pr) -> None:
    client.force_login(team.operator)
    page = client.get("/s/web-1/").content.decode()
    assert 'id="review-form"' in page and "Approve" in page and "Request changes" in page

    client.force_login(team.viewer)
    page = client.get("/s/web-1/").content.decode()
    assert 'id="review-form"' not in page and "review required" in page


def test_no_review_form_for_a_hosted_scm_or_a_closed_pr(client, team) -> None:
    team.project.scm = "github"
    team.project.save()
    PullRequestFactory(session=team.session)
    client.force_login(team.operator)
    assert 'id="review-form"' not in client.get("/s/web-1/").content.decode()

    team.project.scm = "local"
    team.project.save()
    PullRequest.objects.update(state="merged")
    assert 'id="review-form"' not in client.get("/s/web-1/").content.decode()


def test_approving_from_the_dashboard_goes_through_the_service_and_updates_the_pr(
    client, team, local_pr
) -> None:
    assert local_pr.review_decision == "review_required"
    client.force_login(team.operator)

    response = client.post("/s/web-1/review/", {"decision": "approve", "body": "Looks good"})

    assert response.status_code == 302 and response["Location"] == "/s/web-1/#pr-panel"
    review = LocalReview.objects.get()
    assert (review.reviewer, review.state, review.body) == ("operator", "approved", "Looks good")
    local_pr.refresh_from_db()
    assert local_pr.review_decision == "approved"  # re-read at once, not at the next sweep
    event = Event.objects.get(session_id="web-1", kind="pr.review")
    assert event.actor_user == team.operator
    assert event.summary.startswith(f"#{local_pr.number} approved by operator via the dashboard")
    assert AuditEntry.objects.filter(action="pr.review", target_id="web-1").exists()
    page = client.get("/s/web-1/").content.decode()
    assert f"#{local_pr.number} approved by operator" in page and 'class="badge rv-ok"' in page


def test_requesting_changes_needs_a_comment_and_the_comment_becomes_a_thread(client, team, local_pr) -> None:
    client.force_login(team.operator)

    refused = client.post("/s/web-1/review/", {"decision": "request_changes", "body": "  "}, follow=True)
    assert "needs a comment" in refused.content.decode()
    assert not LocalReview.objects.exists() and not Event.objects.filter(kind="pr.review").exists()

    client.post("/s/web-1/review/", {"decision": "request_changes", "body": "Rename live to is_live"})

    local_pr.refresh_from_db()
    assert local_pr.review_decision == "changes_requested"
    assert Session.objects.get(pk="web-1").status == "changes_requested"
    page = client.get("/s/web-1/").content.decode()
    assert "Rename live to is_live" in page and "Unresolved threads (1)" in page


def test_an_htmx_review_returns_the_pr_panel_with_the_outcome(client, team, local_pr) -> None:
    client.force_login(team.operator)

    response = client.post("/s/web-1/review/", {"decision": "approve"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and response["HX-Trigger"] == "ao:resync"
    assert 'id="pr-panel"' in body and 'class="ok-note"' in body and "approved by operator" in body

    error = client.post(
        "/s/web-1/review/", {"decision": "request_changes", "body": ""}, HTTP_HX_REQUEST="true"
    )
    assert error.status_code == 200 and "needs a comment" in error.content.decode()


def test_the_pr_author_cannot_review_and_the_refusal_is_shown(client, team, local_pr) -> None:
    LocalReview.objects.all().delete()
    from integrations.models import LocalPullRequest

    LocalPullRequest.objects.update(created_by="operator")
    client.force_login(team.operator)

    page = client.post("/s/web-1/review/", {"decision": "approve"}, follow=True).content.decode()

    assert "Not reviewed: operator opened PR" in page
    assert not LocalReview.objects.exists()


def test_viewers_get_403_and_outsiders_404_on_review_and_nothing_happens(client, team, local_pr) -> None:
    for user, status in ((team.viewer, 403), (team.outsider, 404)):
        client.force_login(user)
        response = client.post("/s/web-1/review/", {"decision": "approve"})
        assert response.status_code == status
    client.logout()
    assert client.post("/s/web-1/review/", {"decision": "approve"}).status_code == 302  # to login
    assert not LocalReview.objects.exists()
    assert not Event.objects.filter(kind="pr.review").exists()


def test_ao_pr_review_uses_the_same_service(team, local_pr, capsys) -> None:
    call_command("pr", "--project", "webapp", "review", str(local_pr.number), "--approve", "--as", "alice")

    assert "approved by alice" in capsys.readouterr().out
    event = Event.objects.get(session_id="web-1", kind="pr.review")
    assert (event.actor_name, event.actor_user) == ("alice", None)
    local_pr.refresh_from_db()
    assert local_pr.review_decision == "approved"


# --- adding a local issue from the spawn page ---------------------------------------------------------------
def test_an_operator_adds_a_local_issue_and_it_is_in_the_backlog(client, team) -> None:
    team.project.tracker = "local"
    team.project.save()
    client.force_login(team.operator)
    assert 'id="issue-form"' in client.get("/p/webapp/spawn/").content.decode()

    response = client.post(
        "/p/webapp/issues/add/", {"title": "Add  dark mode", "body": "Both themes", "labels": "ui, ui,agent"}
    )

    assert response.status_code == 302 and response["Location"] == "/p/webapp/spawn/#issue-1"
    issue = LocalIssue.objects.get(project=team.project)
    assert (issue.number, issue.title, issue.body, issue.labels) == (
        1,
        "Add dark mode",
        "Both themes",
        ["ui", "agent"],
    )
    assert AuditEntry.objects.filter(action="issue.create", target_id="1").exists()
    page = client.get("/p/webapp/spawn/").content.decode()
    assert 'id="issue-1"' in page and "Add dark mode" in page and 'name="issue" value="1"' in page
    assert "Added #1: Add dark mode" in page


def test_an_issue_needs_a_title(client, team) -> None:
    team.project.tracker = "local"
    team.project.save()
    client.force_login(team.operator)

    response = client.post("/p/webapp/issues/add/", {"title": "  ", "body": "kept"})

    assert response.status_code == 422
    assert (
        "This field is required." in response.content.decode()
        and ">kept</textarea>" in response.content.decode()
    )
    assert not LocalIssue.objects.exists()


def test_no_issue_form_for_another_tracker_and_viewers_cannot_add(client, team) -> None:
    team.project.tracker = "github"
    team.project.plugin_settings = {"tracker": {}}
    team.project.save()
    client.force_login(team.operator)
    assert 'id="issue-form"' not in client.get("/p/webapp/spawn/").content.decode()

    team.project.tracker = "local"
    team.project.save()
    for user, status in ((team.viewer, 403), (team.outsider, 404)):
        client.force_login(user)
        assert client.post("/p/webapp/issues/add/", {"title": "sneaky"}).status_code == status
    assert not LocalIssue.objects.exists()


# --- the SCM budget banner ---------------------------------------------------------------------------------
def _exhaust(project, *, reset_in: timedelta) -> None:
    reset = timezone.now() + reset_in
    project.scm = "github"
    project.scm_rate = {"limit": 5000, "remaining": 0, "exhausted": True, "reset_at": reset.isoformat()}
    project.save()


def test_the_board_says_when_the_github_budget_is_exhausted(client, team) -> None:
    _exhaust(team.project, reset_in=timedelta(minutes=20))
    reset = timezone.localtime(timezone.now() + timedelta(minutes=20)).strftime("%H:%M")
    client.force_login(team.viewer)

    for url in ("/", "/p/webapp/"):
        page = client.get(url).content.decode()
        assert 'id="scm-budget-webapp"' in page, url
        assert "GitHub API budget exhausted until" in page and f">{reset}</time>" in page
        assert "only essential calls; add webhooks or a larger token budget" in page
    assert "webapp: GitHub API budget" in client.get("/").content.decode()
    body = client.get("/p/webapp/?partial=body", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="scm-budget-webapp"' in body  # live resyncs keep it


def test_no_banner_when_the_budget_is_fine_spent_but_reset_or_not_visible(client, team) -> None:
    team.project.scm_rate = {"limit": 5000, "remaining": 4000, "exhausted": False, "reset_at": None}
    team.project.save()
    _exhaust(team.other, reset_in=timedelta(minutes=20))
    client.force_login(team.viewer)
    assert "scm-budget" not in client.get("/").content.decode()  # the other project is not theirs

    _exhaust(team.project, reset_in=-timedelta(minutes=1))  # the reset has passed
    assert "scm-budget" not in client.get("/p/webapp/").content.decode()

    client.force_login(team.outsider)
    assert 'id="scm-budget-secret"' in client.get("/").content.decode()
