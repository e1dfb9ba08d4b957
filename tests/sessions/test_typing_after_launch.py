"""ao types into a freshly (re)started agent only once that process takes input, and a message
whose Enter was lost is neither taken for delivered nor typed twice.

Real git, tmux and the stand-in agent behind the real Claude Code plugin (a `claude` shim), which
behaves as the real CLIs were seen to just after a start: its prompt drawn late, and keys typed
before then (or, with ``--deaf-seconds``, in its first seconds) shown in its input with their
Enter ignored. After a restore its transcript from before says "ready" at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sessions.agents import messaging, operating, plugins, spawning
from sessions.models import Event, Message, Session
from tests.agent_clis.helpers import process_tree_cmdlines
from tests.sessions import test_spawn_e2e as e2e
from tests.sessions.test_spawn_e2e import eventually, observe, pane

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# the stand-in agent behind the Claude Code plugin, in its own HOME and tmux server
agent_home, tmux_server, claude_shim, project = e2e.agent_home, e2e.tmux_server, e2e.claude_shim, e2e.project

TASK = "Write the notes (task text no other local user may read: 7c1e-task-marker)"


def with_args(project, *args: str) -> None:
    """The stand-in's start-up behaviour for the next launch (passed through ``extra_args``)."""
    project.plugin_settings["agent"]["extra_args"] = list(args)
    project.save(update_fields=["plugin_settings"])


def user_turns(session: Session, text: str) -> int:
    """How many user turns with exactly ``text`` the agent recorded in its transcript."""
    import json

    directory = Path(plugins.context_for(session).agent.transcript_dir(Path(session.workspace_path)))
    count = 0
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("type") == "user" and entry["message"].get("content") == text:
                count += 1
    return count


def send_after_restore(session: Session, text: str) -> Message:
    """What `ao send` does to a killed session: restore it, queue the message, deliver it."""
    sent = messaging.session_send(session=session, text=text, sender_name="ana")
    assert sent.restored == "restored"
    messaging.messages_deliver(session_id=session.pk, wait=45)
    sent.message.refresh_from_db()
    return sent.message


def test_typing_waits_for_the_new_process_and_a_lost_enter_is_pressed_again(
    project, tmux_server, agent_home, django_capture_on_commit_callbacks, settings
) -> None:
    settings.AO_INLINE_DELIVERY_WAIT = 45.0
    # --- spawn: the task is typed once the stand-in shows its prompt, never put on its argv ----
    with_args(project, "--start-seconds", "2")
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt=TASK)
    session.refresh_from_db()
    assert session.phase == "running", session.error
    sid = session.id
    assert eventually(lambda: "received: You are" in pane(tmux_server, sid), timeout=30), pane(
        tmux_server, sid
    )
    assert not [cmd for cmd in process_tree_cmdlines(tmux_server, sid) if "7c1e-task-marker" in cmd]
    task = Message.objects.get(session=session)
    assert (task.state, task.attempts) == (Message.State.CONFIRMED, 1)
    assert pane(tmux_server, sid).count("received: You are") == 1
    assert eventually(lambda: observe(sid).activity == "ready"), pane(tmux_server, sid)

    # --- restore with a stale "ready" on record: the message waits for the new prompt --------
    operating.session_kill(session=session, reason="test")
    with_args(project, "--start-seconds", "3")
    session.refresh_from_db()
    message = send_after_restore(session, "carry on please")
    screen = pane(tmux_server, sid)
    assert screen.count("received: carry on please") == 1, screen
    assert (message.state, message.attempts) == (Message.State.CONFIRMED, 1), message.last_error
    assert eventually(lambda: user_turns(session, "carry on please") == 1)

    # --- restore into a prompt that ignores Enter at first: not taken for delivered; Enter
    # pressed again, the text typed once --------------------------------------------------------
    assert eventually(lambda: observe(sid).activity == "ready"), pane(tmux_server, sid)
    operating.session_kill(session=Session.objects.get(pk=sid), reason="test")
    with_args(project, "--deaf-seconds", "5")
    session.refresh_from_db()
    message = send_after_restore(session, "and the tests too")
    screen = pane(tmux_server, sid)
    assert screen.count("received: and the tests too") == 1, screen
    assert "and the tests tooand the tests too" not in screen
    assert message.state == Message.State.CONFIRMED, (message.state, message.last_error, screen)
    assert message.attempts == 2
    resubmitted = Event.objects.filter(session=session, kind="message.delivered", data__resubmitted=True)
    assert resubmitted.count() == 1
    assert eventually(lambda: user_turns(session, "and the tests too") == 1)
    operating.session_kill(session=Session.objects.get(pk=sid), reason="test")


def test_nothing_is_typed_into_a_restored_agent_before_it_has_drawn_anything(
    project, tmux_server, agent_home, django_capture_on_commit_callbacks, settings, monkeypatch
) -> None:
    """However long the agent takes to start: a screen ao does not recognise is given
    ``LAUNCH_GRACE`` (shortened here) from when the agent first drew it, not from the launch. A
    restored Claude Code 2.1.100 given a few percent of a core took over a minute to draw
    anything, and ao typed into its blank terminal, which echoed the keys before the agent had
    taken it over."""
    from datetime import timedelta

    settings.AO_INLINE_DELIVERY_WAIT = 45.0
    monkeypatch.setattr(messaging, "LAUNCH_GRACE", timedelta(seconds=2))
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt=TASK)
    session.refresh_from_db()
    sid = session.id
    assert eventually(lambda: "received: You are" in pane(tmux_server, sid), timeout=30), pane(
        tmux_server, sid
    )
    assert eventually(lambda: observe(sid).activity == "ready"), pane(tmux_server, sid)
    operating.session_kill(session=Session.objects.get(pk=sid), reason="test")

    with_args(project, "--draw-seconds", "8")  # blank, and the terminal not taken over, for 8 s
    session.refresh_from_db()
    message = send_after_restore(session, "carry on please")
    screen = pane(tmux_server, sid)
    # typed once its prompt showed: nothing echoed by the terminal above the agent's banner
    assert screen.startswith("standin agent, session"), screen
    assert screen.count("received: carry on please") == 1, screen
    assert (message.state, message.attempts) == (Message.State.CONFIRMED, 1), message.last_error
    assert eventually(lambda: user_turns(session, "carry on please") == 1)
    operating.session_kill(session=Session.objects.get(pk=sid), reason="test")


def test_a_first_prompt_whose_enter_is_lost_is_submitted_once(
    project, tmux_server, agent_home, django_capture_on_commit_callbacks, settings
) -> None:
    """A fresh agent has no transcript: while ao's pasted task sits in its input, Enter lost, it
    reads "unknown". ao presses Enter again (it used to wait for a reading of ready or idle, then
    queue the task again and hold it forever: an unknown screen is never typed into)."""
    settings.AO_INLINE_DELIVERY_WAIT = 45.0
    with_args(project, "--deaf-seconds", "6")
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt=TASK)
    session.refresh_from_db()
    assert session.phase == "running", session.error
    sid = session.id
    assert eventually(lambda: "received: You are" in pane(tmux_server, sid), timeout=60), pane(
        tmux_server, sid
    )
    task = Message.objects.get(session=session)
    assert (task.state, task.attempts) == (Message.State.CONFIRMED, 2), task.last_error
    assert pane(tmux_server, sid).count("received: You are") == 1
    resubmitted = Event.objects.filter(session=session, kind="message.delivered", data__resubmitted=True)
    assert resubmitted.count() == 1
    operating.session_kill(session=Session.objects.get(pk=sid), reason="test")


# A terminal program that asks for bracketed paste and prints the raw bytes of what it is sent.
RAW_INPUT = (
    "import os, sys, tty\n"
    "sys.stdout.write('\\x1b[?2004h> '); sys.stdout.flush()\n"
    "tty.setraw(0)\n"
    "data = b''\n"
    "while not data.endswith(b'\\r'):\n"
    "    data += os.read(0, 1024)\n"
    "tty.setcbreak(0)\n"
    "print('got', repr(data), flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.mark.parametrize("runtime_key", ["tmux", "process"])
def test_an_agent_that_asks_for_it_gets_even_short_text_pasted(runtime_key, request, tmp_path) -> None:
    """Gemini takes a typed "?" on an empty input as its shortcuts key: its messages are pasted."""
    import sys

    from integrations.registry import agents as registry

    assert registry.create("gemini", {}, where="t").paste_input
    assert not registry.create("claude-code", {}, where="t").paste_input
    runtime = request.getfixturevalue(f"{runtime_key}_runtime")
    handle = runtime.start(
        name="paste-1", cwd=tmp_path, command=[sys.executable, "-u", "-c", RAW_INPUT], env={}
    )
    try:
        assert eventually(lambda: "> " in runtime.read_output(handle))
        runtime.send_text(handle, "Is it done?", clear=(), paste=True)
        assert eventually(lambda: "got" in runtime.read_output(handle)), runtime.read_output(handle)
        assert "got b'\\x1b[200~Is it done?\\x1b[201~\\r'" in runtime.read_output(handle)
    finally:
        runtime.kill(handle)


def test_only_evidence_about_the_message_confirms_it() -> None:
    """A reading newer than the keys is not enough: the text showing in the input with its Enter
    lost is on screen too."""
    from datetime import timedelta

    from django.utils import timezone

    claimed = timezone.now()
    message = Message(text="what did you do so far?", claimed_at=claimed)
    before, after = claimed - timedelta(minutes=5), claimed + timedelta(seconds=2)
    typed = "● Done.\n────\n❯ what did you do so far?\n────\n  ? for shortcuts"
    sent = "❯ what did you do so far?\n\n● Still here.\n────\n❯ \n────\n  ? for shortcuts"

    def how(state, at, weak, pane, ready):
        return messaging.taken_up(message, state=state, at=at, weak=weak, pane=pane, screen_ready=ready)

    # the transcript from before the keys, the text sitting in the input: not taken
    assert how("ready", before, False, typed, False) == ""
    assert how("idle", after, True, typed, False) == ""  # a pane reading is stamped when it is taken
    # taken: working; a transcript entry after the claim; the text on screen and the input empty
    assert how("active", before, True, typed, False)
    assert how("ready", after, False, typed, False)
    assert how("ready", after, True, sent, True)
    # a question on screen after keys typed at the agent's prompt: the agent took the message and
    # asks about it (issue 18's GitHub-mode journey: unconfirmed, it was typed again after the answer)
    assert how("waiting_input", after, True, sent, False) == "the agent asks a question about it"
    # ... but not a question from before the keys, nor one that follows an answer to a question
    assert how("waiting_input", before, False, sent, False) == ""
    answer = Message(text="yes", claimed_at=claimed, answers_prompt=True)
    assert (
        messaging.taken_up(answer, state="waiting_input", at=after, weak=True, pane=sent, screen_ready=False)
        == ""
    )
    # a plugin that cannot read its screen: the text on screen is all there is
    assert how("ready", after, True, sent, None)
