"""Reactions end to end with a real agent in tmux: messages wait for a busy agent, and a failing
check arriving by a signed GitHub webhook (the fake GitHub) reaches the agent's screen with the
check's name and its log excerpt."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from reactions import services as reaction_services
from reactions.models import ReactionAttempt
from sessions.agents import messaging, observing, plugins, spawning
from sessions.models import Message, Session
from tests.factories import CheckRunFactory, ProjectFactory, PullRequestFactory
from tests.helpers.fixtures import kill_tmux_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "webhook-secret"
FAILING_LOG = "\n".join(
    [
        "2026-11-25T10:00:01.0000000Z ##[group]Run ruff check .",
        "2026-11-25T10:00:02.0000000Z app.py:3:1: F401 `os` imported but unused",
        "2026-11-25T10:00:03.0000000Z ##[error]Process completed with exit code 1.",
    ]
)

# A line-oriented agent: a "> " prompt, echoes each line; "work N" keeps it busy for N seconds
# with a spinner line like Claude Code's (erased when done), so ao sees it mid-turn.
AGENT = (
    "import sys, time\n"
    "print('> ', end='', flush=True)\n"
    "for line in sys.stdin:\n"
    "    line = line.strip().replace('\\x1b[200~', '').replace('\\x1b[201~', '')\n"
    "    if line.startswith('work '):\n"
    "        print('* Working… (esc to interrupt)', end='', flush=True)\n"
    "        time.sleep(float(line.split()[1]))\n"
    "        print('\\r\\x1b[2Kdone working', flush=True)  # the spinner is erased, as TUIs do\n"
    "    elif line:\n"
    "        print('received: ' + line, flush=True)\n"
    "    print('> ', end='', flush=True)\n"
)


@pytest.fixture
def tmux_server():
    name = f"ao-react-{uuid.uuid4().hex[:8]}"
    yield name
    kill_tmux_server(name)


def project_settings(tmux_server, **extra):
    return {
        "agent": {"command": [sys.executable, "-u", "-c", AGENT], "ready_pattern": r"^> ?$"},
        "runtime": {"socket_name": tmux_server, "enter_delay": 0.05, "width": 200, "height": 50},
        **extra,
    }


def pane(socket: str, name: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-S", "-300", "-t", f"={name}:"],
        capture_output=True,
        text=True,
    ).stdout


def eventually(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def spawn(project, tmux_server, *, branch: str) -> Session:
    session = spawning.session_spawn(project=project, prompt="start the task", branch=branch)
    session.refresh_from_db()
    assert session.phase == "running", session.error
    assert eventually(lambda: "received: start the task" in pane(tmux_server, session.id))
    return session


def test_a_reaction_waits_while_the_agent_is_busy_then_is_delivered(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    project = ProjectFactory(key="web", session_prefix="web", path=str(repo.path), agent="custom",
                             plugin_settings=project_settings(tmux_server))  # fmt: skip
    session = spawn(project, tmux_server, branch="feat/busy")
    settings.AO_INLINE_DELIVERY_WAIT = 0.0  # no inline watching from now on: a held message stays queued
    ctx = plugins.context_for(session)
    ctx.runtime.send_text(plugins.runtime_handle_for(session), "work 4")
    assert eventually(lambda: "esc to interrupt" in pane(tmux_server, session.id))
    pull = PullRequestFactory(session=session, project=project, ci_state="failing", branch="feat/busy")
    CheckRunFactory(pull_request=pull, name="unit-tests", conclusion="failure",
                    log_excerpt="FAILED tests/test_app.py::test_login - KeyError: 'user'")  # fmt: skip

    outcomes = reaction_services.session_react(session=session, global_overrides={})

    assert [(o.rule, o.did) for o in outcomes] == [("ci-failed", "sent")]
    message = Message.objects.get(session=session, sender="reaction")
    assert message.state == "queued"  # held: the agent is mid-turn
    assert "unit-tests" not in pane(tmux_server, session.id)

    assert eventually(lambda: "done working" in pane(tmux_server, session.id), timeout=8)
    sent, held = messaging.messages_deliver(session_id=session.id, wait=5)

    assert (sent, held) == (1, False)
    screen = eventually(lambda: (p := pane(tmux_server, session.id)) and "KeyError" in p and p)
    assert "received: - unit-tests: failure" in screen
    assert "FAILED tests/test_app.py::test_login - KeyError: 'user'" in screen
    message.refresh_from_db()
    assert message.state in ("delivered", "confirmed")
    assert ReactionAttempt.objects.get(session=session, rule="ci-failed").attempts == 1


@pytest.fixture
def gh(monkeypatch, settings):
    from integrations.github.pool import forget_clients
    from tests.fakes.github import FakeGitHub

    settings.AO_GITHUB_WEBHOOK_SECRET = SECRET
    with FakeGitHub() as fake:
        fake.add_repo("acme/web")
        monkeypatch.setenv("GITHUB_TOKEN", fake.token)
        yield fake
    forget_clients()


def test_failing_check_by_webhook_reaches_the_agents_screen(
    client, gh, repo, tmux_server, settings, tmp_path
):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    scm = {"scm": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01}}
    project = ProjectFactory(key="web", session_prefix="web", path=str(repo.path), agent="custom", repo="acme/web",
                             scm="github", plugin_settings=project_settings(tmux_server, **scm))  # fmt: skip
    session = spawn(project, tmux_server, branch="feat/login")
    fake_repo = gh.repo("acme/web")
    pull = fake_repo.add_pull("feat/login", title="Fix login")
    check = fake_repo.add_check_run(pull.head_sha, "lint", conclusion="failure", log=FAILING_LOG)

    delivery = gh.webhook("check_run", secret=SECRET, check_id=check.id)
    headers = {
        f"HTTP_{k.upper().replace('-', '_')}": v for k, v in delivery.headers.items() if k != "Content-Type"
    }
    response = client.post(
        "/webhooks/github/web", data=delivery.body, content_type="application/json", **headers
    )

    assert response.status_code == 202
    screen = eventually(lambda: (p := pane(tmux_server, session.id)) and "F401" in p and p, timeout=15)
    assert "received: - lint: failure" in screen
    assert "app.py:3:1: F401 `os` imported but unused" in screen
    assert pull.head_sha[:7] in screen
    # the same delivery again (GitHub retries) and a sweep: still exactly one message
    client.post("/webhooks/github/web", data=delivery.body, content_type="application/json", **headers)
    observing.session_observe(session=Session.objects.get(pk=session.pk))
    assert Message.objects.filter(session=session, sender="reaction").count() == 1
