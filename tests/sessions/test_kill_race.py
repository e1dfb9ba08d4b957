"""A kill racing an observation: the observation that read the session before the kill, and probed
its runtime after the kill took it away, must not leave the session "runtime lost" under "needs a
decision" for good. Real git and tmux; the race is replayed in order (read, kill, observe)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from sessions.agents import observing
from sessions.core import services
from sessions.domain.lifecycle import Phase, RuntimeState
from sessions.models import Event, Session
from tests.helpers.projects import local_tmux_project
from tests.sessions.test_session_commands import eventually, pane, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return local_tmux_project(path=repo.path, tmux_server=tmux_server)


def _running(tmux_server: str) -> Session:
    run("spawn", "--prompt", "add a health check")
    session = Session.objects.get(pk="web-1")
    assert session.phase == Phase.RUNNING, session.error
    assert eventually(lambda: pane(tmux_server, "web-1").lstrip().startswith(">"))
    observing.session_observe(session=Session.objects.get(pk="web-1"))
    return Session.objects.select_related("project").get(pk="web-1")


def _statuses(session_id: str) -> list[str]:
    return [
        e.data["after"]["status"]
        for e in Event.objects.filter(session_id=session_id, kind="status.changed").order_by("pk")
    ]


def test_an_observation_read_before_a_kill_leaves_the_session_killed(project, tmux_server):
    read_before_the_kill = _running(tmux_server)

    call_command("session", "kill", "web-1")
    changed = observing.session_observe(session=read_before_the_kill)  # probes: the runtime is gone

    row = Session.objects.get(pk="web-1")
    assert (row.phase, row.status, row.zone) == (Phase.KILLED, "killed", "done")
    assert changed is False
    assert _statuses("web-1")[-1] == "killed"
    assert "runtime_lost" not in _statuses("web-1")
    # what the observer holds now is the row as it is, not what it read before the kill
    assert (read_before_the_kill.phase, read_before_the_kill.status) == (Phase.KILLED, "killed")


def test_a_status_derived_from_a_phase_that_changed_meanwhile_is_derived_again(project, tmux_server):
    """The same at the one writer of status: a re-derivation from a session read before a kill
    (PR sync, a report, a host marked gone all re-derive from the row they read)."""
    read_before_the_kill = _running(tmux_server)
    call_command("session", "kill", "web-1")

    read_before_the_kill.runtime_state = RuntimeState.LOST  # what it would have observed
    services.session_rederive(session=read_before_the_kill)

    row = Session.objects.get(pk="web-1")
    assert (row.phase, row.status, row.zone) == (Phase.KILLED, "killed", "done")
    assert "runtime_lost" not in _statuses("web-1")
