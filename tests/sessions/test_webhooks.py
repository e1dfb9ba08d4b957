"""GitHub webhooks: signature, dedupe, limits, and which sessions an event refreshes."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from sessions.core import secrets
from sessions.flows.webhooks import extract_refs
from sessions.models import Event, PullRequest, Session, WebhookDelivery
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory
from tests.integrations.conftest import FAST, TOKEN_ENV
from tests.integrations.conftest import gh as gh  # the fake GitHub (fixture)

pytestmark = pytest.mark.django_db

SECRET = "hook-secret-for-tests"


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.AO_GITHUB_WEBHOOK_SECRET = SECRET


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    client, project_key: str, event: str, payload, *, delivery="d-1", signature=None, content_type=None
):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(
        f"/webhooks/github/{project_key}",
        data=body,
        content_type=content_type or "application/json",
        HTTP_X_GITHUB_EVENT=event,
        HTTP_X_GITHUB_DELIVERY=delivery,
        HTTP_X_HUB_SIGNATURE_256=sign(body) if signature is None else signature,
    )


def deliver_committed(*args, **kwargs):
    """deliver(), then run what it left for after the commit (the test's transaction never commits)."""
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        return deliver(*args, **kwargs)


def pr_payload(number=7, branch="feat/x", sha="a" * 40, repo="acme/web"):
    return {
        "action": "synchronize",
        "pull_request": {"number": number, "head": {"ref": branch, "sha": sha}},
        "repository": {"full_name": repo},
    }


@pytest.fixture
def project():
    return ProjectFactory(key="web", repo="acme/web", scm="github")


def test_signed_delivery_is_accepted_recorded_and_refresh_enqueued(
    client, project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = deliver(client, "web", "pull_request", pr_payload())
    assert response.status_code == 202
    assert response.json() == {"accepted": True, "refresh": True}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.delivery_id, delivery.event) == ("d-1", "pull_request")
    assert "feat/x" in delivery.summary
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    "signature",
    ["", "sha1=abc", "sha256=" + "0" * 64, sign(b"other body"), sign(b"{}", secret="wrong")],
    ids=["missing", "sha1", "zeros", "other-body", "wrong-secret"],
)
def test_unsigned_or_wrongly_signed_is_401_and_nothing_recorded(client, project, signature):
    response = deliver(client, "web", "pull_request", pr_payload(), signature=signature)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401
    assert not WebhookDelivery.objects.exists()


def test_no_secret_configured_refuses_everything(client, project, settings, caplog):
    settings.AO_GITHUB_WEBHOOK_SECRET = ""
    response = deliver(client, "web", "pull_request", pr_payload())
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "signature missing or invalid"
    assert "not configured" in caplog.text  # the operator's reason is in the log
    assert not WebhookDelivery.objects.exists()


def test_redelivery_is_deduplicated(client, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = deliver(client, "web", "pull_request", pr_payload(), delivery="same")
        again = deliver(client, "web", "pull_request", pr_payload(), delivery="same")
    assert first.status_code == 202
    assert again.status_code == 200 and again.json() == {"duplicate": True}
    assert WebhookDelivery.objects.count() == 1
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"truncated": ', "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"payload=%7B%7D", "application/x-www-form-urlencoded", 415),
        (b"\xff\xfe\x00garbage", "application/json", 400),
    ],
)
def test_malformed_bodies_are_4xx_without_state_change(client, project, body, content_type, status):
    response = deliver(client, "web", "push", body, content_type=content_type)
    assert response.status_code == status
    assert not WebhookDelivery.objects.exists()
    assert not Event.objects.exists()


def test_oversized_body_is_413(client, project, settings):
    settings.AO_WEBHOOK_MAX_BYTES = 100
    response = deliver(client, "web", "push", {"padding": "x" * 200})
    assert response.status_code == 413
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, sign(b"{}", secret="wrong")],
    ids=["signed-with-the-global-secret", "missing", "zeros", "wrong-secret"],
)
def test_an_unknown_project_is_answered_like_a_bad_signature(client, project, signature, caplog):
    """Whether a project exists is not told by its webhook URL: the same status and body as a
    delivery to an existing project with a bad signature."""
    unknown = deliver(client, "nope", "pull_request", pr_payload(), signature=signature)
    bad = deliver(client, "web", "pull_request", pr_payload(), signature="sha256=" + "1" * 64)

    assert (unknown.status_code, unknown.json()) == (bad.status_code, bad.json())
    assert unknown.status_code == 401
    assert "'nope' refused: no such project" in caplog.text
    assert not WebhookDelivery.objects.exists()


def test_other_repo_is_ignored(client, project):
    response = deliver(client, "web", "pull_request", pr_payload(repo="evil/other"))
    assert response.status_code == 202
    assert "ignored" in response.json()
    assert not WebhookDelivery.objects.exists()


def test_a_repo_named_only_in_the_plugins_settings_is_matched_too(client):
    """The project's repo may be set on its GitHub plugins alone (`scm.repo`, `tracker.repo`):
    deliveries from any other repository, signed with the same (shared) secret, are ignored then
    too, not taken for this project's (an `issues` delivery would rename its issues)."""
    ProjectFactory(
        key="web", repo="", scm="github", tracker="github",
        plugin_settings={"scm": {"repo": "acme/web"}, "tracker": {"repo": "acme/issues"}},
    )  # fmt: skip
    assert "ignored" in deliver(client, "web", "pull_request", pr_payload(repo="evil/other")).json()
    assert not WebhookDelivery.objects.exists()
    assert "ignored" not in deliver(client, "web", "pull_request", pr_payload(repo="acme/web")).json()
    issue = {
        "action": "edited",
        "issue": {"number": 3, "title": "x"},
        "repository": {"full_name": "acme/issues"},
    }
    assert "ignored" not in deliver(client, "web", "issues", issue, delivery="d-2").json()


def test_ping_and_unused_events(client, project):
    assert (
        deliver(client, "web", "ping", {"zen": "hi", "repository": {"full_name": "acme/web"}}).status_code
        == 200
    )
    response = deliver(
        client, "web", "star", {"action": "created", "repository": {"full_name": "acme/web"}}, delivery="s"
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": True, "refresh": False}


def test_get_is_not_allowed(client, project):
    assert client.get("/webhooks/github/web").status_code == 405


# --- a project's own webhook secret (a secret stored in ao, named by the github scm) -------------
PROJECT_SECRET = "per-project-hook-secret"


@pytest.fixture
def own_secret_project():
    secrets.secret_set(name="web-hook", value=PROJECT_SECRET)
    return ProjectFactory(
        key="web", repo="acme/web", scm="github", plugin_settings={"scm": {"webhook_secret": "web-hook"}}
    )


def test_a_project_webhook_secret_verifies_its_deliveries(client, own_secret_project):
    body = json.dumps(pr_payload()).encode()

    right = deliver(client, "web", "pull_request", body, signature=sign(body, PROJECT_SECRET))
    assert right.status_code == 202
    assert WebhookDelivery.objects.count() == 1

    for signature in (sign(body, "wrong"), sign(body), ""):  # sign(body): AO_GITHUB_WEBHOOK_SECRET
        wrong = deliver(client, "web", "pull_request", body, delivery="d-2", signature=signature)
        assert wrong.status_code == 401
    assert WebhookDelivery.objects.count() == 1  # nothing recorded for the refused ones


def test_a_replaced_project_secret_counts_for_the_next_delivery(client, own_secret_project):
    secrets.secret_set(name="web-hook", value="rotated-hook-secret")
    body = json.dumps(pr_payload()).encode()

    assert (
        deliver(client, "web", "pull_request", body, signature=sign(body, PROJECT_SECRET)).status_code == 401
    )
    assert (
        deliver(client, "web", "pull_request", body, signature=sign(body, "rotated-hook-secret")).status_code
        == 202
    )


def test_other_projects_fall_back_to_the_global_secret(client, own_secret_project):
    ProjectFactory(key="api", repo="acme/api", scm="github")
    web_body = json.dumps(pr_payload()).encode()
    api_body = json.dumps(pr_payload(repo="acme/api")).encode()

    web = deliver(client, "web", "pull_request", web_body, signature=sign(web_body, PROJECT_SECRET))
    api_own = deliver(client, "api", "pull_request", api_body, signature=sign(api_body, PROJECT_SECRET))
    api_global = deliver(client, "api", "pull_request", api_body, delivery="d-2")

    assert (web.status_code, api_own.status_code, api_global.status_code) == (202, 401, 202)


def test_a_missing_project_secret_refuses_and_logs_its_name_not_falling_back(client, caplog):
    ProjectFactory(
        key="web", repo="acme/web", scm="github", plugin_settings={"scm": {"webhook_secret": "gone"}}
    )

    response = deliver(client, "web", "pull_request", pr_payload())  # signed with the global secret

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "signature missing or invalid"
    assert "webhook secret is not available" in caplog.text
    assert "no secret named 'gone'" in caplog.text and "ao secret set gone" in caplog.text
    assert SECRET not in caplog.text
    assert not WebhookDelivery.objects.exists()


SHA = "b" * 40
REF_CASES = [
    ("pull_request", pr_payload(number=3, branch="feat/a", sha=SHA), {3}, {"feat/a"}, {SHA}),
    (
        "pull_request_review",
        {"pull_request": {"number": 4, "head": {"ref": "feat/b"}}},
        {4},
        {"feat/b"},
        set(),
    ),
    (
        "check_run",
        {
            "check_run": {
                "head_sha": SHA,
                "check_suite": {"head_branch": "feat/c"},
                "pull_requests": [{"number": 5}],
            }
        },
        {5},
        {"feat/c"},
        {SHA},
    ),
    (
        "check_suite",
        {"check_suite": {"head_sha": SHA, "head_branch": "feat/d", "pull_requests": []}},
        set(),
        {"feat/d"},
        {SHA},
    ),
    ("status", {"sha": SHA, "branches": [{"name": "feat/e"}, "junk"]}, set(), {"feat/e"}, {SHA}),
    ("workflow_job", {"workflow_job": {"head_sha": SHA, "head_branch": "feat/f"}}, set(), {"feat/f"}, {SHA}),
    (
        "pull_request_review_comment",
        {"comment": {"id": 1}, "pull_request": {"number": 6, "head": {"ref": "feat/h", "sha": SHA}}},
        {6},
        {"feat/h"},
        {SHA},
    ),
    (
        "pull_request_review_thread",
        {"thread": {"node_id": "T"}, "pull_request": {"number": 7, "head": {"ref": "feat/i"}}},
        {7},
        {"feat/i"},
        set(),
    ),
    (
        "workflow_run",
        {"workflow_run": {"head_sha": SHA, "head_branch": "feat/j", "pull_requests": [{"number": 8}, "x"]}},
        {8},
        {"feat/j"},
        {SHA},
    ),
    ("issue_comment", {"issue": {"number": 9, "pull_request": {"url": "x"}}}, {9}, set(), set()),
    ("issue_comment", {"issue": {"number": 9}}, set(), set(), set()),
    ("push", {"ref": "refs/heads/feat/g", "after": SHA}, set(), {"feat/g"}, {SHA}),
    ("push", {"ref": "refs/tags/v1", "after": SHA}, set(), set(), {SHA}),
    ("pull_request", {"pull_request": {"number": "7; drop", "head": {"ref": 5}}}, set(), set(), set()),
    ("pull_request", {"pull_request": "nonsense"}, set(), set(), set()),
]


@pytest.mark.parametrize(("event", "payload", "numbers", "branches", "shas"), REF_CASES)
def test_extract_refs(event, payload, numbers, branches, shas):
    refs = extract_refs(event, payload)
    assert (refs.numbers, refs.branches, refs.shas) == (numbers, branches, shas)


def test_refresh_targets_sessions_by_number_branch_or_sha(project):
    from sessions.prs.prsync import sessions_for_refs

    by_number = PullRequestFactory(project=project, session__project=project, number=11).session
    by_branch = SessionFactory(project=project, branch="feat/only-branch")
    pr_sha = PullRequestFactory(project=project, session__project=project, number=12, head_sha="c" * 40)
    SessionFactory(project=project, branch="feat/unrelated")
    other_project = SessionFactory(branch="feat/only-branch")

    found = sessions_for_refs(project=project, numbers=[11], branches=["feat/only-branch"], shas=["c" * 40])

    assert set(found) == {by_number.id, by_branch.id, pr_sha.session_id}
    assert other_project.id not in found
    assert sessions_for_refs(project=project) == []
    assert PullRequest.objects.count() == 2
    assert Session.objects.count() == 5


# --- the coalesced refresh: PR facts, then runtime and activity of the sessions concerned ---------
@pytest.fixture
def syncs(monkeypatch):
    """Record the PR syncs a refresh asks for (the real sync against the fake GitHub is in
    tests/sessions/test_github_loop.py)."""
    from sessions.prs import prsync

    class Calls(list):
        complete: list[bool]  # per call: the SCM's complete read asked for

    calls = Calls()
    calls.complete = []

    def sync(*, project, session_ids=None, complete=False):
        calls.append(set(session_ids))
        calls.complete.append(complete)
        return prsync.SyncResult()

    monkeypatch.setattr(prsync, "pull_requests_sync", sync)
    return calls


@pytest.fixture
def queued(monkeypatch):
    """Hold the refresh and intake tasks instead of running them: [(task name, args, countdown)]."""
    from django.core.cache import cache

    from sessions import tasks

    cache.clear()
    held: list[tuple[str, list, float | None]] = []
    for task in (tasks.webhook_refresh_task, tasks.intake_sweep_task):
        monkeypatch.setattr(
            task,
            "apply_async",
            lambda args=None, countdown=None, name=task.name, **kw: held.append((name, args, countdown)),
        )
    yield held
    cache.clear()


def _alive_runtime(monkeypatch, *, activity="waiting_input", summary="Asks: which database?"):
    from django.utils import timezone

    from integrations.agent.claude_code import ClaudeCodeAgent
    from integrations.records import ActivityReading
    from integrations.runtime.tmux import TmuxRuntime

    probed: list[str] = []
    monkeypatch.setattr(TmuxRuntime, "probe", lambda self, handle: probed.append(handle.name) or "alive")
    monkeypatch.setattr(TmuxRuntime, "read_output", lambda self, handle, lines=0: "")
    monkeypatch.setattr(
        ClaudeCodeAgent,
        "detect_activity",
        lambda self, **kw: ActivityReading(state=activity, at=timezone.now(), summary=summary),
    )
    return probed


def test_a_webhook_refresh_observes_runtime_and_activity_of_the_sessions_it_concerns(
    client, project, monkeypatch, tmp_path, syncs, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    cache.clear()
    probed = _alive_runtime(monkeypatch)
    handle = {"runtime": "tmux", "name": "web-1"}
    concerned = SessionFactory(
        project=project, branch="feat/x", workspace_path=str(tmp_path), runtime_handle=handle
    )
    other = SessionFactory(
        project=project, branch="feat/y", workspace_path=str(tmp_path), runtime_handle={**handle, "name": "o"}
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, "web", "pull_request", pr_payload(branch="feat/x"))

    assert response.status_code == 202
    assert syncs == [{concerned.id}]  # PR facts first, of the session concerned only
    assert probed == ["web-1"]  # then its runtime, as a sweep observes it
    concerned.refresh_from_db()
    assert (concerned.runtime_state, concerned.activity) == ("alive", "waiting_input")
    assert concerned.activity_summary == "Asks: which database?"
    assert concerned.runtime_checked_at is not None
    assert concerned.status == "needs_input"  # derived from the fresh facts
    other.refresh_from_db()
    assert (other.runtime_checked_at, other.status) == (None, "working")
    assert not WebhookDelivery.objects.filter(refresh_pending=True).exists()


def test_a_refresh_of_a_session_on_another_host_is_observed_there(
    client, project, monkeypatch, syncs, settings, django_capture_on_commit_callbacks
):
    from sessions import tasks

    settings.AO_HOST_NAME = "here"
    remote = SessionFactory(project=project, branch="feat/x", host="gpu-2", runtime_handle={"name": "r"})
    sent = []
    monkeypatch.setattr(
        tasks.session_observe_task, "apply_async", lambda args, queue: sent.append((args, queue))
    )

    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, "web", "pull_request", pr_payload(branch="feat/x"))

    assert syncs == [{remote.id}]
    assert sent == [([remote.id], "host.gpu-2")]


def test_deliveries_within_the_window_make_one_batched_refresh(client, project, settings, syncs, queued):
    from sessions import tasks

    settings.AO_WEBHOOK_COALESCE_SECONDS = 2
    a = SessionFactory(project=project, branch="feat/a", phase="spawning")
    b = PullRequestFactory(project=project, session__project=project, session__phase="spawning", number=8)
    c = SessionFactory(project=project, branch="feat/c", phase="spawning")
    SessionFactory(project=project, branch="feat/unrelated", phase="spawning")

    deliver_committed(client, "web", "pull_request", pr_payload(number=30, branch="feat/a"), delivery="1")
    deliver_committed(client, "web", "issue_comment", _comment(8), delivery="2")
    deliver_committed(client, "web", "push", _push("feat/c"), delivery="3")
    deliver_committed(client, "web", "push", _push("feat/a"), delivery="4")

    # one task, two seconds later, for all four deliveries
    assert queued == [("sessions.webhook_refresh", [project.pk], 2.0)]
    assert WebhookDelivery.objects.filter(refresh_pending=True).count() == 4
    assert syncs == []

    tasks.webhook_refresh_task(project.pk)

    assert syncs == [{a.id, b.session_id, c.id}]  # one sync of the union
    assert not WebhookDelivery.objects.filter(refresh_pending=True).exists()
    # the task cleared the debounce: the next delivery queues the next refresh
    deliver_committed(client, "web", "push", _push("feat/c"), delivery="5")
    assert len(queued) == 2


def test_a_delivery_during_a_refresh_is_not_lost(client, project, settings, monkeypatch, queued):
    from sessions import tasks
    from sessions.prs import prsync

    settings.AO_WEBHOOK_COALESCE_SECONDS = 2
    a = SessionFactory(project=project, branch="feat/a", phase="spawning")
    b = SessionFactory(project=project, branch="feat/b", phase="spawning")
    synced: list[set[str]] = []

    def sync(*, project, session_ids=None, complete=False):
        synced.append(set(session_ids))
        if len(synced) == 1:  # GitHub sends another event while the first refresh reads
            deliver_committed(client, "web", "push", _push("feat/b"), delivery="late")
        return prsync.SyncResult()

    monkeypatch.setattr(prsync, "pull_requests_sync", sync)
    deliver_committed(client, "web", "push", _push("feat/a"), delivery="early")
    tasks.webhook_refresh_task(project.pk)

    late = WebhookDelivery.objects.get(delivery_id="late")
    assert late.refresh_pending  # not swallowed by the refresh that was already reading
    assert len(queued) == 2  # and it queued its own
    tasks.webhook_refresh_task(project.pk)
    assert synced == [{a.id}, {b.id}]
    assert not WebhookDelivery.objects.filter(refresh_pending=True).exists()


def test_a_refresh_whose_task_was_lost_is_queued_again_by_the_sweep_tick(
    client, project, settings, monkeypatch, queued
):
    from datetime import timedelta

    from django.utils import timezone

    from sessions import tasks
    from sessions.flows import webhooks

    settings.AO_WEBHOOK_COALESCE_SECONDS = 2
    SessionFactory(project=project, branch="feat/a", phase="spawning")
    deliver_committed(client, "web", "push", _push("feat/a"))
    queued.clear()  # the broker lost it (an in-memory broker restarted)
    assert webhooks.refreshes_overdue() == []
    WebhookDelivery.objects.update(received_at=timezone.now() - timedelta(minutes=2))
    monkeypatch.setattr(tasks.services, "projects_due_for_sweep", lambda: [])
    monkeypatch.setattr(
        tasks.webhook_refresh_task,
        "apply_async",
        lambda args=None, expires=None, **kw: queued.append(("sessions.webhook_refresh", args, None)),
    )

    tasks.sweep_due_projects_task()

    assert queued == [("sessions.webhook_refresh", [project.pk], None)]


def test_without_a_cache_every_delivery_still_queues_its_refresh(
    client, project, settings, monkeypatch, queued
):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    settings.AO_WEBHOOK_COALESCE_SECONDS = 2
    monkeypatch.setattr(cache, "add", broken)
    deliver_committed(client, "web", "push", _push("feat/a"), delivery="1")
    deliver_committed(client, "web", "push", _push("feat/b"), delivery="2")
    assert len(queued) == 2


def test_in_embedded_mode_the_refresh_runs_at_once(
    client, project, syncs, settings, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    cache.clear()
    assert settings.CELERY_TASK_ALWAYS_EAGER  # the CLI's and the tests' embedded mode
    settings.AO_WEBHOOK_COALESCE_SECONDS = 2
    a = SessionFactory(project=project, branch="feat/a", phase="spawning")
    b = SessionFactory(project=project, branch="feat/b", phase="spawning")
    deliver_committed(client, "web", "push", _push("feat/a"), delivery="1")
    deliver_committed(client, "web", "push", _push("feat/b"), delivery="2")
    assert syncs == [{a.id}, {b.id}]
    assert not WebhookDelivery.objects.filter(refresh_pending=True).exists()


def _comment(number: int) -> dict:
    return {
        "action": "created",
        "issue": {"number": number, "pull_request": {"url": "x"}},
        "repository": {"full_name": "acme/web"},
    }


def _push(branch: str, sha: str = "d" * 40) -> dict:
    return {"ref": f"refs/heads/{branch}", "after": sha, "repository": {"full_name": "acme/web"}}


# --- review comments, review threads and workflow runs reach their sessions -------------------------
def test_review_comment_thread_and_workflow_run_deliveries_refresh_the_right_sessions(
    client, project, syncs, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    cache.clear()
    commented = PullRequestFactory(
        project=project, session__project=project, session__phase="spawning", number=21
    )
    threaded = PullRequestFactory(
        project=project, session__project=project, session__phase="spawning", number=22
    )
    by_sha = PullRequestFactory(
        project=project, session__project=project, session__phase="spawning", number=23, head_sha="e" * 40
    )
    by_branch = SessionFactory(project=project, branch="feat/fork-run", phase="spawning")
    SessionFactory(project=project, branch="feat/bystander", phase="spawning")
    repo = {"full_name": "acme/web"}
    deliveries = [
        (
            "pull_request_review_comment",
            {
                "action": "created",
                "comment": {"id": 1, "body": "rename this", "path": "app.py"},
                "pull_request": {"number": 21, "head": {"ref": commented.branch, "sha": "1" * 40}},
                "repository": repo,
            },
            {commented.session_id},
        ),
        (
            "pull_request_review_thread",
            {
                "action": "resolved",
                "thread": {"node_id": "T_1", "comments": []},
                "pull_request": {"number": 22, "head": {"ref": "feat/other-name", "sha": "2" * 40}},
                "repository": repo,
            },
            {threaded.session_id},
        ),
        (
            "workflow_run",
            {
                "action": "completed",
                "workflow_run": {
                    "head_sha": "e" * 40,
                    "head_branch": "main-of-a-fork",
                    "conclusion": "failure",
                    "pull_requests": [],
                },
                "repository": repo,
            },
            {by_sha.session_id},
        ),
        (
            "workflow_run",
            {
                "action": "completed",
                "workflow_run": {"head_sha": "f" * 40, "head_branch": "feat/fork-run", "pull_requests": []},
                "repository": repo,
            },
            {by_branch.id},
        ),
        (
            "workflow_run",
            {
                "action": "requested",
                "workflow_run": {"head_sha": "0" * 40, "head_branch": "x", "pull_requests": [{"number": 21}]},
                "repository": repo,
            },
            {commented.session_id},
        ),
    ]
    for i, (event, payload, expected) in enumerate(deliveries):
        syncs.clear()
        syncs.complete.clear()
        with django_capture_on_commit_callbacks(execute=True):
            response = deliver(client, "web", event, payload, delivery=f"d-{i}")
        assert response.status_code == 202 and response.json()["refresh"] is True, event
        assert syncs == [expected], (event, payload)
        # a thread resolved or reopened shows only in the SCM's complete read (GitHub: GraphQL)
        assert syncs.complete == [event == "pull_request_review_thread"], event


# --- issues: the title of the sessions on the issue; the intake label queues intake ----------------
@pytest.fixture
def tracked(gh):
    gh.add_repo("acme/web")
    return ProjectFactory(
        key="web",
        repo="acme/web",
        scm="github",
        tracker="github",
        intake_enabled=True,
        plugin_settings={"tracker": {"base_url": gh.base_url, "token_env": TOKEN_ENV, **FAST}},
    )


def on_github(gh, title: str, number: int = 42) -> None:
    """Issue ``number`` of acme/web is titled ``title`` on the fake GitHub now."""
    repo = gh.repo("acme/web")
    while max(repo.issues, default=0) < number:
        repo.add_issue(f"issue {max(repo.issues, default=0) + 1}")
    with gh.lock:
        repo.issues[number].title = title


def _issue(action: str, number: int = 42, title: str = "Login fails on Safari", labels=(), label=None):
    payload = {
        "action": action,
        "issue": {"number": number, "title": title, "state": "open", "labels": [{"name": n} for n in labels]},
        "repository": {"full_name": "acme/web"},
    }
    if label is not None:
        payload["label"] = {"name": label}
    return payload


def test_an_edited_issue_renames_the_sessions_working_on_it(
    client, gh, tracked, queued, django_capture_on_commit_callbacks
):
    on_it = SessionFactory(project=tracked, issue_ref="42", issue_title="Login fails")
    hashed = SessionFactory(project=tracked, issue_ref="#42", issue_title="Login fails")
    other = SessionFactory(project=tracked, issue_ref="43", issue_title="Something else")
    elsewhere = SessionFactory(issue_ref="42", issue_title="Another project's 42")
    on_github(gh, "Login fails on Safari")

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, "web", "issues", _issue("edited"))

    assert response.status_code == 202
    assert sorted(response.json()["renamed"]) == sorted([on_it.id, hashed.id])
    for session, title in (
        (on_it, "Login fails on Safari"),
        (hashed, "Login fails on Safari"),
        (other, "Something else"),
        (elsewhere, "Another project's 42"),
    ):
        session.refresh_from_db()
        assert session.issue_title == title
    assert queued == []  # no intake label involved
    assert WebhookDelivery.objects.get().event == "issues"


@pytest.mark.parametrize("action", ["labeled", "unlabeled", "opened", "reopened", "closed"])
def test_any_issue_action_refreshes_the_title(client, gh, tracked, queued, action):
    session = SessionFactory(project=tracked, issue_ref="42", issue_title="old")
    on_github(gh, "new title")
    deliver(client, "web", "issues", _issue(action, title="new title", label="bug"))
    session.refresh_from_db()
    assert session.issue_title == "new title"


def test_the_title_is_githubs_not_an_older_or_replayed_deliverys(client, gh, tracked, queued):
    """Two quick renames whose deliveries arrive out of order, or a captured body replayed under
    a new delivery id: the sessions take the title GitHub has now, never the delivery's."""
    session = SessionFactory(project=tracked, issue_ref="42", issue_title="Login fails on Safari 17")
    on_github(gh, "Login fails on Safari 17")

    deliver(client, "web", "issues", _issue("edited", title="Login fails on Safari"), delivery="older")

    session.refresh_from_db()
    assert session.issue_title == "Login fails on Safari 17"
    gh.reset_counts()
    deliver(client, "web", "issues", _issue("edited", title="Login fails on Safari 17"), delivery="same")
    assert gh.count("rest") == 0  # the delivery says what ao has: nothing to read


def test_a_rename_is_kept_when_github_cannot_be_read(client, gh, tracked, queued):
    """GitHub has a bad minute as the delivery comes: the delivery's title is taken (nothing else
    would bring the rename; a redelivery is answered as a duplicate)."""
    session = SessionFactory(project=tracked, issue_ref="42", issue_title="Login fails")
    on_github(gh, "Login fails on Safari")
    gh.fail(502, times=10, path="/issues/42")

    deliver(client, "web", "issues", _issue("edited"), delivery="d-1")

    session.refresh_from_db()
    assert session.issue_title == "Login fails on Safari"


def test_the_intake_label_queues_the_intake_sweep_soon(
    client, tracked, queued, settings, django_capture_on_commit_callbacks
):
    settings.AO_WEBHOOK_COALESCE_SECONDS = 2
    label = tracked.intake_label
    with django_capture_on_commit_callbacks(execute=True):
        labelled = deliver(
            client, "web", "issues", _issue("labeled", labels=[label], label=label), delivery="1"
        )
        # a second issue labelled within the window rides on the same intake sweep
        deliver(
            client, "web", "issues", _issue("labeled", number=43, labels=[label], label=label), delivery="2"
        )

    assert labelled.status_code == 202 and labelled.json()["intake"] is True
    assert queued == [("sessions.intake_sweep", [tracked.pk], 2.0)]  # queued, not run in the request


@pytest.mark.parametrize(
    ("action", "labels", "label"),
    [
        ("labeled", ["bug"], "bug"),  # another label
        ("unlabeled", [], "agent:backlog"),  # the intake label taken off
        ("edited", ["agent:backlog"], None),  # already labelled: the sweep has it
    ],
)
def test_other_label_changes_do_not_queue_intake(client, tracked, queued, action, labels, label):
    response = deliver(client, "web", "issues", _issue(action, labels=labels, label=label))
    assert response.json()["intake"] is False
    assert queued == []


def test_an_issue_opened_with_the_intake_label_queues_intake(client, tracked, queued):
    response = deliver_committed(client, "web", "issues", _issue("opened", labels=["agent:backlog"]))
    assert response.json()["intake"] is True
    assert [name for name, _args, _countdown in queued] == ["sessions.intake_sweep"]


def test_intake_off_or_another_tracker_ignores_the_label(client, queued):
    label = "agent:backlog"
    ProjectFactory(key="web", repo="acme/web", scm="github", tracker="github", intake_enabled=False)
    ProjectFactory(key="lin", repo="acme/lin", scm="github", tracker="linear", intake_enabled=True)
    off = deliver(client, "web", "issues", _issue("labeled", labels=[label], label=label), delivery="1")
    payload = {**_issue("labeled", labels=[label], label=label), "repository": {"full_name": "acme/lin"}}
    linear = deliver(client, "lin", "issues", payload, delivery="2")
    assert off.json()["intake"] is False
    assert linear.json() == {"accepted": True, "refresh": False}
    assert queued == []


def test_the_intake_task_runs_the_projects_intake_sweep(tracked, monkeypatch):
    from django.core.cache import cache

    from sessions import tasks
    from sessions.flows import webhooks
    from sessions.watchers import intake

    ran = []
    monkeypatch.setattr(intake, "intake_sweep", lambda *, project: ran.append(project.pk) or ["#42 → web-1"])
    cache.set(webhooks.INTAKE_KEY.format(tracked.pk), 1)

    tasks.intake_sweep_task(tracked.pk)

    assert ran == [tracked.pk]
    assert cache.get(webhooks.INTAKE_KEY.format(tracked.pk)) is None  # the next label queues again
