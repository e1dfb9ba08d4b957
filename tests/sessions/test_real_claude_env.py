"""The real Claude Code, started by ao from inside a person's own tmux and an agent's shell.

The tmux server was started earlier from a shell without the model gateway (a stale
ANTHROPIC_BASE_URL, no key); ao itself runs with the gateway and key, and with the markers a
Claude Code shell sets for its children (CLAUDECODE, CLAUDE_CODE_CHILD_SESSION, ...). The agent
must reach the gateway ao was given (a local Anthropic Messages fake) and work on its task.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from sessions.agents import messaging, observing, spawning
from sessions.models import Session
from tests.agent_clis.install import ensure
from tests.factories import ProjectFactory
from tests.fakes.models.anthropic import AnthropicFake, Turn, is_agent_turn, user_texts

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

API_KEY = "sk-ant-api03-ao-test-0123456789abcdefghijklmnop"
TASK = "Say hello (a task for the gateway ao was started with)"


def eventually(predicate, *, timeout: float = 60.0, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def observe(session_id: str) -> Session:
    messaging.messages_deliver(session_id=session_id)
    session = Session.objects.select_related("project").get(pk=session_id)
    observing.session_observe(session=session)
    session.refresh_from_db()
    return session


def test_claude_reaches_aos_gateway_from_a_stale_tmux_and_a_claude_shell(
    repo, tmux_server, tmp_path: Path, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    claude = ensure("claude-code")
    home = tmp_path / "home"
    home.mkdir()
    # done once by the user (docs/AGENTS.md): first-run screens, the API key approved
    (home / ".claude.json").write_text(
        json.dumps(
            {
                "hasCompletedOnboarding": True,
                "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
            }
        )
    )
    # the person's tmux, started long ago without the gateway
    stale = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "TMUX_TMPDIR": os.environ.get("TMUX_TMPDIR", "/tmp"),
    }
    subprocess.run(["tmux", "-L", tmux_server, "new-session", "-d", "-s", "mine"], env=stale, check=True)
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    project = ProjectFactory(
        key="webapp",
        session_prefix="web",
        path=str(repo.path),
        agent="claude-code",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={
            "agent": {"binary": str(claude), "home": str(home), "permissions": "auto-edit"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 1.0, "width": 120, "height": 40},
        },
    )
    with AnthropicFake(api_key=API_KEY) as fake:
        # ao's own environment: the gateway, and a Claude Code shell's markers
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("DISABLE_AUTOUPDATER", "1")
        monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
        monkeypatch.setenv("CLAUDECODE", "1")
        monkeypatch.setenv("CLAUDE_CODE_ENTRYPOINT", "cli")
        monkeypatch.setenv("CLAUDE_CODE_CHILD_SESSION", "1")
        monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "00000000-0000-4000-8000-000000000000")
        fake.script(Turn(text="Hello from the gateway.", when=is_agent_turn))
        with django_capture_on_commit_callbacks(execute=True):
            session = spawning.session_spawn(project=project, prompt=TASK)
        session.refresh_from_db()
        assert session.phase == "running", session.error

        def screen() -> str:
            return subprocess.run(
                ["tmux", "-L", tmux_server, "capture-pane", "-p", "-J", "-t", "=web-1:"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout

        turns = eventually(lambda: observe("web-1") and [r for r in fake.requests if is_agent_turn(r)])
        assert turns, screen()
        assert TASK in user_texts(turns[0])[-1]
        ready = eventually(lambda: observe("web-1").activity == "ready")
        assert ready, screen()
        # its own records are kept: with a Claude shell's markers it takes itself for a nested
        # session and keeps none, and ao, which reads them for activity, tokens, cost and the
        # conversation to resume, is left with the screen alone
        records = home / ".claude" / "projects"
        transcripts = eventually(lambda: list(records.glob("*/*.jsonl")), timeout=20)
        assert transcripts, "Claude kept no transcript"
