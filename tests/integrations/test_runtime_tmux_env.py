"""ao's credentials never reach its tmux server's environment.

The agent's own process environment is built by ao (the launcher), but the tmux server keeps an
environment of its own: `tmux show-environment -g` prints it to anyone on the server (the agent
included), and a new window (prefix-key ``c`` in the browser terminal or in ``tmux attach``)
starts a shell with it. A client that attaches copies its ``update-environment`` variables into
the session. Real tmux, real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from integrations.runtime.tmux import TmuxRuntime
from tests.helpers.fixtures import ECHO_PROGRAM, wait_for

pytestmark = pytest.mark.slow

AO_SECRET = "ghp_aoOwnTokenNotForAgents1234"
SESSION_TOKEN = "ao_sessionTokenOfOneAgentOnly"


def tmux(socket: str, *args: str, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    proc = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10, env=env or base
    )
    return proc.stdout


def new_window_env(socket: str, name: str, out: Path) -> str:
    """What a person's new window in the agent's session (prefix-key c) gets."""
    tmux(socket, "new-window", "-d", "-t", f"={name}:", f"env > {out}.tmp && mv {out}.tmp {out}")
    assert wait_for(out.exists), "the new window never ran"
    return out.read_text()


def start(socket: str, tmp_path: Path) -> tuple[TmuxRuntime, str]:
    runtime = TmuxRuntime(TmuxRuntime.Config(socket_name=socket, enter_delay=0.05))
    name = f"t-{uuid.uuid4().hex[:8]}"
    # as agent_environment builds it: ao's credentials removed (None), the agent's own identity
    env: dict[str, str | None] = {"GITHUB_TOKEN": None, "AO_SECRET_KEY": None, "AO_TOKEN": SESSION_TOKEN}
    handle = runtime.start(name=name, cwd=tmp_path, command=[sys.executable, "-c", ECHO_PROGRAM], env=env)
    assert wait_for(lambda: "ready" in runtime.read_output(handle))
    return runtime, name


def test_a_tmux_server_ao_starts_holds_none_of_aos_credentials(
    tmux_server: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", AO_SECRET)
    monkeypatch.setenv("AO_SECRET_KEY", "ao-django-secret-key")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    _, name = start(tmux_server, tmp_path)

    server_env = tmux(tmux_server, "show-environment", "-g")
    assert "HOME=" in server_env and "PATH=" in server_env  # what tmux and a shell need
    assert "LC_ALL=C.UTF-8" in server_env
    for secret in (AO_SECRET, "ao-django-secret-key", SESSION_TOKEN):
        assert secret not in server_env
        assert secret not in tmux(tmux_server, "show-environment", "-t", f"={name}")

    window = new_window_env(tmux_server, name, tmp_path / "window.env")
    assert f"HOME={os.environ['HOME']}" in window
    for secret in (AO_SECRET, "ao-django-secret-key", SESSION_TOKEN):
        assert secret not in window


def test_a_new_window_in_a_shared_server_gets_none_of_aos_credentials(
    tmux_server: str, tmp_path: Path, monkeypatch
) -> None:
    """The person's own tmux server (started from their shell, with the same token in it): ao's
    session on it does not hand that token to a new window."""
    users = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "TMUX_TMPDIR": os.environ.get("TMUX_TMPDIR", "/tmp"),
        "GITHUB_TOKEN": AO_SECRET,
    }
    subprocess.run(["tmux", "-L", tmux_server, "new-session", "-d", "-s", "mine"], env=users, check=True)
    monkeypatch.setenv("GITHUB_TOKEN", AO_SECRET)
    _, name = start(tmux_server, tmp_path)
    assert AO_SECRET not in new_window_env(tmux_server, name, tmp_path / "window.env")


def test_a_client_attaching_does_not_copy_its_environment_into_the_session(
    tmux_server: str, tmp_path: Path
) -> None:
    """The browser relay or a person's `tmux attach`: its variables stay its own."""
    _, name = start(tmux_server, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env.update(TERM="xterm-256color", DISPLAY=":77", SSH_AUTH_SOCK="/tmp/attacher-agent.sock")
    master, slave = os.openpty()
    client = subprocess.Popen(
        ["tmux", "-L", tmux_server, "attach-session", "-t", f"={name}"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        assert wait_for(lambda: tmux(tmux_server, "list-clients", "-t", f"={name}").strip())
        session_env = tmux(tmux_server, "show-environment", "-t", f"={name}")
        assert ":77" not in session_env and "attacher-agent" not in session_env
        window = new_window_env(tmux_server, name, tmp_path / "window.env")
        assert "DISPLAY=:77" not in window and "attacher-agent" not in window
    finally:
        client.kill()
        client.wait(timeout=10)
        os.close(master)
