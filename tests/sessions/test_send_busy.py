"""A message to a busy agent is queued and the request answered at once; it is delivered when the
agent is ready, by the sweep (real git + tmux, a stand-in agent that is busy until told)."""

from __future__ import annotations

import sys

import pytest
from rest_framework.test import APIClient

from sessions.agents import spawning
from sessions.api.tokens import api_token_create
from sessions.flows import sweep
from sessions.models import Membership, Message, Session
from tests.factories import ProjectFactory, UserFactory
from tests.sessions.test_session_commands import eventually, pane

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Busy (no prompt) until the file "go" appears in its workspace; then an echoing prompt.
BUSY_AGENT = (
    "import os, sys, time\n"
    "print('thinking...', flush=True)\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.1)\n"
    "print('> ', end='', flush=True)\n"
    "for line in sys.stdin:\n"
    "    print('received: ' + line.strip().replace('\\x1b[200~', '').replace('\\x1b[201~', ''), flush=True)\n"
    "    print('> ', end='', flush=True)\n"
)


def test_a_message_to_a_busy_agent_is_queued_at_once_and_delivered_when_it_is_ready(
    repo, tmux_server, settings, tmp_path
):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_INLINE_DELIVERY_WAIT = 0.5  # the spawn (run inline here) leaves ao's intro queued
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        plugin_settings={
            "agent": {"command": [sys.executable, "-u", "-c", BUSY_AGENT], "ready_pattern": r"^> ?$"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )
    user = UserFactory(username="olivia")
    Membership.objects.create(user=user, project=project, role="operator")
    session = spawning.session_spawn(project=project, by=user)
    assert eventually(lambda: "thinking..." in pane(tmux_server, session.pk))
    # Without a worker in this process a request used to watch the agent this long: a busy agent
    # held the request until it was ready (or the test's timeout).
    settings.AO_INLINE_DELIVERY_WAIT = 3600.0
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='bot')[1]}")

    answer = api.post(f"/api/v1/sessions/{session.pk}/send", {"text": "carry on"}, format="json")

    assert answer.status_code == 201
    assert answer.json()["state"] == "queued"  # answered while the agent is still busy
    assert "received: carry on" not in pane(tmux_server, session.pk)
    workspace = Session.objects.get(pk=session.pk).workspace_path
    open(f"{workspace}/go", "w").close()  # the agent finishes its turn
    assert eventually(lambda: pane(tmux_server, session.pk).rstrip().endswith(">"), timeout=30)
    settings.AO_INLINE_DELIVERY_WAIT = 0.5
    sweep.project_sweep(project=project)  # the next sweep finds the agent ready and delivers
    assert eventually(lambda: "received: carry on" in pane(tmux_server, session.pk), timeout=30)
    sent = Message.objects.get(text="carry on")
    assert eventually(lambda: Message.objects.get(pk=sent.pk).state in ("delivered", "confirmed"), timeout=10)
