"""A person's answer to a question on the agent's screen is typed before what waits for the agent
to be ready: an agent that asks a first-run question before showing its prompt got its task
queued at start, and the answer sent through ao was held behind that task for good (the task
can only be typed at the prompt, the prompt comes only after the answer). Real tmux and git."""

from __future__ import annotations

import sys

import pytest

from sessions.agents import messaging, observing, spawning
from sessions.domain.lifecycle import Activity
from sessions.models import Message, Session
from tests.factories import ProjectFactory
from tests.sessions.test_session_commands import eventually, pane

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Asks "Trust this folder? (y/n)" first; only after a "y" shows its prompt and echoes input.
ASKING_AGENT = r"""
import sys
print("Trust this folder? (y/n)", flush=True)
answer = sys.stdin.readline().strip()
print("answered: " + answer, flush=True)
print("> ", end="", flush=True)
for line in sys.stdin:
    print("received: " + line.strip(), flush=True)
    print("> ", end="", flush=True)
"""


def test_an_answer_to_a_question_on_screen_goes_before_the_queued_task(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_INLINE_DELIVERY_WAIT = 0
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        plugin_settings={
            "agent": {
                "command": [sys.executable, "-u", "-c", ASKING_AGENT],
                "ready_pattern": r"^> ?$",
                "waiting_pattern": r"Trust this folder\?",
            },
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )
    session = spawning.session_spawn(project=project, by=None, prompt="write the notes")
    assert eventually(lambda: "Trust this folder?" in pane(tmux_server, session.pk), timeout=30)

    def observed_waiting() -> bool:
        current = Session.objects.get(pk=session.pk)
        observing.session_observe(session=current)
        return Session.objects.get(pk=session.pk).activity == Activity.WAITING_INPUT

    assert eventually(observed_waiting, timeout=30)
    assert Message.objects.filter(session=session, state="queued").count() == 1  # its task, held
    messaging.message_queue(session=session, text="y", answers_prompt=True)

    for _ in range(40):  # sweeps' delivery attempts
        messaging.messages_deliver(session_id=session.pk)
        if "received: " in pane(tmux_server, session.pk):
            break
    screen = pane(tmux_server, session.pk)
    assert "answered: y" in screen, screen
    assert "received: " in screen and "write the notes" in screen, screen  # then the task, at the prompt
    assert screen.index("answered: y") < screen.index("received: ")
