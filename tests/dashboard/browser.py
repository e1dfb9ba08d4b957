"""A real `ao start` and headless Chromium, shared by the browser tests and bench/board.py.

The server is the product as a person runs it: the embedded web + worker + beat process. Tests
change *stored facts* behind ao's back (a `manage.py shell` UPDATE, no service call, no
broadcast); only the embedded sweep can notice them, re-derive and push the card.

The seeded sessions run in a real tmux session (on a private socket) so that the sweep's
runtime probe finds them alive; they have no workspace, so the activity the test writes is the
activity the sweep sees.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.test_embedded import LINK_RE, ao_env, ao_process, django_shell, free_port, git_repo

CHROMIUM = Path(os.environ.get("AO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWER_PASSWORD = "viewer-pw-for-tests-only"


def require_browser() -> None:
    """Skip (locally) or fail (AO_REQUIRE_SERVICES) when Playwright or Chromium is missing."""
    from tests.conftest import service_unavailable

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        service_unavailable("the playwright package", f"{exc}; install the test extras")
    if not CHROMIUM.exists():
        service_unavailable("Chromium", f"{CHROMIUM} is missing; apt-get install chromium")
    if not shutil.which("tmux"):
        service_unavailable("tmux", "not installed")


SEED = """
from django.contrib.auth import get_user_model
from sessions.models import Membership, Project, Session
project = Project.objects.create(
    key="e2e", name="E2E shop", repo="acme/shop", path={path!r}, session_prefix="e2e", runtime="tmux",
    plugin_settings={{"runtime": {{"socket_name": {socket!r}}}}}, next_session_number={count} + 1,
)
for n in range(1, {count} + 1):
    Session.objects.create(
        id=f"e2e-{{n}}", project=project, number=n, agent="claude-code", issue_ref=str(100 + n),
        issue_title=f"Task number {{n}}: make the board live", phase="running", runtime_state="alive",
        activity="active", status="working", zone="working", host={host!r},
        runtime_handle={{"runtime": "tmux", "name": f"e2e-{{n}}", "data": {{"socket_name": {socket!r}}}}},
    )
viewer = get_user_model().objects.create_user("viewer", password={password!r})
Membership.objects.create(user=viewer, project=project, role="viewer")
print("seeded")
"""


@dataclass
class Live:
    base: str
    port: int
    env: dict[str, str]
    link: str
    socket: str
    out: Path
    shots: list[Path] = field(default_factory=list)

    def shell(self, code: str) -> str:
        return django_shell(self.env, code)

    def sign_in(self, page) -> None:
        """Sign ``page``'s browser in as the admin with the one-time link (it works once): open
        it, press its "Sign in" button, land on the board."""
        sign_in_with_link(page, self.link)

    def set_facts(self, session_id: str, **fields) -> None:
        """A plain UPDATE of stored facts: no service, no broadcast; the sweep must notice."""
        assignments = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        out = self.shell(
            "from django.utils import timezone\nfrom sessions.models import Session\n"
            f"print(Session.objects.filter(pk={session_id!r}).update(activity_at=timezone.now(), {assignments}))"
        )
        assert out.strip() == "1", out


def sign_in_with_link(page, link: str) -> None:
    """Open a one-time login link in the browser and press the page's "Sign in as ..." button (the
    link alone signs nobody in); wait for the board."""
    page.goto(link)
    page.get_by_role("button", name=re.compile(r"^Sign in as ")).click()
    page.wait_for_url(link.split("/accounts/", 1)[0] + "/")


def tmux(socket: str, *args: str) -> None:
    subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def live_server(tmp: Path, *, sessions: int = 1, sweep_interval: str = "0.5") -> Iterator[Live]:
    home, repo, out = tmp / "home", tmp / "repo", tmp / "out"
    for path in (home, repo, out):
        path.mkdir(parents=True, exist_ok=True)
    git_repo(repo)
    socket = f"ao-dash-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = ao_env(home, AO_SWEEP_INTERVAL=sweep_interval, AO_HOST_NAME="dash-host")
    try:
        for n in range(1, sessions + 1):
            # `cat` echoes what is typed, so a delivered message shows in the pane (confirmation).
            tmux(socket, "new-session", "-d", "-s", f"e2e-{n}", "-x", "120", "-y", "30", "cat")
        with ao_process(["start", "--port", str(port)], env, cwd=repo) as process:
            process.wait_for(rf"Dashboard: http://127\.0\.0\.1:{port}/")
            link = process.wait_for(LINK_RE).group(1)
            django_shell(
                env,
                SEED.format(
                    path=str(repo), socket=socket, count=sessions, host="dash-host", password=VIEWER_PASSWORD
                ),
            )
            yield Live(f"http://127.0.0.1:{port}", port, env, link, socket, out)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10, check=False)


@contextlib.contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def output_dir(name: str) -> Path:
    """Screenshots go under test-output/ in the repository (ignored by git) for a person to look at."""
    root = Path(__file__).resolve().parents[2] / "test-output" / name
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    require_browser()
    with live_server(tmp_path_factory.mktemp("dash")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(live) -> Iterator:
    with chromium() as b:
        yield b
