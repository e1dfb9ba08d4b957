"""GitHub Enterprise Server (issue 18.8): with the API base URL configured as https://HOST/api/v3,
the REST calls go under /api/v3 and GraphQL to /api/graphql. The loop against the fake GitHub
served under that prefix: a signed webhook refreshes the session (GraphQL, the check's log), the
sweep's ETag probe reads under the prefix, the tracker reads the issue, a merge goes through; and
nothing is asked of the host outside the prefix (the fake answers 404 there)."""

from __future__ import annotations

import subprocess

import pytest

from integrations.github.pool import forget_clients
from integrations.registry import plugin_for
from sessions.models import CheckRun, Session
from sessions.prs import merge, prsync
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.django_db

SECRET = "webhook-secret"
LOG = "2026-11-25T10:00:02.0000000Z app.py:3:1: F401 `os` imported but unused\n##[error]exit code 1"


@pytest.fixture
def ghe(monkeypatch, settings, tmp_path):
    config = tmp_path / "ao.config.yaml"  # no top-level reactions
    config.write_text("projects:\n  web:\n    path: .\n")
    settings.AO_CONFIG = str(config)
    settings.AO_GITHUB_WEBHOOK_SECRET = SECRET
    settings.AO_INLINE_DELIVERY_WAIT = 0.0  # the ci-failed message waits for the next sweep
    with FakeGitHub(enterprise=True, html_base="https://ghe.example.com") as fake:
        fake.add_repo("acme/web")
        monkeypatch.setenv("GITHUB_TOKEN", fake.token)
        yield fake
    forget_clients()


def deliver(client, delivery):
    headers = {
        f"HTTP_{k.upper().replace('-', '_')}": v for k, v in delivery.headers.items() if k != "Content-Type"
    }
    return client.post("/webhooks/github/web", data=delivery.body, content_type="application/json", **headers)


@pytest.mark.slow
def test_the_loop_against_an_enterprise_host(client, ghe, tmux_server, django_capture_on_commit_callbacks):
    assert ghe.base_url.endswith("/api/v3")
    github = {"base_url": ghe.base_url, "write_interval": 0, "backoff": 0.01}
    project = ProjectFactory(key="web", session_prefix="web", repo="acme/web", scm="github", tracker="github",
                             plugin_settings={"scm": github, "tracker": github,
                                              "runtime": {"socket_name": tmux_server}})  # fmt: skip
    # the session's agent is alive (the refresh probes its runtime, as a sweep does)
    subprocess.run(
        ["tmux", "-L", tmux_server, "new-session", "-d", "-s", "web-1", "sleep", "300"], check=True
    )
    scm = plugin_for(project, "scm")
    assert scm.client().graphql_url == ghe.origin + "/api/graphql"

    repo = ghe.repo("acme/web")
    issue = repo.add_issue("Fix the login page")
    assert plugin_for(project, "tracker").get_issue(str(issue.number)).title == "Fix the login page"

    session = SessionFactory(project=project, number=1, id="web-1", branch="feat/login",
                             runtime_handle={"runtime": "tmux", "name": "web-1"})  # fmt: skip
    pull = repo.add_pull("feat/login", title="Fix login")
    PullRequestFactory(session=session, number=pull.number, head_sha=pull.head_sha, branch="feat/login")
    check = repo.add_check_run(pull.head_sha, "lint", conclusion="failure", log=LOG)

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, ghe.webhook("check_run", secret=SECRET, check_id=check.id))
    assert response.status_code == 202
    session = Session.objects.select_related("pull_request").get(pk=session.pk)
    assert session.status == "ci_failed"
    assert "F401" in CheckRun.objects.get(pull_request__session=session, name="lint").log_excerpt
    assert session.pull_request.url == f"https://ghe.example.com/acme/web/pull/{pull.number}"

    # the sweep's change probe (ETag-guarded REST reads) under /api/v3, twice: the second is a 304
    repo.add_check_run(pull.head_sha, "lint", conclusion="success")
    ghe.reset_counts()
    with django_capture_on_commit_callbacks(execute=True):
        prsync.pull_requests_sweep(project=project)
        prsync.pull_requests_sweep(project=project)
    assert ghe.counts["rest"] >= 1, ghe.requests

    session = Session.objects.select_related("project", "pull_request").get(pk=session.pk)
    assert session.status == "mergeable", session.status_reason
    merged = merge.session_pull_request_merge(session=session)
    assert pull.merged is True and merged.state == "merged"

    # every request went to the enterprise paths: none was answered 404 for being outside them
    assert [r for r in ghe.requests if r.status == 404] == []


def test_ao_init_on_an_enterprise_repository_points_the_github_plugins_at_its_api(tmp_path):
    """`ao init` in a clone of a GitHub Enterprise repository configures the github tracker and SCM
    with https://HOST/api/v3 (the default, api.github.com, knows nothing of HOST's repositories)."""
    from sessions.core.config.init import config_init
    from sessions.core.config.loading import config_load

    repo = tmp_path / "api"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", "git@github.acme.corp:platform/api.git"],
                   check=True)  # fmt: skip

    project = config_load(config_init(repo=repo)).projects["api"]

    assert (project.plugin_key("tracker"), project.plugin_key("scm")) == ("github", "github")
    for slot in ("tracker", "scm"):
        assert project.settings_for(slot)["base_url"] == "https://github.acme.corp/api/v3", slot
