"""Approved and green means something was green (issue 12.5), through prsync against the fake
GitHub: a PR with no checks is neither merged automatically nor announced ready to merge; a new
push is not merged before CI ran on it; a person's merge is refused the same way; the merge
names the commit that was checked."""

from __future__ import annotations

import pytest

from reactions.models import Notification
from sessions.domain.lifecycle import Status
from sessions.flows import webhooks
from sessions.models import Session
from sessions.prs import merge
from tests.factories import CheckRunFactory, ProjectFactory, PullRequestFactory, SessionFactory

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


def _session(gh, **reactions) -> tuple[Session, object]:
    project = ProjectFactory(key="web", session_prefix="web", repo="acme/web", scm="github",
                             plugin_settings={"scm": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01}},
                             reactions=reactions)  # fmt: skip
    pull = gh.repo("acme/web").add_pull("feat/login")
    session = SessionFactory(project=project, branch="feat/login", runtime_handle={"name": "x"})
    PullRequestFactory(session=session, number=pull.number, head_sha=pull.head_sha, branch="feat/login",
                       ci_state="none", review_decision="none", mergeable=True)  # fmt: skip
    return session, pull


def _sync(session, django_capture_on_commit_callbacks) -> Session:
    with django_capture_on_commit_callbacks(execute=True):
        # a flow's PR read: the PR's facts, then the reactions (recording alone asks for none)
        webhooks.pull_requests_refresh(project=session.project, session_ids=[session.pk])
    return Session.objects.select_related("project", "pull_request").get(pk=session.pk)


def _merges(gh) -> list[str]:
    return [r.path for r in gh.requests if r.method == "PUT" and r.path.endswith("/merge")]


AUTO_MERGE = {"approved-and-green": {"action": "auto-merge"}}


def test_a_pr_with_no_checks_and_no_review_is_not_merged_automatically(
    gh, django_capture_on_commit_callbacks
):
    session, pull = _session(gh, **AUTO_MERGE)

    session = _sync(session, django_capture_on_commit_callbacks)

    assert _merges(gh) == [] and pull.merged is False
    assert (session.status, session.status_reason) == (
        Status.CI_PENDING,
        "no check has reported on the head commit yet",
    )
    assert not Notification.objects.filter(session=session).exists()

    # once a check has passed on that commit it is green: merged
    gh.repo("acme/web").add_check_run(pull.head_sha, "tests")
    _sync(session, django_capture_on_commit_callbacks)

    assert len(_merges(gh)) == 1 and pull.merged is True


def test_a_fix_pushed_after_green_is_not_merged_before_ci_ran_on_it(gh, django_capture_on_commit_callbacks):
    session, pull = _session(gh, **{"approved-and-green": {"action": "auto-merge", "requireApproval": True}})
    gh.repo("acme/web").add_check_run(pull.head_sha, "tests")
    session = _sync(session, django_capture_on_commit_callbacks)
    assert session.status == Status.REVIEW_PENDING  # green, but not approved yet: no merge
    assert _merges(gh) == []

    new_head = gh.push(pull, "b" * 40)  # the agent pushes a fix; CI has not started on it
    gh.add_review(pull, state="APPROVED", author="alice")
    session = _sync(session, django_capture_on_commit_callbacks)

    assert session.pull_request.head_sha == new_head
    assert (session.status, _merges(gh), pull.merged) == (Status.CI_PENDING, [], False)


def test_notify_sends_no_ready_to_merge_for_a_push_without_checks(gh, django_capture_on_commit_callbacks):
    session, pull = _session(gh)

    _sync(session, django_capture_on_commit_callbacks)
    gh.push(pull, "b" * 40)
    _sync(session, django_capture_on_commit_callbacks)

    assert not Notification.objects.filter(session=session, rule="approved-and-green").exists()


def test_required_checks_decide_green(gh, django_capture_on_commit_callbacks):
    session, pull = _session(gh, **{"approved-and-green": {"requiredChecks": ["tests", "lint"]}})
    repo = gh.repo("acme/web")
    repo.add_check_run(pull.head_sha, "tests")
    session = _sync(session, django_capture_on_commit_callbacks)
    assert (session.status, session.status_reason) == (
        Status.CI_PENDING,
        "required check lint not passed on the head commit yet",
    )
    assert not Notification.objects.filter(session=session).exists()

    repo.add_check_run(pull.head_sha, "lint")
    session = _sync(session, django_capture_on_commit_callbacks)

    assert session.status == Status.MERGEABLE
    assert Notification.objects.filter(session=session, rule="approved-and-green").count() == 1


def test_a_person_cannot_merge_a_pr_on_which_nothing_ran(gh, django_capture_on_commit_callbacks):
    session, pull = _session(gh)
    session = _sync(session, django_capture_on_commit_callbacks)

    with pytest.raises(merge.MergeRefused) as refused:
        merge.session_pull_request_merge(session=session)

    assert "no check has reported on the head commit yet" in refused.value.blockers
    assert _merges(gh) == [] and pull.merged is False


def test_a_project_without_ci_says_so(gh, django_capture_on_commit_callbacks):
    session, pull = _session(gh, **{"approved-and-green": {"action": "auto-merge", "requiredChecks": []}})

    _sync(session, django_capture_on_commit_callbacks)

    assert len(_merges(gh)) == 1 and pull.merged is True


def test_the_merge_names_the_commit_that_was_checked(gh):
    from reactions import services as reactions

    session, pull = _session(gh, **AUTO_MERGE)
    PullRequestFactory._meta.model.objects.filter(session=session).update(ci_state="passing")
    CheckRunFactory(pull_request=session.pull_request, name="tests", conclusion="success")
    gh.push(pull, "c" * 40)  # the branch moved on GitHub after ao saw it green
    session = Session.objects.select_related("project", "pull_request").get(pk=session.pk)

    outcomes = reactions.session_react(session=session, global_overrides={})

    assert [(o.rule, o.did) for o in outcomes] == [("approved-and-green", "merge_failed")]
    assert len(_merges(gh)) == 1 and pull.merged is False  # GitHub refused: head moved (409)
