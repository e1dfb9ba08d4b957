"""The project most real-process tests need: ao's `custom` agent running a small Python script in a
private tmux server, with the `local` tracker and SCM, on a checkout from the `repo` fixture."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# An agent that shows its prompt and waits: enough for spawn, send, kill and PR tests.
WAITING_AGENT = "import time\nprint('> ', flush=True)\ntime.sleep(120)\n"


def local_tmux_project(
    *,
    path: Path | str,
    tmux_server: str,
    agent: str = WAITING_AGENT,
    scm: dict[str, Any] | None = None,
    agent_settings: dict[str, Any] | None = None,
    runtime: dict[str, Any] | None = None,
):
    """``agent_settings`` replaces the agent's settings (its own command, a ready_pattern);
    ``runtime`` adds runtime settings to the private tmux server's."""
    from tests.factories import ProjectFactory

    settings: dict[str, Any] = {
        "agent": agent_settings or {"command": [sys.executable, "-c", agent]},
        "runtime": {"socket_name": tmux_server, **(runtime or {})},
    }
    if scm:
        settings["scm"] = scm
    return ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        scm="local",
        plugin_settings=settings,
    )
