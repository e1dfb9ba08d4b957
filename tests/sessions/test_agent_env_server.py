"""An agent's environment is what ao decides, whatever tmux server its pane lives in.

A person runs ao from a shell inside their own tmux (or inside an agent's shell): the tmux server
was started long before, with other variables (a stale ANTHROPIC_BASE_URL, variables ao does not
have), and ao's own environment may carry an agent's nested-session markers (CLAUDECODE, ...).
The agent here is a tiny script that writes its environment to a file, run by the real tmux
runtime in that server, spawned and restored through ao's services.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessions.agents import operating, spawning
from sessions.models import Session
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Writes its environment to <dump dir>/<AO_SESSION>.<n>.json, then waits like an agent at its prompt.
ENV_AGENT = r"""
import json, os, sys, time
path = os.path.join(sys.argv[1], "%s.%d.json" % (os.environ.get("AO_SESSION", "x"), time.time_ns()))
with open(path + ".tmp", "w") as f:
    json.dump(dict(os.environ), f)
os.replace(path + ".tmp", path)
print("> ", flush=True)
time.sleep(120)
"""


def dumps_of(directory: Path, session_id: str) -> list[dict[str, str]]:
    files = sorted(directory.glob(f"{session_id}.*.json"), key=lambda p: int(p.name.split(".")[1]))
    return [json.loads(p.read_text()) for p in files]


def next_dump(directory: Path, session_id: str, seen: int, *, timeout: float = 20.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        dumps = dumps_of(directory, session_id)
        if len(dumps) > seen:
            return dumps[seen]
        assert time.monotonic() < deadline, f"{session_id} never wrote its environment"
        time.sleep(0.1)


@pytest.fixture
def users_tmux(tmux_server: str, tmp_path: Path) -> str:
    """The person's own tmux server, started (as people do) from a shell whose environment ao
    does not share: a stale gateway URL and a variable ao has not got."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "old-home"),
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/stale-gateway",
        "ONLY_IN_USERS_TMUX": "1",
        "TMUX_TMPDIR": os.environ.get("TMUX_TMPDIR", "/tmp"),
    }
    subprocess.run(
        ["tmux", "-L", tmux_server, "new-session", "-d", "-s", "mine"], env=env, check=True, timeout=10
    )
    return tmux_server


def test_agents_get_aos_environment_not_the_tmux_servers(
    users_tmux: str, repo, tmp_path: Path, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    dump = tmp_path / "env"
    dump.mkdir()
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        scm="local",
        plugin_settings={
            "agent": {"command": [sys.executable, "-c", ENV_AGENT, str(dump)]},
            "runtime": {"socket_name": users_tmux},
        },
    )
    # ao itself was started from inside an agent's shell, with the gateway it should use
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/gateway-v1")
    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.setenv("CLAUDE_CODE_ENTRYPOINT", "cli")
    monkeypatch.setenv("GEMINI_CLI", "1")
    monkeypatch.setenv("CODEX_SANDBOX", "seatbelt")
    monkeypatch.setenv("OPENCODE", "1")

    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, issue_ref=None, prompt="hello")
    session.refresh_from_db()
    assert session.phase == "running", session.error

    env = next_dump(dump, session.id, 0)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/gateway-v1"  # ao's, not the server's
    assert "ONLY_IN_USERS_TMUX" not in env
    assert env["HOME"] == os.environ["HOME"]
    for marker in ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "GEMINI_CLI", "CODEX_SANDBOX", "OPENCODE"):
        assert marker not in env, marker
    assert env["AO_SESSION"] == session.id and env["AO_TOKEN"]
    # what the terminal provides comes from the pane: the agent's terminal is tmux's
    assert env["TMUX_PANE"].startswith("%") and env["TMUX"]
    assert env["TERM"].startswith(("screen", "tmux"))  # tmux's default-terminal

    # restore: the same environment again
    operating.session_kill(session=session)
    operating.session_restore(session=Session.objects.get(pk=session.pk))
    again = next_dump(dump, session.id, 1)
    assert again["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/gateway-v1"
    assert "ONLY_IN_USERS_TMUX" not in again and "CLAUDECODE" not in again

    # ao restarted with another gateway: the next spawn (and restore) sees the new value
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/gateway-v2")
    with django_capture_on_commit_callbacks(execute=True):
        second = spawning.session_spawn(project=project, issue_ref=None, prompt="hello again")
    assert next_dump(dump, second.id, 0)["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/gateway-v2"
    operating.session_kill(session=Session.objects.get(pk=session.pk))
    operating.session_restore(session=Session.objects.get(pk=session.pk))
    assert next_dump(dump, session.id, 2)["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/gateway-v2"
