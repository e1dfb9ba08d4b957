"""The PR loop against the fake GitHub: a signed webhook arrives, ao refreshes exactly the
sessions it concerns with one batched read, stores the facts and derives the status."""

from __future__ import annotations

import pytest

from integrations.github.client import forget_clients
from sessions import prsync
from sessions.models import CheckRun, Event, PullRequest, Session
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
    assert (session.status, session.zone) == ("ci_failed", "review")
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
