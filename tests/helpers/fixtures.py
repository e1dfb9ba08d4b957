"""Fixtures shared by tests that run the real thing: git repos with a bare origin, tmux, ptys."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.procs import MigratedDatabases

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "ao test",
    "GIT_AUTHOR_EMAIL": "ao@example.invalid",
    "GIT_COMMITTER_NAME": "ao test",
    "GIT_COMMITTER_EMAIL": "ao@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path) -> str:
    """Run git in a test (argv, no shell) and return stdout; fail loudly."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **GIT_IDENTITY},
    )
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout.strip()


@dataclass(frozen=True)
class Repo:
    path: Path  # the project's own checkout
    origin: Path  # bare "remote"
    root: Path  # ao's managed workspaces root for the project

    def commit_file(self, cwd: Path, name: str, text: str = "x\n", message: str = "change") -> str:
        (cwd / name).write_text(text)
        git("add", "--", name, cwd=cwd)
        git("commit", "-q", "-m", message, cwd=cwd)
        return git("rev-parse", "HEAD", cwd=cwd)


@pytest.fixture
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def repo(tmp_path: Path, git_identity: None) -> Repo:
    """A project checkout on ``main`` with one pushed commit, its bare origin, and a managed root."""
    origin = tmp_path / "origin.git"
    project = tmp_path / "project"
    root = tmp_path / "workspaces" / "proj"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(project), cwd=tmp_path)
    (project / "README.md").write_text("hello\n")
    (project / ".gitignore").write_text(".env\n")
    git("add", "README.md", ".gitignore", cwd=project)
    git("commit", "-q", "-m", "initial", cwd=project)
    git("remote", "add", "origin", str(origin), cwd=project)
    git("push", "-q", "-u", "origin", "main", cwd=project)
    root.mkdir(parents=True)
    return Repo(path=project, origin=origin, root=root)


@pytest.fixture(scope="session")
def tmux_socket() -> Iterator[str]:
    """An isolated tmux server (``-L``) for this test run, killed at the end."""
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    name = f"ao-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    yield name
    kill_tmux_server(name)


def kill_tmux_server(socket_name: str, *, tmpdir: Path | None = None) -> None:
    """``tmux -L NAME kill-server`` and remove the socket file tmux leaves behind (``tmpdir``: the
    server's TMUX_TMPDIR, when not this process's)."""
    env = {**os.environ, "TMUX_TMPDIR": str(tmpdir)} if tmpdir is not None else None
    subprocess.run(
        ["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=10, check=False, env=env
    )
    root = tmpdir if tmpdir is not None else Path(os.environ.get("TMUX_TMPDIR") or "/tmp")
    socket_path = root / f"tmux-{os.getuid()}" / socket_name
    if socket_path.is_socket():
        socket_path.unlink()


@pytest.fixture
def tmux_runtime(tmux_socket: str):
    from integrations.runtime.tmux import TmuxRuntime

    return TmuxRuntime(TmuxRuntime.Config(socket_name=tmux_socket, enter_delay=0.05, width=120, height=30))


@pytest.fixture
def process_runtime():
    from integrations.runtime.process import ProcessRuntime

    return ProcessRuntime(ProcessRuntime.Config(enter_delay=0.05))


def wait_for(predicate, *, timeout: float = 5.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; return it, or the last value on timeout."""
    import time

    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


# A tiny line-oriented "agent": reports its argv, env and cwd, turns bracketed paste on (as TUIs
# do), then echoes each input line as ``got:<line>`` with paste markers made visible, until "quit".
ECHO_PROGRAM = r"""
import json, os, sys
sys.stdout.write("\x1b[?2004h")
print("argv=" + json.dumps(sys.argv[1:]))
print("env=" + os.environ.get("AO_TEST_VAR", "-"))
print("cwd=" + os.getcwd())
print("ready", flush=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    line = line.rstrip("\n").replace("\x1b[200~", "<P>").replace("\x1b[201~", "</P>")
    if line == "quit":
        break
    print("got:" + line, flush=True)
print("bye", flush=True)
"""


@pytest.fixture
def tmux_server() -> Iterator[str]:
    """A tmux server of the test's own (``-L`` name), started on first use and killed afterwards.

    Unlike ``tmux_socket`` it is fresh per test, so it inherits the environment the test set up
    (HOME, PATH) when the runtime starts it.
    """
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    name = f"ao-test-{uuid.uuid4().hex[:8]}"
    yield name
    kill_tmux_server(name)


@pytest.fixture
def builtin_plugins_only() -> Iterator[None]:
    """Hide the plugins tests register (in-memory SCMs, fake trackers) for the duration of a test,
    so what is generated from the registries (the config schema) is what ao ships."""
    from integrations.registry import REGISTRIES

    saved = {slot: dict(registry._plugins) for slot, registry in REGISTRIES.items()}
    for registry in REGISTRIES.values():
        registry._plugins = {
            key: cls for key, cls in registry._plugins.items() if cls.__module__.startswith("integrations.")
        }
    try:
        yield
    finally:
        for slot, plugins in saved.items():
            REGISTRIES[slot]._plugins = plugins


@pytest.fixture(scope="session")
def migrated_databases(tmp_path_factory) -> Iterator[MigratedDatabases]:
    """Migrated databases to copy (tests/helpers/procs.py, MigratedDatabases), made once per test
    process."""
    databases = MigratedDatabases(tmp_path_factory.mktemp("migrated"))
    try:
        yield databases
    finally:
        databases.drop()
