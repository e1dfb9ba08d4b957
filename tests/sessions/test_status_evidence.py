"""needs_input and stuck end on consistent evidence of a change, never on one noisy reading
(issue 12.1), through the public services: session_observe (real tmux, an agent read from its
terminal), session_report, pull_request_record."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from integrations.records import CheckInfo, PullRequestInfo
from sessions.agents import observing
from sessions.core import services
from sessions.domain.lifecycle import CONFIRM_READINGS, Activity, Status
from sessions.models import Session
from sessions.prs import prsync
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory
from tests.helpers.fixtures import wait_for

# An agent read only from its terminal: asks a question, then works (a spinner) once answered.
ASKING_AGENT = (
    "import sys, time\n"
    "print('Apply the change to app.py? [y/N] ', end='', flush=True)\n"
    "sys.stdin.readline()\n"
    "print('\\u280b Working (1s) applying the change', flush=True)\n"
    "time.sleep(600)\n"
)


def _pane(socket: str, name: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", f"={name}:"], capture_output=True, text=True
    ).stdout


def _spawned(repo, tmux_server, settings, tmp_path) -> Session:
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        plugin_settings={
            "agent": {"command": [sys.executable, "-u", "-c", ASKING_AGENT], "prompt_mode": "argv"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )
    call_command("spawn", "--prompt", "change app.py", stdout=io.StringIO())
    session = Session.objects.get(pk="web-1")
    assert session.phase == "running", session.error
    assert wait_for(lambda: "[y/N]" in _pane(tmux_server, "web-1"), timeout=10)
    return session


def _readings_span_a_minute(session: Session) -> None:
    """As if the status had begun two minutes ago and the run of concordant readings since one
    minute ago (sweeps are 30 s apart)."""
    now = timezone.now()
    Session.objects.filter(pk=session.pk).update(
        status_changed_at=now - timedelta(minutes=2), activity_since=now - timedelta(minutes=1)
    )
    session.refresh_from_db()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_an_answered_question_ends_needs_input_once_the_screen_agrees(repo, tmux_server, settings, tmp_path):
    session = _spawned(repo, tmux_server, settings, tmp_path)
    observing.session_observe(session=session)
    session.refresh_from_db()
    assert (session.status, session.activity, session.activity_weak) == (
        Status.NEEDS_INPUT,
        Activity.WAITING_INPUT,
        True,
    )

    # a person answers in the terminal; the agent works again
    subprocess.run(["tmux", "-L", tmux_server, "send-keys", "-t", "=web-1:", "y", "Enter"], check=True)
    assert wait_for(lambda: "Working (1s)" in _pane(tmux_server, "web-1"), timeout=10)

    # one reading of the screen is not enough ...
    observing.session_observe(session=session)
    session.refresh_from_db()
    assert (session.status, session.activity, session.activity_streak) == (
        Status.NEEDS_INPUT,
        Activity.ACTIVE,
        1,
    )
    # ... several concordant readings over a span are
    _readings_span_a_minute(session)
    for _ in range(CONFIRM_READINGS - 1):
        observing.session_observe(session=session)
        session.refresh_from_db()
    assert session.activity_streak == CONFIRM_READINGS
    assert session.status == Status.WORKING, session.status_reason


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_tmux_healthy_again_after_failed_probes_ends_stuck(repo, tmux_server, settings, tmp_path):
    session = _spawned(repo, tmux_server, settings, tmp_path)
    subprocess.run(["tmux", "-L", tmux_server, "send-keys", "-t", "=web-1:", "y", "Enter"], check=True)
    assert wait_for(lambda: "Working (1s)" in _pane(tmux_server, "web-1"), timeout=10)
    # three inconclusive probes made it stuck (as session_observe records them)
    Session.objects.filter(pk=session.pk).update(
        runtime_state="probe_failed", detecting_attempts=3, activity_streak=0
    )
    session.refresh_from_db()
    services.session_rederive(session=session)
    session.refresh_from_db()
    assert session.status == Status.STUCK

    observing.session_observe(session=session)  # tmux answers again
    session.refresh_from_db()
    assert (session.runtime_state, session.status) == ("alive", Status.STUCK)  # one reading: not yet
    _readings_span_a_minute(session)
    for _ in range(CONFIRM_READINGS - 1):
        observing.session_observe(session=session)
        session.refresh_from_db()
    assert session.status == Status.WORKING, session.status_reason


@pytest.mark.django_db
def test_ao_report_working_after_a_question_ends_needs_input():
    now = timezone.now()
    session = SessionFactory(
        agent="aider",
        activity=Activity.WAITING_INPUT,
        activity_weak=True,
        activity_at=now - timedelta(minutes=1),
        activity_since=now - timedelta(minutes=3),
        activity_streak=4,
        status=Status.NEEDS_INPUT,
        zone="respond",
        status_changed_at=now - timedelta(minutes=3),
    )

    services.session_report(session=session, state="working", note="answered, carrying on")

    session.refresh_from_db()
    assert (session.status, session.status_reason) == (Status.WORKING, "the agent reports it is working")


@pytest.mark.django_db
def test_a_stale_report_no_longer_decides():
    now = timezone.now()
    session = SessionFactory(
        agent="gemini",
        reported_state="needs_input",
        reported_at=now - timedelta(minutes=6),
        # the agent has sat at its prompt for the last two minutes (three readings)
        activity=Activity.READY,
        activity_weak=True,
        activity_at=now,
        activity_since=now - timedelta(minutes=2),
        activity_streak=3,
        status=Status.NEEDS_INPUT,
        zone="respond",
        status_changed_at=now - timedelta(minutes=6),
    )

    services.session_rederive(session=session, now=now)

    session.refresh_from_db()
    assert (session.status, session.status_reason) == (Status.IDLE, "the agent is at its prompt")


@pytest.mark.django_db
def test_a_new_ci_failure_shows_through_needs_input():
    now = timezone.now()
    session = SessionFactory(
        agent="opencode",
        activity=Activity.ACTIVE,  # the question is gone from the screen (one reading so far)
        activity_weak=True,
        activity_at=now,
        activity_since=now,
        activity_streak=1,
        status=Status.NEEDS_INPUT,
        zone="respond",
        status_changed_at=now - timedelta(minutes=5),
    )
    pr = PullRequestFactory(session=session, ci_state="pending", facts_changed_at=now - timedelta(minutes=10))
    info = PullRequestInfo(
        number=pr.number,
        branch=pr.branch,
        url=pr.url,
        base_branch="main",
        head_sha=pr.head_sha,
        mergeable=True,
        checks=(CheckInfo(name="tests", source="check_run", status="completed", conclusion="failure"),),
    )

    prsync.pull_request_record(project=session.project, session=session, info=info)

    session.refresh_from_db()
    assert (session.status, session.status_reason) == (Status.CI_FAILED, "CI is failing")


@pytest.mark.django_db
def test_an_unchanged_pr_does_not_end_needs_input():
    now = timezone.now()
    session = SessionFactory(
        agent="opencode",
        activity=Activity.ACTIVE,
        activity_weak=True,
        activity_at=now,
        activity_since=now,
        activity_streak=1,
        status=Status.NEEDS_INPUT,
        zone="respond",
        status_changed_at=now - timedelta(minutes=5),
    )
    pr = PullRequestFactory(session=session, ci_state="failing", mergeable=True)
    info = PullRequestInfo(
        number=pr.number,
        branch=pr.branch,
        url=pr.url,
        base_branch="main",
        head_sha=pr.head_sha,
        mergeable=True,
        checks=(CheckInfo(name="tests", source="check_run", status="completed", conclusion="failure"),),
    )
    prsync.pull_request_record(project=session.project, session=session, info=info)  # first sync: new
    Session.objects.filter(pk=session.pk).update(
        status=Status.NEEDS_INPUT, zone="respond", status_changed_at=now
    )
    session.refresh_from_db()

    prsync.pull_request_record(project=session.project, session=session, info=info)  # nothing changed

    session.refresh_from_db()
    assert session.status == Status.NEEDS_INPUT
