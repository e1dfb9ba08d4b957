"""The journey's world: a person's own repository, ao running on it as an installed tool, a private
tmux server for its agents, and a person in headless Chromium.

Nothing runs in-process: ao is the `.venv/bin/ao` console script (``ao start --port N`` from
inside the repository, its own AO_HOME), every command is a subprocess, the API is called with a
token from ``ao token create``, and the dashboard is driven by clicks. The test reads only what a
person can see: the board, the session page, the agents' panes (``tmux capture-pane`` on ao's
tmux server) and files on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, sign_in_with_link
from tests.test_embedded import LINK_RE, AoProcess, ao_command, ao_env, free_port

T = TypeVar("T")
AGENT_SCRIPT = Path(__file__).with_name("agent.py")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Pat Person",
    "GIT_AUTHOR_EMAIL": "pat@example.test",
    "GIT_COMMITTER_NAME": "Pat Person",
    "GIT_COMMITTER_EMAIL": "pat@example.test",
}

# The person's repository: a tiny package whose test of `mul` fails until someone adds it.
USER_FILES = {
    "calc/__init__.py": '"""A tiny calculator."""\n\n\ndef add(a, b):\n    return a + b\n',
    "tests/__init__.py": "",
    "tests/test_calc.py": textwrap.dedent(
        """\
        import unittest

        import calc


        class CalcTest(unittest.TestCase):
            def test_add(self):
                self.assertEqual(calc.add(2, 3), 5)

            def test_mul(self):
                self.assertEqual(calc.mul(2, 3), 6)
        """
    ),
    ".gitignore": "__pycache__/\n",
}


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {repo} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def make_user_repo(path: Path) -> Path:
    """`git init` a small Python package with one commit on main and no remote."""
    path.mkdir(parents=True)
    for name, text in USER_FILES.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "calc: add, and a test for mul")
    return path.resolve()


@dataclass
class World:
    root: Path
    repo: Path
    home: Path
    agent_log: Path
    tmux_dir: Path
    port: int
    env: dict[str, str]
    process: AoProcess | None = None
    project: str = ""
    prefix: str = ""
    token: str = ""
    browser: Any = None
    page: Any = None  # the person's tab
    terminals: dict[str, Any] = field(default_factory=dict)  # session id -> a tab left open on its page
    facts: dict[str, Any] = field(default_factory=dict)  # what earlier steps learned (ids, numbers, shas)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the person's shell ----------------------------------------------------------------------
    def ao(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*ao_command(), *args],
            env=self.env,
            cwd=cwd or self.repo,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ao_ok(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> str:
        result = self.ao(*args, cwd=cwd, timeout=timeout)
        assert result.returncode == 0, (
            f"`ao {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            + self.diagnostics()
        )
        return result.stdout

    def tmux(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["tmux", *args], env=self.env, capture_output=True, text=True, timeout=10, check=check
        )

    def pane(self, session_id: str) -> str:
        """What a person attached to the agent sees, with its scrollback."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-3000", "-t", f"={session_id}:").stdout

    def tmux_sessions(self) -> list[str]:
        proc = self.tmux("list-sessions", "-F", "#{session_name}")
        return proc.stdout.split() if proc.returncode == 0 else []

    def received(self, session_id: str) -> list[str]:
        """Every message the agent read from its terminal, as it read it (raw)."""
        path = self.agent_log / f"{session_id}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]

    def input_escapes(self, session_id: str) -> list[str]:
        """Every escape sequence (not a paste) that reached the agent's input, when it arrived."""
        path = self.agent_log / f"{session_id}.escapes"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    # --- the API with a token --------------------------------------------------------------------
    def api(self, path: str, *, method: str = "GET", json_body: dict | None = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.base}/api/v1/{path.lstrip('/')}",
            headers={"Authorization": f"Bearer {self.token}"},
            json=json_body,
            timeout=15,
        )

    def session_facts(self, session_id: str) -> dict:
        response = self.api(f"sessions/{session_id}/")
        assert response.status_code == 200, response.text
        return response.json()

    # --- waiting ---------------------------------------------------------------------------------
    def wait(
        self,
        what: str,
        probe: Callable[[], T],
        *,
        timeout: float = 30,
        session: str | None = None,
        show: Callable[[], str] | None = None,
    ) -> T:
        """Poll ``probe`` until it returns something truthy; fail with what a person would look
        at: ``show()`` (e.g. a panel's text), the ao log and the agents' panes."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = probe()
            except AssertionError as exc:  # a probe may assert on the way
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.25)
        shown = f"\n--- on screen ---\n{show()}" if show is not None else ""
        raise AssertionError(
            f"waited {timeout:.0f} s for: {what}\nlast seen: {str(last)[:2000]}{shown}"
            + self.diagnostics(session)
        )

    def diagnostics(self, session: str | None = None) -> str:
        parts = []
        if self.process is not None:
            parts.append("--- ao log (tail) ---\n" + "\n".join(self.process.lines[-40:]))
        for sid in [session] if session else sorted(self.tmux_sessions()):
            if sid:
                rows = [row for row in self.pane(sid).splitlines() if row.strip()]
                parts.append(f"--- pane {sid} (tail) ---\n" + "\n".join(rows[-40:]))
        return "\n" + "\n".join(parts)

    # --- the browser -----------------------------------------------------------------------------
    def new_tab(self):
        page = self.page.context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    def card_zone(self, session_id: str) -> str | None:
        card = self.page.locator(f"#card-{session_id}")
        return card.get_attribute("data-zone") if card.count() else None


def configure(world: World) -> str:
    """What a person does first: `ao init`, then point the config (as docs/CONFIG.md shows) at
    their agent and their tests. Returns the file as `ao init` wrote it."""
    said = world.ao_ok("init")
    config_path = world.repo / "ao.config.yaml"
    assert config_path.is_file(), said
    written = config_path.read_text()
    config = yaml.safe_load(written)
    (world.project,) = config["projects"]
    project = config["projects"][world.project]
    world.prefix = project["sessionPrefix"]
    project["agent"] = {
        "plugin": "custom",
        "command": [sys.executable, str(AGENT_SCRIPT), "--log-dir", str(world.agent_log)],
        "prompt_mode": "send",
        "ready_pattern": r"^journey-agent>\s*$",
    }
    project["scm"] = {
        "plugin": "local",
        "check_command": f"{sys.executable} -m unittest -v",
        "check_name": "unit",
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return written


@contextlib.contextmanager
def journey_world(
    root: Path, *, browser: bool = True, port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[World]:
    """Everything the journey starts, always stopped at the end: ao, its tmux server and (with
    ``browser``) Chromium. ``port``: ao's port, when something must know it before ao starts;
    ``env``: more of ao's environment."""
    # tmux puts its socket under TMUX_TMPDIR: a short private directory gives ao a tmux server of
    # its own, and the test (with the same environment) reads the same server's panes.
    tmux_dir = Path(tempfile.mkdtemp(prefix="aoj-tmux-"))
    home = root / "ao-home"  # ao creates it, as it does ~/.ao
    ao_environment = ao_env(home, AO_SWEEP_INTERVAL="1", TMUX_TMPDIR=str(tmux_dir), **(env or {}))
    for name in ("TMUX", "AO_LOG_LEVEL"):  # not inside the test's tmux; ao's own default log level
        ao_environment.pop(name, None)
    world = World(
        root=root,
        repo=make_user_repo(root / "calc"),
        home=home,
        agent_log=root / "agent-log",
        tmux_dir=tmux_dir,
        port=port or free_port(),
        env=ao_environment,
    )
    try:
        if not browser:
            yield world
            return
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            world.browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                world.page = world.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                world.page.on("dialog", lambda dialog: dialog.accept())
                yield world
            finally:
                world.browser.close()
    finally:
        if world.process is not None:
            world.process.kill()
        world.tmux("kill-server")
        shutil.rmtree(tmux_dir, ignore_errors=True)


def start_ao(world: World) -> None:
    world.process = AoProcess(["start", "--port", str(world.port)], world.env, cwd=world.repo)
    world.process.wait_for(rf"Dashboard: http://127\.0\.0\.1:{world.port}/")


def login(world: World) -> None:
    sign_in_with_link(world.page, LINK_RE.search(world.ao_ok("login-link")).group(1))
