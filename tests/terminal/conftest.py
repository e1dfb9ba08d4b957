"""Fixtures for the terminal tests: real tmux sessions on the run's isolated server."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

PROMPT = "ao-prompt$ "


def tmux(socket_name: str, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["tmux", "-L", socket_name, *args], capture_output=True, text=True, timeout=10, check=False
    )
    if check:
        assert proc.returncode == 0, f"tmux {args[0]}: {proc.stderr}"
    return proc.stdout


def pane_text(socket_name: str, name: str) -> str:
    return tmux(socket_name, "capture-pane", "-p", "-J", "-t", f"={name}:")


def last_line(socket_name: str, name: str) -> str:
    rows = [row for row in pane_text(socket_name, name).splitlines() if row.strip()]
    return rows[-1].strip() if rows else ""


def at_prompt(socket_name: str, name: str) -> bool:
    """The shell shows its prompt again (on the last non-empty line of the pane)."""
    return last_line(socket_name, name) == PROMPT.strip()


@pytest.fixture
def shell_session(tmux_socket: str) -> Iterator[str]:
    """A tmux session running a plain interactive bash with a known prompt, 80x24."""
    name = f"term-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", name, "-x", "80", "-y", "24",
         "--", "env", f"PS1={PROMPT}", "HISTFILE=/dev/null", "bash", "--norc", "--noprofile", "-i"],
        env=env, check=True, timeout=10,
    )  # fmt: skip
    yield name
    tmux(tmux_socket, "kill-session", "-t", f"={name}", check=False)
