"""A session's summary says what the agent does now: when its state changes and the new reading
has no summary of its own, the old one ("Thinking ...", "Waiting for openai/gpt-4o") is not kept
on the card as if it were still true. Real tmux, ao's custom agent read from its screen."""

from __future__ import annotations

import sys

import pytest

from sessions.agents import observing, spawning
from sessions.domain.lifecycle import Activity
from sessions.models import Session
from tests.factories import ProjectFactory
from tests.sessions.test_session_commands import eventually, pane

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Works (a working indicator) until a key is pressed, then redraws that line as its prompt.
WORKER = r"""
import sys, termios, tty
tty.setcbreak(sys.stdin.fileno())
sys.stdout.write("Reticulating splines (esc to interrupt)")
sys.stdout.flush()
sys.stdin.read(1)
sys.stdout.write("\r\x1b[2K> ")  # redrawn in place, as TUIs do: the indicator is gone
sys.stdout.flush()
sys.stdin.read(1)
"""


def test_the_summary_of_a_past_state_is_not_kept(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        plugin_settings={
            "agent": {"command": [sys.executable, "-u", "-c", WORKER], "ready_pattern": r"^> ?$"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )
    session = spawning.session_spawn(project=project, by=None)
    assert eventually(lambda: "Reticulating" in pane(tmux_server, session.pk), timeout=30)

    def observed() -> Session:
        current = Session.objects.get(pk=session.pk)
        observing.session_observe(session=current)
        return Session.objects.get(pk=session.pk)

    working = eventually(lambda: (s := observed()).activity == Activity.ACTIVE and s, timeout=30)
    assert working and "Reticulating splines" in working.activity_summary

    import subprocess

    subprocess.run(["tmux", "-L", tmux_server, "send-keys", "-t", f"={session.pk}:", "Enter"], check=True)
    ready = eventually(lambda: (s := observed()).activity == Activity.READY and s, timeout=30)
    assert ready, (observed().activity, pane(tmux_server, session.pk))
    assert "Reticulating" not in ready.activity_summary
