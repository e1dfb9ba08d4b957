"""A PR waiting for a person's review is told to a person (the review-requested rule): through
prsync, with the `local` SCM (requireReview, real git, its check run for real) and with the fake
GitHub (reviewers asked for without branch protection). The rule fires exactly when the board puts
the session in the "Review requested" zone, which lifecycle.needs_person counts; once per review
episode: a push does not tell people again."""

from __future__ import annotations

import sys

import pytest

from integrations.registry import plugin_for
from reactions.models import Notification
from reactions.notify import notifiers_apply
from sessions.core.config.schema import AoConfig
from sessions.domain.lifecycle import Status, Zone, needs_person
from sessions.flows import webhooks
from sessions.models import Session
from sessions.prs import prsync, reviews
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory
from tests.fakes.hooks import FakeHooks
from tests.integrations.test_scm_local import commit_and_push, worktree

pytestmark = pytest.mark.django_db
RULE = "review-requested"


@pytest.fixture
def hooks(settings, tmp_path, monkeypatch):
    """A webhook notifier routed for the rule's priority (action), and no top-level reactions."""
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
                    "notificationRouting": {"action": ["team"]},
                }
            )
        )
        yield server


def _sync(session, django_capture_on_commit_callbacks) -> Session:
    with django_capture_on_commit_callbacks(execute=True):
        # a flow's PR read: the PR's facts, then the reactions (recording alone asks for none)
        webhooks.pull_requests_refresh(project=session.project, session_ids=[session.pk])
    return Session.objects.select_related("pull_request").get(pk=session.pk)


def _told(hooks) -> list[str]:
    return [r.json()["title"] for r in hooks.requests if r.json()["rule"] == RULE]


def test_local_pr_waiting_for_review_is_told_once_not_again_on_a_push(
    repo, hooks, django_capture_on_commit_callbacks
):
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        scm="local",
        plugin_settings={"scm": {"check_command": [sys.executable, "-c", "pass"], "check_name": "unit"}},
    )
    path = worktree(repo, "feat/login")
    commit_and_push(repo, path, "feat/login", {"login.py": "ok\n"})
    session = SessionFactory(project=project, number=1, branch="feat/login", workspace_path=str(path),
                             runtime_handle={"name": "web-1"})  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        number = prsync.session_pull_request_open(session=session, title="Add login")["number"]
    scm = plugin_for(project, "scm")
    session = _sync(session, django_capture_on_commit_callbacks)
    assert session.status == Status.CI_PENDING  # not green yet: nobody is asked to review
    assert _told(hooks) == [] and not Notification.objects.filter(rule=RULE).exists()

    scm.run_checks(number=number)
    session = _sync(session, django_capture_on_commit_callbacks)

    assert (session.status, session.zone, needs_person(session.zone)) == (
        Status.REVIEW_PENDING,
        Zone.REVIEW,
        True,
    )
    assert _told(hooks) == ["web-1: PR #1 (Add login) is waiting for your review"]
    note = Notification.objects.get(rule=RULE)
    assert (note.session_id, note.priority) == ("web-1", "action")
    assert "`ao pr review 1 --approve`" in note.body

    # the agent pushes again; once CI is green on the new head it waits for review again: not re-told
    commit_and_push(repo, path, "feat/login", {"more.py": "more\n"})
    session = _sync(session, django_capture_on_commit_callbacks)
    scm.run_checks(number=number)
    session = _sync(session, django_capture_on_commit_callbacks)
    assert session.zone == Zone.REVIEW
    assert len(_told(hooks)) == 1 and Notification.objects.filter(rule=RULE).count() == 1

    # approved: ready to merge, and nothing more about a review
    reviews.pull_request_review(project=project, number=number, state="approved", reviewer="alice")
    session = _sync(session, django_capture_on_commit_callbacks)
    assert session.zone == Zone.MERGE
    assert Notification.objects.filter(rule=RULE).count() == 1


@pytest.fixture
def gh(monkeypatch):
    from integrations.github.pool import forget_clients
    from tests.fakes.github import FakeGitHub

    with FakeGitHub() as fake:
        fake.add_repo("acme/web")
        monkeypatch.setenv("GITHUB_TOKEN", fake.token)
        yield fake
    forget_clients()


def test_github_pr_with_reviewers_asked_for_is_told_to_a_person(
    gh, hooks, django_capture_on_commit_callbacks
):
    project = ProjectFactory(key="web", session_prefix="web", repo="acme/web", scm="github",
                             plugin_settings={"scm": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01}})  # fmt: skip
    repo = gh.repo("acme/web")
    pull = repo.add_pull("feat/login", title="Add login")
    repo.add_check_run(pull.head_sha, "tests")
    session = SessionFactory(project=project, number=1, branch="feat/login", runtime_handle={"name": "x"})
    PullRequestFactory(session=session, number=pull.number, head_sha=pull.head_sha, branch="feat/login",
                       review_decision="none", mergeable=True)  # fmt: skip

    session = _sync(session, django_capture_on_commit_callbacks)
    # no branch protection, nobody asked: nothing waits for a person's review
    assert session.zone != Zone.REVIEW and _told(hooks) == []

    gh.request_review(pull, reviewer="alice")
    session = _sync(session, django_capture_on_commit_callbacks)

    assert (session.pull_request.review_decision, session.status, session.zone) == (
        "review_required",
        Status.REVIEW_PENDING,
        Zone.REVIEW,
    )
    assert _told(hooks) == [f"web-1: PR #{pull.number} (Add login) is waiting for your review"]
    assert Notification.objects.get(rule=RULE).url == pull_url(gh, pull)

    _sync(session, django_capture_on_commit_callbacks)  # a re-read tells nobody again
    assert len(_told(hooks)) == 1


def pull_url(gh, pull) -> str:
    return gh.html(f"/acme/web/pull/{pull.number}")
