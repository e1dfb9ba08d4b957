"""The model each session ran is recorded (issue 18.2): the configured one at spawn, then the one
the agent's own records name; it is in the commits' ``Ao-Model`` trailer, on the card, in the API
and in the retro's "by agent/model". Real spawn (worktree, process runtime), a stand-in ``claude``
that writes a Claude Code transcript as the real one does, real git."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest

from sessions.agents import observing, operating, plugins, spawning, starting
from sessions.models import Session
from sessions.watchers import outcomes
from tests.factories import ProjectFactory
from tests.learning.test_trailers import commit

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def stand_in_claude(tmp_path: Path, home: Path) -> Path:
    """Writes one answered turn of ``claude-opus-4-1`` to its transcript, then stays running."""
    entry = {
        "type": "assistant",
        "sessionId": "conv-1",
        "timestamp": "2026-01-01T00:00:00Z",
        "message": {
            "role": "assistant",
            "model": "claude-opus-4-1",
            "content": [{"type": "text", "text": "Done."}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
    }
    shim = tmp_path / "claude"
    projects = shlex.quote(str(home / ".claude" / "projects"))
    shim.write_text(
        "#!/bin/sh\n"
        f'dir={projects}/$(printf %s "$PWD" | sed "s/[^A-Za-z0-9]/-/g")\n'
        'mkdir -p "$dir"\n'
        f"printf '%s\\n' {shlex.quote(json.dumps(entry))} > \"$dir/conv-1.jsonl\"\n"
        "exec sleep 60\n"
    )
    shim.chmod(0o755)
    return shim


def test_the_model_is_recorded_from_config_then_from_the_agents_records(
    repo, tmp_path, settings, client, admin_user
):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    home = tmp_path / "home"
    project = ProjectFactory(
        key="webapp", session_prefix="web", path=str(repo.path), agent="claude-code", runtime="process",
        workspace="worktree", tracker="local",
        plugin_settings={"agent": {"binary": str(stand_in_claude(tmp_path, home)), "model": "claude-sonnet-4-5",
                                   "home": str(home)}},
    )  # fmt: skip

    session = spawning.session_spawn(project=project, prompt="Say hi")
    assert session.model == "claude-sonnet-4-5"  # the configured model, from the spawn on
    assert starting.session_start(session_id=session.id) is True
    session.refresh_from_db()
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    assert commit(workspace, "a.txt") == {
        "Ao-Session": [session.id],
        "Ao-Agent": ["claude-code"],
        "Ao-Model": ["claude-sonnet-4-5"],
    }

    # the agent's transcript says which model answered: that is what it ran
    transcript = home / ".claude" / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(workspace)) / "conv-1.jsonl"
    for _ in range(100):
        if transcript.exists():
            break
        time.sleep(0.1)
    observing.session_observe(session=session)
    session.refresh_from_db()
    assert session.model == "claude-opus-4-1"
    assert commit(workspace, "b.txt")["Ao-Model"] == ["claude-opus-4-1"]

    client.force_login(admin_user)
    assert client.get(f"/api/v1/sessions/{session.id}/").json()["model"] == "claude-opus-4-1"
    board = client.get("/").content.decode()
    assert re.search(r'<span class="model">claude-opus-4-1</span>', board)

    operating.session_kill(session=session)
    outcomes.outcome_record(session=Session.objects.get(pk=session.id))
    summary = outcomes.retro_summary(projects=[project])
    assert "claude-code/claude-opus-4-1" in json.dumps(summary)


def test_a_custom_agents_configured_model_is_recorded(monkeypatch):
    """A custom agent (any command) runs whatever model its command runs: ao cannot read it from
    the agent's records, so the project says it (``model``), and the session records it like any
    configured model (and ao does not add a flag the command may not know)."""
    monkeypatch.setattr(spawning, "_enqueue_start", lambda session: None)
    project = ProjectFactory(
        key="tool", session_prefix="tool", agent="custom", tracker="local",
        plugin_settings={"agent": {"command": ["my-agent", "--tui"], "model": "gpt-5-codex"}},
    )  # fmt: skip

    session = spawning.session_spawn(project=project, prompt="Say hi")

    assert session.model == "gpt-5-codex"
    agent = plugins.agent_for(project, "custom")
    assert "--model" not in agent.launch_command(workspace=Path("/tmp"), prompt=None)
