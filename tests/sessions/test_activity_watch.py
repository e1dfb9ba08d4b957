"""The activity watcher brings an agent's change of activity to the board between sweeps, and
leaves alone the agents whose terminal does not change.

The agent is the stand-in (a Claude Code look-alike writing Claude transcripts) behind the real
Claude Code plugin, in a real tmux server; no sweep runs here: the project's sweep interval is
the default 30 s, and only the watcher's looks (``tick``, what its thread does every second)
observe the session.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest

from sessions.agents import messaging, spawning
from sessions.flows.watch import SETTLE_TICKS, ActivityWatcher
from sessions.models import Session
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

STANDIN = Path(__file__).resolve().parents[1] / "agent_standin" / "standin_agent.py"


@pytest.fixture
def project(repo, tmux_server, tmp_path: Path, settings, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("STANDIN_WORK_SECONDS", "3")
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_SWEEP_INTERVAL = 30
    shim = tmp_path / "claude"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n')
    shim.chmod(0o755)
    return ProjectFactory(
        key="webapp",
        session_prefix="web",
        path=str(repo.path),
        agent="claude-code",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={
            "agent": {"binary": str(shim), "home": str(home), "permissions": "auto-edit"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )


def activity(session_id: str) -> str:
    return Session.objects.values_list("activity", flat=True).get(pk=session_id)


def watch_until(watcher: ActivityWatcher, predicate, *, timeout: float, observed: list[str]) -> bool:
    """Let the watcher look every 0.5 s (its thread: every second) until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        observed += watcher.tick()
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_a_finished_turn_reaches_the_board_between_sweeps(
    project, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, issue_ref=None, prompt="add a README line")
    session.refresh_from_db()
    assert session.phase == "running", session.error
    watcher = ActivityWatcher(interval=1)
    observed: list[str] = []
    watcher.tick()  # first look: remembers every terminal, observes none

    # the agent takes the prompt, works, then ends its turn: the watcher sees its terminal change
    # and settle, and the stored activity follows (the card is announced on the change)
    with django_capture_on_commit_callbacks(execute=True):
        assert watch_until(watcher, lambda: activity(session.id) == "ready", timeout=30, observed=observed)
        # ... and once its terminal has stood still, the watcher counts it settled
        assert watch_until(
            watcher, lambda: not watcher.seen[session.id].changing, timeout=10, observed=observed
        )
    project.refresh_from_db()
    assert project.last_swept_at is None  # no sweep ran
    assert 1 <= observed.count(session.id) <= 4  # on the edges, not on every look

    # an agent at its prompt does not change its terminal: it is not observed again
    before = watcher.observations
    for _ in range(SETTLE_TICKS + 4):
        assert watcher.tick() == []
        time.sleep(0.5)
    assert watcher.observations == before

    # a new message starts another turn: observed again, and ready again when it ends
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(
            session=Session.objects.get(pk=session.id), text="and a test", sender_name="ana"
        )
    observed.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert watch_until(watcher, lambda: bool(observed), timeout=20, observed=observed)
        assert watch_until(
            watcher,
            lambda: activity(session.id) == "ready" and not watcher.seen[session.id].changing,
            timeout=30,
            observed=observed,
        )
    assert 1 <= observed.count(session.id) <= 4
