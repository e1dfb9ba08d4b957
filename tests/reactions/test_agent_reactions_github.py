"""The agent reactions in GitHub mode with the real things (issue 18.8): the stand-in agent driven
through the real Claude Code plugin in an isolated tmux server, real git worktrees, the fake GitHub
behind the project's SCM with signed webhooks, and a webhook notifier posting to a local capture
server. For agent-needs-input, agent-exited, agent-stuck, pr-closed and all-complete: the reaction
fires once, reaches a person through the notifier (their default action; the agent is sent
nothing), and the session's status and zone are the ones the board shows for it."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reactions.models import Notification
from reactions.notify import notifiers_apply
from sessions import tasks
from sessions.agents import messaging, operating, spawning
from sessions.core.config.schema import AoConfig
from sessions.flows import sweep
from sessions.models import Message, Session
from tests.factories import ProjectFactory
from tests.fakes.hooks import FakeHooks

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SECRET = "webhook-secret"
STANDIN = Path(__file__).resolve().parents[1] / "agent_standin" / "standin_agent.py"
STUCK_AFTER = 4  # seconds: the project's agent-stuck threshold


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("STANDIN_WORK_SECONDS", "0.3")
    return home


@pytest.fixture
def tmux_server(agent_home: Path, tmux_server: str) -> str:
    """The test's own tmux server, started only after HOME is set, so agents inherit it."""
    return tmux_server


@pytest.fixture
def hooks(settings, tmp_path, monkeypatch):
    """A webhook notifier (no routing: it gets every priority) and no top-level reactions."""
    config = tmp_path / "ao.config.yaml"
    config.write_text("projects:\n  web:\n    path: .\n")
    settings.AO_CONFIG = str(config)
    monkeypatch.setenv("AO_TEST_HOOK_SECRET", "s3cret")
    with FakeHooks() as server:
        notifiers_apply(
            AoConfig.model_validate(
                {
                    "projects": {},
                    "notifiers": {
                        "team": {
                            "plugin": "webhook",
                            "url": server.url("/team"),
                            "secret_env": "AO_TEST_HOOK_SECRET",
                            "timeout": 2,
                        }
                    },
                }
            )
        )
        yield server


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


@pytest.fixture
def project(repo, gh, hooks, tmux_server, agent_home, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_INLINE_DELIVERY_WAIT = 3.0
    shim = tmp_path / "bin" / "claude"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n')
    shim.chmod(0o755)
    return ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        repo="acme/web",
        agent="claude-code",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        scm="github",
        plugin_settings={
            "agent": {"binary": str(shim), "home": str(agent_home), "permissions": "auto-edit"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
            "scm": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01},
        },
    )


def pane(socket: str, name: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", f"={name}:", "-S", "-200"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout


def eventually(predicate, *, timeout: float = 20.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def told(hooks: FakeHooks, session_id: str = "", rule: str = "") -> list[dict]:
    """What the notifier received (the webhook notifier's JSON bodies), optionally for one session/rule."""
    bodies = [r.json() for r in hooks.requests]
    return [
        b
        for b in bodies
        if (not rule or b["rule"] == rule) and (not session_id or b["session"] == session_id)
    ]


def deliver(client, delivery):
    headers = {
        f"HTTP_{k.upper().replace('-', '_')}": v for k, v in delivery.headers.items() if k != "Content-Type"
    }
    return client.post("/webhooks/github/web", data=delivery.body, content_type="application/json", **headers)


def test_agent_reactions_reach_people_once_with_the_right_status(
    client, project, gh, hooks, tmux_server, django_capture_on_commit_callbacks
) -> None:
    def observe(session_id: str) -> Session:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.session_observe_task(session_id)  # an observation, then the reactions
        return Session.objects.select_related("pull_request").get(pk=session_id)

    def state(session_id: str) -> tuple[str, str]:
        session = Session.objects.get(pk=session_id)
        return session.status, session.zone

    sessions = []
    for task in ("add the login page", "clean the build", "write the changelog"):
        with django_capture_on_commit_callbacks(execute=True):
            session = spawning.session_spawn(project=project, prompt=task)
        session.refresh_from_db()
        assert session.phase == "running", session.error
        sessions.append(session.id)
    ask, leave, idle = sessions  # web-1, web-2, web-3
    for sid in sessions:
        assert eventually(lambda sid=sid: observe(sid).activity == "ready"), pane(tmux_server, sid)

    # --- agent-needs-input: a permission dialog on the agent's screen ------------------------------
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(
            session=Session.objects.get(pk=ask), text="/ask-permission", sender_name="ana"
        )
    assert eventually(lambda: "Do you want to proceed?" in pane(tmux_server, ask))
    assert eventually(lambda: observe(ask).status == "needs_input"), observe(ask).status_reason
    assert state(ask) == ("needs_input", "respond")
    for _ in range(3):
        observe(ask)
    assert eventually(lambda: told(hooks, ask, "agent-needs-input"))
    (note,) = told(hooks, ask, "agent-needs-input")
    assert note["priority"] == "urgent" and ask in note["title"]
    assert Notification.objects.filter(session_id=ask, rule="agent-needs-input").count() == 1

    # --- agent-exited: the agent process ends ---------------------------------------------------------
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(session=Session.objects.get(pk=leave), text="/exit", sender_name="ana")
    assert eventually(lambda: observe(leave).status in ("exited", "runtime_lost"))
    assert Session.objects.get(pk=leave).zone == "respond"
    for _ in range(3):
        observe(leave)
    assert eventually(lambda: told(hooks, leave, "agent-exited"))
    (note,) = told(hooks, leave, "agent-exited")
    assert note["priority"] == "urgent" and f"ao session restore {leave}" in note["body"]

    # --- agent-stuck: at its prompt for longer than the project's threshold -------------------------
    # (set only now: on a busy machine the others could sit at their prompt that long before)
    project.reactions = {"agent-stuck": {"threshold": f"{STUCK_AFTER}s"}}
    project.save()
    assert eventually(lambda: observe(idle).status == "stuck", timeout=STUCK_AFTER + 20)
    assert state(idle) == ("stuck", "respond")
    assert "idle for longer than" in Session.objects.get(pk=idle).status_reason
    for _ in range(3):
        observe(idle)
    assert eventually(lambda: told(hooks, idle, "agent-stuck"))
    assert len(told(hooks, idle, "agent-stuck")) == 1

    # --- pr-closed: the agent's PR is closed on GitHub; a signed webhook says so ----------------------
    session = Session.objects.get(pk=idle)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=session.workspace_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    fake_repo = gh.repo("acme/web")
    pull = fake_repo.add_pull(session.branch, title="Write the changelog", head_sha=head)
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            deliver(
                client, gh.webhook("pull_request", secret=SECRET, number=pull.number, action="opened")
            ).status_code
            == 202
        )
    assert Session.objects.get(pk=idle).pull_request.number == pull.number
    with gh.lock:
        pull.state = "closed"
    for delivery in ("closed-1", "closed-2"):  # a re-sent delivery (new id) tells nobody again
        with django_capture_on_commit_callbacks(execute=True):
            response = deliver(
                client,
                gh.webhook(
                    "pull_request", secret=SECRET, number=pull.number, action="closed", delivery=delivery
                ),
            )
        assert response.status_code == 202
    assert state(idle) == ("pr_closed", "done")
    observe(idle)
    assert eventually(lambda: told(hooks, idle, "pr-closed"))
    (note,) = told(hooks, idle, "pr-closed")
    assert f"PR #{pull.number}" in note["title"] and "closed without merging" in note["title"]

    # --- all-complete: the last sessions are ended by a person ---------------------------------------
    assert not told(hooks, rule="all-complete")
    for sid in (ask, leave):
        with django_capture_on_commit_callbacks(execute=True):
            operating.session_kill(session=Session.objects.get(pk=sid), reason="done with it")
        assert state(sid) == ("killed", "done")
    with django_capture_on_commit_callbacks(execute=True):
        sweep.project_sweep(project=project)
        sweep.project_sweep(project=project)
    assert eventually(lambda: told(hooks, rule="all-complete"))
    (note,) = told(hooks, rule="all-complete")
    assert note["title"] == "web: all 3 sessions are done"
    assert Notification.objects.filter(rule="all-complete").count() == 1

    # every one of these went to people; the agents were sent nothing by a reaction
    assert not Message.objects.filter(sender="reaction").exists()
    rules = sorted(b["rule"] for b in told(hooks))
    assert rules == sorted(
        ["agent-needs-input", "agent-exited", "agent-stuck", "pr-closed", "all-complete"]
    ), rules
