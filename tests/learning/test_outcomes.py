"""Outcome metrics computed from a recorded timeline, recorded once per finished session."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from reactions.models import Notification
from sessions.models import Event, Outcome, Session
from sessions.watchers import outcomes
from tests.factories import CheckRunFactory, ProjectFactory, PullRequestFactory, SessionFactory, UserFactory
from tests.learning.helpers import T0, event, message, minutes, started

pytestmark = pytest.mark.django_db


@pytest.fixture
def merged_session() -> Session:
    """A session that opened a PR, failed CI on three commits, went through two review rounds,
    waited for input once, had a reaction escalate, and was merged."""
    project = ProjectFactory(key="webapp", session_prefix="web")
    session = SessionFactory(
        project=project, id="web-1", number=1, agent="claude-code", model="opus", tokens_in=1000,
        tokens_out=200, cost_usd=Decimal("1.2500"), phase="running", status="merged", zone="done",
        ended_at=minutes(300), status_changed_at=minutes(300),
    )  # fmt: skip
    started(session, T0)
    pr = PullRequestFactory(session=session, project=project, number=7, state="merged", head_sha="a3")
    CheckRunFactory(
        pull_request=pr, head_sha="a1", name="lint", conclusion="failure", completed_at=minutes(40)
    )
    CheckRunFactory(
        pull_request=pr, head_sha="a1", name="test", conclusion="failure", completed_at=minutes(40)
    )
    CheckRunFactory(
        pull_request=pr, head_sha="a2", name="lint", conclusion="failure", completed_at=minutes(55)
    )
    CheckRunFactory(
        pull_request=pr, head_sha="a2", name="build", conclusion="success", completed_at=minutes(55)
    )
    CheckRunFactory(
        pull_request=pr, head_sha="a3", name="lint", conclusion="success", completed_at=minutes(70)
    )
    # a failing commit only the rows know about (its timeline entry was never written)
    CheckRunFactory(
        pull_request=pr, head_sha="a4", name="e2e", conclusion="timed_out", completed_at=minutes(200)
    )

    event(session, "status.changed", 20, summary="working → needs_input: the agent is waiting for an answer",
          before={"status": "working"}, after={"status": "needs_input", "zone": "respond"})  # fmt: skip
    event(session, "pr.opened", 30, number=7)
    event(session, "ci.changed", 40, ci="failing", failed=["lint", "test"], sha="a1")
    event(session, "ci.changed", 55, ci="failing", failed=["lint"], sha="a2")
    event(session, "ci.changed", 56, ci="failing", failed=["lint"], sha="a2")  # a re-run: same commit
    event(session, "reaction.escalated", 60, actor="reaction", rule="ci-failed")
    event(session, "ci.changed", 70, ci="passing", failed=[], sha="a3")
    event(session, "review.changed", 90, review="changes_requested")
    event(session, "review.changed", 120, review="changes_requested")
    event(session, "review.changed", 150, review="approved")
    event(session, "pr.merged", 240, number=7)

    message(session, "system", "the prompt")
    message(session, "user")
    message(session, "user")
    for _ in range(3):
        message(session, "reaction")
    message(session, "orchestrator")
    Notification.objects.create(
        project=project, session=session, rule="agent-needs-input",
        title="web-1 needs input: Running npm install --save left-pad",
    )  # fmt: skip
    return session


def test_outcome_metrics_from_a_recorded_timeline(merged_session) -> None:
    result = outcomes.outcome_compute(merged_session)

    assert result["result"] == "merged"
    assert result["first_pr_seconds"] == 1800.0
    assert result["merge_seconds"] == 14400.0
    assert result["pr_open_to_merge_seconds"] == 12600.0
    assert result["ci_ran"] is True
    assert result["ci_failure_cycles"] == 3
    assert result["failed_checks"] == {"e2e": 1, "lint": 2, "test": 1}
    assert result["first_failed_checks"] == ["lint", "test"]
    assert result["review_rounds"] == 2
    assert (result["human_messages"], result["reaction_messages"], result["orchestrator_messages"]) == (
        2,
        3,
        1,
    )
    assert result["escalations"] == 1
    assert result["escalated_rules"] == ["ci-failed"]
    assert result["needed_human"] is True
    assert result["human_reasons"] == [
        {"why": "needs_input", "detail": "the agent is waiting for an answer"},
        {"why": "escalated", "detail": "ci-failed"},
        {"why": "needs_input", "detail": "Running npm install --save left-pad"},
    ]
    assert result["input_keys"] == {"running npm install": 1}
    assert (result["tokens_in"], result["tokens_out"], result["cost_usd"]) == (1000, 200, Decimal("1.2500"))
    assert (result["agent"], result["model"]) == ("claude-code", "opus")
    assert result["started_at"] == T0
    assert result["ended_at"] == minutes(300)


def test_a_killed_session_without_a_pr_is_abandoned() -> None:
    person = UserFactory(username="ana")
    session = SessionFactory(phase="killed", status="killed", zone="done", cost_usd=Decimal("0.5"))
    started(session, T0)
    event(session, "session.killed", 45, actor="user")
    Event.objects.filter(session=session, kind="session.killed").update(actor_user=person)

    result = outcomes.outcome_compute(session)

    assert result["result"] == "abandoned"
    assert result["end_status"] == "killed"
    assert (result["first_pr_seconds"], result["merge_seconds"]) == (None, None)
    assert (result["ci_ran"], result["ci_failure_cycles"], result["failed_checks"]) == (False, 0, {})
    assert result["needed_human"] is False
    assert result["killed_by_user"] == "ana"
    assert result["ended_at"] == minutes(45)


def test_outcome_record_is_idempotent(merged_session) -> None:
    first = outcomes.outcome_record(session=merged_session)
    again = outcomes.outcome_record(session=merged_session)

    assert Outcome.objects.count() == 1
    assert again.pk == first.pk
    row = Outcome.objects.get()
    assert (row.result, row.ci_failure_cycles, row.review_rounds, row.human_messages) == ("merged", 3, 2, 2)
    assert row.failed_checks == {"e2e": 1, "lint": 2, "test": 1}
    assert row.data["pr_open_to_merge_seconds"] == 12600.0
    assert row.project_id == merged_session.project_id


def test_the_sweep_records_newly_finished_sessions_once(merged_session) -> None:
    project = merged_session.project
    live = SessionFactory(project=project, phase="running", zone="working", status="working")
    errored = SessionFactory(
        project=project, phase="errored", zone="respond", status="errored", error="boom\nmore"
    )
    SessionFactory(project=project, kind="orchestrator", id=f"{project.session_prefix}-orchestrator",
                   number=None, phase="killed", zone="done")  # fmt: skip

    assert sorted(outcomes.outcomes_record_due(project=project)) == sorted([merged_session.pk, errored.pk])
    assert outcomes.outcomes_record_due(project=project) == []
    assert not Outcome.objects.filter(session=live).exists()
    assert Outcome.objects.get(session=errored).human_reasons == [{"why": "errored", "detail": "boom"}]

    # a finished session that changes again (e.g. restored, then killed) is recomputed
    Session.objects.filter(pk=errored.pk).update(status_changed_at=timezone.now() + timedelta(seconds=5))
    assert outcomes.outcomes_record_due(project=project) == [errored.pk]
    assert Outcome.objects.count() == 2
