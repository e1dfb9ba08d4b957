"""`ao spawn / send / session ... / report` as a person or an agent runs them (real git + tmux)."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from sessions.agents import observing
from sessions.models import Event, Message, Session
from tests.factories import ProjectFactory
from tests.helpers.cli import CtrlCAfter
from tests.helpers.fixtures import kill_tmux_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A line-oriented agent: prints a prompt, echoes what it gets, exits on "quit".
ECHO_AGENT = (
    "import sys\n"
    "print('> ', end='', flush=True)\n"
    "for line in sys.stdin:\n"
    "    line = line.strip().replace('\\x1b[200~', '').replace('\\x1b[201~', '')\n"
    "    if line == 'quit':\n"
    "        break\n"
    "    print('received: ' + line, flush=True)\n"
    "    print('> ', end='', flush=True)\n"
)


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        plugin_settings={
            "agent": {"command": [sys.executable, "-u", "-c", ECHO_AGENT], "ready_pattern": r"^> ?$"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def pane(socket: str, name: str) -> str:
    import subprocess

    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", f"={name}:"], capture_output=True, text=True
    ).stdout


def eventually(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_spawn_send_ls_kill_restore_cleanup(project, tmux_server, repo):
    call_command("issue", "add", "Add a health check")
    out = run("spawn", "1")
    assert out.startswith("web-1: ")
    session = Session.objects.get(pk="web-1")
    assert session.phase == "running", session.error
    assert session.branch == "feat/1-add-a-health-check"
    assert eventually(lambda: "> " in pane(tmux_server, "web-1"))

    out = run("send", "web-1", "hello", "agent")
    assert "message" in out and "web-1" in out
    assert eventually(lambda: "received: hello agent" in pane(tmux_server, "web-1"))
    message = Message.objects.get(session=session, text="hello agent")
    assert message.sender == "user" and message.sender_name == "cli"
    assert message.state in ("delivered", "confirmed")

    listed = json.loads(run("session", "ls", "--json"))
    assert [row["id"] for row in listed] == ["web-1"]
    assert listed[0]["branch"] == "feat/1-add-a-health-check"
    assert "web-1" in run("session", "ls")

    attach = run("session", "attach", "web-1", "--print")
    assert attach.split()[:2] == ["tmux", "-S"] and attach.split()[2].endswith(f"/{tmux_server}")

    assert "killed" in run("session", "kill", "web-1")
    assert json.loads(run("session", "ls", "--json")) == []
    assert [r["id"] for r in json.loads(run("session", "ls", "--json", "--include-terminated"))] == ["web-1"]

    run("session", "restore", "web-1")
    assert eventually(lambda: "> " in pane(tmux_server, "web-1"))
    session.refresh_from_db()
    assert session.phase == "running"

    # the agent commits work that is not pushed: cleanup refuses without --force
    workspace = Path(session.workspace_path)
    (workspace / "work.txt").write_text("work\n")
    import subprocess

    subprocess.run(["git", "add", "work.txt"], cwd=workspace, check=True)
    subprocess.run(["git", "commit", "-qm", "work"], cwd=workspace, check=True)
    call_command("session", "kill", "web-1")
    with pytest.raises(CommandError, match="kept"):
        call_command("session", "cleanup")
    assert workspace.exists()
    run("session", "cleanup", "--force")
    assert not workspace.exists()
    session.refresh_from_db()
    assert (session.phase, session.status) == ("cleaned", "done")
    # the branch (and its commit) survive the workspace
    branches = subprocess.run(
        ["git", "branch", "--list", session.branch], cwd=repo.path, capture_output=True, text=True
    )
    assert session.branch in branches.stdout


def test_dead_tmux_server_marks_sessions_runtime_lost(project, tmux_server):
    run("spawn", "--prompt", "do things")
    assert eventually(lambda: "> " in pane(tmux_server, "web-1"))
    kill_tmux_server(tmux_server)

    session = Session.objects.get(pk="web-1")
    observing.session_observe(session=session)
    session.refresh_from_db()

    assert (session.runtime_state, session.status, session.zone) == ("lost", "runtime_lost", "respond")
    assert Event.objects.filter(
        session=session, kind="status.changed", summary__contains="runtime_lost"
    ).exists()


def test_batch_spawn_and_bad_input(project):
    for title in ("One", "Two"):
        call_command("issue", "add", title)
    out = run("batch-spawn", "1", "2", "1")  # each issue once
    assert [line.split()[:2] for line in out.splitlines()] == [["1:", "web-1"], ["2:", "web-2"]]
    with pytest.raises(CommandError, match="is not a session id"):
        call_command("send", "web-1;rm", "x")
    with pytest.raises(CommandError, match="no session 'web-99'"):
        call_command("send", "web-99", "x")
    with pytest.raises(CommandError, match="message is empty"):
        call_command("send", "web-1", "\x1b\x07")
    with pytest.raises(CommandError, match="unknown agent plugin 'clod'"):
        call_command("spawn", "--agent", "clod")


def test_ao_report_from_the_agents_environment(project, live_server, settings, monkeypatch):
    from sessions.agents.plugins import token_hash

    session = Session.objects.create(id="web-7", project=project, number=7, phase="running", runtime_state="alive",
                                     api_token_hash=token_hash("agent-token"))  # fmt: skip
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.setenv("AO_SESSION", "web-7")
    monkeypatch.setenv("AO_TOKEN", "agent-token")

    out = run("report", "needs_input", "Which", "database?")

    assert "web-7 is now needs_input" in out
    session.refresh_from_db()
    assert (session.reported_state, session.status) == ("needs_input", "needs_input")

    monkeypatch.setenv("AO_TOKEN", "stolen-or-wrong")
    with pytest.raises(CommandError, match=r"refused the request \(401\)"):
        call_command("report", "done")
    monkeypatch.delenv("AO_TOKEN")
    with pytest.raises(CommandError, match="AO_TOKEN not set"):
        call_command("report", "done")


def test_one_message_in_flight_at_a_time(project, tmux_server, settings):
    from datetime import timedelta

    from django.utils import timezone

    from sessions.agents import messaging

    run("spawn", "--prompt", "do things")
    assert eventually(lambda: "received: You are web-1" in pane(tmux_server, "web-1"))
    settings.AO_INLINE_DELIVERY_WAIT = 0
    session = Session.objects.get(pk="web-1")
    # typed a moment ago and not yet confirmed (the agent has not reacted since)
    in_flight = Message.objects.create(
        session=session,
        text="first",
        state=Message.State.DELIVERED,
        attempts=1,
        delivered_at=timezone.now() + timedelta(seconds=30),
    )

    second = messaging.message_queue(session=session, text="second one")
    sent, held = messaging.messages_deliver(session_id=session.pk)

    second.refresh_from_db()
    assert (sent, held, second.state) == (0, True, "queued")
    assert "received: second one" not in pane(tmux_server, "web-1")

    Message.objects.filter(pk=in_flight.pk).update(state=Message.State.CONFIRMED)
    sent, held = messaging.messages_deliver(session_id=session.pk)
    assert (sent, held) == (1, False)
    assert eventually(lambda: "received: second one" in pane(tmux_server, "web-1"))
    second.refresh_from_db()
    assert second.state in ("delivered", "confirmed") and second.attempts == 1


def test_status_watch_redraws_until_ctrl_c(project):
    from tests.factories import SessionFactory

    out = CtrlCAfter(frames=2, between=lambda: SessionFactory(project=project, number=5))
    call_command("status", "--json", "--watch", "0.05", stdout=out, stderr=io.StringIO())

    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert "web-5" not in [s["id"] for s in first["sessions"]]
    assert "web-5" in [s["id"] for s in second["sessions"]]
    with pytest.raises(CommandError, match="--watch needs a positive number of seconds"):
        call_command("status", "--watch", "0")


def test_status_ranks_what_needs_a_person_for_the_orchestrator(project):
    from tests.factories import SessionFactory

    SessionFactory(
        project=project, number=7, status="needs_input", zone="respond", status_reason="asks which DB"
    )
    SessionFactory(project=project, number=8, status="working", zone="working")

    (row,) = json.loads(run("status", "--json"))["projects"]
    assert [(n["session"], n["label"], n["kind"]) for n in row["needs_you"]] == [
        ("web-7", "needs input", "stuck")
    ]
    assert row["needs_you"][0]["reason"].endswith("asks which DB")
    assert row["needs_you"][0]["url"].endswith("/s/web-7/")
    table = run("status")
    assert (
        "NEEDS YOU" in table
        and "web-7  needs input: " in table
        and "web-8  " not in table.split("NEEDS YOU")[1]
    )


def test_status_says_how_many_more_need_a_person_than_it_lists(project):
    from tests.factories import SessionFactory

    for number in range(1, 6):
        SessionFactory(
            project=project,
            number=number,
            status="needs_input",
            zone="respond",
            status_reason=f"question {number}",
        )

    (row,) = json.loads(run("status", "--json"))["projects"]
    assert (len(row["needs_you"]), row["needs_you_more"]) == (3, 2)
    table = run("status").split("NEEDS YOU")[1]
    assert len([line for line in table.splitlines() if "needs input: " in line]) == 3, table
    assert "  web  … and 2 more (the dashboard's Needs you page lists them all)" in table


def test_session_ls_titles_a_session_by_its_issue_or_else_its_prompt(project):
    from tests.factories import SessionFactory

    SessionFactory(project=project, number=1, issue_ref="7", issue_title="Add dark mode", prompt="")
    SessionFactory(project=project, number=2, issue_ref="", issue_title="", prompt="Fix the flaky login test")
    SessionFactory(project=project, number=3, kind="orchestrator", id="web-orchestrator", prompt="")

    rows = {r["id"]: r["title"] for r in json.loads(run("session", "ls", "--json"))}
    assert rows == {
        "web-1": "Add dark mode",
        "web-2": "Fix the flaky login test",
        "web-orchestrator": "Orchestrator",
    }
    table = run("session", "ls")
    assert "Fix the flaky login test" in table and "Add dark mode" in table


def test_spawning_again_on_an_issue_says_which_sessions_already_work_on_it(project):
    call_command("issue", "add", "Add a health check")
    first = run("spawn", "1")
    assert "note:" not in first

    again = run("spawn", "1")

    assert again.startswith("web-2: ")
    assert "  note: issue #1 also has live session(s) web-1 (each works on its own branch" in again


def test_a_spawn_that_does_not_start_fails_the_command(project):
    project.plugin_settings = {**project.plugin_settings, "agent": {"command": ["no-such-agent-binary"]}}
    project.save()
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(
        CommandError, match=r"^web-1 did not start: custom agent: 'no-such-agent-binary' was not"
    ):
        call_command("spawn", "--prompt", "do things", stdout=out, stderr=err)
    assert out.getvalue().startswith("web-1: errored")  # what happened is still printed first
    call_command("issue", "add", "Add a health check", stdout=out)
    with pytest.raises(CommandError, match="1 of 1 spawns failed"):
        call_command("batch-spawn", "1", stdout=out, stderr=err)
    assert "1: web-2 did not start: custom agent:" in err.getvalue()


def test_the_cli_refuses_the_process_runtime_whose_agents_would_die_with_it(project):
    project.runtime = "process"
    project.save()

    with pytest.raises(
        CommandError, match="uses the process runtime, whose agents live inside the ao process"
    ):
        call_command("spawn", "--prompt", "do things")
    assert not Session.objects.exists()  # nothing half-started
