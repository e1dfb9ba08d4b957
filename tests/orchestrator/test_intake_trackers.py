"""Backlog intake with every tracker (issue 18.3): each tracker plugin maps its own states to
open / in progress / done once, and intake claims the labelled issues that are open, whatever the
tracker calls that state (Linear: "Todo", "Backlog"; GitHub and local: open), against the fake
GitHub and the fake Linear."""

from __future__ import annotations

import pytest

from integrations.github.pool import forget_clients
from integrations.registry import plugin_for
from sessions.agents import spawning
from sessions.models import IntakeClaim, Session
from sessions.watchers import intake
from tests.factories import ProjectFactory
from tests.fakes.github import FakeGitHub
from tests.fakes.linear import FakeLinear

pytestmark = pytest.mark.django_db

BACKLOG = "agent:backlog"


@pytest.fixture
def no_start(monkeypatch):
    """Spawns are accepted and written; their start (worktree, agent) is not what is tested here."""
    monkeypatch.setattr(spawning, "_enqueue_start", lambda session: None)


def local_project():
    project = ProjectFactory(key="web", session_prefix="web", tracker="local", intake_enabled=True)
    tracker = plugin_for(project, "tracker")
    tracker.create_issue(title="Open one", labels=[BACKLOG])
    closed = tracker.create_issue(title="Closed one", labels=[BACKLOG])
    tracker.close(closed.ref)
    return project, {"1"}


@pytest.fixture
def tracked(request, monkeypatch, no_start):
    """A project on the tracker ``request.param`` with labelled issues in every state; the refs
    intake should claim."""
    if request.param == "local":
        yield local_project()
    elif request.param == "github":
        with FakeGitHub() as gh:
            repo = gh.add_repo("acme/web")
            monkeypatch.setenv("GITHUB_TOKEN", gh.token)
            repo.add_issue("Open one", labels=[BACKLOG])
            repo.add_issue("Closed one", labels=[BACKLOG], state="closed")
            project = ProjectFactory(
                key="web", session_prefix="web", repo="acme/web", tracker="github", intake_enabled=True,
                plugin_settings={"tracker": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01}},
            )  # fmt: skip
            yield project, {"1"}
        forget_clients()
    else:
        with FakeLinear() as linear:
            linear.add_team("ENG", "Engineering")
            monkeypatch.setenv("AO_TEST_LINEAR_API_KEY", linear.api_key)
            linear.add_issue("ENG", "Not started", state="Todo", labels=[BACKLOG])
            linear.add_issue("ENG", "In the backlog", state="Backlog", labels=[BACKLOG])
            linear.add_issue("ENG", "Someone is on it", state="In Progress", labels=[BACKLOG])
            linear.add_issue("ENG", "Finished", state="Done", labels=[BACKLOG])
            project = ProjectFactory(
                key="web", session_prefix="web", tracker="linear", intake_enabled=True,
                plugin_settings={"tracker": {"team": "ENG", "api_url": linear.url,
                                             "api_key_env": "AO_TEST_LINEAR_API_KEY", "timeout": 2}},
            )  # fmt: skip
            yield project, {"ENG-1", "ENG-2"}


@pytest.mark.parametrize("tracked", ["local", "github", "linear"], indirect=True)
def test_intake_claims_the_open_labelled_issues_of_every_tracker(tracked):
    project, expected = tracked

    notes = intake.intake_sweep(project=project)

    assert set(IntakeClaim.objects.filter(project=project).values_list("issue_ref", flat=True)) == expected, (
        notes
    )
    assert set(Session.objects.filter(project=project).values_list("issue_ref", flat=True)) == expected
    # claimed issues carry the in-progress label now: the next sweep claims nothing more
    assert intake.intake_sweep(project=project) == []
    assert Session.objects.filter(project=project).count() == len(expected)
