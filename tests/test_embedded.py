"""`ao start` end to end, as a real process: one-time login, websockets, /healthz, and the
embedded beat -> worker thread -> sweep -> broadcast path reaching a connected browser.

Also home to the process helpers that tests/test_scaleout.py and tests/test_cli.py share.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

REPO_ROOT = Path(__file__).resolve().parent.parent
MANAGE = REPO_ROOT / "manage.py"
LINK_RE = re.compile(r"(http://\S+/accounts/one-time/\S+/\S+/)")
STARTUP_TIMEOUT = 45.0


# --- helpers shared by the process tests -------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ao_command() -> list[str]:
    """The installed `ao` console script next to this Python (or the module, if not installed)."""
    script = Path(sys.executable).with_name("ao")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ao_site.cli"]


def ao_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for an ao subprocess: its own AO_HOME, embedded unless told otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AO_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        AO_HOME=str(home),
        AO_SECRET_KEY="test-secret-key-for-ao-subprocesses-0123456789-abcdefghij",
        DJANGO_SETTINGS_MODULE="ao_site.settings",
        PYTHONUNBUFFERED="1",
        AO_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def run_ao(args: list[str], env: dict[str, str], *, cwd: Path | None = None, timeout: float = 60):
    return subprocess.run(
        [*ao_command(), *args], env=env, cwd=cwd or REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def django_shell(env: dict[str, str], code: str, *, timeout: float = 60) -> str:
    """Run Python in a `manage.py shell` subprocess against the same database; return its stdout."""
    result = subprocess.run(
        [sys.executable, str(MANAGE), "shell", "--no-imports", "-c", code],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"shell failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


SEED_SESSION = """
from sessions.models import Project, PullRequest, Session
project, _ = Project.objects.get_or_create(
    key={key!r}, defaults=dict(name="E2E", path={path!r}, session_prefix={prefix!r}, runtime="process"),
)
session = Session.objects.create(
    id={session_id!r}, project=project, number=1, agent="claude-code", issue_ref="42",
    issue_title="Make the board live", phase="running", runtime_state="alive", activity="active",
    status="working", zone="working",
)
PullRequest.objects.create(project=project, session=session, number=7, branch="feat/live-board")
print("seeded")
"""

# The fact that changes: the session's PR got merged. It is stored with a plain UPDATE (no
# service, so no broadcast); only the background sweep can notice it. A merged PR outranks every
# other observation (the sweep also probes the runtime, which this fake session does not have).
PR_MERGED = """
from sessions.models import PullRequest
print(PullRequest.objects.filter(session_id={session_id!r}).update(state="merged"))
"""


def git_repo(path: Path) -> Path:
    git_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "ao test",
        "GIT_AUTHOR_EMAIL": "ao@example.test",
        "GIT_COMMITTER_NAME": "ao test",
        "GIT_COMMITTER_EMAIL": "ao@example.test",
    }
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=path, env=git_env, check=True, timeout=30)
    return path.resolve()


class AoProcess:
    """An ao subprocess whose output is collected line by line; always killed at teardown."""

    def __init__(
        self, args: list[str], env: dict[str, str], *, cwd: Path, command: list[str] | None = None
    ) -> None:
        self.args, self.cwd = args, cwd
        self.proc = subprocess.Popen(
            [*(ao_command() if command is None else command), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str | re.Pattern, timeout: float = STARTUP_TIMEOUT) -> re.Match:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in list(self.lines):
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(
                    f"`ao {' '.join(self.args)}` exited ({self.proc.wait()}):\n{self.output}"
                )
            if match := regex.search(line):
                return match
        raise AssertionError(f"no line matching {regex.pattern!r} within {timeout} s:\n{self.output}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._reader.join(5)


@contextlib.contextmanager
def ao_process(args: list[str], env: dict[str, str], *, cwd: Path) -> Iterator[AoProcess]:
    process = AoProcess(args, env, cwd=cwd)
    try:
        yield process
    finally:
        process.kill()


def wait_http(url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def open_link_and_sign_in(client: httpx.Client, link: str) -> httpx.Response:
    """Open the one-time link with ``client`` and press its "Sign in" button, as a browser does
    (the page's form, with its CSRF token, from ao's own origin); the answer to the press."""
    from tests.helpers.one_time import sign_in_form

    base = link.split("/accounts/", 1)[0]
    page = client.get(link)
    assert page.status_code == 200, page.text
    action, fields, _ = sign_in_form(page.text)
    return client.post(base + action, data=fields, headers={"Origin": base})


def login_with_link(link: str) -> str:
    """Sign in with the one-time link; return the Cookie header value holding the new login session."""
    with httpx.Client(timeout=10) as client:
        response = open_link_and_sign_in(client, link)
        assert response.status_code == 302, response.text
        assert response.headers["location"] == "/"
        session = client.cookies.get("sessionid")
        assert session
        board = client.get(link.split("/accounts/", 1)[0] + "/")
        assert board.status_code == 200
    return f"sessionid={session}"


def ws_connect(port: int, *, cookie: str | None, origin: str | None = None) -> ClientConnection:
    headers = {"Cookie": cookie} if cookie else {}
    return connect(
        f"ws://127.0.0.1:{port}/ws/board/",
        origin=origin or f"http://127.0.0.1:{port}",
        additional_headers=headers,
        open_timeout=10,
    )


def receive_until(ws: ClientConnection, predicate: Callable[[str], bool], timeout: float) -> list[str]:
    """Collect messages until one satisfies ``predicate``; fail after ``timeout`` seconds."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no matching push within {timeout} s; received {seen!r}")
        try:
            message = ws.recv(timeout=remaining)
        except TimeoutError:
            continue
        seen.append(message if isinstance(message, str) else message.decode())
        if predicate(seen[-1]):
            return seen


def is_merged_card(session_id: str) -> Callable[[str], bool]:
    return lambda html: f'id="card-{session_id}"' in html and ">Merged<" in html


def refused_status(port: int, *, cookie: str | None, origin: str | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(port, cookie=cookie, origin=origin).close()
    return refused.value.response.status_code


# --- the embedded server -------------------------------------------------------------------------------
class Embedded:
    def __init__(self, process: AoProcess, port: int, env: dict[str, str], link: str) -> None:
        self.process, self.port, self.env, self.link = process, port, env, link
        self.base = f"http://127.0.0.1:{port}"
        self._cookie: str | None = None

    @property
    def cookie(self) -> str:
        """A logged-in admin's Cookie header, from a fresh `ao login-link` (the printed link is
        tested on its own, so no test depends on another's order)."""
        if self._cookie is None:
            result = run_ao(["login-link"], self.env)
            assert result.returncode == 0, result.stderr
            self._cookie = login_with_link(LINK_RE.search(result.stdout).group(1))
        return self._cookie


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Iterator[Embedded]:
    home = tmp_path_factory.mktemp("ao-home")
    workdir = git_repo(tmp_path_factory.mktemp("repo"))  # first run here: `ao start` writes its config
    port = free_port()
    env = ao_env(home, AO_SWEEP_INTERVAL="0.5")
    with ao_process(["start", "--port", str(port)], env, cwd=workdir) as process:
        process.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
        link = process.wait_for(LINK_RE).group(1)
        yield Embedded(process, port, env, link)


@pytest.mark.slow
def test_first_start_writes_config_prints_dashboard_and_creates_admin(embedded: Embedded) -> None:
    output = embedded.process.output
    assert "embedded: web, worker and beat in this process" in output
    repo = Path(embedded.process.cwd)
    assert f"Created {repo / 'ao.config.yaml'} for {repo}" in output  # first run in a git repo
    assert (repo / "ao.config.yaml").is_file()
    assert f"Config: {repo / 'ao.config.yaml'}" in output
    assert re.search(r"Created the admin account '[^']+'\.", output)
    pid = json.loads((Path(embedded.env["AO_HOME"]) / "ao.pid").read_text())
    assert pid["pid"] == embedded.process.proc.pid
    assert pid["url"] == f"{embedded.base}/"


@pytest.mark.slow
def test_healthz_reports_every_dependency_ok(embedded: Embedded) -> None:
    response = httpx.get(f"{embedded.base}/healthz", timeout=10)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["mode"] == "embedded"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "channel_layer": True,
        "broker": True,
    }
    # tasks go to the worker threads, not inline in the request that queued them (an agent's `ao pr
    # create` waited there for ao's merge-conflict message to be typed into that same busy agent)
    assert body["checks"]["broker"]["detail"] == "in-process worker threads"


@pytest.mark.slow
def test_websocket_without_login_is_refused(embedded: Embedded) -> None:
    assert refused_status(embedded.port, cookie=None) == 403


@pytest.mark.slow
def test_one_time_link_logs_in_once(embedded: Embedded) -> None:
    assert login_with_link(embedded.link)

    with httpx.Client(timeout=10) as client:
        again = client.get(embedded.link)
    assert again.status_code == 302
    assert again.headers["location"].startswith("/accounts/login/")
    assert "sessionid" not in again.cookies


@pytest.mark.slow
def test_login_link_gives_a_fresh_link_to_the_running_server(embedded: Embedded) -> None:
    result = run_ao(["login-link"], embedded.env)

    assert result.returncode == 0, result.stderr
    link = LINK_RE.search(result.stdout).group(1)
    assert link.startswith(f"{embedded.base}/accounts/one-time/") and link != embedded.link
    assert login_with_link(link)  # it works (once), whatever happened to the first one
    unknown = run_ao(["login-link", "nobody"], embedded.env)
    assert unknown.returncode == 1 and "no active account 'nobody'" in unknown.stderr


@pytest.mark.slow
def test_cross_origin_websocket_is_refused(embedded: Embedded) -> None:
    assert refused_status(embedded.port, cookie=embedded.cookie, origin="http://evil.example") == 403


@pytest.mark.slow
def test_background_sweep_pushes_card_to_connected_websocket(embedded: Embedded, tmp_path: Path) -> None:
    django_shell(
        embedded.env,
        SEED_SESSION.format(key="e2e", path=str(tmp_path), prefix="e2e", session_id="e2e-1"),
    )
    with ws_connect(embedded.port, cookie=embedded.cookie) as ws:
        # When: a stored fact changes behind ao's back (no service call, no broadcast) ...
        assert django_shell(embedded.env, PR_MERGED.format(session_id="e2e-1")).strip() == "1"

        # ... then beat -> worker thread -> sweep -> re-derive -> broadcast reaches this socket: the
        # card in the done zone. (A card pushed for another change of this session, such as its
        # runtime found gone by the activity watcher, may show the merged PR a moment before the
        # sweep re-derives the status: not what this waits for.)
        seen = receive_until(
            ws, lambda html: is_merged_card("e2e-1")(html) and 'data-zone="done"' in html, 30
        )

    assert 'data-zone="done"' in seen[-1] and ">Merged<" in seen[-1]


# An agent that writes the address ao gave it (AO_URL) to a file, then waits like an agent would.
TELL_AO_URL = "import os, pathlib, sys, time\npathlib.Path(sys.argv[1]).write_text(os.environ['AO_URL'])\ntime.sleep(120)\n"


@pytest.mark.slow
def test_agents_are_told_the_address_ao_serves(embedded: Embedded, tmp_path: Path) -> None:
    """ao serves on a port other than 8000: an agent spawned by the server (API) and one spawned by
    the CLI (inline, in embedded mode) both get that address, and `ao doctor` finds it answering."""
    repo = git_repo(tmp_path)
    socket_name = f"ao-url-{os.getpid()}"
    (repo / "ao.config.yaml").write_text(
        "projects:\n  urls:\n    path: .\n    sessionPrefix: urls\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket_name}}}\n"
        "    agent:\n      plugin: custom\n"
        f"      command: [{json.dumps(sys.executable)}, -c, {json.dumps(TELL_AO_URL)}, {json.dumps(str(tmp_path / 'url'))}]\n"
    )
    assert run_ao(["config", "apply", str(repo / "ao.config.yaml")], embedded.env, cwd=repo).returncode == 0
    token = run_ao(["token", "create", "agents-url"], embedded.env).stdout.strip()
    try:
        spawned = httpx.post(
            f"{embedded.base}/api/v1/projects/urls/spawn",
            json={"prompt": "say where ao is"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert spawned.status_code == 201, spawned.text + embedded.process.output[-3000:]
        by_server = wait_file(tmp_path / "url")
        (tmp_path / "url").unlink()
        by_cli = run_ao(["spawn", "--project", "urls", "--prompt", "say where ao is"], embedded.env, cwd=repo)
        assert by_cli.returncode == 0, by_cli.stderr

        assert by_server == embedded.base
        assert wait_file(tmp_path / "url") == embedded.base
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=30)
    doctor = json.loads(run_ao(["doctor", "--json"], embedded.env).stdout)
    [reach] = [check for check in doctor["checks"] if check["name"] == "agents reach ao"]
    assert reach["ok"] is True
    assert reach["detail"].startswith(f"agents are told AO_URL={embedded.base} (from ao start)")


def wait_file(path: Path, timeout: float = STARTUP_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} was never written")


@pytest.mark.slow
def test_ao_stop_shuts_it_down_cleanly(embedded: Embedded) -> None:
    result = run_ao(["stop", "--timeout", "30"], embedded.env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ao (pid {embedded.process.proc.pid}) stopped."
    assert embedded.process.proc.wait(10) == 0
    assert "ao stopped." in embedded.process.output
    assert not (Path(embedded.env["AO_HOME"]) / "ao.pid").exists()
    assert "Traceback" not in embedded.process.output
