"""Each endpoint for each kind of caller, with the audit entries the actions leave."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from reactions.models import Notification
from sessions.domain.lifecycle import Phase
from sessions.models import ApiToken, AuditEntry, Message, Project, PullRequest, Session
from tests.factories import (
    CheckRunFactory,
    EventFactory,
    PullRequestFactory,
    ReactionAttemptFactory,
    ReviewThreadFactory,
    SessionFactory,
)

pytestmark = pytest.mark.django_db

User = get_user_model()

WHO = ("anonymous", "agent", "outsider", "viewer", "operator", "admin", "root")


def _error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response.content
    return response.json()["error"]


# --- reads ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "status", "count"),
    [
        ("anonymous", 401, None),
        ("agent", 403, None),
        ("outsider", 200, 0),
        ("viewer", 200, 1),
        ("root", 200, 1),
    ],
)
def test_projects_list_shows_only_visible_projects(world, who, status, count) -> None:
    response = world.client(who).get("/api/v1/projects/")
    assert response.status_code == status, response.content
    if count is None:
        assert _error(response)["code"] in ("not_authenticated", "permission_denied")
        return
    rows = response.json()["results"]
    assert len(rows) == count
    if count:
        assert rows[0]["key"] == "web"
        assert rows[0]["role"] == ("admin" if who == "root" else who)
        assert "plugin_settings" not in rows[0]


def test_project_detail_of_someone_elses_project_is_404(world) -> None:
    response = world.client("outsider").get("/api/v1/projects/web/")
    assert response.status_code == 404
    assert _error(response) == {"code": "not_found", "message": "no project 'web' visible to you"}


def test_sessions_list_filters_and_cursor_pagination(world) -> None:
    for zone in ("review", "review", "merge"):
        SessionFactory(
            project=world.project, zone=zone, status="ci_failed" if zone == "review" else "mergeable"
        )
    SessionFactory()  # another project: never listed
    client = world.client("viewer")

    page = client.get("/api/v1/sessions/", {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    rest = client.get(page["next"]).json()
    ids = [r["id"] for r in page["results"] + rest["results"]]
    assert len(ids) == 4 == len(set(ids))
    assert all(i.startswith("web-") for i in ids)

    review = client.get("/api/v1/sessions/", {"zone": "review", "project": "web"}).json()["results"]
    assert {r["zone"] for r in review} == {"review"} and len(review) == 2
    assert client.get("/api/v1/sessions/", {"status": "mergeable"}).json()["results"][0]["zone"] == "merge"
    bad = client.get("/api/v1/sessions/", {"zone": "nowhere"})
    assert bad.status_code == 400 and _error(bad)["field"] == "zone"


def test_session_detail_has_pr_checks_threads_and_no_secrets(world) -> None:
    pr = PullRequestFactory(session=world.session, ci_state="failing")
    CheckRunFactory(pull_request=pr, conclusion="failure", name="tests")
    ReviewThreadFactory(pull_request=pr, body="rename this")
    response = world.client("viewer").get(f"/api/v1/sessions/{world.session.id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["pull_request"]["number"] == pr.number
    assert body["pull_request"]["checks"][0]["name"] == "tests"
    assert body["pull_request"]["threads"][0]["body"] == "rename this"
    text = response.content.decode()
    assert "api_token_hash" not in text and world.session.api_token_hash not in text
    assert "runtime_handle" not in text


def test_events_filters(world) -> None:
    EventFactory(session=world.session, kind="ci.failed", summary="tests failed")
    EventFactory(session=world.session, kind="note")
    EventFactory(kind="ci.failed")  # other project
    client = world.client("viewer")
    rows = client.get("/api/v1/events/", {"kind": "ci.failed"}).json()["results"]
    assert [r["summary"] for r in rows] == ["tests failed"]
    rows = client.get("/api/v1/events/", {"session": world.session.id}).json()["results"]
    assert len(rows) == 2
    assert client.get("/api/v1/events/", {"since": "2999-01-01T00:00:00Z"}).json()["results"] == []
    assert client.get("/api/v1/events/", {"since": "yesterday"}).status_code == 400


def test_reaction_attempts_and_notifications(world) -> None:
    ReactionAttemptFactory(session=world.session, rule="ci-failed")
    ReactionAttemptFactory(rule="ci-failed")  # other project
    note = Notification.objects.create(project=world.project, session=world.session, title="CI failed")
    client = world.client("viewer")
    assert len(client.get("/api/v1/reactions/attempts/").json()["results"]) == 1
    rows = client.get("/api/v1/notifications/", {"unread": "true"}).json()["results"]
    assert [(r["title"], r["read"]) for r in rows] == [("CI failed", False)]
    marked = client.post(f"/api/v1/notifications/{note.pk}/read")
    assert marked.status_code == 200 and marked.json()["read"] is True
    assert client.get("/api/v1/notifications/", {"unread": "1"}).json()["results"] == []
    assert world.client("outsider").post(f"/api/v1/notifications/{note.pk}/read").status_code == 404


# --- actions: the role matrix ------------------------------------------------------------------------
SEND_STATUS = {
    "anonymous": 401,
    "agent": 403,
    "outsider": 404,
    "viewer": 403,
    "operator": 201,
    "admin": 201,
    "root": 201,
}


@pytest.mark.parametrize("who", WHO)
def test_send_per_role_and_its_audit_entry(world, who) -> None:
    response = world.client(who).post(
        f"/api/v1/sessions/{world.session.id}/send", {"text": "please \x1b[31mrebase\x07"}, format="json"
    )
    assert response.status_code == SEND_STATUS[who], response.content
    if response.status_code != 201:
        assert set(_error(response)) >= {"code", "message"}
        assert not Message.objects.exists() and not AuditEntry.objects.exists()
        return
    assert response.json()["text"] == "please [31mrebase"  # control characters stripped
    entry = AuditEntry.objects.get(action="message.queue")
    assert (entry.actor_user, entry.actor_kind, entry.source) == (world.users[who], "bot", "api")
    assert entry.actor_name == f"token {who}-bot"
    assert (entry.project, entry.data["to"]) == (world.project, world.session.id)


def test_messages_list_and_create(world) -> None:
    client = world.client("operator")
    created = client.post(f"/api/v1/sessions/{world.session.id}/messages/", {"text": "hi"}, format="json")
    assert created.status_code == 201
    rows = world.client("viewer").get(f"/api/v1/sessions/{world.session.id}/messages/").json()["results"]
    assert [r["text"] for r in rows] == ["hi"]
    empty = client.post(f"/api/v1/sessions/{world.session.id}/messages/", {"text": "\x07"}, format="json")
    assert empty.status_code == 400 and _error(empty)["field"] == "text"


@pytest.mark.parametrize(("who", "status"), [("viewer", 403), ("operator", 200), ("outsider", 404)])
def test_kill(world, who, status) -> None:
    response = world.client(who).post(f"/api/v1/sessions/{world.session.id}/kill", {}, format="json")
    assert response.status_code == status, response.content
    world.session.refresh_from_db()
    assert (world.session.phase == Phase.KILLED) == (status == 200)
    if status == 200:
        assert response.json()["status"] == "killed"
        entry = AuditEntry.objects.get(action="session.kill")
        assert (entry.actor_user, entry.target_id) == (world.users[who], world.session.id)


def test_restore_without_workspace_is_409(world) -> None:
    response = world.client("operator").post(f"/api/v1/sessions/{world.session.id}/restore")
    assert response.status_code == 409
    assert _error(response)["code"] == "refused"
    assert "has no worktree to restore: spawn a new session" in _error(response)["message"]


def test_spawn_and_audit(world) -> None:
    response = world.client("operator").post(
        "/api/v1/projects/web/spawn", {"prompt": "add a health check"}, format="json"
    )
    assert response.status_code == 201, response.content
    session = Session.objects.get(pk=response.json()["id"])
    assert session.prompt == "add a health check"
    assert session.created_by == world.users["operator"]
    entry = AuditEntry.objects.get(action="session.spawn")
    assert (entry.target_id, entry.source, entry.actor_kind) == (session.id, "api", "bot")
    assert (
        world.client("viewer").post("/api/v1/projects/web/spawn", {"prompt": "x"}, format="json").status_code
        == 403
    )


def test_spawn_validation(world, settings) -> None:
    settings.AO_MAX_PROMPT_CHARS = 20
    client = world.client("operator")
    long = client.post("/api/v1/projects/web/spawn", {"prompt": "x" * 21}, format="json")
    assert long.status_code == 400
    assert _error(long)["field"] == "prompt" and "limit is 20" in _error(long)["message"]
    agent = client.post("/api/v1/projects/web/spawn", {"prompt": "x", "agent": "nope"}, format="json")
    assert agent.status_code == 400 and _error(agent)["field"] == "agent"
    nothing = client.post("/api/v1/projects/web/spawn", {}, format="json")
    assert nothing.status_code == 400 and _error(nothing)["field"] == "issue"
    assert not Session.objects.exclude(pk=world.session.pk).exists()


def test_batch_spawn_reports_per_issue(world) -> None:
    client = world.client("operator")
    ref = client.post("/api/v1/projects/web/issues/", {"title": "Fix login"}, format="json").json()["ref"]
    response = client.post(
        "/api/v1/projects/web/batch-spawn", {"issues": [ref, ref, "bad ref", "404"]}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["spawned"], body["failed"]) == (1, 2)
    assert body["results"][0]["session"]["issue"] == ref
    assert body["results"][1]["error"]["code"] == "refused"
    assert body["results"][2]["error"] == {
        "code": "refused",
        "message": "issue #404 not found in project web",
    }


def test_spawn_on_an_unknown_issue_is_refused_unless_told_to_go_ahead(world) -> None:
    client = world.client("operator")
    before = set(Session.objects.values_list("pk", flat=True))

    refused = client.post("/api/v1/projects/web/spawn", {"issue": "404"}, format="json")

    assert refused.status_code == 409
    assert _error(refused)["message"] == "issue #404 not found in project web"
    assert set(Session.objects.values_list("pk", flat=True)) == before
    accepted = client.post(
        "/api/v1/projects/web/spawn", {"issue": "404", "missing_issue_ok": True}, format="json"
    )
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["issue"] == "404"


def test_issues_local_tracker(world) -> None:
    Project.objects.filter(pk=world.project.pk).update(tracker="local")
    client = world.client("operator")
    created = client.post(
        "/api/v1/projects/web/issues/", {"title": "Fix login", "labels": ["bug"]}, format="json"
    )
    assert created.status_code == 201, created.content
    ref = created.json()["ref"]
    rows = world.client("viewer").get("/api/v1/projects/web/issues/").json()
    assert [(r["ref"], r["title"], r["labels"]) for r in rows] == [(ref, "Fix login", ["bug"])]
    assert world.client("viewer").get(f"/api/v1/projects/web/issues/{ref}/").json()["title"] == "Fix login"
    assert world.client("viewer").get("/api/v1/projects/web/issues/999/").status_code == 404
    assert AuditEntry.objects.filter(action="issue.create", target_id=ref).exists()


def test_merge_refuses_with_blockers_then_merges(world) -> None:
    from integrations.records import PullRequestInfo
    from tests.api.conftest import ApiTestSCM

    pr = PullRequestFactory(session=world.session, ci_state="failing", mergeable=True)
    client = world.client("operator")
    refused = client.post(f"/api/v1/sessions/{world.session.id}/merge")
    assert refused.status_code == 409
    assert "CI is failing" in _error(refused)["blockers"]
    assert ApiTestSCM.merged == []

    PullRequest.objects.filter(pk=pr.pk).update(ci_state="passing", review_decision="approved")
    Session.objects.filter(pk=world.session.pk).update(status="mergeable", zone="merge")
    ApiTestSCM.prs[pr.number] = PullRequestInfo(number=pr.number, branch=pr.branch, head_sha=pr.head_sha)
    merged = client.post(f"/api/v1/sessions/{world.session.id}/merge")
    assert merged.status_code == 200, merged.content
    assert ApiTestSCM.merged == [(pr.number, pr.head_sha)]
    assert AuditEntry.objects.filter(action="pr.merge", target_id=world.session.id).exists()


def test_claim_pr(world) -> None:
    from integrations.records import CheckInfo, PullRequestInfo
    from tests.api.conftest import ApiTestSCM

    ApiTestSCM.prs[7] = PullRequestInfo(
        number=7,
        branch="feat/x",
        url="https://example.test/pull/7",
        head_sha="abc",
        checks=(CheckInfo(name="ci", status="completed", conclusion="success"),),
    )
    client = world.client("operator")
    missing = client.post(f"/api/v1/sessions/{world.session.id}/claim-pr", {"number": 8}, format="json")
    assert missing.status_code == 404
    response = client.post(
        f"/api/v1/sessions/{world.session.id}/claim-pr",
        {"url": "https://example.test/acme/web/pull/7"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["pull_request"]["number"] == 7
    assert response.json()["pull_request"]["checks"][0]["name"] == "ci"
    assert PullRequest.objects.get(number=7).session_id == world.session.id
    other = SessionFactory(project=world.project)
    taken = client.post(f"/api/v1/sessions/{other.id}/claim-pr", {"number": 7}, format="json")
    assert taken.status_code == 409 and _error(taken)["code"] == "claimed"


# --- audit, tokens, me ----------------------------------------------------------------------------
def test_audit_visible_to_admins_only(world) -> None:
    world.client("operator").post(f"/api/v1/sessions/{world.session.id}/send", {"text": "x"}, format="json")
    assert world.client("operator").get("/api/v1/audit/").status_code == 403
    rows = world.client("admin").get("/api/v1/audit/", {"action": "message.queue"}).json()["results"]
    assert [(r["action"], r["actor_user"], r["project"]) for r in rows] == [
        ("message.queue", "operator", "web")
    ]
    assert len(world.client("root").get("/api/v1/audit/").json()["results"]) >= 1


def test_me_and_tokens_over_the_api(world) -> None:
    client = world.client("viewer")
    me = client.get("/api/v1/me").json()
    assert me["projects"] == [{"project": "web", "role": "viewer"}] and me["auth"] == "token"
    # a token cannot make tokens (one leaked would outlive its revocation through them)
    refused = client.post("/api/v1/tokens/", {"name": "ci"}, format="json")
    assert refused.status_code == 403 and "cannot create tokens" in _error(refused)["message"]
    browser = APIClient(enforce_csrf_checks=False)
    browser.force_login(User.objects.get(username="viewer"))  # the person, signed in: /tokens/ does this
    created = browser.post("/api/v1/tokens/", {"name": "ci"}, format="json")
    assert created.status_code == 201 and created.json()["token"].startswith("ao_")
    listed = client.get("/api/v1/tokens/").json()
    assert {t["name"] for t in listed} == {"viewer-bot", "ci"}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    revoked = client.delete(f"/api/v1/tokens/{created.json()['id']}/")
    assert (revoked.status_code, revoked.content) == (204, b"")  # as the schema says
    assert [t["active"] for t in client.get("/api/v1/tokens/").json() if t["name"] == "ci"] == [False]
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    responses = schema["paths"]["/api/v1/tokens/{id}/"]["delete"]["responses"]
    assert [code for code in responses if code.startswith("2")] == ["204"]
    assert "content" not in responses["204"]
    foreign = ApiToken.objects.get(name="admin-bot")
    assert client.delete(f"/api/v1/tokens/{foreign.pk}/").status_code == 404


def test_an_issue_whose_session_errored_before_its_agent_ran_has_no_live_session(world) -> None:
    """The backlog says which live session works on an issue: an errored one (its agent CLI was
    missing) works on nothing, and a new spawn on it is what the person needs."""
    Project.objects.filter(pk=world.project.pk).update(tracker="local")
    client = world.client("operator")
    ref = client.post("/api/v1/projects/web/issues/", {"title": "Fix login"}, format="json").json()["ref"]
    working = SessionFactory(project=world.project, number=601, issue_ref=ref)
    assert client.get(f"/api/v1/projects/web/issues/{ref}/").json()["session"] == working.id

    Session.objects.filter(pk=working.pk).update(
        phase="errored", status="errored", zone="respond", error="'claude' was not found on PATH"
    )

    assert client.get(f"/api/v1/projects/web/issues/{ref}/").json()["session"] is None
    assert client.get("/api/v1/projects/web/").json()["live_sessions"] == 1  # world.session only
