"""`ao start` brings an agent's finished turn to the board between sweeps (its activity watcher).

A real `ao start` (embedded), a project whose sweep runs once an hour, an agent in tmux that works
(a spinner saying "esc to interrupt") until the test ends its turn, then shows its prompt. Only
the watcher can bring the change to the board before the next sweep; the API is polled with a
deadline far shorter than the sweep interval.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_embedded import ao_env, ao_process, free_port, git_repo, run_ao

pytestmark = pytest.mark.slow

# Works until the file named by argv[1] exists, then ends its turn at a prompt.
TURN_AGENT = r"""
import pathlib, sys, time
go = pathlib.Path(sys.argv[1])
print("working on it", flush=True)
n = 0
while not go.exists():
    print("\r" + "|/-\\"[n % 4] + " thinking (esc to interrupt)", end="", flush=True)
    n += 1
    time.sleep(0.2)
print("\r\x1b[2K" + "done: added the line", flush=True)  # the spinner goes, as in a real TUI
print("> ", end="", flush=True)
time.sleep(300)
"""


def poll(get, predicate, *, timeout: float):
    deadline = time.monotonic() + timeout
    value = get()
    while not predicate(value) and time.monotonic() < deadline:
        time.sleep(0.3)
        value = get()
    return value


def test_a_finished_turn_reaches_the_board_before_the_next_sweep(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    socket_name = f"ao-watch-{os.getpid()}"
    go = tmp_path / "go"
    (repo / "ao.config.yaml").write_text(
        "projects:\n  turns:\n    path: .\n    sessionPrefix: turn\n    sweepInterval: 3600\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket_name}}}\n"
        "    agent:\n      plugin: custom\n      prompt_mode: argv\n"
        f"      command: [{json.dumps(sys.executable)}, -c, {json.dumps(TURN_AGENT)}, {json.dumps(str(go))}]\n"
    )
    env = ao_env(home)  # AO_SWEEP_INTERVAL: the default 30 s
    port = free_port()
    try:
        with ao_process(["start", "--port", str(port), "--no-browser-link"], env, cwd=repo) as ao:
            ao.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
            token = run_ao(["token", "create", "watch"], env).stdout.strip()
            api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=10)
            api.headers["Authorization"] = f"Bearer {token}"
            spawned = api.post("/projects/turns/spawn", json={"prompt": "add a line"})
            assert spawned.status_code == 201, spawned.text + ao.output[-3000:]
            session_id = spawned.json()["id"]

            def activity() -> str:
                return api.get(f"/sessions/{session_id}/").json()["activity"]

            # the agent works: the watcher sees its terminal start changing
            assert poll(activity, lambda a: a == "active", timeout=30) == "active", ao.output[-3000:]
            go.touch()  # the turn ends: the spinner stops, the prompt shows
            assert poll(activity, lambda a: a == "ready", timeout=20) == "ready", ao.output[-3000:]
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=30)
