"""Every API endpoint against every kind of caller: who gets in, who is refused, and how.

Bodies are deliberately empty or incomplete where an action would have side effects: a caller who
may act gets past authentication and the role check (to a 400/409 about the input or the state);
one who may not is refused before the body is looked at.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

RANK = {"outsider": 0, "viewer": 1, "operator": 2, "admin": 3, "root": 4}
PEOPLE = tuple(RANK)

# (method, path, body, who may: "viewer" | "operator" | "admin" (a project role) | "person" | "agent")
ENDPOINTS = [
    ("get", "/api/v1/me", None, "person"),
    ("get", "/api/v1/tokens/", None, "person"),
    ("get", "/api/v1/projects/web/", None, "viewer"),
    ("get", "/api/v1/projects/web/issues/", None, "viewer"),
    ("get", "/api/v1/projects/web/reactions", None, "viewer"),
    ("post", "/api/v1/projects/web/spawn", {}, "operator"),
    ("post", "/api/v1/projects/web/batch-spawn", {}, "operator"),
    ("get", "/api/v1/sessions/{sid}/", None, "viewer"),
    ("get", "/api/v1/sessions/{sid}/messages/", None, "viewer"),
    ("post", "/api/v1/sessions/{sid}/send", {}, "operator"),
    ("post", "/api/v1/sessions/{sid}/kill", {}, "operator"),
    ("post", "/api/v1/sessions/{sid}/restore", {}, "operator"),
    ("post", "/api/v1/sessions/{sid}/merge", {}, "operator"),
    ("post", "/api/v1/sessions/{sid}/review", {}, "operator"),
    ("post", "/api/v1/sessions/{sid}/claim-pr", {}, "operator"),
    ("get", "/api/v1/events/?project=web", None, "viewer"),
    ("get", "/api/v1/reactions/attempts/?project=web", None, "viewer"),
    ("get", "/api/v1/notifications/?project=web", None, "viewer"),
    ("get", "/api/v1/audit/?project=web", None, "admin"),
    ("post", "/api/v1/sessions/{sid}/report", {}, "agent"),
    ("post", "/api/v1/sessions/{sid}/pr", {}, "agent"),
]


def expected(who: str, may: str) -> set[int] | None:
    """The status codes ``who`` may get for an endpoint ``may`` allows; None: any non-refusal."""
    if who == "anonymous":
        return {401}
    if may == "agent":
        return None if who == "agent" else {401}  # a person's token is not a session token
    if who == "agent":
        return {403}  # an agent's session token reaches only its own report and pr
    if may == "person":
        return None
    if who == "outsider":
        return {403} if may == "admin" else {404}  # a project one has no role in is not there
    return None if RANK[who] >= RANK[may] else {403}


@pytest.mark.parametrize(
    ("method", "path", "body", "may"), ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS]
)
@pytest.mark.parametrize("who", ("anonymous", "agent", *PEOPLE))
def test_each_caller_gets_in_or_is_refused(world, who, method, path, body, may) -> None:
    client = world.client(who)
    url = path.format(sid=world.session.id)
    response = (
        getattr(client, method)(url, body, format="json")
        if body is not None
        else getattr(client, method)(url)
    )

    allowed = expected(who, may)
    if allowed is None:
        assert response.status_code not in (401, 403, 404), (response.status_code, response.content)
    else:
        assert response.status_code in allowed, (response.status_code, response.content)
        assert response.json()["error"]["code"] in ("not_authenticated", "permission_denied", "not_found")


def test_an_agent_token_cannot_report_for_another_session(world) -> None:
    from sessions.agents.plugins import token_hash
    from tests.factories import SessionFactory

    SessionFactory(project=world.project, number=2, api_token_hash=token_hash("other-agent"))
    client = world.client("anonymous")
    client.credentials(HTTP_AUTHORIZATION="Bearer other-agent", HTTP_X_AO_SESSION="web-2")

    response = client.post(f"/api/v1/sessions/{world.session.id}/report", {"state": "working"}, format="json")

    assert response.status_code in (401, 403)
    assert (
        client.post("/api/v1/sessions/web-2/report", {"state": "working"}, format="json").status_code == 200
    )


def test_a_projects_effective_reaction_rules(world) -> None:
    from sessions.models import Project

    Project.objects.filter(pk=world.project.pk).update(
        reactions={"ci-failed": {"retries": 5, "escalateAfter": "30m"}, "agent-stuck": {"threshold": "20m"}}
    )

    response = world.client("viewer").get("/api/v1/projects/web/reactions")

    assert response.status_code == 200, response.content
    rules = {rule["name"]: rule for rule in response.json()["rules"]}
    assert {"ci-failed", "changes-requested", "approved-and-green", "agent-stuck", "all-complete"} <= set(
        rules
    )
    assert (rules["ci-failed"]["retries"], rules["ci-failed"]["escalate_after"]) == (5, "1800s")
    assert rules["ci-failed"]["effective_action"] == "send-to-agent"
    assert rules["agent-stuck"]["threshold_seconds"] == 1200
    assert world.client("outsider").get("/api/v1/projects/web/reactions").status_code == 404
