"""Kill, restore and clean-up run on the session's agent host. Called from another host in
scale-out, the service records the request and enqueues `sessions.operate` on `host.<name>`
(here: Celery's in-memory transport, read back as a worker of that host would); the task run on
that host drives the real tmux session."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from sessions.agents import operating, plugins
from sessions.domain.lifecycle import RuntimeState
from sessions.models import Event, Membership, Session
from tests.factories import ProjectFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.django_db

AGENT_HOST = f"agent-{uuid.uuid4().hex[:6]}"  # its own queue name: nothing else publishes there


@pytest.fixture
def distributed(settings):
    """Scale-out as seen from `ao web` on web-2: tasks go to the broker instead of running eagerly."""
    from ao_site.celery import app

    settings.AO_EMBEDDED = False
    settings.AO_HOST_NAME = "web-2"
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    drain(app, f"host.{AGENT_HOST}")
    try:
        yield app
    finally:
        app.conf.task_always_eager = eager
        drain(app, f"host.{AGENT_HOST}")


def drain(app, queue: str) -> list:
    """Take every message off ``queue`` (the in-memory transport), as a worker consuming it would."""
    taken = []
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    return taken
                message.ack()
                taken.append(message)
        finally:
            simple.close()


@pytest.fixture
def agent(tmux_runtime, tmp_path: Path) -> Session:
    """A session of AGENT_HOST whose agent really runs in tmux (on this machine's test server)."""
    project = ProjectFactory(
        path=str(tmp_path),
        runtime="tmux",
        plugin_settings={"runtime": {"socket_name": tmux_runtime.config.socket_name}},
    )
    name = f"rt-{uuid.uuid4().hex[:6]}"
    handle = tmux_runtime.start(name=name, cwd=tmp_path, command=["sleep", "600"], env={})
    session = SessionFactory(
        project=project,
        host=AGENT_HOST,
        workspace_path=str(tmp_path),
        runtime_handle={"runtime": handle.runtime, "name": handle.name, "data": handle.data},
    )
    yield session
    tmux_runtime.kill(handle)


def alive(tmux_runtime, session: Session) -> bool:
    return tmux_runtime.probe(plugins.runtime_handle_for(session)) == RuntimeState.ALIVE


def kinds(session: Session) -> list[str]:
    return list(Event.objects.filter(session=session).order_by("pk").values_list("kind", flat=True))


def test_a_kill_from_another_host_is_queued_on_the_sessions_host_and_leaves_local_tmux_alone(
    distributed, agent, tmux_runtime, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        requested = operating.session_kill(session=agent, reason="test")

    assert requested == operating.Requested(action="kill", host=AGENT_HOST)
    assert str(requested) == f"kill requested; runs on host {AGENT_HOST}"
    (message,) = drain(distributed, f"host.{AGENT_HOST}")
    assert message.headers["task"] == "sessions.operate"
    args, kwargs, _embed = message.decode()
    assert args == [agent.pk, "kill"]
    assert kwargs["params"] == {"reason": "test"}
    # nothing ran here: the agent still runs and the session is not marked killed
    assert alive(tmux_runtime, agent)
    agent.refresh_from_db()
    assert agent.phase == "running"
    request = Event.objects.get(session=agent, kind="session.kill_requested")
    assert request.summary == f"kill requested from web-2; runs on host {AGENT_HOST}"
    assert "session.killed" not in kinds(agent)


def test_the_queued_kill_run_on_the_sessions_host_kills_its_tmux_session_once(
    distributed, agent, tmux_runtime, settings, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        operating.session_kill(session=agent, reason="test")
    (message,) = drain(distributed, f"host.{AGENT_HOST}")
    args, kwargs, _embed = message.decode()

    settings.AO_HOST_NAME = AGENT_HOST  # now a worker of the session's host runs the task
    task = distributed.tasks[message.headers["task"]]
    task.apply(args=args, kwargs=kwargs)

    assert not alive(tmux_runtime, agent)
    agent.refresh_from_db()
    assert (agent.phase, agent.status, agent.zone) == ("killed", "killed", "done")
    assert kinds(agent).index("session.kill_requested") < kinds(agent).index("session.killed")
    # delivered twice (acks_late): the second run sees the result of its request and does nothing
    task.apply(args=args, kwargs=kwargs)
    assert kinds(agent).count("session.killed") == 1


def test_a_restore_that_fails_on_the_host_says_why_on_the_timeline(
    distributed, agent, tmp_path, settings, django_capture_on_commit_callbacks
) -> None:
    agent.workspace_path = str(tmp_path / "gone")  # only the agent host can see that it is gone
    agent.phase = "killed"
    agent.save()
    with django_capture_on_commit_callbacks(execute=True):
        requested = operating.session_restore(session=agent)
    assert requested == operating.Requested(action="restore", host=AGENT_HOST)
    (message,) = drain(distributed, f"host.{AGENT_HOST}")
    args, kwargs, _embed = message.decode()

    settings.AO_HOST_NAME = AGENT_HOST
    distributed.tasks[message.headers["task"]].apply(args=args, kwargs=kwargs)

    failed = Event.objects.get(session=agent, kind="session.restore_failed")
    assert failed.summary.startswith(f"restore failed on host {AGENT_HOST}: ")
    assert "is gone: spawn a new session" in failed.summary


def test_on_the_sessions_host_or_embedded_the_kill_runs_inline(agent, tmux_runtime, settings) -> None:
    settings.AO_HOST_NAME = "web-2"  # another host's name, but embedded: one process does everything
    assert operating.session_kill(session=agent) is None
    assert not alive(tmux_runtime, agent)
    assert "session.kill_requested" not in kinds(agent)


def test_the_api_answers_202_with_the_host_when_the_kill_is_queued(
    distributed, agent, tmux_runtime, django_capture_on_commit_callbacks
) -> None:
    from sessions.api.tokens import api_token_create

    user = UserFactory()
    Membership.objects.create(project=agent.project, user=user, role="operator")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='ops-bot')[1]}")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/sessions/{agent.pk}/kill", {"reason": "r"}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["host"] == AGENT_HOST
    assert len(drain(distributed, f"host.{AGENT_HOST}")) == 1
    assert alive(tmux_runtime, agent)


def test_an_auto_cleanup_is_requested_on_the_host_and_a_refusal_there_tells_people(
    distributed, agent, settings, django_capture_on_commit_callbacks
) -> None:
    from django.utils import timezone

    from reactions import services as reactions
    from reactions.models import Notification
    from tests.factories import PullRequestFactory

    PullRequestFactory(session=agent, project=agent.project, state="merged")
    agent.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        outcome = reactions._auto_cleanup(agent, now=timezone.now())
    assert outcome is not None and outcome.did == "cleanup_requested"
    (message,) = drain(distributed, f"host.{AGENT_HOST}")
    args, kwargs, _embed = message.decode()
    assert args == [agent.pk, "cleanup"] and kwargs["params"] == {"force": False}

    settings.AO_HOST_NAME = AGENT_HOST
    distributed.tasks[message.headers["task"]].apply(args=args, kwargs=kwargs)
    # the workspace is not under ao's managed root: removal is refused, everything kept
    refused = Event.objects.get(session=agent, kind="reaction.cleanup_refused")
    assert refused.summary.startswith("auto-cleanup after PR #")
    assert Notification.objects.filter(session=agent).exists()
    agent.refresh_from_db()
    assert agent.phase != "cleaned"
