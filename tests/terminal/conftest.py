"""Fixtures for the terminal tests: real tmux sessions on the run's isolated server."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


def start_shell(socket_name: str, name: str, *, cols: int = 80, rows: int = 24) -> None:
    """A tmux session running a plain interactive bash with a known prompt."""
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    argv = ["tmux", "-L", socket_name, "new-session", "-d", "-s", name, "-x", str(cols), "-y", str(rows),
            "--", "env", f"PS1={PROMPT}", "HISTFILE=/dev/null", "bash", "--norc", "--noprofile", "-i"]  # fmt: skip
    for attempt in (1, 2):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)
        # a server whose last session just ended may exit under our feet: start a new one
        if proc.returncode == 0 or attempt == 2 or "server exited unexpectedly" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def shell_session(tmux_socket: str) -> Iterator[str]:
    name = f"term-{uuid.uuid4().hex[:8]}"
    start_shell(tmux_socket, name)
    yield name
    tmux(tmux_socket, "kill-session", "-t", f"={name}", check=False)


# --- a real `ao start` with a tmux session to attach to (shared by the websocket and browser tests)
SEED = """
from django.contrib.auth import get_user_model
from django.test import Client
from sessions.models import Membership, Project, Session
User = get_user_model()
project = Project.objects.create(
    key="term", name="Terminal", path={path!r}, session_prefix="term", runtime="tmux",
    plugin_settings={{"runtime": {{"socket_name": {socket!r}}}}},
)
def session(sid, host=""):
    return Session.objects.create(
        id=sid, project=project, number=int(sid.rsplit("-", 1)[1]), kind="worker",
        agent="claude-code", phase="running", runtime_state="alive", status="working", zone="working", host=host,
        runtime_handle={{"runtime": "tmux", "name": sid, "data": {{"socket_name": {socket!r}}}}},
    )
session("term-1")
session("term-2", host="some-other-host")
# ended sessions: one errored before its agent ran (no terminal ever), one killed (its tmux gone)
Session.objects.create(
    id="term-8", project=project, number=8, kind="worker", agent="claude-code", phase="errored",
    status="errored", zone="respond", error="claude-code agent: 'claude' was not found on PATH",
)
# sessions whose agent is starting: no terminal yet (term-7 gets one while a browser waits)
for sid in ("term-6", "term-7"):
    Session.objects.create(
        id=sid, project=project, number=int(sid[-1]), kind="worker", agent="claude-code", phase="spawning",
        status="spawning", zone="working",
    )
session("term-9")
Session.objects.filter(pk="term-9").update(phase="killed", runtime_state="lost", status="killed", zone="done")
cookies = {{}}
for name, role in (("viewer", "viewer"), ("operator", "operator"), ("outsider", None), ("leaver", "viewer")):
    user = User.objects.create_user(name, password=None)
    if role:
        Membership.objects.create(user=user, project=project, role=role)
    client = Client()
    client.force_login(user)
    cookies[name] = "sessionid=" + client.cookies["sessionid"].value
import json
print("COOKIES=" + json.dumps(cookies))
"""


@dataclass
class Server:
    port: int
    env: dict[str, str]
    socket_name: str
    session: str  # a tmux session (bash) the seeded session term-1 points at
    cookies: dict[str, str]
    log: Callable[[], str]  # what `ao start` has printed so far

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="package")
def server(tmp_path_factory, tmux_socket: str) -> Iterator[Server]:
    from tests.test_embedded import (
        LINK_RE,
        ao_env,
        ao_process,
        django_shell,
        free_port,
        git_repo,
        login_with_link,
    )

    home = tmp_path_factory.mktemp("ao-home")
    workdir = git_repo(tmp_path_factory.mktemp("repo"))
    port = free_port()
    env = ao_env(home)
    env["AO_ACCESS_RECHECK_SECONDS"] = "0.5"  # open terminals re-check roles this often (default 30)
    start_shell(tmux_socket, "term-1")
    try:
        with ao_process(["start", "--port", str(port)], env, cwd=workdir) as process:
            link = process.wait_for(LINK_RE).group(1)
            output = django_shell(env, SEED.format(path=str(workdir), socket=tmux_socket))
            cookies = json.loads(output.split("COOKIES=", 1)[1])
            cookies["admin"] = login_with_link(link)
            yield Server(
                port=port,
                env=env,
                socket_name=tmux_socket,
                session="term-1",
                cookies=cookies,
                log=lambda: process.output,
            )
            assert "Traceback" not in process.output, process.output
    finally:
        tmux(tmux_socket, "kill-session", "-t", "=term-1", check=False)
