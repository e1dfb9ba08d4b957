"""Which PR is a session's, and finished sessions still observed, with the `local` SCM and real git
(and real tmux for the agent): a PR on the session's branch opened before the session, or by
another session, is not its PR; an agent mid-turn when its PR merged is seen finishing."""

from __future__ import annotations

import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from integrations.models import LocalPullRequest
from integrations.registry import plugin_for
from sessions.flows import sweep
from sessions.models import Event, PullRequest, Session
from sessions.prs import prsync
from tests.factories import ProjectFactory, SessionFactory
from tests.helpers.fixtures import git
from tests.integrations.test_scm_local import commit_and_push, push_branch


def opened_an_hour_ago(row: LocalPullRequest) -> None:
    LocalPullRequest.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(hours=1))


@pytest.mark.django_db
def test_local_scm_adopts_only_the_prs_a_session_opened(repo):
    project = ProjectFactory(key="web", session_prefix="web", path=str(repo.path), scm="local")
    scm = plugin_for(project, "scm")
    push_branch(repo, "feat/1", {"one.txt": "1\n"})
    earlier, _ = scm.open_pull_request(branch="feat/1", title="Earlier work on #1")
    scm.merge(number=earlier.number, force=True)  # a person merged it, reviewed or not
    opened_an_hour_ago(earlier)
    push_branch(repo, "feat/2", {"two.txt": "2\n"})
    teammates, _ = scm.open_pull_request(branch="feat/2", title="A teammate's open PR")
    opened_an_hour_ago(teammates)
    first = SessionFactory(
        project=project, number=1, branch="feat/1", workspace_path=str(repo.root / "feat-1")
    )
    second = SessionFactory(project=project, number=2, branch="feat/2")
    third = SessionFactory(project=project, number=3, branch="feat/3")
    push_branch(repo, "feat/3", {"three.txt": "3\n"})
    scm.open_pull_request(branch="feat/3", created_by="web-99")  # another session's, after web-3 began

    prsync.pull_requests_sync(project=project)

    assert not PullRequest.objects.filter(session__in=[first, second, third]).exists()
    assert not Event.objects.filter(kind__in=["pr.opened", "pr.merged"]).exists()
    first.refresh_from_db()
    assert (first.status, first.zone) == ("working", "working")

    # the PR the session opens from its branch afterwards is its PR
    commit_and_push(repo, repo.root / "feat-1", "feat/1", {"again.txt": "again\n"})
    prsync.session_pull_request_open(session=first, title="Fix #1 again")
    first.refresh_from_db()
    assert first.pull_request.number not in (earlier.number, teammates.number)
    assert first.pull_request.state == "open"
    assert first.status != "merged"


AGENT = "import time\nprint('> ', flush=True)\ntime.sleep(120)\n"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_an_agent_mid_turn_at_merge_is_seen_finishing_and_cleaned_up_at_once(
    repo, tmux_server, settings, tmp_path
):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        scm="local",
        reactions={"autoCleanupOnMerge": True},
        plugin_settings={
            "agent": {"command": [sys.executable, "-c", AGENT]},
            "runtime": {"socket_name": tmux_server},
        },
    )
    call_command("issue", "add", "Add the feature", stdout=StringIO())
    call_command("spawn", "1", stdout=StringIO())
    session = Session.objects.get(pk="web-1")
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    (workspace / "feature.txt").write_text("feature\n")
    git("add", "feature.txt", cwd=workspace)
    git("commit", "-qm", "add the feature", cwd=workspace)
    prsync.session_pull_request_open(session=session, title="Add the feature")
    number = PullRequest.objects.get(session=session).number
    # the agent is mid-turn (as last observed) when the PR is merged
    Session.objects.filter(pk=session.pk).update(activity="active", activity_at=timezone.now())
    plugin_for(project, "scm").merge(number=number, force=True)  # a person merged it

    sweep.project_sweep(project=project)  # the merge is read; the agent, now at its prompt, is seen

    session.refresh_from_db()
    assert session.pull_request.state == "merged"
    assert session.activity != "active"
    assert session.phase == "cleaned"  # at once: no waiting for the clean-up grace period
    assert not workspace.exists()
