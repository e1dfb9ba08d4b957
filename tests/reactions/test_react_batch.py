"""Reactions for a sweep's sessions at once (``sessions_react``): a send-to-agent decision that
stays (CI still failing on the same commit) is retried exactly when the agent took the last
message and finished a turn since, with the last messages read for all sessions in one query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reactions import engine
from reactions import services as reactions
from reactions.models import ReactionAttempt
from sessions.models import Message
from tests.factories import CheckRunFactory, ProjectFactory, PullRequestFactory, SessionFactory

pytestmark = pytest.mark.django_db


def failing_sessions(count: int, *, turn_after_message: bool):
    now = timezone.now()
    project = ProjectFactory()
    out = []
    for n in range(1, count + 1):
        session = SessionFactory(
            project=project,
            number=n,
            status="ci_failed",
            activity="idle",
            activity_at=now - timedelta(minutes=1 if turn_after_message else 5),
            runtime_handle={"runtime": "tmux", "name": f"s{n}", "data": {}},
        )
        pr = PullRequestFactory(session=session, ci_state="failing")
        CheckRunFactory(pull_request=pr, name="test", conclusion="failure")
        delivered = now - timedelta(minutes=3)
        message = Message.objects.create(
            session=session, text="fix CI", sender="reaction", state="confirmed", delivered_at=delivered
        )
        fingerprint = f"{pr.head_sha[:40]}:{engine._digest('test')[:16]}"
        row = ReactionAttempt.objects.create(
            session=session,
            rule="ci-failed",
            fingerprint=fingerprint,
            attempts=1,
            detail={"message": message.pk},
        )
        ReactionAttempt.objects.filter(pk=row.pk).update(first_at=delivered, last_at=delivered)
        out.append(session)
    return out


@pytest.mark.parametrize("turn_after_message", [True, False])
def test_a_staying_failure_is_retried_only_after_the_agents_turn(turn_after_message) -> None:
    sessions = failing_sessions(3, turn_after_message=turn_after_message)
    outcomes = reactions.sessions_react(session_ids=[s.pk for s in sessions])
    did = sorted((pk, o.rule, o.did, o.attempt) for pk, found in outcomes.items() for o in found)
    if turn_after_message:
        assert did == [(s.pk, "ci-failed", "sent", 2) for s in sessions]
        assert Message.objects.filter(state="queued").count() == 3
    else:
        assert did == []
        assert not Message.objects.filter(state="queued").exists()


def test_the_last_messages_are_read_once_for_all_sessions() -> None:
    few = failing_sessions(2, turn_after_message=False)
    with CaptureQueriesContext(connection) as two:
        reactions.sessions_react(session_ids=[s.pk for s in few])
    many = failing_sessions(8, turn_after_message=False)
    with CaptureQueriesContext(connection) as eight:
        reactions.sessions_react(session_ids=[s.pk for s in many])
    assert len(eight) == len(two), [q["sql"][:80] for q in eight.captured_queries]
