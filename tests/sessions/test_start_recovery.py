"""No session stays "spawning" forever after a fault: a start that was never enqueued (the broker
was down at spawn time, or restarted empty) is enqueued again by the sweep and the agent starts;
a start whose worker died part-way fails the session with that reason. Real git and tmux."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.domain.lifecycle import Phase
from sessions.flows import sweep
from sessions.models import Session
from tests.helpers.projects import local_tmux_project
from tests.sessions.test_session_commands import eventually, pane

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return local_tmux_project(path=repo.path, tmux_server=tmux_server)


def _lost_start(project, **fields) -> Session:
    """A spawned session whose start task never ran: what a failed enqueue leaves behind."""
    session = Session.objects.create(
        id=f"web-{Session.objects.count() + 1}", project=project, phase=Phase.SPAWNING, **fields
    )
    Session.objects.filter(pk=session.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    return session


def test_a_start_that_was_never_enqueued_is_started_by_the_sweep(project, tmux_server):
    session = _lost_start(project, runtime_handle={"runtime": "tmux"})
    young = Session.objects.create(id="web-young", project=project, phase=Phase.SPAWNING)

    sweep.project_sweep(project=project)

    session.refresh_from_db()
    assert session.phase == Phase.RUNNING, (session.phase, session.error)
    assert eventually(lambda: pane(tmux_server, session.pk).lstrip().startswith(">"), timeout=30), pane(
        tmux_server, session.pk
    )
    young.refresh_from_db()
    assert young.phase == Phase.SPAWNING and young.start_claimed_at is None  # its own task may yet come


def test_a_start_whose_worker_died_fails_the_session_with_the_reason(project):
    session = _lost_start(project, runtime_handle={"runtime": "tmux"})
    Session.objects.filter(pk=session.pk).update(start_claimed_at=timezone.now() - timedelta(minutes=20))

    sweep.project_sweep(project=project)

    session.refresh_from_db()
    assert session.phase == Phase.ERRORED
    assert "start was abandoned" in session.error
    assert session.events.filter(kind="spawn.failed").exists()
