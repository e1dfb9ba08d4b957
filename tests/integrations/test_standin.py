"""The stand-in agent in a real tmux session (own ``-L`` socket), read by the real detectors.

Plain tmux subprocess calls (argv lists): these tests exercise the agent plugins and the
stand-in, not the tmux runtime plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from integrations.agent.claude_code import ClaudeCodeAgent
from integrations.agent.custom import CustomAgent
from integrations.base import Agent
from integrations.records import ActivityReading

STANDIN = Path(__file__).resolve().parents[1] / "agent_standin" / "standin_agent.py"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ao test",
    "GIT_AUTHOR_EMAIL": "ao@example.invalid",
    "GIT_COMMITTER_NAME": "ao test",
    "GIT_COMMITTER_EMAIL": "ao@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

pytestmark = pytest.mark.slow


class Tmux:
    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env
        self.session = "agent"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=self.env,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"tmux {args[0]} failed: {result.stderr}"
        return result

    def start(self, *, cwd: Path, argv: list[str]) -> None:
        settings = [
            item
            for key, value in self.env.items()
            if key in ("HOME", "PATH", "STANDIN_WORK_SECONDS")
            for item in ("-e", f"{key}={value}")
        ]
        self.run(
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            "120",
            "-y",
            "40",
            "-c",
            str(cwd),
            *settings,
            "--",
            *argv,
        )

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", self.session, "-l", text)
        self.run("send-keys", "-t", self.session, "Enter")

    def key(self, key: str) -> None:
        self.run("send-keys", "-t", self.session, "-l", key)

    def paste(self, text: str) -> None:
        buffer = f"ao-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["tmux", "-L", self.socket, "load-buffer", "-b", buffer, "-"],
            input=text,
            text=True,
            timeout=10,
            env=self.env,
            check=True,
        )
        self.run("paste-buffer", "-p", "-d", "-b", buffer, "-t", self.session)
        self.run("send-keys", "-t", self.session, "Enter")

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.session, check=False).returncode == 0

    def pane(self) -> str:
        result = self.run("capture-pane", "-p", "-J", "-t", self.session, check=False)
        return result.stdout if result.returncode == 0 else ""


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    socket = f"ao-standin-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, **GIT_ENV, "HOME": str(home), "STANDIN_WORK_SECONDS": "0.8"}
    env.pop("TMUX", None)
    env.pop("CLAUDE_CONFIG_DIR", None)
    server = Tmux(socket, env)
    yield server
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "work_spaces" / "sess-1"
    path.mkdir(parents=True)
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "commit", "-q", "--allow-empty", "-m", "initial"],
    ):
        subprocess.run(argv, cwd=path, check=True, timeout=30, env={**os.environ, **GIT_ENV})
    return path


def observe(agent: Agent, tmux: Tmux, workspace: Path) -> ActivityReading:
    return agent.detect_activity(
        workspace=workspace, pane_text=tmux.pane(), now=datetime.now(UTC), process_alive=tmux.alive()
    )


def wait_until(
    check: Callable[[], object],
    *,
    timeout: float = 5.0,
    what: str = "",
    last: Callable[[], object] | None = None,
):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last seen: {last() if last else value!r}")
        time.sleep(0.05)


def wait_for_state(
    agent: Agent, tmux: Tmux, workspace: Path, state: str, *, weak: bool | None = None, timeout: float = 5.0
) -> ActivityReading:
    seen: list[ActivityReading] = []

    def check() -> ActivityReading | None:
        reading = observe(agent, tmux, workspace)
        seen.append(reading)
        return reading if reading.state == state and (weak is None or reading.weak is weak) else None

    return wait_until(
        check, timeout=timeout, what=f"{state} (weak={weak})", last=lambda: (seen[-1], tmux.pane())
    )


def test_claude_code_agent_drives_the_standin_through_a_claude_shim(
    tmp_path: Path, tmux: Tmux, workspace: Path
) -> None:
    # Given a `claude` on PATH that is the stand-in, and the agent's settings pointing at its home
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "claude"
    shim.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(STANDIN)!r}\nrunpy.run_path({str(STANDIN)!r}, run_name='__main__')\n"
    )
    shim.chmod(0o755)
    tmux.env["PATH"] = f"{bin_dir}{os.pathsep}{tmux.env['PATH']}"
    home = Path(tmux.env["HOME"])
    agent = ClaudeCodeAgent(
        ClaudeCodeAgent.Config(home=home, permissions="auto-edit", extra_args=["--require-trust"])
    )

    assert agent.check_installed(path=tmux.env["PATH"]) == str(shim)
    agent.prepare_workspace(workspace, allow_trust=True)  # the stand-in shows a trust dialog otherwise
    argv = agent.launch_command(workspace=workspace, prompt=None)
    assert argv == ["claude", "--permission-mode", "acceptEdits", "--require-trust"]
    tmux.start(cwd=workspace, argv=argv)

    # No transcript yet: the prompt on screen says ready (weak)
    wait_for_state(agent, tmux, workspace, "ready", weak=True)

    # Typed text + Enter: echoed, then the transcript shows work, then a finished turn
    tmux.type("hello there")
    wait_until(lambda: "received: hello there" in tmux.pane(), what="echo", last=tmux.pane)
    active = wait_for_state(agent, tmux, workspace, "active", weak=False)
    assert active.summary == "Editing notes.txt"
    ready = wait_for_state(agent, tmux, workspace, "ready", weak=False)
    assert ready.summary == "Done: hello there"
    assert (ready.tokens_in, ready.tokens_out, ready.cost_usd) == (230, 12, 0.001)
    transcripts = list((home / ".claude" / "projects").glob("*/*.jsonl"))
    assert len(transcripts) == 1
    assert ready.conversation_id == transcripts[0].stem

    # A multi-line bracketed paste is one message
    tmux.paste("first line\nsecond line")
    wait_until(lambda: "received: first line\nsecond line" in tmux.pane(), what="paste echo", last=tmux.pane)
    wait_for_state(agent, tmux, workspace, "active", weak=False)
    after_paste = wait_for_state(agent, tmux, workspace, "ready", weak=False)
    assert after_paste.summary == "Done: first line"
    assert (
        sum(1 for line in transcripts[0].read_text().splitlines() if json.loads(line)["type"] == "user") == 4
    )

    # A permission question is waiting_input, even though the transcript shows a pending tool call
    tmux.type("/ask-permission")
    waiting = wait_for_state(agent, tmux, workspace, "waiting_input")
    assert waiting.summary == "Do you want to proceed?"
    assert waiting.conversation_id == ready.conversation_id
    tmux.key("1")
    wait_until(lambda: "permission: granted" in tmux.pane(), what="answer", last=tmux.pane)
    wait_for_state(agent, tmux, workspace, "ready", weak=False)

    # /exit: the process is gone; the conversation can be resumed
    tmux.type("/exit")
    wait_until(lambda: not tmux.alive(), what="exit")
    exited = observe(agent, tmux, workspace)
    assert (exited.state, exited.conversation_id) == ("exited", ready.conversation_id)
    assert agent.resume_command(workspace=workspace, conversation_id=exited.conversation_id)[:3] == [
        "claude",
        "--resume",
        ready.conversation_id,
    ]


def test_custom_agent_runs_the_standin_from_an_argv_list(tmp_path: Path, tmux: Tmux, workspace: Path) -> None:
    agent = CustomAgent(
        CustomAgent.Config(
            command=[
                sys.executable,
                str(STANDIN),
                "--transcript-dir",
                str(tmp_path / "transcripts"),
                "--require-trust",
            ],
            prompt_mode="argv",
            prompt_flag="--prompt",
        )
    )
    argv = agent.launch_command(workspace=workspace, prompt="start here")
    assert argv[-2:] == ["--prompt", "start here"]
    tmux.start(cwd=workspace, argv=argv)

    # Not trusted (nothing prepared): the dialog is waiting_input and nothing is typed into it
    trust = wait_for_state(agent, tmux, workspace, "waiting_input")
    assert trust.summary == "Do you trust the files in this folder?"
    assert "received:" not in tmux.pane()
    tmux.key("1")

    # The prompt from argv is handled, then the agent is at its prompt
    wait_until(lambda: "received: start here" in tmux.pane(), what="argv prompt", last=tmux.pane)
    wait_for_state(agent, tmux, workspace, "ready")

    # Denying a permission returns to the prompt
    tmux.type("/ask-permission")
    wait_for_state(agent, tmux, workspace, "waiting_input")
    tmux.key("2")
    wait_until(lambda: "permission: denied" in tmux.pane(), what="denial", last=tmux.pane)
    wait_for_state(agent, tmux, workspace, "ready")

    # /commit makes a real commit in the workspace
    tmux.type("/commit add notes")
    wait_until(lambda: "committed: " in tmux.pane(), what="commit", last=tmux.pane)
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=workspace, capture_output=True, text=True, timeout=30
    )
    assert log.stdout.splitlines()[0] == "standin: /commit add notes"

    tmux.type("/exit")
    wait_until(lambda: not tmux.alive(), what="exit")
    assert observe(agent, tmux, workspace).state == "exited"
