"""The orchestrator session with a real git worktree and tmux: start, keep-alive, stop, exclusions."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from sessions.agents import operating, plugins, spawning
from sessions.core import hosts
from sessions.flows import sweep
from sessions.models import Event, Message, Project, Session
from sessions.prs import prsync
from sessions.watchers import orchestrator
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A stand-in agent: keeps the prompt it got on its command line, then echoes its input.
AGENT = (
    "import pathlib, sys\n"
    "pathlib.Path('.ao-prompt.txt').write_text(sys.argv[-1] if len(sys.argv) > 1 else '')\n"
    "print('> ', end='', flush=True)\n"
    "for line in sys.stdin:\n"
    "    line = line.strip().replace('\\x1b[200~', '').replace('\\x1b[201~', '')\n"
    "    print('received: ' + line, flush=True)\n"
    "    print('> ', end='', flush=True)\n"
)


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_INLINE_DELIVERY_WAIT = 5.0
    return ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="claude-code",  # the workers' agent; the orchestrator's is configured on its own
        orchestrator_agent="custom",
        orchestrator_agent_settings={
            "command": [sys.executable, "-u", "-c", AGENT],
            "prompt_mode": "argv",
            "ready_pattern": r"^> ?$",
        },
        runtime="tmux",
        tracker="local",
        plugin_settings={"runtime": {"socket_name": tmux_server, "enter_delay": 0.05}},
    )


def pane(socket: str, name: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", f"={name}:"], capture_output=True, text=True
    ).stdout


def kill_tmux_session(socket: str, name: str) -> None:
    subprocess.run(["tmux", "-L", socket, "kill-session", "-t", f"={name}"], capture_output=True, check=True)


def eventually(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_start_keep_alive_stop(project, tmux_server) -> None:
    out = run("orchestrator", "start")
    assert out.startswith("web-orchestrator: ")
    session = Session.objects.get(pk="web-orchestrator")
    assert (session.kind, session.phase, session.agent) == ("orchestrator", "running", "custom"), (
        session.error
    )
    workspace = Path(session.workspace_path)
    assert workspace.parent == Path(plugins.workspaces_root(project))
    branch = subprocess.run(
        ["git", "branch", "--show-current"], cwd=workspace, capture_output=True, text=True
    )
    assert branch.stdout.strip() == orchestrator.BRANCH == session.branch
    assert eventually(lambda: "> " in pane(tmux_server, "web-orchestrator"))
    prompt = eventually(
        lambda: (workspace / ".ao-prompt.txt").exists() and (workspace / ".ao-prompt.txt").read_text()
    )
    assert prompt == orchestrator.orchestrator_prompt(project)

    # it does not count against the caps, is not watched for PRs, and is never cleaned up
    assert hosts.live_sessions(project=project).count() == 0
    assert prsync._watched_sessions(project, None) == []
    # starting it again while it runs changes nothing
    assert orchestrator.orchestrator_start(project=project).pk == session.pk
    assert Event.objects.filter(session=session, kind="agent.started").count() == 1

    # reachable by ao send
    run("send", "web-orchestrator", "status", "please")
    assert eventually(lambda: "received: status please" in pane(tmux_server, "web-orchestrator"))

    # its tmux session dies: the next sweep restores it, on the timeline
    kill_tmux_session(tmux_server, "web-orchestrator")
    sweep.project_sweep(project=project)
    session.refresh_from_db()
    assert session.phase == "running" and session.runtime_state == "alive", session.status_reason
    assert eventually(lambda: "> " in pane(tmux_server, "web-orchestrator"))
    restart = Event.objects.get(session=session, kind="orchestrator.starting", data__attempt=1)
    assert restart.summary == "orchestrator restarting (attempt 1 of 5): its runtime is gone"
    assert Event.objects.filter(session=session, kind="agent.started").count() == 2
    project.refresh_from_db()
    assert project.orchestrator_restarts == 1
    assert project.orchestrator_restart_after > timezone.now()

    # a second death within the backoff: not restarted yet, and never cleaned up meanwhile
    kill_tmux_session(tmux_server, "web-orchestrator")
    sweep.project_sweep(project=project)
    session.refresh_from_db()
    assert session.runtime_state == "lost"
    assert session not in operating.cleanup_candidates(project=project)
    with pytest.raises(spawning.SpawnRefused, match="never cleaned up"):
        operating.session_cleanup(session=session)
    assert not Event.objects.filter(session=session, kind="orchestrator.starting", data__attempt=2).exists()
    Project.objects.filter(pk=project.pk).update(
        orchestrator_restart_after=timezone.now() - timedelta(seconds=1)
    )
    sweep.project_sweep(project=project)
    session.refresh_from_db()
    assert session.phase == "running" and session.runtime_state == "alive"
    assert Event.objects.filter(session=session, kind="orchestrator.starting", data__attempt=2).exists()

    # a person stops it: the sweeps leave it stopped
    assert "stopped" in run("orchestrator", "stop")
    sweep.project_sweep(project=project)
    session.refresh_from_db()
    assert session.phase == "killed"
    assert Event.objects.filter(session=session, kind="agent.started").count() == 3
    assert "killed" in run("orchestrator", "status")

    # and starts it again: same workspace, restart count reset
    run("orchestrator", "start")
    session.refresh_from_db()
    project.refresh_from_db()
    assert session.phase == "running" and Path(session.workspace_path) == workspace
    assert project.orchestrator_restarts == 0
    assert Message.objects.filter(session=session).count() == 1  # only the person's message


def test_gives_up_after_bounded_restarts(project, tmux_server) -> None:
    from reactions.models import Notification

    orchestrator.orchestrator_start(project=project)
    session = Session.objects.get(pk="web-orchestrator")
    Project.objects.filter(pk=project.pk).update(orchestrator_restarts=orchestrator.MAX_RESTARTS - 1)
    kill_tmux_session(tmux_server, "web-orchestrator")
    sweep.project_sweep(project=project)  # the last restart
    assert Event.objects.filter(session=session, kind="orchestrator.starting", data__attempt=5).exists()
    assert not Event.objects.filter(session=session, kind="orchestrator.gave_up").exists()

    kill_tmux_session(tmux_server, "web-orchestrator")
    for _ in range(2):  # it died again: people are told once, no sixth restart
        Project.objects.filter(pk=project.pk).update(orchestrator_restart_after=None)
        sweep.project_sweep(project=project)
    session.refresh_from_db()
    assert session.runtime_state == "lost"
    assert Event.objects.filter(session=session, kind="orchestrator.gave_up").count() == 1
    assert (
        Notification.objects.filter(
            session=session, rule="orchestrator-keep-alive", priority="urgent"
        ).count()
        == 1
    )
    assert (
        Event.objects.filter(session=session, kind="orchestrator.starting").count() == 2
    )  # start + attempt 5

    orchestrator.orchestrator_start(project=project)  # a person starts it: counting starts over
    project.refresh_from_db()
    assert project.orchestrator_restarts == 0


def test_ao_start_starts_enabled_orchestrators_only(project, tmux_server) -> None:
    off = ProjectFactory(key="off", session_prefix="off", orchestrator_enabled=False)
    out = StringIO()
    assert orchestrator.orchestrators_start_all(stdout=out, stderr=StringIO()) == ["web-orchestrator"]
    assert "Orchestrator web-orchestrator" in out.getvalue()
    assert not Session.objects.filter(project=off).exists()
    # the keep-alive also leaves a disabled project's orchestrator alone
    assert orchestrator.orchestrator_keep_alive(project=off) == ""


def test_ao_start_says_in_one_line_when_the_orchestrators_agent_is_not_installed(
    project, tmux_server
) -> None:
    missing = ProjectFactory(key="bare", session_prefix="bare", orchestrator_enabled=True, agent="claude-code",
                             plugin_settings={"agent": {"binary": "claude-not-installed-here"}})  # fmt: skip
    out, err = StringIO(), StringIO()

    assert orchestrator.orchestrators_start_all(stdout=out, stderr=err) == ["web-orchestrator"]

    assert err.getvalue().startswith("ao: the orchestrator of bare did not start: claude-code agent: ")
    assert "'claude-not-installed-here' was not found on PATH" in err.getvalue()
    assert not Session.objects.filter(project=missing).exists()  # nothing for the keep-alive to retry


def test_its_workspace_starts_from_the_remotes_default_branch_not_a_stale_local_one(
    project, repo, tmp_path
) -> None:
    # a teammate's work was merged into the remote's main; the checkout's own main is behind
    clone = tmp_path / "teammate"
    subprocess.run(["git", "clone", "-q", str(repo.origin), str(clone)], check=True)
    merged = repo.commit_file(clone, "merged.txt", "merged work\n", message="Merged work")
    subprocess.run(["git", "push", "-q", "origin", "main"], cwd=clone, check=True)
    stale = subprocess.run(["git", "rev-parse", "main"], cwd=repo.path, capture_output=True, text=True)

    run("orchestrator", "start")

    session = Session.objects.get(pk="web-orchestrator")
    workspace = Path(session.workspace_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True)
    assert head.stdout.strip() == merged != stale.stdout.strip()
    assert (workspace / "merged.txt").read_text() == "merged work\n"
    local = subprocess.run(["git", "rev-parse", "main"], cwd=repo.path, capture_output=True, text=True)
    assert local.stdout == stale.stdout  # the user's own checkout is not touched
    orchestrator.orchestrator_stop(project=project)
