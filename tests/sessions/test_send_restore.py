"""A message to a session that is not running: restored first and delivered once the agent is
ready, or refused with the reason; the same from the service, `ao send`, the API, the dashboard and
chat (real git + tmux, a line-oriented stand-in agent)."""

from __future__ import annotations

import shutil
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from sessions.agents import messaging
from sessions.api.tokens import api_token_create
from sessions.dashboard import chat
from sessions.models import Actor, ChatIdentity, Event, Membership, Message, Session
from tests.factories import ProjectFactory, UserFactory
from tests.sessions.test_session_commands import ECHO_AGENT, eventually, pane

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_INLINE_DELIVERY_WAIT = 15.0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        plugin_settings={
            "agent": {"command": [sys.executable, "-u", "-c", ECHO_AGENT], "ready_pattern": r"^> ?$"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )


@pytest.fixture
def operator(project):
    user = UserFactory(username="olivia")
    Membership.objects.create(user=user, project=project, role="operator")
    return user


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def killed(tmux_server) -> Session:
    """web-1 spawned, ready, then killed by a person."""
    run("spawn", "--prompt", "do things")
    assert eventually(lambda: "received: You are web-1" in pane(tmux_server, "web-1"))
    run("session", "kill", "web-1")
    session = Session.objects.get(pk="web-1")
    assert session.phase == "killed"
    return session


def received(tmux_server, text: str) -> bool:
    return bool(eventually(lambda: f"received: {text}" in pane(tmux_server, "web-1"), timeout=20))


# --- the service --------------------------------------------------------------------------------------
def test_a_message_to_a_killed_session_restores_it_and_is_delivered(project, tmux_server):
    session = killed(tmux_server)

    sent = messaging.session_send(session=session, text="carry on please", sender_name="test")

    session.refresh_from_db()
    assert (session.phase, sent.restored) == ("running", "restored")
    assert received(tmux_server, "carry on please")
    sent.message.refresh_from_db()
    assert sent.message.state in ("delivered", "confirmed")
    assert Event.objects.filter(session=session, kind="session.restored").count() == 1


def test_messages_queued_while_killed_wait_for_restore_and_are_then_delivered(project, tmux_server, settings):
    session = killed(tmux_server)
    settings.AO_INLINE_DELIVERY_WAIT = 0.0

    waiting = messaging.message_queue(session=session, text="CI failed, fix it", sender=Actor.REACTION)

    session.refresh_from_db()
    assert session.phase == "killed"  # ao's own messages never bring back what a person stopped
    assert messaging.delivery_state(waiting, session) == "waiting for restore"
    assert messaging.messages_deliver(session_id=session.pk) == (0, False)
    assert "received: CI failed" not in pane(tmux_server, "web-1")

    run("session", "restore", "web-1")
    settings.AO_INLINE_DELIVERY_WAIT = 15.0
    messaging.messages_deliver(session_id=session.pk, wait=15.0)

    assert received(tmux_server, "CI failed, fix it")
    waiting.refresh_from_db()
    assert waiting.state in ("delivered", "confirmed")


def test_a_session_whose_worktree_is_gone_refuses_and_queues_nothing(project, tmux_server):
    session = killed(tmux_server)
    shutil.rmtree(session.workspace_path)

    with pytest.raises(messaging.SendRefused, match=r"web-1's worktree .* is gone: spawn a new session"):
        messaging.session_send(session=session, text="hello?")

    session.refresh_from_db()
    assert session.phase == "killed"
    assert not Message.objects.filter(session=session, text="hello?").exists()
    assert not Event.objects.filter(session=session, kind="session.restored").exists()


def test_cleanup_fails_waiting_messages_and_a_send_is_refused(project, tmux_server):
    session = killed(tmux_server)
    waiting = messaging.message_queue(session=session, text="left behind", sender=Actor.REACTION)
    run("session", "cleanup", "--force")

    waiting.refresh_from_db()
    assert (waiting.state, waiting.last_error) == (
        "failed",
        "the session was cleaned up before the agent took it",
    )

    with pytest.raises(CommandError, match=r"not sent: web-1 was cleaned up \(its worktree is gone\)"):
        call_command("send", "web-1", "anyone", "there")
    assert not Message.objects.filter(text="anyone there").exists()
    session.refresh_from_db()
    assert session.phase == "cleaned"


# --- the interfaces -----------------------------------------------------------------------------------
def test_ao_send_restores_a_killed_session(project, tmux_server):
    killed(tmux_server)

    out = run("send", "web-1", "back", "to", "work")

    assert out.startswith("web-1 restored (it was not running); message ")
    assert received(tmux_server, "back to work")
    assert Session.objects.get(pk="web-1").phase == "running"


def test_the_api_restores_or_refuses(project, tmux_server, operator):
    session = killed(tmux_server)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=operator, name='bot')[1]}")

    response = client.post("/api/v1/sessions/web-1/send", {"text": "from the api"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["restored"] == "restored"
    assert received(tmux_server, "from the api")

    run("session", "kill", "web-1")
    shutil.rmtree(Session.objects.get(pk="web-1").workspace_path)
    response = client.post("/api/v1/sessions/web-1/send", {"text": "lost"}, format="json")
    assert response.status_code == 409
    assert "worktree" in response.json()["error"]["message"]
    assert not Message.objects.filter(session=session, text="lost").exists()


def test_the_dashboard_send_form_restores_and_shows_waiting_messages(project, tmux_server, operator, client):
    killed(tmux_server)
    waiting = messaging.message_queue(
        session=Session.objects.get(pk="web-1"), text="queued before", sender="reaction"
    )
    client.force_login(operator)

    page = client.get("/s/web-1/").content.decode()
    assert f'id="msg-{waiting.pk}"><span class="mstate mstate-queued">waiting for restore</span>' in page

    response = client.post("/s/web-1/send/", {"text": "from the dashboard"}, follow=True)

    assert response.status_code == 200
    assert (
        "web-1 restored (it was not running); Queued for web-1: from the dashboard"
        in response.content.decode()
    )
    assert received(tmux_server, "from the dashboard")


def test_chat_send_restores_a_killed_session(project, tmux_server, operator):
    killed(tmux_server)
    ChatIdentity.objects.create(platform="slack", external_id="UOP", user=operator)

    reply = chat.handle(platform="slack", external_id="UOP", text="send web-1 from chat")

    assert reply.ok, reply.text
    assert reply.text.startswith("web-1 restored (it was not running). Queued for web-1")
    assert received(tmux_server, "from chat")
    assert Path(Session.objects.get(pk="web-1").workspace_path).is_dir()
