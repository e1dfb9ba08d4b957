"""A message the agent took is never typed again because ao failed to read its echo.

The agent here shows what it receives its own way (backslashes escaped, as a shell or a REPL
might), runs the command in it and comes back to its empty prompt: the first characters of the
message never appear on screen as typed. Before, such a delivery stayed "delivered" until
``CONFIRM_WINDOW`` ran out and was then typed again, up to five times (five identical commits
pushed into one PR, a stray ``ao pr create`` after the merge). A retry needs evidence that the
keys were not taken (the agent's screen did not change at all since they were typed); a delivery
ao can neither confirm nor prove lost is marked "unconfirmed" for a person, never retyped.

Real git, tmux and a real program in the pane; the agent's own record of what it ran (a file in
its workspace) counts the runs.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from sessions.agents import messaging
from sessions.models import Event, Message, Session
from tests.helpers.projects import local_tmux_project
from tests.sessions.test_session_commands import eventually, pane, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Its terminal's echo off, the agent shows each line it gets with backslashes escaped; a line
# "!sh <command>" is run by a shell. Until the file "listen" exists in its workspace (when started
# with "--deaf") it discards what it is sent: keys typed then go nowhere and nothing is drawn.
ESCAPING_AGENT = (
    "import os, subprocess, sys, termios, time\n"
    "attrs = termios.tcgetattr(0)\n"
    "attrs[3] &= ~termios.ECHO\n"
    "termios.tcsetattr(0, termios.TCSANOW, attrs)\n"
    "print('> ', end='', flush=True)\n"
    "while '--deaf' in sys.argv and not os.path.exists('listen'):\n"
    "    termios.tcflush(0, termios.TCIFLUSH)\n"
    "    time.sleep(0.05)\n"
    "for line in sys.stdin:\n"
    "    line = line.rstrip('\\n').replace('\\x1b[200~', '').replace('\\x1b[201~', '')\n"
    "    print('received: ' + line.replace('\\\\', '\\\\\\\\'), flush=True)\n"
    "    if line.startswith('!sh '):\n"
    "        subprocess.run(line[4:], shell=True)\n"
    "    print('> ', end='', flush=True)\n"
)
# What the agent is asked to run: its first line starts with a backslash escape, shown escaped.
COMMAND = '!sh printf "\\nran it" >> runs.txt'
SHOWN = 'received: !sh printf "\\\\nran it" >> runs.txt'


def make_project(repo, tmux_server, settings, tmp_path, *, ready_pattern: bool = True, deaf: bool = False):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    agent: dict = {"command": [sys.executable, "-u", "-c", ESCAPING_AGENT, *(["--deaf"] if deaf else [])]}
    if ready_pattern:
        agent["ready_pattern"] = r"^> ?$"
    return local_tmux_project(
        path=repo.path, tmux_server=tmux_server, agent_settings=agent, runtime={"enter_delay": 0.05}
    )


def runs(session: Session) -> int:
    """How many times the agent ran the command."""
    path = Path(session.workspace_path) / "runs.txt"
    return path.read_text().count("ran it") if path.exists() else 0


def a_minute_later(message: Message) -> None:
    """Move the delivery back past ``CONFIRM_WINDOW``: what a sweep finds a minute later."""
    earlier = timedelta(seconds=messaging.CONFIRM_WINDOW.total_seconds() + 5)
    Message.objects.filter(pk=message.pk).update(
        claimed_at=message.claimed_at - earlier, delivered_at=message.delivered_at - earlier
    )


def sweeps(session: Session, count: int = 3) -> None:
    """What the sweep (or a worker's retry) does, a few times over."""
    for _ in range(count):
        messaging.messages_deliver(session_id=session.pk)


def spawned(tmux_server, settings) -> Session:
    run("spawn", "--prompt", "do things")
    assert eventually(lambda: "received: You are web-1" in pane(tmux_server, "web-1"), timeout=30), pane(
        tmux_server, "web-1"
    )
    settings.AO_INLINE_DELIVERY_WAIT = 0
    return Session.objects.get(pk="web-1")


def test_a_message_the_agent_ran_and_showed_its_own_way_is_typed_once(repo, tmux_server, settings, tmp_path):
    make_project(repo, tmux_server, settings, tmp_path)
    session = spawned(tmux_server, settings)

    message = messaging.message_queue(session=session, text=COMMAND)
    assert eventually(lambda: runs(session) == 1), pane(tmux_server, "web-1")
    assert eventually(lambda: pane(tmux_server, "web-1").rstrip().endswith(">"))
    message.refresh_from_db()
    a_minute_later(message)
    sweeps(session)

    screen = pane(tmux_server, "web-1")
    assert runs(session) == 1, screen
    assert screen.count(SHOWN) == 1, screen
    message.refresh_from_db()
    # its screen changed after the keys and shows its empty prompt again: taken
    assert (message.state, message.attempts) == (Message.State.CONFIRMED, 1), message.last_error
    assert not Event.objects.filter(session=session, kind="message.retry").exists()


def test_a_delivery_ao_cannot_confirm_is_left_unconfirmed_and_the_next_message_goes(
    repo, tmux_server, settings, tmp_path
):
    """An agent whose screen ao cannot read (no ready_pattern): nothing it shows confirms the
    message, and nothing shows it was lost either."""
    make_project(repo, tmux_server, settings, tmp_path, ready_pattern=False)
    session = spawned(tmux_server, settings)

    message = messaging.message_queue(session=session, text=COMMAND)
    assert eventually(lambda: runs(session) == 1), pane(tmux_server, "web-1")
    assert eventually(lambda: pane(tmux_server, "web-1").rstrip().endswith(">"))
    message.refresh_from_db()
    assert message.state == Message.State.DELIVERED
    later = messaging.message_queue(session=session, text="and then this")
    a_minute_later(message)
    sweeps(session)

    screen = pane(tmux_server, "web-1")
    assert runs(session) == 1, screen
    assert screen.count(SHOWN) == 1, screen
    message.refresh_from_db()
    assert (message.state, message.attempts) == (Message.State.UNCONFIRMED, 1)
    assert messaging.delivery_state(message).startswith("typed, not confirmed")
    unconfirmed = Event.objects.get(session=session, kind="message.unconfirmed")
    assert f"message {message.pk}" in unconfirmed.summary
    assert not Event.objects.filter(session=session, kind="message.retry").exists()
    # the next message is no longer held behind it
    assert eventually(lambda: "received: and then this" in pane(tmux_server, "web-1"))
    later.refresh_from_db()
    assert later.attempts == 1


def test_keys_that_went_nowhere_are_typed_again(repo, tmux_server, settings, tmp_path):
    """The agent discarded the keys and its screen did not change: that is evidence they were not
    taken, and the message is typed again (once it listens, it runs it once)."""
    make_project(repo, tmux_server, settings, tmp_path, deaf=True)
    run("spawn", "--prompt", "do things")
    assert eventually(lambda: pane(tmux_server, "web-1").rstrip().endswith(">"), timeout=30)
    settings.AO_INLINE_DELIVERY_WAIT = 0
    session = Session.objects.get(pk="web-1")
    task = Message.objects.get(session=session)
    assert task.state == Message.State.DELIVERED  # typed into the deaf agent: nothing drawn

    a_minute_later(task)
    (Path(session.workspace_path) / "listen").touch()
    sweeps(session, count=1)

    assert eventually(lambda: "received: You are web-1" in pane(tmux_server, "web-1")), pane(
        tmux_server, "web-1"
    )
    task.refresh_from_db()
    assert task.attempts == 2
    assert "did not change" in Event.objects.get(session=session, kind="message.retry").summary
    message = messaging.message_queue(session=session, text=COMMAND)
    assert eventually(lambda: runs(session) == 1), pane(tmux_server, "web-1")
    message.refresh_from_db()
    assert pane(tmux_server, "web-1").count("received: You are web-1") == 1


def test_a_changed_screen_confirms_only_with_the_input_empty_and_the_text_gone_from_it() -> None:
    claimed = timezone.now()
    message = Message(text='!sh printf "\\nran it" >> runs.txt', claimed_at=claimed)
    after = claimed + timedelta(seconds=2)
    shown = 'received: !sh printf "\\\\nran it" >> runs.txt\n> '
    held = '> !sh printf "\\nran it" >> runs.txt'  # its Enter lost
    pasted = "> [Pasted text #1 +3 lines]"  # its Enter lost, in a composer that reads "ready"

    def how(pane, ready, changed):
        return messaging.taken_up(
            message, state="ready", at=after, weak=True, pane=pane, screen_ready=ready, changed=changed
        )

    assert how(shown, True, True) == "its screen changed and shows its empty prompt again"
    assert how(shown, True, False) == ""  # the screen from before the keys
    assert how(shown, True, None) == ""  # nothing to compare with
    assert how(shown, None, True) == ""  # a screen the plugin cannot read
    assert how(shown, False, True) == ""  # no empty prompt
    assert how(held, False, True) == ""  # the text still in the input
    assert how(pasted, True, True) == ""
    assert messaging.screen_digest("> \n") == messaging.screen_digest(">")
    assert messaging.screen_digest("> a") != messaging.screen_digest("> ")
