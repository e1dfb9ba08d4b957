"""`ao report`'s endpoint: an agent's token reports for its own session and nothing else."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from sessions.agents.plugins import token_hash
from sessions.models import Event
from tests.factories import SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


def _client(session_id: str, token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_AO_SESSION=session_id)
    return client


def test_agent_reports_needs_input_and_status_follows() -> None:
    session = SessionFactory(api_token_hash=token_hash("tok-1"))

    response = _client(session.id, "tok-1").post(
        f"/api/v1/sessions/{session.id}/report", {"state": "needs_input", "note": "Which DB?"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "needs_input"
    session.refresh_from_db()
    assert (session.reported_state, session.status, session.zone) == ("needs_input", "needs_input", "respond")
    event = Event.objects.get(session=session, kind="agent.report")
    assert (event.actor, event.actor_name) == ("agent", session.id)
    assert "Which DB?" in event.summary


def test_token_of_another_session_is_refused_and_nothing_changes() -> None:
    mine = SessionFactory(api_token_hash=token_hash("mine"))
    other = SessionFactory(api_token_hash=token_hash("other"))

    response = _client(mine.id, "mine").post(
        f"/api/v1/sessions/{other.id}/report", {"state": "done"}, format="json"
    )

    assert response.status_code == 403
    other.refresh_from_db()
    assert other.reported_state == ""
    assert not Event.objects.filter(kind="agent.report").exists()


@pytest.mark.parametrize(
    ("session_header", "token"),
    [("p-1", "wrong"), ("nope-1", "tok"), ("", "tok")],
    ids=["bad-token", "no-session", "no-header"],
)
def test_bad_credentials_are_401(session_header: str, token: str) -> None:
    session = SessionFactory(id="p-1", api_token_hash=token_hash("tok"))
    response = _client(session_header, token).post(
        "/api/v1/sessions/p-1/report", {"state": "done"}, format="json"
    )
    assert response.status_code in (401, 403)
    assert response.status_code == 401 or session_header == ""
    session.refresh_from_db()
    assert session.reported_state == ""


def test_a_logged_in_person_cannot_use_the_agent_endpoint() -> None:
    session = SessionFactory(api_token_hash=token_hash("tok"))
    client = APIClient()
    client.force_authenticate(UserFactory())
    response = client.post(f"/api/v1/sessions/{session.id}/report", {"state": "done"}, format="json")
    assert response.status_code == 403


def test_invalid_state_is_400_with_the_field() -> None:
    session = SessionFactory(api_token_hash=token_hash("tok"))
    response = _client(session.id, "tok").post(
        f"/api/v1/sessions/{session.id}/report", {"state": "sleeping"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "state"
