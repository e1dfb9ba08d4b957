"""A project's Linear tracker is one team: a person with a role in the project reads, and spawns
on, that team's issues only, even though ao's API key sees every team of the workspace (the API,
the command line; against the Linear fake)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions.agents import spawning
from sessions.models import Project, Session
from tests.fakes.linear import FakeLinear

pytestmark = pytest.mark.django_db

KEY_ENV = "AO_TEST_LINEAR_API_KEY"


@pytest.fixture
def linear(world, monkeypatch):
    """Project "web" tracks Linear team ENG; the same key also sees team HR and its issue HR-1."""
    monkeypatch.delenv("AO_URL", raising=False)
    monkeypatch.delenv("AO_TOKEN", raising=False)
    monkeypatch.setattr(spawning, "_enqueue_start", lambda session: None)
    with FakeLinear() as fake:
        fake.add_team("ENG", "Engineering")
        fake.add_team("HR", "People")
        monkeypatch.setenv(KEY_ENV, fake.api_key)
        fake.add_issue("ENG", "Fix login")
        fake.add_issue("HR", "Confidential: salary review", description="names and numbers")
        Project.objects.filter(pk=world.project.pk).update(
            tracker="linear",
            plugin_settings={"tracker": {"team": "ENG", "api_url": fake.url, "api_key_env": KEY_ENV}},
        )
        yield fake


def test_a_viewer_reads_only_the_projects_team(world, linear) -> None:
    viewer = world.client("viewer")
    secret_uuid = linear.issue("HR-1").id

    mine = viewer.get("/api/v1/projects/web/issues/ENG-1/")
    by_identifier = viewer.get("/api/v1/projects/web/issues/HR-1/")
    by_uuid = viewer.get(f"/api/v1/projects/web/issues/{secret_uuid}/")

    assert (mine.status_code, mine.json()["title"]) == (200, "Fix login")
    for response in (by_identifier, by_uuid):
        assert response.status_code == 404, response.content
        assert b"Confidential" not in response.content and b"names and numbers" not in response.content
    assert "not an issue of Linear team ENG" in by_identifier.json()["error"]["message"]


def test_an_operator_cannot_spawn_on_another_teams_issue(world, linear) -> None:
    operator = world.client("operator")
    before = Session.objects.count()

    refused = [
        operator.post("/api/v1/projects/web/spawn", {"issue": ref}, format="json")
        for ref in ("HR-1", linear.issue("HR-1").id)
    ]

    assert [r.status_code for r in refused] == [409, 409], [
        r.content for r in refused
    ]  # as for an unknown issue
    assert "not an issue of Linear team ENG" in refused[0].json()["error"]["message"]
    assert "not found in Linear team ENG" in refused[1].json()["error"]["message"]
    assert Session.objects.count() == before
    assert linear.mutations() == []
    assert linear.comments_on("HR-1") == [] and linear.issue_labels("HR-1") == []


def test_ao_issue_show_refuses_another_teams_issue(world, linear) -> None:
    out = io.StringIO()
    call_command("issue", "--project", "web", "show", "ENG-1", stdout=out)
    assert "Fix login" in out.getvalue()

    for ref in ("HR-1", linear.issue("HR-1").id):
        out = io.StringIO()
        with pytest.raises(CommandError) as caught:
            call_command("issue", "--project", "web", "show", ref, stdout=out)
        assert "Confidential" not in str(caught.value) + out.getvalue()
    assert linear.mutations() == []
