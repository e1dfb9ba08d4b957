"""The tokens page: create (the raw token shown once), list, revoke; only one's own tokens."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from sessions.api.tokens import api_token_create
from sessions.models import ApiToken, AuditEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
TOKEN_RE = re.compile(r"ao_[A-Za-z0-9_-]{20,}")


def _api_status(raw: str) -> int:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api.get("/api/v1/me").status_code


def test_anonymous_people_go_to_the_login_page(client) -> None:
    for response in (
        client.get(reverse("sessions:tokens")),
        client.post(reverse("sessions:tokens"), {"name": "x"}),
        client.post(reverse("sessions:token-revoke", args=[1])),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert ApiToken.objects.count() == 0


def test_the_top_bar_links_to_the_tokens_page(client, team) -> None:
    client.force_login(team.viewer)

    assert reverse("sessions:tokens") in client.get(reverse("sessions:index")).content.decode()


def test_creating_a_token_shows_it_once_and_it_works(client, team) -> None:
    client.force_login(team.viewer)

    response = client.post(reverse("sessions:tokens"), {"name": "ci-bot"})

    assert response.status_code == 201
    assert response["Cache-Control"].count("no-store")
    shown = TOKEN_RE.findall(response.content.decode())
    assert len(set(shown)) == 1
    raw = shown[0]
    token = ApiToken.objects.get(user=team.viewer)
    assert token.name == "ci-bot" and raw.startswith(token.prefix)
    assert _api_status(raw) == 200
    assert AuditEntry.objects.filter(action="token.create", source="browser", actor_user=team.viewer).exists()

    again = client.get(reverse("sessions:tokens")).content.decode()
    assert raw not in again and not TOKEN_RE.search(again)
    assert "ci-bot" in again and token.prefix in again


def test_a_token_name_is_required(client, team) -> None:
    client.force_login(team.viewer)

    response = client.post(reverse("sessions:tokens"), {"name": "  "})

    assert response.status_code == 400
    assert ApiToken.objects.count() == 0


def test_revoking_my_token_makes_the_api_refuse_it(client, team) -> None:
    token, raw = api_token_create(user=team.operator, name="laptop")
    client.force_login(team.operator)
    assert _api_status(raw) == 200

    response = client.post(reverse("sessions:token-revoke", args=[token.pk]))

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _api_status(raw) == 401
    assert AuditEntry.objects.filter(action="token.revoke", source="browser").exists()
    page = client.get(reverse("sessions:tokens")).content.decode()
    assert "revoked" in page


def test_revoking_needs_a_post(client, team) -> None:
    token, _raw = api_token_create(user=team.operator, name="laptop")
    client.force_login(team.operator)

    assert client.get(reverse("sessions:token-revoke", args=[token.pk])).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


def test_another_persons_token_is_neither_listed_nor_revocable(client, team) -> None:
    token, raw = api_token_create(user=team.admin, name="admins-bot")
    client.force_login(team.viewer)

    assert "admins-bot" not in client.get(reverse("sessions:tokens")).content.decode()
    assert client.post(reverse("sessions:token-revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert _api_status(raw) == 200


def test_a_superuser_sees_and_revokes_other_peoples_tokens(client, team) -> None:
    token, raw = api_token_create(user=team.viewer, name="viewers-bot")
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    client.force_login(root)

    assert "viewers-bot" in client.get(reverse("sessions:tokens")).content.decode()
    assert client.post(reverse("sessions:token-revoke", args=[token.pk])).status_code == 302
    assert _api_status(raw) == 401


def test_the_raw_token_is_not_kept_in_the_session_or_messages(client, team) -> None:
    client.force_login(team.viewer)
    response = client.post(reverse("sessions:tokens"), {"name": "ci-bot"})
    raw = TOKEN_RE.findall(response.content.decode())[0]

    session = client.session
    assert all(raw not in str(session[key]) for key in session.keys())
    assert raw not in str(response.cookies)
