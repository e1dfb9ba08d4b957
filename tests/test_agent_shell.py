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

from tests.test_embedded import REPO_ROOT, AoProcess, ao_env, ao_process, free_port, git_repo, run_ao

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

    def dump(self, session_id: str) -> Agent:
        path = self.dumps / f"{session_id}.json"
        deadline = time.monotonic() + 45
        while not path.exists():
            assert time.monotonic() < deadline, f"{session_id} never wrote its environment"
            time.sleep(0.1)
        dump = json.loads(path.read_text())
        return Agent(env=dump["env"], which=dump["which"])

    def spawn(self) -> Agent:
        spawned = run_ao(
            ["spawn", "--project", "shell", "--prompt", "look around", "--json"], self.env, cwd=self.repo
        )
        assert spawned.returncode == 0, spawned.stdout + spawned.stderr + self.process.output[-3000:]
        return self.dump(json.loads(spawned.stdout)["id"])


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    person = tmp_path_factory.mktemp("person")  # HOME: ao runs with its default AO_HOME, ~/.ao
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
        person / ".ao",
        HOME=str(person),
        PATH=os.pathsep.join([str(AO_VENV_BIN), os.environ["PATH"]]),
        VIRTUAL_ENV=str(AO_VENV_BIN.parent),
    )
    del env["AO_HOME"]
    port = free_port()
    process = AoProcess(["start", "--port", str(port)], env, cwd=repo)
    try:
        process.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
        yield Served(process, env, person / ".ao", repo, dumps, socket)
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


AGENT_REFUSES = (
    "ao: `ao {command}` is not for agents: in ao session {session} you run `ao report STATE [NOTE] "
    "[--pr URL]` and `ao pr create [--title T] [--body B] [--force]` (not an agent? `unset AO_SESSION "
    "AO_TOKEN`, or set AO_HOME)\n"
)


def in_agent(served: Served, agent: Agent, home: Path, *args: str) -> subprocess.CompletedProcess:
    """`ao <args>` in the agent's shell, with ``home`` as its HOME (where ~/.ao would be made)."""
    home.mkdir(exist_ok=True)
    return subprocess.run(
        ["ao", *args],
        env={**agent.env, "HOME": str(home)},
        cwd=served.repo,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("pr", "ls"),
        ("pr", "show", "2"),
        ("session", "ls"),
        ("intake", "status"),
        ("status", "--json"),
        ("spawn", "--prompt", "x"),
        ("doctor",),
    ],
)
def test_other_commands_in_an_agent_refuse_and_never_make_an_ao_home(
    served: Served, agent: Agent, tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = in_agent(served, agent, tmp_path / "home", *args)

    assert (result.returncode, result.stdout) == (1, "")
    command = " ".join(args[:2]) if args[0] in ("pr", "session", "intake") else args[0]
    assert result.stderr == AGENT_REFUSES.format(command=command, session=agent.env["AO_SESSION"])
    assert not (tmp_path / "home" / ".ao").exists()  # no database, no secret key made for nothing


def test_an_agent_never_talks_to_the_ao_of_its_home(served: Served, agent: Agent, tmp_path: Path) -> None:
    # Given the agent's HOME is the home of a running ao (here: this very one, at ~/.ao)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".ao").symlink_to(served.home)

    listed = in_agent(served, agent, home, "session", "ls")

    assert listed.returncode == 1 and listed.stdout == ""  # not that ao's sessions
    assert "is not for agents" in listed.stderr


def test_what_an_agent_runs_still_works(served: Served, agent: Agent, tmp_path: Path) -> None:
    home = tmp_path / "home"
    reported = in_agent(served, agent, home, "report", "working", "looking around")
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout == f"reported working; {agent.env['AO_SESSION']} is now working\n"
    version = in_agent(served, agent, home, "version")
    assert version.returncode == 0 and version.stdout.startswith("ao ")
    for args in (("report", "--help"), ("pr", "create", "--help"), ("--help",)):
        helped = in_agent(served, agent, home, *args)
        assert helped.returncode == 0, (args, helped.stderr)
        assert "ao report" in helped.stdout or "usage: ao pr create" in helped.stdout, (args, helped.stdout)
    wrong = in_agent(served, agent, home, "report", "finished")
    assert wrong.returncode == 2 and "invalid choice: 'finished'" in wrong.stderr
    other_branch = in_agent(served, agent, home, "pr", "create", "--branch", "other")  # its own branch only
    assert other_branch.returncode == 2
    assert (
        other_branch.stderr.splitlines()[-1] == "ao pr create: error: unrecognized arguments: --branch other"
    )
    assert not (home / ".ao").exists()


def test_the_orchestrator_still_drives_its_ao(served: Served, agent: Agent, tmp_path: Path) -> None:
    """The orchestrator's shell is an agent's plus ao's home and database on purpose (its `ao
    status`, `ao spawn`, `ao session ls` act on this ao), also when ao runs with the default AO_HOME."""
    orchestrator = served.dump("shell-orchestrator")
    assert orchestrator.env["AO_HOME"] == str(served.home)
    assert orchestrator.env["PATH"] == agent.env["PATH"]

    listed = in_agent(served, orchestrator, tmp_path / "home", "session", "ls")

    assert listed.returncode == 0, listed.stderr
    assert agent.env["AO_SESSION"] in listed.stdout


def test_agents_follow_ao_restarted_on_another_port(tmp_path: Path) -> None:
    """`ao stop; ao start --port B`: an agent started while ao served port A still reaches ao."""
    home, dumps = tmp_path / "ao-home", tmp_path / "dumps"
    dumps.mkdir()
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    socket = f"ao-moved-{os.getpid()}"
    (repo / "ao.config.yaml").write_text(
        "projects:\n  moved:\n    path: .\n    sessionPrefix: moved\n    orchestrator: {enabled: false}\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket}}}\n"
        "    agent:\n      plugin: custom\n"
        f"      command: [{json.dumps(sys.executable)}, -c, {json.dumps(SHELL_AGENT)}, "
        f"{json.dumps(str(dumps))}, python]\n"
    )
    env = ao_env(home)
    first, second = free_port(), free_port()
    try:
        with ao_process(["start", "--port", str(first)], env, cwd=repo) as before:
            before.wait_for(rf"Dashboard: http://127\.0\.0\.1:{first}/")
            spawned = run_ao(["spawn", "--project", "moved", "--prompt", "work", "--json"], env, cwd=repo)
            assert spawned.returncode == 0, spawned.stderr + before.output[-3000:]
            session_id = json.loads(spawned.stdout)["id"]
            served = Served(before, env, home, repo, dumps, socket)
            agent = served.dump(session_id)
            assert agent.env["AO_URL"] == f"http://127.0.0.1:{first}"
            assert run_ao(["stop", "--timeout", "30"], env).returncode == 0
        with ao_process(["start", "--port", str(second)], env, cwd=repo) as after:
            after.wait_for(rf"Dashboard: http://127\.0\.0\.1:{second}/")

            reported = in_agent(served, agent, tmp_path / "agent-home", "report", "working", "still here")

            assert reported.returncode == 0, reported.stderr
            assert reported.stdout == f"reported working; {session_id} is now working\n"
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
