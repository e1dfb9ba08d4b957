"""GitHub webhooks: signature, dedupe, limits, and which sessions an event refreshes."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from sessions import secrets
from sessions.models import Event, PullRequest, Session, WebhookDelivery
from sessions.webhooks import extract_refs
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory

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


def test_no_secret_configured_refuses_everything(client, project, settings):
    settings.AO_GITHUB_WEBHOOK_SECRET = ""
    response = deliver(client, "web", "pull_request", pr_payload())
    assert response.status_code == 401
    assert "not configured" in response.json()["error"]["message"]
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


def test_unknown_project_is_404_and_other_repo_is_ignored(client, project):
    assert deliver(client, "nope", "pull_request", pr_payload()).status_code == 404
    response = deliver(client, "web", "pull_request", pr_payload(repo="evil/other"))
    assert response.status_code == 202
    assert "ignored" in response.json()
    assert not WebhookDelivery.objects.exists()


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
    assert "webhook secret of project web is not available" in response.json()["error"]["message"]
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
    from sessions.prsync import sessions_for_refs

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
