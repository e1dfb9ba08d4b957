"""One service resolves a spawn's issue (issue 18.6): every entry point (chat, API — which the
orchestrator's and a remote CLI's `ao spawn` use —, dashboard, CLI) refuses an issue the tracker
does not know with the tracker's own reason, reading it once and writing nothing; a spawn that is
accepted reads its issue once, and the start (branch name, prompt) uses what the spawn read.
Against the fake GitHub, counting its requests."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from integrations.github.pool import forget_clients
from sessions.agents import operating, starting
from sessions.models import ChatIdentity, Membership, Session
from tests.chat.conftest import SLACK_SECRET, slack_command
from tests.factories import ProjectFactory, UserFactory
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.django_db

REFUSED = "GitHub issue #4 not found in acme/widgets"


@pytest.fixture
def gh(monkeypatch, settings):
    settings.AO_SLACK_SIGNING_SECRET = SLACK_SECRET
    with FakeGitHub() as fake:
        fake.add_repo("acme/widgets")
        monkeypatch.setenv("GITHUB_TOKEN", fake.token)
        yield fake
    forget_clients()


def widgets(gh, **fields):
    project = ProjectFactory(
        key="widgets", session_prefix="wid", repo="acme/widgets", tracker="github",
        plugin_settings={"tracker": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01},
                         **fields.pop("plugin_settings", {})},
        **fields,
    )  # fmt: skip
    operator = UserFactory(username="olivia")
    Membership.objects.create(user=operator, project=project, role="operator")
    ChatIdentity.objects.create(platform="slack", external_id="UOPERATOR", user=operator)
    return project, operator


def issue_reads(gh, number: int) -> int:
    return sum(
        1 for r in gh.requests if r.method == "GET" and r.path == f"/repos/acme/widgets/issues/{number}"
    )


def test_every_entry_point_refuses_a_missing_issue_the_same_way_reading_it_once(gh, client):
    project, operator = widgets(gh)

    # chat
    reply = slack_command(client, "spawn widgets 4").json()["text"]
    assert reply == f"Not spawned: {REFUSED}"
    assert issue_reads(gh, 4) == 1

    # the API (the orchestrator's `ao spawn`, a remote CLI)
    client.force_login(operator)
    answer = client.post("/api/v1/projects/widgets/spawn", {"issue": "4"}, content_type="application/json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "refused")
    assert answer.json()["error"]["message"] == REFUSED
    assert issue_reads(gh, 4) == 2

    # the dashboard
    page = client.post("/p/widgets/spawn/", {"issue": "4", "prompt": "", "agent": "", "branch": ""})
    assert page.status_code == 422
    assert REFUSED in page.content.decode()
    assert issue_reads(gh, 4) == 3

    # the CLI in embedded mode
    with pytest.raises(CommandError, match=REFUSED):
        call_command("spawn", "4", "--project", "widgets")
    assert issue_reads(gh, 4) == 4

    assert not Session.objects.filter(project=project).exists()


@pytest.mark.slow
def test_an_accepted_spawn_reads_its_issue_once_and_the_start_uses_it(gh, client, repo, tmp_path, settings):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    issue = gh.repo("acme/widgets").add_issue("Add a widget counter", body="Count the widgets on the page.")
    project, _ = widgets(
        gh, path=str(repo.path), agent="custom", runtime="process", workspace="worktree",
        plugin_settings={"agent": {"command": ["sleep", "60"], "prompt_mode": "argv"}},
    )  # fmt: skip

    reply = slack_command(client, f"spawn widgets {issue.number}").json()["text"]
    session = Session.objects.get(project=project)
    assert reply.startswith(f"Spawned {session.pk} on issue #{issue.number} “Add a widget counter”")
    try:
        assert starting.session_start(session_id=session.pk) is True  # what the worker runs
        session.refresh_from_db()
        assert session.phase == "running", session.error
        assert session.branch == f"feat/{issue.number}-add-a-widget-counter"  # the tracker's branch name
        prompt = starting.worker_prompt(Session.objects.get(pk=session.pk))  # e.g. a restore
        assert f"Your issue: {issue.number} Add a widget counter" in prompt
        assert "Count the widgets on the page." in prompt
        assert issue_reads(gh, issue.number) == 1
    finally:
        operating.session_kill(session=Session.objects.get(pk=session.pk))
