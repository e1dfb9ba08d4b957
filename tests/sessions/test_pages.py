"""The first page, the admin and the health endpoint, through Django's test client."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import EventFactory, ProjectFactory, PullRequestFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_index_requires_login(client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_index_lists_projects_and_sessions(client) -> None:
    project = ProjectFactory(key="webapp", repo="acme/webapp")
    SessionFactory(
        project=project, id="p-7", number=7, issue_title="Fix the login redirect", status="ci_failed"
    )
    client.force_login(UserFactory(is_superuser=True))  # sees every project

    response = client.get("/")

    body = response.content.decode()
    assert response.status_code == 200
    assert "webapp" in body and "acme/webapp" in body
    assert 'id="card-p-7"' in body
    assert "Fix the login redirect" in body
    assert "CI failed" in body


def test_index_escapes_untrusted_issue_titles(client) -> None:
    SessionFactory(issue_title="<script>alert(1)</script>")
    client.force_login(UserFactory(is_superuser=True))
    body = client.get("/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_healthz_reports_each_dependency(client) -> None:
    response = client.get("/healthz")
    data = response.json()
    assert response.status_code == 200
    assert data["status"] == "ok"
    assert data["mode"] == "embedded"
    assert set(data["checks"]) == {"database", "channel_layer", "broker"}
    assert all(check["ok"] for check in data["checks"].values())
    assert data["checks"]["channel_layer"]["detail"] == "InMemoryChannelLayer"


@pytest.fixture
def broken_channel_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def test_healthz_reports_a_broken_channel_layer(client, broken_channel_layer) -> None:
    response = client.get("/healthz")

    data = response.json()
    assert response.status_code == 503
    assert data["status"] == "error"
    assert data["checks"]["channel_layer"]["ok"] is False
    assert data["checks"]["database"]["ok"] is True


def test_healthz_tells_anonymous_callers_what_failed_but_not_why(
    client, broken_channel_layer, caplog
) -> None:
    """Anyone may ask /healthz (a load balancer, no login); an error's text names hosts, ports,
    database roles: it goes to ao's log and to signed-in staff only."""
    staff = UserFactory(username="ops", is_staff=True)
    member = UserFactory(username="member")

    anonymous = client.get("/healthz")
    client.force_login(member)
    not_staff = client.get("/healthz")
    client.force_login(staff)
    signed_in = client.get("/healthz")

    for response in (anonymous, not_staff):
        assert response.status_code == 503
        check = response.json()["checks"]["channel_layer"]
        assert check["ok"] is False and check["error"] == "unavailable (the reason is in ao's log)"
        assert b"127.0.0.1" not in response.content and b"Error" not in response.content
    error = signed_in.json()["checks"]["channel_layer"]["error"]
    assert signed_in.status_code == 503 and "127.0.0.1" in error
    assert f"health check channel_layer failed: {error}" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "/admin/agent_sessions/project/",
        "/admin/agent_sessions/session/",
        "/admin/agent_sessions/pullrequest/",
        "/admin/agent_sessions/event/",
        "/admin/agent_sessions/message/",
        "/admin/reactions/reactionattempt/",
    ],
)
def test_admin_changelists_render(admin_client, url) -> None:
    PullRequestFactory()
    EventFactory()
    assert admin_client.get(url).status_code == 200


def test_admin_timeline_is_read_only(admin_client) -> None:
    event = EventFactory()
    response = admin_client.post(f"/admin/agent_sessions/event/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert type(event).objects.filter(pk=event.pk).exists()
