"""The PR loop against the fake GitHub: a signed webhook arrives, ao refreshes exactly the
sessions it concerns with one batched read, stores the facts and derives the status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.github.pool import forget_clients
from integrations.registry import plugin_for
from sessions.models import CheckRun, Event, PullRequest, Session
from sessions.prs import prsync
from tests.factories import ProjectFactory, SessionFactory
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.django_db

SECRET = "webhook-secret"
FAILING_LOG = "\n".join(
    [
        "2026-11-25T10:00:01.0000000Z ##[group]Run ruff check .",
        "2026-11-25T10:00:02.0000000Z app.py:3:1: F401 `os` imported but unused",
        "2026-11-25T10:00:03.0000000Z ##[error]Process completed with exit code 1.",
    ]
)


@pytest.fixture
def gh(monkeypatch, settings):
    settings.AO_GITHUB_WEBHOOK_SECRET = SECRET
    with FakeGitHub() as fake:
        fake.add_repo("acme/web")
        monkeypatch.setenv("GITHUB_TOKEN", fake.token)
        yield fake
    forget_clients()


@pytest.fixture
def project(gh):
    return ProjectFactory(
        key="web",
        repo="acme/web",
        scm="github",
        plugin_settings={"scm": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01}},
    )


def gh_scm(project):
    return plugin_for(project, "scm")


def deliver(client, delivery):
    headers = {
        f"HTTP_{k.upper().replace('-', '_')}": v for k, v in delivery.headers.items() if k != "Content-Type"
    }
    return client.post("/webhooks/github/web", data=delivery.body, content_type="application/json", **headers)


def test_failing_check_via_webhook_reaches_the_session(
    client, gh, project, django_capture_on_commit_callbacks, monkeypatch
):
    from integrations.runtime.tmux import TmuxRuntime

    # the refresh also probes the session's runtime (as a sweep does): its agent is alive
    monkeypatch.setattr(TmuxRuntime, "probe", lambda self, handle: "alive")
    session = SessionFactory(
        project=project, branch="feat/login", runtime_handle={"runtime": "tmux", "name": "x"}
    )
    other = SessionFactory(project=project, branch="feat/other")
    repo = gh.repo("acme/web")
    pull = repo.add_pull("feat/login", title="Fix login")
    check = repo.add_check_run(pull.head_sha, "lint", conclusion="failure", log=FAILING_LOG)
    gh.reset_counts()

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, gh.webhook("check_run", secret=SECRET, check_id=check.id))

    assert response.status_code == 202
    session.refresh_from_db()
    assert (session.status, session.zone) == (
        "ci_failed",
        "working",
    )  # handed to the agent by the ci-failed rule
    stored = CheckRun.objects.get(pull_request__session=session, name="lint")
    assert "F401 `os` imported but unused" in stored.log_excerpt
    assert Event.objects.filter(session=session, kind="ci.changed", summary__contains="lint").exists()
    # only the session the event points at was refreshed
    assert not PullRequest.objects.filter(session=other).exists()
    other.refresh_from_db()
    assert other.status == "working"
    # one GraphQL query found the PR by branch with its state; one REST call fetched the log
    assert gh.counts["graphql"] == 1
    assert gh.counts["blob"] == 1

    # the same delivery again changes nothing and costs nothing
    gh.reset_counts()
    with django_capture_on_commit_callbacks(execute=True):
        again = deliver(
            client, gh.webhook("check_run", secret=SECRET, check_id=check.id, delivery="dup-test")
        )
        dup = deliver(client, gh.webhook("check_run", secret=SECRET, check_id=check.id, delivery="dup-test"))
    assert again.status_code == 202 and dup.status_code == 200
    assert gh.counts["blob"] == 0  # the log is not fetched again for an unchanged check


def test_sync_reads_many_prs_in_one_query_and_keeps_facts_on_outage(gh, project):
    repo = gh.repo("acme/web")
    sessions = []
    for i in range(8):
        sessions.append(SessionFactory(project=project, branch=f"feat/{i}"))
        pull = repo.add_pull(f"feat/{i}")
        repo.add_check_run(pull.head_sha, "test", status="in_progress")
    gh.reset_counts()

    prsync.pull_requests_sync(project=project)

    assert PullRequest.objects.filter(project=project).count() == 8
    assert set(Session.objects.filter(project=project).values_list("status", flat=True)) == {"ci_pending"}
    assert gh.counts["graphql"] == 1  # found by branch with their state: all 8 in one query

    gh.fail(502, times=10)
    prsync.pull_requests_sync(project=project)
    assert PullRequest.objects.filter(stale_since__isnull=False).count() == 8
    assert set(Session.objects.filter(project=project).values_list("status", flat=True)) == {"ci_pending"}


# --- which PR is a session's (issue 12.2) ---------------------------------------------------------
def opened_earlier(pull, *, merged: bool = False):
    """Back-date a fake PR to an hour ago (opened before the sessions of the test), optionally merged."""
    pull.created_at = timezone.now() - timedelta(hours=1)
    if merged:
        pull.state, pull.merged, pull.merged_at = "closed", True, pull.created_at
    return pull


def test_a_new_session_does_not_adopt_an_earlier_pr_on_its_branch(gh, project):
    repo = gh.repo("acme/web")
    opened_earlier(repo.add_pull("feat/1", title="Earlier work on #1"), merged=True)
    opened_earlier(repo.add_pull("feat/2", title="A teammate's open PR"))
    first = SessionFactory(project=project, branch="feat/1")
    second = SessionFactory(project=project, branch="feat/2")

    prsync.pull_requests_sync(project=project)

    # neither the merged PR nor the teammate's open one became the sessions' PR
    assert not PullRequest.objects.filter(project=project).exists()
    assert not Event.objects.filter(kind="pr.opened").exists()
    for session in (first, second):
        session.refresh_from_db()
        assert (session.status, session.zone) == ("working", "working")

    # the PR the session opens afterwards is its PR
    own = repo.add_pull("feat/1", title="Fix #1")
    prsync.pull_requests_sync(project=project)
    first.refresh_from_db()
    assert first.pull_request.number == own.number
    assert first.status != "merged"
    assert not PullRequest.objects.filter(session=second).exists()


def test_a_pr_linked_to_one_session_is_not_taken_by_another_on_the_same_branch(gh, project):
    repo = gh.repo("acme/web")
    holder = SessionFactory(project=project, branch="feat/shared")
    other = SessionFactory(project=project, branch="feat/shared")
    pull = repo.add_pull("feat/shared")
    pull.state, pull.merged = "closed", True
    info = gh_scm(project).fetch_pull_requests(numbers=[pull.number])[pull.number]
    prsync.pull_request_record(project=project, session=holder, info=info)  # claimed, then merged

    prsync.pull_requests_sync(project=project)

    assert PullRequest.objects.get(number=pull.number).session_id == holder.pk
    assert not PullRequest.objects.filter(session=other).exists()


def test_an_open_pr_whose_head_is_not_the_sessions_commit_is_not_adopted(gh, project, repo):
    from tests.helpers.fixtures import git

    git("switch", "-q", "-c", "feat/7", cwd=repo.path)
    own_sha = repo.commit_file(repo.path, "work.txt", message="the session's work")
    session = SessionFactory(project=project, branch="feat/7", workspace_path=str(repo.path))
    strangers = gh.repo("acme/web").add_pull("feat/7", head_sha="f" * 40)

    prsync.pull_requests_sync(project=project)

    assert not PullRequest.objects.filter(session=session).exists()
    (event,) = Event.objects.filter(session=session, kind="pr.not_adopted")
    assert f"#{strangers.number}" in event.summary
    prsync.pull_requests_sync(project=project)
    assert Event.objects.filter(session=session, kind="pr.not_adopted").count() == 1  # said once

    # once the PR's head is the session's own commit, it is the session's PR
    gh.push(strangers, own_sha)
    prsync.pull_requests_sync(project=project)
    session.refresh_from_db()
    assert session.pull_request.number == strangers.number


# --- PR facts soon enough, and no false nudges (issue 12.7) ------------------------------------------
def test_a_push_to_the_base_branch_refreshes_the_prs_based_on_it(
    client, gh, project, django_capture_on_commit_callbacks
):
    repo = gh.repo("acme/web")
    session = SessionFactory(project=project, branch="feat/login")
    stacked = SessionFactory(project=project, branch="feat/stacked")
    pull = repo.add_pull("feat/login")
    repo.add_pull("feat/stacked", base="release")
    prsync.pull_requests_sync(project=project)
    assert PullRequest.objects.get(session=session).conflicts is False
    synced_at = PullRequest.objects.get(session=stacked).synced_at
    pull.mergeable, pull.mergeable_state = False, "dirty"  # main moved under the PR
    gh.reset_counts()

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, gh.webhook("push", secret=SECRET, ref="refs/heads/main"))

    assert response.status_code == 202
    stored = PullRequest.objects.get(session=session)
    assert stored.conflicts is True
    assert Event.objects.filter(session=session, kind="pr.conflicts").exists()
    assert gh.counts["graphql"] == 0  # one PR ao knows: read with REST
    # a PR based on another branch was not read
    assert PullRequest.objects.get(session=stacked).synced_at == synced_at


def test_the_safety_sync_reads_every_pr_within_a_minute_while_webhooks_flow(gh, project):
    from sessions.models import Project, WebhookDelivery

    repo = gh.repo("acme/web")
    session = SessionFactory(project=project, branch="feat/login")
    pull = repo.add_pull("feat/login")
    prsync.pull_requests_sync(project=project)
    WebhookDelivery.objects.create(project=project, delivery_id="recent", event="check_run")
    pull.mergeable, pull.mergeable_state = False, "dirty"  # no delivery says so

    Project.objects.filter(pk=project.pk).update(last_pr_sync_at=timezone.now() - timedelta(seconds=60))
    project.refresh_from_db()
    plan = prsync.pr_sync_plan(project=project)
    assert plan is prsync.ALL
    prsync.pull_requests_sync(project=project, session_ids=plan)

    assert PullRequest.objects.get(session=session).conflicts is True


def test_no_nudge_that_there_is_no_pr_when_the_scm_has_one(gh, project):
    from reactions import services as reactions
    from sessions.models import Message

    session = SessionFactory(
        project=project,
        branch="feat/login",
        status="idle",
        activity="idle",
        runtime_handle={"runtime": "tmux", "name": "x"},
    )
    Session.objects.filter(pk=session.pk).update(status_changed_at=timezone.now() - timedelta(minutes=10))
    pull = gh.repo("acme/web").add_pull("feat/login")  # its `opened` delivery never arrived

    outcomes = reactions.session_react(session=session)

    assert [o for o in outcomes if o.rule == "agent-idle"] == []
    assert not Message.objects.filter(session=session).exists()
    assert PullRequest.objects.get(session=session).number == pull.number

    # without a PR on the SCM, the nudge is sent
    lonely = SessionFactory(
        project=project,
        branch="feat/lonely",
        status="idle",
        activity="idle",
        runtime_handle={"runtime": "tmux", "name": "y"},
    )
    Session.objects.filter(pk=lonely.pk).update(status_changed_at=timezone.now() - timedelta(minutes=10))
    assert [(o.rule, o.did) for o in reactions.session_react(session=lonely)] == [("agent-idle", "sent")]
    assert "there is no pull request" in Message.objects.get(session=lonely).text


def test_a_thread_resolved_on_github_is_stored_at_its_webhook(
    client, gh, project, django_capture_on_commit_callbacks
):
    """GitHub's REST API has no thread resolution, and resolving one need not move the PR: the
    `pull_request_review_thread` delivery has the PR read the complete way (GraphQL)."""
    from sessions.models import ReviewThread

    session = SessionFactory(project=project, branch="feat/login")
    pull = gh.repo("acme/web").add_pull("feat/login")
    thread = gh.add_thread(pull, body="rename this", author="alice")
    prsync.pull_requests_sync(project=project)
    prsync.pull_requests_sync(project=project, session_ids=[session.pk])  # REST's read: ETags known
    assert ReviewThread.objects.get(pull_request__session=session).resolved is False
    thread.resolved = True  # the PR's updated_at stays
    gh.reset_counts()

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(
            client,
            gh.webhook("pull_request_review_thread", secret=SECRET, number=pull.number, thread_id=thread.id),
        )

    assert response.status_code == 202
    assert ReviewThread.objects.get(pull_request__session=session).resolved is True
    assert gh.counts["graphql"] >= 1
