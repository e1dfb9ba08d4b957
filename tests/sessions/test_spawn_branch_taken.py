"""`ao spawn --branch B` where B is already checked out (the project's checkout, a live session's
worktree, a killed session's kept worktree) is refused before any session exists, naming where;
and the advice for a session that errored while starting agrees across `ao send`, `ao session
kill` and `ao session restore`. Real git and tmux."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from sessions.models import Session
from tests.helpers.projects import local_tmux_project
from tests.sessions.test_session_commands import run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def project(repo, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return local_tmux_project(path=repo.path, tmux_server=tmux_server)


def _refusal(*args: str) -> str:
    before = set(Session.objects.values_list("pk", flat=True))
    with pytest.raises(CommandError) as refused:
        run("spawn", "--prompt", "continue the work", *args)
    assert set(Session.objects.values_list("pk", flat=True)) == before  # no session was created
    return str(refused.value)


def test_a_branch_checked_out_in_the_projects_checkout_is_refused(project, repo):
    message = _refusal("--branch", "main")

    assert message == (
        f"not spawned: branch main is checked out in {repo.path} (the project's checkout); "
        "a session needs a branch of its own"
    )


def test_a_branch_another_session_has_is_refused_naming_the_session(project, repo):
    run("spawn", "--prompt", "add a health check", "--branch", "feat/health")
    live = Session.objects.get(pk="web-1")
    assert live.phase == "running", live.error

    assert _refusal("--branch", "feat/health") == (
        f"not spawned: branch feat/health is checked out in {live.workspace_path} "
        "(the worktree of session web-1, running); send web-1 a message instead"
    )

    call_command("session", "kill", "web-1")
    assert _refusal("--branch", "feat/health") == (
        f"not spawned: branch feat/health is checked out in {live.workspace_path} "
        "(the worktree of session web-1, killed); `ao session restore web-1` continues it, "
        "or `ao session cleanup` removes the worktree"
    )


def test_a_session_that_errored_while_starting_gets_one_answer(project):
    project.plugin_settings = {**project.plugin_settings, "agent": {"command": ["no-such-agent-binary"]}}
    project.save()
    with pytest.raises(CommandError, match="did not start"):
        run("spawn", "--prompt", "do things")
    errored = Session.objects.get(pk="web-1")
    assert (errored.phase, errored.workspace_path) == ("errored", "")
    why = "web-1 errored while starting (custom agent: 'no-such-agent-binary' was not found"

    with pytest.raises(CommandError) as sent:
        run("send", "web-1", "are you there?")
    with pytest.raises(CommandError) as restored:
        run("session", "restore", "web-1")
    killed = run("session", "kill", "web-1")

    for said in (str(sent.value), str(restored.value)):
        assert why in said, said
        assert said.endswith("and left no worktree to restore: spawn a new session"), said
        assert "ao session restore" not in said
    assert killed.startswith("web-1 killed; it cannot be restored: web-1 errored while starting"), killed
    assert "brings it back" not in killed
    assert not errored.messages.exists()  # nothing queued for an agent that will never run
