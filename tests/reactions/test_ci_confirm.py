"""Before ao tells the agent again that CI fails (a retry, then an escalation to a person), it asks
GitHub whether the checks still fail on the PR's head. A person re-running a failed job moves
neither the PR nor its head: without a webhook the probe sees the re-run only at its next look at
the runs (5 minutes), after the retry (2 minutes) went out: "CI is failing (attempt 2)" about a
run that was running again. Against the fake GitHub: a re-run is not retried; a check that still
fails is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reactions import services as reactions
from sessions.models import Message, Session
from sessions.prs import prsync
from tests.reactions.test_review_text import _reviewed_pr, gh, reaction_texts  # noqa: F401  (gh: fixture)

pytestmark = pytest.mark.django_db


def _told_ci_fails(client, gh, capture, monkeypatch):  # noqa: F811
    project, session, pull, _hook = _reviewed_pr(client, gh, capture, monkeypatch)
    repo = gh.repo("acme/web")
    failed = repo.add_check_run(pull.head_sha, "unit", conclusion="failure", log="FAILED test_login")
    prsync.pull_requests_sync(project=project)
    now = timezone.now()
    with capture(execute=True):
        reactions.session_react(session=session, now=now)
    (text,) = reaction_texts(session)
    assert "unit" in text
    # the agent took the message and finished a turn: a failure still there is worth telling again
    Message.objects.filter(session=session, sender="reaction").update(state="confirmed", delivered_at=now)
    Session.objects.filter(pk=session.pk).update(activity="idle", activity_at=now + timedelta(seconds=30))
    session.refresh_from_db()
    return session, repo, failed, now


def test_a_failed_job_re_run_without_a_webhook_is_not_retried_as_failing(
    client,
    gh,  # noqa: F811
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    session, repo, failed, now = _told_ci_fails(client, gh, django_capture_on_commit_callbacks, monkeypatch)
    repo.rerun(failed.run_id)  # "Re-run failed jobs": queued again, no webhook, the PR does not move

    gh.reset_counts()
    with django_capture_on_commit_callbacks(execute=True):
        reactions.session_react(session=session, now=now + timedelta(minutes=3))

    assert gh.count("graphql") >= 1  # it asked
    assert len(reaction_texts(session)) == 1  # no "CI is failing (attempt 2)"
    assert Session.objects.get(pk=session.pk).status == "ci_pending"


def test_a_check_still_failing_is_retried_after_asking(
    client,
    gh,  # noqa: F811
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    session, _repo, _failed, now = _told_ci_fails(client, gh, django_capture_on_commit_callbacks, monkeypatch)

    gh.reset_counts()
    with django_capture_on_commit_callbacks(execute=True):
        reactions.session_react(session=session, now=now + timedelta(minutes=1))
    assert gh.count("graphql") == 0 and len(reaction_texts(session)) == 1  # waiting: nothing asked

    with django_capture_on_commit_callbacks(execute=True):
        reactions.session_react(session=session, now=now + timedelta(minutes=3))
    assert gh.count("graphql") >= 1
    assert len(reaction_texts(session)) == 2
