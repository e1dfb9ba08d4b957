"""Before ao acts again on review threads it told the agent about (a retry, or an escalation to a
person), it asks GitHub whether they are still open. A thread's resolution is not in GitHub's
REST API and does not move the PR: without a webhook, only a GraphQL read sees it, and ao's
complete read comes hourly, later than changes-requested escalates (30 minutes). Against the
fake GitHub: a resolved thread is not escalated; an open one still is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reactions import services as reactions
from sessions.models import Event, ReviewThread
from sessions.prs import prsync
from tests.reactions.test_review_text import _reviewed_pr, gh, reaction_texts  # noqa: F401  (gh: fixture)

pytestmark = pytest.mark.django_db


def _told_about_a_thread(client, gh, capture, monkeypatch):  # noqa: F811
    project, session, pull, _hook = _reviewed_pr(client, gh, capture, monkeypatch)
    thread = gh.add_thread(pull, body="Rename this.", path="app.py", line=3, author="alice")
    prsync.pull_requests_sync(project=project)
    now = timezone.now()
    with capture(execute=True):
        reactions.session_react(session=session, now=now)
    (text,) = reaction_texts(session)
    assert "Rename this." in text
    return session, thread, now


def _escalations(session) -> int:
    return Event.objects.filter(session=session, kind="reaction.escalated").count()


def test_a_thread_resolved_without_a_webhook_is_not_escalated(
    client,
    gh,  # noqa: F811
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    session, thread, now = _told_about_a_thread(client, gh, django_capture_on_commit_callbacks, monkeypatch)
    with gh.lock:
        thread.resolved = True  # resolved on GitHub: no webhook, the PR does not move

    gh.reset_counts()
    with django_capture_on_commit_callbacks(execute=True):
        reactions.session_react(session=session, now=now + timedelta(minutes=31))

    assert gh.count("graphql") >= 1  # it asked
    assert _escalations(session) == 0
    assert not ReviewThread.objects.filter(pull_request__session=session, resolved=False).exists()
    assert len(reaction_texts(session)) == 1


def test_a_thread_still_open_is_escalated_after_asking(
    client,
    gh,  # noqa: F811
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    session, _thread, now = _told_about_a_thread(client, gh, django_capture_on_commit_callbacks, monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        reactions.session_react(session=session, now=now + timedelta(minutes=5))
    assert _escalations(session) == 0  # waiting: nothing goes out, nothing is asked

    gh.reset_counts()
    with django_capture_on_commit_callbacks(execute=True):
        reactions.session_react(session=session, now=now + timedelta(minutes=31))
    assert gh.count("graphql") >= 1
    assert _escalations(session) == 1
