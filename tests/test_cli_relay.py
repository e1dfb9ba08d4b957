"""`ao status`, `ao session ls` and `ao send` while `ao start` serves this AO_HOME: the running ao
runs them (sessions.cli.cli_relay), the command itself never loads Django, and what it prints is what
the command prints when it runs by itself (the same command with the door file moved aside)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_embedded import ao_env, ao_process, django_shell, free_port, git_repo, run_ao

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# Prints a prompt, echoes each line it gets (ao's custom agent plugin types into it).
ECHO_AGENT = (
    "import sys\n"
    "print('> ', end='', flush=True)\n"
    "for line in sys.stdin:\n"
    "    line = line.strip().replace('\\x1b[200~', '').replace('\\x1b[201~', '')\n"
    "    print('received: ' + line, flush=True)\n"
    "    print('> ', end='', flush=True)\n"
)
AGE = re.compile(r"\b\d+[smhd](\d\d?[mh])?\b")


def django_imports(stderr: str) -> list[str]:
    """The django modules a process imported (its PYTHONPROFILEIMPORTTIME lines)."""
    return [line for line in stderr.splitlines() if re.search(r"\|\s+django(\.|$)", line)]


def printed(stderr: str) -> str:
    """stderr without the import-time lines."""
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("import time:"))


def same_json(text: str) -> object:
    data = json.loads(text)
    if isinstance(data, dict):  # ao status --json: the moment it was taken differs
        data.pop("generated_at")
        for session in data["sessions"]:
            session.pop("age_seconds")
    return data


def pane(socket: str, name: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", f"={name}:"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


def eventually(predicate, timeout: float = 30.0):
    import time

    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def test_read_and_send_commands_are_answered_by_the_running_ao(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    socket_name = f"ao-relay-{os.getpid()}"
    (repo / "ao.config.yaml").write_text(
        "projects:\n  relay:\n    path: .\n    sessionPrefix: relay\n    tracker: local\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket_name}}}\n"
        "    agent:\n      plugin: custom\n      ready_pattern: '^> ?$'\n"
        f"      command: [{json.dumps(sys.executable)}, -u, -c, {json.dumps(ECHO_AGENT)}]\n"
    )
    env = ao_env(home, USER="relay-tester", AO_INLINE_DELIVERY_WAIT="10")
    light = dict(env, PYTHONPROFILEIMPORTTIME="1")
    door = home / "cli.json"
    aside = home / "cli.json.aside"
    port = free_port()
    try:
        with ao_process(["start", "--port", str(port), "--no-browser-link"], env, cwd=repo) as ao:
            ao.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
            info = json.loads(door.read_text())
            assert info["pid"] == ao.proc.pid and info["url"] == f"http://127.0.0.1:{port}"
            assert stat.S_IMODE(door.stat().st_mode) == 0o600

            spawned = run_ao(["spawn", "--project", "relay", "--prompt", "start"], env, cwd=repo)
            assert spawned.returncode == 0, spawned.stderr
            assert eventually(lambda: "received: start" in pane(socket_name, "relay-1")), ao.output[-3000:]

            def both(*args: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
                """The command answered by the running ao, then run by itself (door moved aside)."""
                relayed = run_ao(list(args), light, cwd=repo)
                assert not django_imports(relayed.stderr), (args, django_imports(relayed.stderr)[:5])
                door.rename(aside)
                try:
                    alone = run_ao(list(args), env, cwd=repo)
                finally:
                    aside.rename(door)
                assert relayed.returncode == alone.returncode, (args, relayed.stderr, alone.stderr)
                assert printed(relayed.stderr) == printed(alone.stderr), args
                return relayed, alone

            for args in (["status", "--json"], ["session", "ls", "--json"], ["session", "ls", "-p", "relay"]):
                relayed, alone = both(*args)
                assert relayed.returncode == 0, relayed.stderr
                if "--json" in args:
                    assert same_json(relayed.stdout) == same_json(alone.stdout), args
                else:
                    assert AGE.sub("AGE", relayed.stdout) == AGE.sub("AGE", alone.stdout), args
            relayed, alone = both("status", "--live")
            assert AGE.sub("AGE", relayed.stdout) == AGE.sub("AGE", alone.stdout)
            assert relayed.stdout.startswith(f"ao is running at http://127.0.0.1:{port}/ (pid {ao.proc.pid})")
            assert re.search(r"^relay-1\s+relay\s+", relayed.stdout, re.M), relayed.stdout

            relayed, alone = both("send", "relay-1", "hello", "from", "the", "relay")
            assert re.fullmatch(r"message \d+ to relay-1: delivered( and confirmed)?\n", relayed.stdout)
            assert re.fullmatch(r"message \d+ to relay-1: delivered( and confirmed)?\n", alone.stdout)
            assert "received: hello from the relay" in pane(socket_name, "relay-1")
            audited = django_shell(
                env,
                "from sessions.models import AuditEntry\n"
                "print(sorted(set(AuditEntry.objects.filter(action='message.queue')"
                ".values_list('source', 'actor_kind', 'actor_name'))))",
            )
            assert audited.strip() == "[('cli', 'user', 'relay-tester')]"  # the caller, not the server

            relayed, alone = both("send", "nosuch-9", "hi")
            assert relayed.returncode == 1 and "no session 'nosuch-9'" in relayed.stderr

            # what it does not answer (a loop, help, a bad flag) the command does by itself, as before
            helped = run_ao(["session", "ls", "--help"], light, cwd=repo)
            assert helped.returncode == 0 and django_imports(helped.stderr)

            assert run_ao(["stop"], env).returncode == 0
            ao.proc.wait(60)
        assert not door.exists()
        after = run_ao(["status"], env, cwd=repo)
        assert after.returncode == 0 and after.stdout.startswith("ao is not running from this AO_HOME")
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=30)


def test_spawn_is_done_by_the_running_ao_as_the_command_does_it(tmp_path: Path) -> None:
    """`ao spawn` while `ao start` serves: the server spawns (the command loads no Django), with
    the same validation, errors, exit codes and output as the command run by itself, the project
    found from the caller's directory, the agent started and its task typed when it returns."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "repo").mkdir()
    (tmp_path / "other").mkdir()
    repo, other = git_repo(tmp_path / "repo"), git_repo(tmp_path / "other")
    socket_name = f"ao-relay-spawn-{os.getpid()}"
    agent = (
        "    orchestrator: {enabled: false}\n"
        "    agent:\n      plugin: custom\n      ready_pattern: '^> ?$'\n"
        f"      command: [{json.dumps(sys.executable)}, -u, -c, {json.dumps(ECHO_AGENT)}]\n"
    )
    (repo / "ao.config.yaml").write_text(
        "projects:\n"
        "  relay:\n    path: .\n    sessionPrefix: relay\n    tracker: local\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket_name}}}\n{agent}"
        f"  other:\n    path: {json.dumps(str(other))}\n    sessionPrefix: other\n    tracker: local\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket_name}}}\n{agent}"
    )
    env = ao_env(home, USER="spawn-tester", AO_INLINE_DELIVERY_WAIT="20")
    light = dict(env, PYTHONPROFILEIMPORTTIME="1")
    door, aside = home / "cli.json", home / "cli.json.aside"

    def both(
        args: list[str], cwd: Path, relays: bool = True
    ) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        """`ao spawn <args>` done by the running ao, then by the command itself (door moved aside)."""
        relayed = run_ao(["spawn", *args], light, cwd=cwd, timeout=120)
        assert bool(django_imports(relayed.stderr)) is not relays, (args, relayed.stderr[-2000:])
        door.rename(aside)
        try:
            alone = run_ao(["spawn", *args], env, cwd=cwd, timeout=120)
        finally:
            aside.rename(door)
        assert relayed.returncode == alone.returncode, (args, relayed.stderr, alone.stderr)
        return relayed, alone

    spawned = re.compile(
        r"(?P<id>(relay|other)-\d+): [a-z ]+ — .+ \(host \S+\)\n"
        r"  workspace: (?P<ws>\S+) \(branch (?P<branch>\S+)\)\n"
    )
    port = free_port()
    try:
        with ao_process(["start", "--port", str(port), "--no-browser-link"], env, cwd=repo) as ao:
            ao.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
            # no --project: the project whose checkout holds the caller's directory (not the server's)
            relayed, alone = both(["--prompt", "say hello"], cwd=other)
            assert relayed.returncode == 0, relayed.stderr
            got, want = spawned.fullmatch(relayed.stdout), spawned.fullmatch(alone.stdout)
            assert got and want, (relayed.stdout, alone.stdout)
            assert got["id"].startswith("other-") and want["id"].startswith("other-")
            assert printed(relayed.stderr) == printed(alone.stderr) == ""
            for match in (got, want):  # each agent started in its worktree and has its task when ao returns
                assert Path(match["ws"]).is_dir() and match["ws"].endswith(match["id"])
                assert "received: say hello" in pane(socket_name, match["id"]), pane(socket_name, match["id"])
            assert relayed.stdout.replace(got["id"], "ID").split(" — ")[0] == "ID: " + (
                alone.stdout.replace(want["id"], "ID").split(" — ")[0].removeprefix("ID: ")
            )

            relayed, alone = both(["--project", "relay", "--prompt", "as json", "--json"], cwd=other)
            assert relayed.returncode == alone.returncode == 0, relayed.stderr
            got_json, want_json = json.loads(relayed.stdout), json.loads(alone.stdout)
            assert got_json.keys() == want_json.keys() >= {"id", "status", "host", "workspace", "error"}
            for key in ("project", "kind", "agent", "issue", "host", "error"):
                assert got_json[key] == want_json[key], key
            assert got_json["project"] == "relay" and got_json["error"] == ""
            assert Path(got_json["workspace"]).is_dir() and got_json["workspace"].endswith(got_json["id"])

            # what is refused is refused alike: the same message and exit status, nothing spawned
            refusals = [
                (["--project", "nosuch", "--prompt", "x"], "no project 'nosuch'"),
                (["--project", "relay", "--branch", "bad..name", "--prompt", "x"], "bad..name"),
                (["--project", "relay", "bad ref"], "is not an issue reference"),
                (["--project", "relay", "999"], "--no-issue-check"),
                (["--prompt", "x"], "several projects"),  # from a directory no project holds
            ]
            for args, says in refusals:
                relayed, alone = both(args, cwd=tmp_path)
                assert relayed.returncode == 1, (args, relayed.stderr)
                assert printed(relayed.stderr) == printed(alone.stderr), args
                assert says in relayed.stderr and relayed.stdout == alone.stdout == "", (args, relayed.stderr)
            # what the relay does not take (a bad flag, help) the command does by itself, as before
            relayed, alone = both(["--project", "relay", "--bogus"], cwd=repo, relays=False)
            assert relayed.returncode == 2
            assert printed(relayed.stderr) == printed(alone.stderr)

            listed = json.loads(run_ao(["session", "ls", "--json"], env, cwd=repo).stdout)
            spawned_ids = [got["id"], want["id"], got_json["id"], want_json["id"]]
            assert sorted(s["id"] for s in listed) == sorted(spawned_ids)  # refusals wrote nothing
            audited = django_shell(
                env,
                "from sessions.models import AuditEntry\n"
                "print(sorted(set(AuditEntry.objects.filter(action='session.spawn')"
                ".values_list('source', 'actor_kind', 'actor_name'))))",
            )
            assert audited.strip() == "[('cli', 'user', 'spawn-tester')]"  # the caller, not the server
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=30)


# As ECHO_AGENT, but told "ask me" it asks a permission question and waits for the answer.
ASKING_AGENT = (
    "import sys\n"
    "print('> ', end='', flush=True)\n"
    "for line in sys.stdin:\n"
    "    line = line.strip().replace('\\x1b[200~', '').replace('\\x1b[201~', '')\n"
    "    print('received: ' + line, flush=True)\n"
    "    if line == 'ask me':\n"
    "        print('Do you want to proceed? [y/N] ', end='', flush=True)\n"
    "        print('answered: ' + sys.stdin.readline().strip(), flush=True)\n"
    "    print('> ', end='', flush=True)\n"
)


def test_send_to_an_agent_at_a_question_returns_queued_at_once_while_ao_runs(tmp_path: Path) -> None:
    """With `ao start` running its worker takes a held message over: `ao send` (answered by the
    running ao) says "queued" at once instead of watching the agent for AO_INLINE_DELIVERY_WAIT,
    which is for the CLI running by itself. The message is typed once the question is answered."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    socket_name = f"ao-relay-ask-{os.getpid()}"
    (repo / "ao.config.yaml").write_text(
        "projects:\n  relay:\n    path: .\n    sessionPrefix: relay\n    tracker: local\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket_name}}}\n"
        "    orchestrator: {enabled: false}\n"
        "    agent:\n      plugin: custom\n      ready_pattern: '^> ?$'\n"
        f"      command: [{json.dumps(sys.executable)}, -u, -c, {json.dumps(ASKING_AGENT)}]\n"
    )
    # watching the agent this long would outlast the command's timeout below
    env = ao_env(home, USER="relay-tester", AO_INLINE_DELIVERY_WAIT="600")
    port = free_port()
    try:
        with ao_process(["start", "--port", str(port), "--no-browser-link"], env, cwd=repo) as ao:
            ao.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
            spawned = run_ao(["spawn", "--project", "relay", "--prompt", "start"], env, cwd=repo, timeout=120)
            assert spawned.returncode == 0, spawned.stderr
            assert eventually(lambda: "received: start" in pane(socket_name, "relay-1")), ao.output[-3000:]
            asked = run_ao(["send", "relay-1", "ask", "me"], env, cwd=repo)
            assert asked.returncode == 0, asked.stderr
            assert eventually(lambda: "Do you want to proceed?" in pane(socket_name, "relay-1"))

            held = run_ao(["send", "relay-1", "carry", "on"], env, cwd=repo, timeout=90)

            assert held.returncode == 0, held.stderr
            assert re.fullmatch(
                r"message \d+ to relay-1: queued \(delivered when the agent is ready\)\n", held.stdout
            )
            assert "received: carry on" not in pane(socket_name, "relay-1")
            answered = run_ao(["send", "--answer-prompt", "relay-1", "y"], env, cwd=repo)
            assert answered.returncode == 0, answered.stderr
            assert eventually(lambda: "received: carry on" in pane(socket_name, "relay-1")), pane(
                socket_name, "relay-1"
            )
            screen = pane(socket_name, "relay-1")
            assert "answered: y" in screen and screen.count("received: carry on") == 1, screen
            assert run_ao(["stop"], env).returncode == 0
            ao.proc.wait(60)
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=30)
