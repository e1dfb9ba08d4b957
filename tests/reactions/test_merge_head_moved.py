"""Merging a PR whose head moved on GitHub since ao checked it (issue 18.8), against the fake GitHub:
a person's merge (API, dashboard, chat) and the auto-merge are refused by GitHub (409, the head is
not the commit ao checked); each says so as a refusal with the reason, and ao reads the PR again so
the board shows the new head (not mergeable until CI ran on it) instead of a green PR that is not."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from reactions.models import Notification
from sessions.api.tokens import api_token_create
from sessions.dashboard import chat
from sessions.domain.lifecycle import Status
from sessions.models import ChatIdentity, Event, Membership, Session
from sessions.prs import prsync
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def gh(monkeypatch, settings, tmp_path):
    from integrations.github.pool import forget_clients
    from tests.fakes.github import FakeGitHub

    config = tmp_path / "ao.config.yaml"  # no top-level reactions
    config.write_text("projects:\n  web:\n    path: .\n")
    settings.AO_CONFIG = str(config)
    with FakeGitHub() as fake:
        fake.add_repo("acme/web")
        monkeypatch.setenv("GITHUB_TOKEN", fake.token)
        yield fake
    forget_clients()


@pytest.fixture
def world(gh):
    project = ProjectFactory(key="web", session_prefix="web", repo="acme/web", scm="github",
                             plugin_settings={"scm": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01}})  # fmt: skip
    pull = gh.repo("acme/web").add_pull("feat/login", title="Add login")
    session = SessionFactory(
        project=project, number=1, id="web-1", branch="feat/login", runtime_handle={"name": "x"}
    )
    PullRequestFactory(session=session, number=pull.number, head_sha=pull.head_sha, branch="feat/login",
                       ci_state="none", review_decision="none", mergeable=True)  # fmt: skip
    operator = UserFactory(username="olivia")
    Membership.objects.create(user=operator, project=project, role="operator")
    return session, pull, operator


def _sync(session, django_capture_on_commit_callbacks) -> Session:
    with django_capture_on_commit_callbacks(execute=True):
        prsync.pull_requests_sync(project=session.project, session_ids=[session.pk])
    return Session.objects.select_related("project", "pull_request").get(pk=session.pk)


def _green_then_moved(gh, pull, session, django_capture_on_commit_callbacks) -> tuple[str, str]:
    """CI passes on the PR's head and ao reads it (mergeable); then the branch moves on GitHub
    with no delivery about it yet. Returns (the head ao checked, the new head)."""
    gh.repo("acme/web").add_check_run(pull.head_sha, "tests", conclusion="success")
    session = _sync(session, django_capture_on_commit_callbacks)
    assert session.status == Status.MERGEABLE
    checked = session.pull_request.head_sha
    assert checked == pull.head_sha
    return checked, gh.push(pull)


def _reread(session, new: str) -> Session:
    """ao read the PR again: the new head is stored and the session is not mergeable on it."""
    session = Session.objects.select_related("pull_request").get(pk=session.pk)
    assert session.pull_request.head_sha == new
    assert session.status != Status.MERGEABLE
    return session


def test_a_persons_merge_of_a_moved_head_is_refused_with_the_reason(
    gh, world, client, django_capture_on_commit_callbacks
):
    session, pull, operator = world

    # the API: a refusal (409 not_mergeable) with the reason, not a failure of GitHub (502)
    checked, new = _green_then_moved(gh, pull, session, django_capture_on_commit_callbacks)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=operator, name='bot')[1]}")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/sessions/{session.pk}/merge")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "not_mergeable"
    assert f"head moved since {checked[:7]} was checked" in error["message"], error
    assert pull.merged is False
    _reread(session, new)

    # the dashboard
    checked, new = _green_then_moved(gh, pull, session, django_capture_on_commit_callbacks)
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(reverse("sessions:merge", args=[session.pk]), follow=True)
    assert (
        f"Not merged: PR #{pull.number}: the head moved since {checked[:7]} was checked"
        in page.content.decode()
    )
    assert pull.merged is False
    _reread(session, new)

    # chat: asked and confirmed while ao still saw the old head
    checked, new = _green_then_moved(gh, pull, session, django_capture_on_commit_callbacks)
    ChatIdentity.objects.create(platform="telegram", external_id="1001", user=operator)
    asked = chat.handle(platform="telegram", external_id="1001", text="merge web-1")
    assert asked.confirm is not None and asked.confirm.head_sha == checked, asked.text
    code = asked.confirm.token
    with django_capture_on_commit_callbacks(execute=True):
        reply = chat.handle(platform="telegram", external_id="1001", text=f"confirm {code}")
    assert reply.ok is False
    assert reply.text.startswith(
        f"Not merged: PR #{pull.number}: the head moved since {checked[:7]} was checked"
    )
    assert pull.merged is False
    _reread(session, new)
    assert not Event.objects.filter(session=session, kind="pr.merge_requested").exists()


def test_an_auto_merge_of_a_moved_head_is_refused_with_the_reason(
    gh, world, django_capture_on_commit_callbacks
):
    from reactions import services as reactions

    session, pull, _operator = world
    checked, new = _green_then_moved(gh, pull, session, django_capture_on_commit_callbacks)
    session.project.reactions = {"approved-and-green": {"action": "auto-merge"}}
    session.project.save()

    with django_capture_on_commit_callbacks(execute=True):  # the next observation, before any delivery
        outcomes = reactions.session_react(session=session)

    assert [(o.rule, o.did) for o in outcomes] == [("approved-and-green", "merge_failed")]
    assert pull.merged is False
    (event,) = Event.objects.filter(session=session, kind="reaction.merge_failed")
    assert f"the head moved since {checked[:7]} was checked" in event.summary
    note = Notification.objects.get(session=session, title__contains="auto-merge")
    assert f"the head moved since {checked[:7]} was checked" in note.body
    _reread(session, new)
