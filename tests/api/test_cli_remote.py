"""`ao` against a remote ao: AO_URL + AO_TOKEN make the commands use the API (a live server)."""

from __future__ import annotations

import io
import json
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions.models import AuditEntry, Message, Project, Session
from tests.helpers.cli import CtrlCAfter

pytestmark = pytest.mark.timeout(60)


def _ao(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def remote(transactional_db, live_server, world, monkeypatch, settings):
    settings.AO_INLINE_DELIVERY_WAIT = 0.0
    Project.objects.filter(pk=world.project.pk).update(tracker="local")
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.setenv("AO_TOKEN", world.tokens["operator"])
    monkeypatch.delenv("AO_SESSION", raising=False)
    return world


def test_cli_commands_go_through_the_api(remote) -> None:
    created = _ao("issue", "add", "Fix the login page")
    assert created.startswith("created #1")
    assert "#1" in _ao("issue", "ls") and "Fix the login page" in _ao("issue", "show", "1")

    line = _ao("spawn", "--prompt", "add a health check", "--agent", "claude-code")
    session_id = line.split(":")[0]
    session = Session.objects.get(pk=session_id)
    assert session.created_by == remote.users["operator"] and session.prompt == "add a health check"
    as_json = json.loads(_ao("spawn", "--prompt", "another", "--agent", "claude-code", "--json"))
    assert as_json["id"] != session_id and as_json["project"] == "web" and as_json["agent"] == "claude-code"
    assert set(as_json) >= {"id", "status", "reason", "branch", "host", "workspace", "error"}

    listed = json.loads(_ao("session", "ls", "--json"))
    assert session_id in [row["id"] for row in listed]
    assert set(listed[0]) >= {"id", "project", "status", "zone", "reason", "agent", "issue"}

    assert "message" in _ao("send", remote.session.id, "please", "rebase")
    assert Message.objects.get(session=remote.session).text == "please rebase"

    assert "killed" in _ao("session", "kill", remote.session.id)
    status = json.loads(_ao("status", "--json"))
    assert status["mode"] == "remote" and status["projects"][0]["key"] == "web"
    assert remote.session.id in [s["id"] for s in status["sessions"]]

    entries = AuditEntry.objects.filter(actor_user=remote.users["operator"])
    actions = set(entries.values_list("action", flat=True))
    assert {"issue.create", "session.spawn", "message.queue", "session.kill"} <= actions
    assert set(entries.values_list("source", "actor_kind")) == {("cli", "user")}


def test_cli_remote_errors_are_one_line(remote, monkeypatch) -> None:
    with pytest.raises(CommandError, match="this needs the operator role"):
        monkeypatch.setenv("AO_TOKEN", remote.tokens["viewer"])
        _ao("send", remote.session.id, "hi")
    monkeypatch.setenv("AO_TOKEN", "ao_revoked-or-wrong")
    with pytest.raises(CommandError, match="invalid or revoked API token"):
        _ao("session", "ls")


def test_agents_keep_their_own_client(remote, monkeypatch) -> None:
    from sessions.cli import apiclient

    monkeypatch.setenv("AO_SESSION", remote.session.id)
    assert apiclient.client_from_env() is None


def test_remote_status_watch_redraws_until_ctrl_c(remote) -> None:
    from tests.factories import SessionFactory

    out = CtrlCAfter(frames=2, between=lambda: SessionFactory(project=remote.project, number=77))
    call_command("status", "--json", "--watch", "0.05", stdout=out, stderr=io.StringIO())

    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["mode"] == second["mode"] == "remote"
    assert "web-77" not in [s["id"] for s in first["sessions"]]
    assert "web-77" in [s["id"] for s in second["sessions"]]  # read again over the API, not a copy


def test_commands_without_an_api_refuse_instead_of_using_the_local_database(remote, capsys) -> None:
    from ao_site import cli
    from sessions.cli import apiclient

    assert cli.main(["intake", "status"]) == 1
    assert "`ao intake` works on the ao host only, not over the API" in capsys.readouterr().err
    assert "unset AO_TOKEN" in apiclient.remote_refusal("token")
    assert apiclient.remote_refusal("spawn") == ""  # goes over the API
    # every ao command is one of: over the API, refused remotely, or about this machine
    known = apiclient.REMOTE_COMMANDS | apiclient.LOCAL_DATA_COMMANDS | apiclient.HOST_COMMANDS
    assert set(cli.ao_commands()) <= known, set(cli.ao_commands()) - known


def test_remote_issue_add_with_blockers_goes_over_the_api(remote) -> None:
    from integrations.models import LocalIssue

    assert _ao("issue", "add", "Design the schema").startswith("created #1")
    out = _ao("issue", "add", "Build the API", "--blocked-by", "1")
    assert out.splitlines() == ["created #2: Build the API", "blocked by #1"]
    assert LocalIssue.objects.get(project=remote.project, number=2).blocked_by == [1]
    with pytest.raises(CommandError, match="9"):  # an unknown blocker: nothing created
        _ao("issue", "add", "Ship it", "--blocked-by", "9")
    assert not LocalIssue.objects.filter(project=remote.project, title="Ship it").exists()


def test_remote_commands_act_on_the_project_whose_repository_holds_the_current_directory(
    remote, monkeypatch, tmp_path
) -> None:
    from integrations.models import LocalIssue
    from sessions.models import Membership
    from tests.factories import ProjectFactory
    from tests.helpers.fixtures import git

    Project.objects.filter(pk=remote.project.pk).update(repo="acme/web")
    api = ProjectFactory(key="api", session_prefix="api", repo="Acme/API", tracker="local")
    Membership.objects.create(user=remote.users["operator"], project=api, role="operator")
    clone = tmp_path / "api-clone"
    git("init", "-q", str(clone), cwd=tmp_path)
    git("remote", "add", "origin", "git@github.com:me/api.git", cwd=clone)  # a fork
    git("remote", "add", "upstream", "https://github.com/acme/api.git", cwd=clone)
    monkeypatch.chdir(clone / ".")

    assert _ao("issue", "add", "Fix the API docs").startswith("created #1")

    assert list(LocalIssue.objects.values_list("project__key", "title")) == [("api", "Fix the API docs")]

    # a directory in no project's repository: asked to choose, nothing created
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(CommandError, match=r"several projects \(.*\) and none is on a remote.*--project"):
        _ao("issue", "add", "Lost")
    assert LocalIssue.objects.count() == 1


@pytest.mark.slow
def test_remote_status_session_ls_and_send_run_without_django(remote, tmp_path) -> None:
    """As a process, `ao status`, `ao session ls` and `ao send` against a remote ao never load Django
    (sessions.cli.light_commands), and print what the management commands print."""
    import os
    import re

    from tests.test_embedded import ao_env, run_ao

    env = ao_env(
        tmp_path, AO_URL=os.environ["AO_URL"], AO_TOKEN=os.environ["AO_TOKEN"], PYTHONPROFILEIMPORTTIME="1"
    )

    def ao(*args: str) -> subprocess.CompletedProcess:
        result = run_ao(list(args), env)
        assert not [line for line in result.stderr.splitlines() if re.search(r"\|\s+django(\.|$)", line)]
        return result

    def without_time(text: str) -> dict:
        data = json.loads(text)
        data.pop("generated_at")
        for session in data["sessions"]:
            session.pop("age_seconds")
        return data

    assert without_time(ao("status", "--json").stdout) == without_time(_ao("status", "--json"))

    def without_ages(text: str) -> str:  # "2s", "5m": the two commands run a moment apart
        return re.sub(r"\b\d+[smhd]\b", "<age>", text)

    assert without_ages(ao("status").stdout) == without_ages(_ao("status"))
    assert ao("session", "ls", "--json").stdout == _ao("session", "ls", "--json")
    assert without_ages(ao("session", "ls", "--include-terminated").stdout) == without_ages(
        _ao("session", "ls", "--include-terminated")
    )
    sent = ao("send", remote.session.id, "please", "rebase")
    assert sent.returncode == 0
    message = Message.objects.get(session=remote.session, text="please rebase")
    assert sent.stdout.startswith(f"message {message.pk} to {remote.session.id}: ")  # as apiclient.send says
    env["AO_TOKEN"] = remote.tokens["viewer"]
    refused = ao("send", remote.session.id, "hi")
    assert refused.returncode == 1
    assert "ao: this needs the operator role" in refused.stderr


def test_status_counts_only_live_sessions_over_the_api_as_from_the_database(
    remote, monkeypatch, settings
) -> None:
    """`ao status` says "N live / M": a session that errored before its agent ran (the agent CLI
    missing), was killed or was cleaned up is not live. The running ao answers from its database,
    a remote one over its API: both say the same."""
    from tests.factories import SessionFactory

    settings.AO_EMBEDDED = True  # the local read asks no scale-out processes
    not_on_path = "claude-code agent: 'claude' was not found on PATH"
    SessionFactory(project=remote.project, number=501, phase="errored", status="errored", zone="respond", error=not_on_path)  # fmt: skip
    SessionFactory(project=remote.project, number=502, phase="killed", status="killed", zone="done")
    SessionFactory(project=remote.project, number=503, phase="cleaned", status="done", zone="done")

    over_api = json.loads(_ao("status", "--json")), _ao("status")
    monkeypatch.delenv("AO_URL")
    monkeypatch.delenv("AO_TOKEN")
    from_database = json.loads(_ao("status", "--json")), _ao("status")

    said = [
        (snapshot["mode"], project["live_sessions"], project["sessions"], "1 live / 4" in table)
        for snapshot, table in (over_api, from_database)
        for project in snapshot["projects"]
    ]
    assert said == [("remote", 1, 4, True), ("embedded", 1, 4, True)]
