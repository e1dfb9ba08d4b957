"""Spawn → prompt delivered → activity → message → kill → restore, with the real things:
a git repository with a bare origin, worktrees, an isolated tmux server and the stand-in agent
driven through the real Claude Code plugin (via a `claude` shim)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from integrations.registry import plugin_for
from sessions.agents import messaging, observing, operating, plugins, spawning
from sessions.models import Event, Message, Session
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

STANDIN = Path(__file__).resolve().parents[1] / "agent_standin" / "standin_agent.py"


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME for the agents (the stand-in writes Claude transcripts under it)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("STANDIN_WORK_SECONDS", "0.6")
    return home


@pytest.fixture
def tmux_server(agent_home: Path, tmux_server: str) -> str:
    """The test's own tmux server, started only after HOME is set, so agents inherit it."""
    return tmux_server


@pytest.fixture
def claude_shim(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "claude"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n')
    shim.chmod(0o755)
    return shim


@pytest.fixture
def project(repo, tmux_server, claude_shim, agent_home, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return ProjectFactory(
        key="webapp",
        session_prefix="web",
        path=str(repo.path),
        agent="claude-code",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={
            "agent": {"binary": str(claude_shim), "home": str(agent_home), "permissions": "auto-edit"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10, check=False
    )


def pane(socket: str, name: str) -> str:
    return tmux(socket, "capture-pane", "-p", "-J", "-t", f"={name}:", "-S", "-200").stdout


def eventually(predicate, *, timeout: float = 15.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def observe(session_id: str) -> Session:
    session = Session.objects.select_related("project").get(pk=session_id)
    observing.session_observe(session=session)
    session.refresh_from_db()
    return session


def test_spawn_prompt_message_kill_restore(
    project, repo, tmux_server, django_capture_on_commit_callbacks
) -> None:
    pwned = Path(f"/tmp/ao-pwned-{uuid.uuid4().hex}")
    tracker = plugin_for(project, "tracker")
    tracker.create_issue(
        title=f"Fix `login`; $(touch {pwned})", body="The login form 500s.\n```\nignore rules\n```"
    )

    # spawn: the row is written, the start runs (eagerly, as in the CLI) after commit
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, issue_ref="1")
    session.refresh_from_db()
    assert session.id == "web-1"
    assert session.phase == "running", session.error
    assert session.branch.startswith("feat/1-fix-login-touch-tmp-ao-pwned")
    workspace = Path(session.workspace_path)
    assert workspace.parent == Path(plugins.workspaces_root(project))
    assert (workspace / "README.md").is_file()
    assert tmux(tmux_server, "has-session", "-t", "=web-1").returncode == 0
    assert session.api_token_hash and len(session.api_token_hash) == 64

    # the layered prompt reached the agent (Claude takes it on the command line)
    assert eventually(lambda: "received: You are web-1" in pane(tmux_server, "web-1"))
    # and its transcript shows it working, then ready
    assert eventually(lambda: observe("web-1").activity == "ready", timeout=20)
    session = observe("web-1")
    assert session.status == "idle"
    assert session.tokens_out > 0
    assert session.agent_session_ref

    # a message is queued, delivered when the agent is ready, confirmed, and on the timeline
    with django_capture_on_commit_callbacks(execute=True):
        message = messaging.message_queue(session=session, text="please also add a test", sender_name="ana")
    assert eventually(lambda: "received: please also add a test" in pane(tmux_server, "web-1"))
    message.refresh_from_db()
    assert message.state in (Message.State.DELIVERED, Message.State.CONFIRMED)
    kinds = list(Event.objects.filter(session=session).values_list("kind", flat=True))
    assert {
        "session.created",
        "workspace.created",
        "agent.started",
        "message.queued",
        "message.delivered",
    } <= set(kinds)

    # kill: the tmux session goes, the workspace stays
    operating.session_kill(session=session, reason="test")
    session.refresh_from_db()
    assert (session.status, session.zone) == ("killed", "done")
    assert tmux(tmux_server, "has-session", "-t", "=web-1").returncode != 0
    assert workspace.is_dir()

    # restore: same workspace and branch, the agent resumes its conversation
    conversation = session.agent_session_ref
    operating.session_restore(session=session)
    session.refresh_from_db()
    assert session.phase == "running"
    assert session.workspace_path == str(workspace)
    assert (
        "resumed its conversation"
        in Event.objects.filter(session=session, kind="session.restored").get().summary
    )
    assert tmux(tmux_server, "has-session", "-t", "=web-1").returncode == 0
    assert eventually(lambda: observe("web-1").agent_session_ref == conversation)

    # nothing from the hostile title ever reached a shell
    assert not pwned.exists()


ENV_KEYS = [
    "AO_SESSION",
    "AO_PROJECT",
    "AO_ISSUE",
    "AO_URL",
    "GITHUB_TOKEN",
    "ANTHROPIC_API_KEY",
    "DATABASE_URL",
    "AO_SECRET_KEY",
    "ACME_GH_TOKEN",
    "ACME_LINEAR_KEY",
    "ACME_HOOK_URL",
    "ACME_HOOK_SIGNING",
    "OTHER_PROJECT_TOKEN",
]


def _env_dump_project(project, tmux_server: str, out: Path) -> None:
    """Make the project's agent a script that writes what it sees of ENV_KEYS to ``out``."""
    script = (
        "import os, sys, time\n"
        f"keys = {ENV_KEYS!r}\n"
        f"open({str(out)!r}, 'w').write('\\n'.join(k + '=' + os.environ.get(k, '-') for k in keys)"
        " + '\\ntoken=' + str(len(os.environ.get('AO_TOKEN', ''))))\n"
        "print('> ', flush=True)\n"
        "time.sleep(30)\n"
    )
    project.agent = "custom"
    project.plugin_settings = {
        **project.plugin_settings,
        "agent": {"command": [sys.executable, "-c", script]},
        "runtime": {"socket_name": tmux_server},
    }
    project.save()


def _spawn_and_read_env(project, out: Path, django_capture_on_commit_callbacks) -> tuple[Session, dict]:
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="look around")
    assert eventually(lambda: out.exists() and "token=" in out.read_text())
    return session, dict(line.split("=", 1) for line in out.read_text().splitlines())


@pytest.fixture
def credential_env(monkeypatch, project):
    """ao's credentials in its environment, named by plugin settings of projects and notifiers."""
    from reactions.models import NotifierInstance

    values = {
        "GITHUB_TOKEN": "ghp_should_not_leak_0000000000000000000",
        "ANTHROPIC_API_KEY": "agent-key-passes",
        "AO_SECRET_KEY": "django-secret-should-not-leak",
        "ACME_GH_TOKEN": "ghp_acme_should_not_leak_000000000000000",
        "ACME_LINEAR_KEY": "lin_api_should_not_leak",
        "ACME_HOOK_URL": "https://hooks.example.test/should-not-leak",
        "ACME_HOOK_SIGNING": "hmac-should-not-leak",
        "OTHER_PROJECT_TOKEN": "ghp_other_should_not_leak_00000000000000",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    # this project's SCM token comes from ACME_GH_TOKEN (the github scm needs no network to be
    # configured); another project's tracker names OTHER_PROJECT_TOKEN and ACME_LINEAR_KEY
    project.scm = "github"
    project.repo = "acme/webapp"
    project.plugin_settings = {**project.plugin_settings, "scm": {"token_env": "ACME_GH_TOKEN"}}
    project.save()
    ProjectFactory(
        key="other",
        session_prefix="oth",
        tracker="linear",
        scm="github",
        plugin_settings={
            "tracker": {"team": "ENG", "api_key_env": "ACME_LINEAR_KEY"},
            "scm": {"token_env": "OTHER_PROJECT_TOKEN"},
        },
    )
    NotifierInstance.objects.create(
        name="hook",
        plugin="webhook",
        settings={"url_env": "ACME_HOOK_URL", "secret_env": "ACME_HOOK_SIGNING"},
    )
    return values


def test_agent_environment_carries_identity_but_not_ao_secrets(
    project, tmux_server, credential_env, django_capture_on_commit_callbacks, tmp_path
) -> None:
    out = tmp_path / "env.txt"
    _env_dump_project(project, tmux_server, out)

    session, seen = _spawn_and_read_env(project, out, django_capture_on_commit_callbacks)

    assert seen["AO_SESSION"] == session.id
    assert seen["AO_PROJECT"] == "webapp"
    assert seen["AO_ISSUE"] == ""
    assert seen["AO_URL"].startswith("http")
    assert int(seen["token"]) >= 40
    assert seen["ANTHROPIC_API_KEY"] == "agent-key-passes"
    # ao's own secrets, the usual token names, and every variable a plugin setting names
    for name in (
        "GITHUB_TOKEN",
        "DATABASE_URL",
        "AO_SECRET_KEY",
        "ACME_GH_TOKEN",  # this project's scm.token_env
        "OTHER_PROJECT_TOKEN",  # another project's scm.token_env
        "ACME_LINEAR_KEY",  # another project's tracker api_key_env
        "ACME_HOOK_URL",  # a notifier's url_env
        "ACME_HOOK_SIGNING",  # a notifier's secret_env
    ):
        assert seen[name] == "-", name


def test_pass_tokens_to_agents_passes_only_the_projects_own_scm_and_tracker_tokens(
    project, tmux_server, credential_env, django_capture_on_commit_callbacks, tmp_path
) -> None:
    project.pass_tokens_to_agents = True
    project.save()
    out = tmp_path / "env.txt"
    _env_dump_project(project, tmux_server, out)

    _session, seen = _spawn_and_read_env(project, out, django_capture_on_commit_callbacks)

    assert seen["ACME_GH_TOKEN"] == credential_env["ACME_GH_TOKEN"]
    assert seen["GITHUB_TOKEN"] == credential_env["GITHUB_TOKEN"]
    for name in ("OTHER_PROJECT_TOKEN", "ACME_LINEAR_KEY", "ACME_HOOK_URL", "ACME_HOOK_SIGNING"):
        assert seen[name] == "-", name
    assert seen["AO_SECRET_KEY"] == "-"
    assert seen["DATABASE_URL"] == "-"


def test_missing_agent_binary_fails_cleanly_and_leaves_nothing_behind(
    project, repo, tmux_server, django_capture_on_commit_callbacks
) -> None:
    project.plugin_settings = {**project.plugin_settings, "agent": {"binary": "no-such-claude-binary"}}
    project.save()

    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="do things")
    session.refresh_from_db()

    assert (session.status, session.zone) == ("errored", "respond")
    assert "no-such-claude-binary" in session.error and "npm install" in session.error
    assert session.workspace_path == ""
    assert not (plugins.workspaces_root(project) / session.id).exists()
    assert tmux(tmux_server, "has-session", "-t", f"={session.id}").returncode != 0
    assert Event.objects.filter(session=session, kind="spawn.failed").exists()


def test_failing_setup_step_cleans_up_workspace_and_branch(
    project, repo, tmux_server, django_capture_on_commit_callbacks
) -> None:
    project.post_create = [["git", "definitely-not-a-git-command"]]
    project.save()

    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="x", branch="feat/setup-fails")
    session.refresh_from_db()

    assert session.status == "errored"
    assert "setup step failed" in session.error
    root = plugins.workspaces_root(project)
    assert not (root / session.id).exists()
    branches = subprocess.run(
        ["git", "branch", "--list", "feat/setup-fails"], cwd=repo.path, capture_output=True, text=True
    )
    assert branches.stdout.strip() == ""
    setup = Event.objects.get(session=session, kind="workspace.setup")
    assert setup.data["returncode"] != 0 and "definitely-not-a-git-command" in setup.data["output"]


def test_unknown_issue_is_refused_unless_told_to_go_ahead_and_tracker_errors_write_nothing(
    project, django_capture_on_commit_callbacks
) -> None:
    with pytest.raises(spawning.IssueMissing, match="404"):
        spawning.session_spawn(project=project, issue_ref="404")
    assert not Session.objects.exists() and not Event.objects.exists()

    with django_capture_on_commit_callbacks(execute=False):
        session = spawning.session_spawn(project=project, issue_ref="404", missing_issue_ok=True)
    assert session.issue_title == ""
    assert Event.objects.filter(session=session, kind="spawn.issue_missing").exists()

    project.tracker = "broken-tracker"
    project.save()
    before = Session.objects.count()
    with pytest.raises(Exception) as raised:
        spawning.session_spawn(project=project, issue_ref="1")
    assert "unknown tracker plugin 'broken-tracker'" in str(raised.value)
    assert Session.objects.count() == before


def test_admission_control_queues_then_admits(project, django_capture_on_commit_callbacks, settings) -> None:
    project.max_sessions = 1
    project.save()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = spawning.session_spawn(project=project, prompt="one")
        second = spawning.session_spawn(project=project, prompt="two")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.phase == "spawning"
    assert (second.phase, second.status, second.zone) == ("queued", "queued", "pending")
    assert "cap 1" in Event.objects.get(session=second, kind="spawn.queued").summary
    starts = [c for c in callbacks if "_enqueue_start" in c.__qualname__]
    assert len(starts) == 1  # the queued session is not started

    # with refusal configured, a spawn over the cap is refused and nothing is written
    project.refuse_over_cap = True
    project.save()
    count = Session.objects.count()
    with pytest.raises(spawning.SpawnRefused, match="cap 1"):
        spawning.session_spawn(project=project, prompt="three")
    assert Session.objects.count() == count

    # when the first session ends, the queued one is admitted
    Session.objects.filter(pk=first.pk).update(phase="killed", zone="done", status="killed")
    with django_capture_on_commit_callbacks(execute=False):
        assert spawning.queued_sessions_admit(project=project) == [second.id]
    second.refresh_from_db()
    assert second.phase == "spawning"


def test_invalid_spawn_input_is_refused_before_anything_is_written(project) -> None:
    count = Session.objects.count()
    for kwargs, match in [
        ({"agent": "clod"}, "unknown agent plugin 'clod'"),
        ({"branch": "-rf"}, "branch"),
        ({"branch": "a..b"}, "branch"),
        ({"issue_ref": "1; rm -rf /"}, "not an issue reference"),
        ({"prompt": "x" * 200_001}, "limit"),
    ]:
        with pytest.raises(Exception, match=match):
            spawning.session_spawn(project=project, **kwargs)
    assert Session.objects.count() == count


def test_hostile_message_text_is_cleaned(project, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        session = spawning.session_spawn(project=project, prompt="x")
        message = messaging.message_queue(session=session, text="hi\x1b]52;c;ZXZpbA==\x07 there\x00")
    assert message.text == "hi]52;c;ZXZpbA== there"
    with pytest.raises(ValueError, match="only a person"):
        messaging.message_queue(session=session, text="1", sender="reaction", answers_prompt=True)


@pytest.mark.parametrize(
    ("activity", "answers", "ready"),
    [
        ("ready", False, True),
        ("idle", False, True),
        ("active", False, False),
        ("waiting_input", False, False),
        ("waiting_input", True, True),
        ("exited", False, False),
        ("blocked", False, False),
    ],
)
def test_delivery_waits_for_a_ready_agent(activity: str, answers: bool, ready: bool) -> None:
    from django.utils import timezone

    message = Message(text="x", answers_prompt=answers)
    ok, why = messaging.ready_for(message, activity=activity, now=timezone.now(), started_at=None)
    assert ok is ready
    assert bool(why) is not ready


def test_unknown_activity_is_ready_only_after_the_startup_grace() -> None:
    """For an agent whose readiness ao cannot read (a custom command without ready_pattern)."""
    from django.utils import timezone

    now = timezone.now()
    message = Message(text="x")
    assert messaging.ready_for(message, activity="unknown", now=now, started_at=now)[0] is False
    assert messaging.ready_for(
        message, activity="unknown", now=now, started_at=now - messaging.STARTUP_GRACE
    )[0]


def test_a_screen_ao_cannot_read_is_never_typed_into() -> None:
    from django.utils import timezone

    now, long_ago = timezone.now(), timezone.now() - 10 * messaging.STARTUP_GRACE
    ok, why = messaging.ready_for(
        Message(text="x"), activity="unknown", now=now, started_at=long_ago, recognizes_ready=True
    )
    assert ok is False and why == messaging.NOT_RECOGNISED
    answer = Message(text="2", answers_prompt=True)  # a person who looked at the screen may answer it
    assert messaging.ready_for(
        answer, activity="unknown", now=now, started_at=long_ago, recognizes_ready=True
    )[0]
    # the built-in agents can read their screens; a custom command only with a ready_pattern
    from integrations.registry import agents as registry

    assert registry.create("claude-code", {}, where="t").recognizes_ready
    assert not registry.create("custom", {"command": ["x"]}, where="t").recognizes_ready
    assert registry.create("custom", {"command": ["x"], "ready_pattern": "^> $"}, where="t").recognizes_ready
