"""What an agent's shell finds, as a real `ao start` starts it: the project's own tools on PATH
(never ao's virtualenv), `ao` for the commands an agent runs, and nothing of ao's data.

The agent is a tiny program that writes its environment and what its PATH finds, then waits like
an agent at its prompt; the tests run the installed `ao` with that environment, as the agent's
shell would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_embedded import REPO_ROOT, AoProcess, ao_env, free_port, git_repo, run_ao

pytestmark = pytest.mark.slow

AO_VENV_BIN = Path(sys.executable).parent  # ao's own interpreter, pip, pytest, django-admin ...
TOOLS = ("python", "python3", "pip", "pip3", "pytest", "django-admin", "daphne", "celery")

# Writes {"env": ..., "which": ...} to <dir>/<AO_SESSION>.json, then waits.
SHELL_AGENT = r"""
import json, os, shutil, sys, time
tools = sys.argv[2].split(",") + ["ao"]
path = os.path.join(sys.argv[1], os.environ.get("AO_SESSION", "x") + ".json")
with open(path + ".tmp", "w") as f:
    json.dump({"env": dict(os.environ), "which": {t: shutil.which(t) for t in tools}}, f)
os.replace(path + ".tmp", path)
print("> ", flush=True)
time.sleep(600)
"""


@dataclass
class Agent:
    env: dict[str, str]
    which: dict[str, str | None]


@dataclass
class Served:
    process: AoProcess
    env: dict[str, str]  # ao's own environment (`ao start`'s)
    home: Path
    repo: Path
    dumps: Path
    socket: str

    def spawn(self) -> Agent:
        before = set(self.dumps.glob("*.json"))
        spawned = run_ao(["spawn", "--project", "shell", "--prompt", "look around"], self.env, cwd=self.repo)
        assert spawned.returncode == 0, spawned.stdout + spawned.stderr + self.process.output[-3000:]
        deadline = time.monotonic() + 45
        while not (new := set(self.dumps.glob("*.json")) - before):
            assert time.monotonic() < deadline, "the agent never wrote its environment"
            time.sleep(0.1)
        dump = json.loads(new.pop().read_text())
        return Agent(env=dump["env"], which=dump["which"])


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("ao-home")
    repo = git_repo(tmp_path_factory.mktemp("repo"))
    dumps = tmp_path_factory.mktemp("dumps")
    socket = f"ao-shell-{os.getpid()}"
    (repo / "ao.config.yaml").write_text(
        "projects:\n  shell:\n    path: .\n    sessionPrefix: shell\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket}}}\n"
        "    agent:\n      plugin: custom\n"
        f"      command: [{json.dumps(sys.executable)}, -c, {json.dumps(SHELL_AGENT)}, "
        f"{json.dumps(str(dumps))}, {json.dumps(','.join(TOOLS))}]\n"
    )
    # a person who activated ao's virtualenv before `ao start`
    env = ao_env(
        home,
        PATH=os.pathsep.join([str(AO_VENV_BIN), os.environ["PATH"]]),
        VIRTUAL_ENV=str(AO_VENV_BIN.parent),
    )
    port = free_port()
    process = AoProcess(["start", "--port", str(port)], env, cwd=repo)
    try:
        process.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
        yield Served(process, env, home, repo, dumps, socket)
    finally:
        process.kill()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def agent(served: Served) -> Agent:
    return served.spawn()


def test_an_agents_path_finds_the_projects_tools_and_only_aos_command(served: Served, agent: Agent) -> None:
    user_path = [p for p in served.env["PATH"].split(os.pathsep) if p != str(AO_VENV_BIN)]
    agent_bin = served.home / "agent-bin"

    # ao's own command comes first, alone in its directory; the rest is the person's PATH
    assert agent.env["PATH"].split(os.pathsep) == [str(agent_bin), *user_path]
    assert sorted(p.name for p in agent_bin.iterdir()) == ["ao"]
    assert agent.which["ao"] == str(agent_bin / "ao")
    assert Path(agent.which["ao"]).resolve() == (AO_VENV_BIN / "ao").resolve()
    # python, pip, pytest ... are the project's (whatever the person's PATH finds), never ao's
    for tool in TOOLS:
        assert agent.which[tool] == shutil.which(tool, path=os.pathsep.join(user_path)), tool
        assert agent.which[tool] is None or Path(agent.which[tool]).parent != AO_VENV_BIN, tool
    assert "VIRTUAL_ENV" not in agent.env  # ao's virtualenv is not the agent's

    # and the `ao` it finds runs
    version = subprocess.run(
        ["ao", "version"], env=agent.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("ao ")
