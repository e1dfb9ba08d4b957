"""Table-driven tests of the one status/zone derivation function."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sessions.domain.lifecycle import (
    AGENT_HANDLED,
    CONFIRM_READINGS,
    CONFIRM_SPAN,
    MAX_DETECTING_ATTEMPTS,
    STICKY,
    ZONE_OF,
    Activity,
    CIState,
    Facts,
    Phase,
    PRFact,
    PRState,
    Reported,
    ReviewDecision,
    RuntimeState,
    Status,
    ThreadFact,
    Zone,
    derive,
    needs_person,
    zone_for,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

BASE = Facts(now=NOW, phase=Phase.RUNNING, runtime=RuntimeState.ALIVE, previous=Status.WORKING)
GREEN = PRFact(ci_state=CIState.PASSING, review_decision=ReviewDecision.APPROVED, mergeable=True)


def facts(**changes) -> Facts:
    return replace(BASE, **changes)


def pr(**changes) -> PRFact:
    return replace(GREEN, **changes)


def weak_run(
    activity: Activity,
    *,
    readings: int = CONFIRM_READINGS,
    span: timedelta = MIN,
    began: timedelta = 2 * MIN,
    previous: Status = Status.WORKING,
    **changes,
) -> Facts:
    """Terminal readings: ``readings`` in a row saying ``activity`` over ``span``, the latest now;
    ``previous`` began ``began`` ago."""
    return facts(
        activity=activity,
        activity_weak=True,
        activity_at=NOW,
        activity_since=NOW - span,
        activity_streak=readings,
        previous=previous,
        previous_since=NOW - began,
        **changes,
    )


CASES = [
    # (id, facts, expected status)
    # --- ao's own phase outranks everything observed
    ("queued", facts(phase=Phase.QUEUED, pr=pr(state=PRState.MERGED)), Status.QUEUED),
    ("spawning", facts(phase=Phase.SPAWNING, runtime=RuntimeState.UNKNOWN), Status.SPAWNING),
    ("killed", facts(phase=Phase.KILLED, runtime=RuntimeState.LOST), Status.KILLED),
    ("errored", facts(phase=Phase.ERRORED, activity=Activity.WAITING_INPUT), Status.ERRORED),
    ("cleaned", facts(phase=Phase.CLEANED, pr=pr(state=PRState.MERGED)), Status.DONE),
    # --- merged PR outranks a lost runtime and an exited agent
    ("merged-runtime-lost", facts(runtime=RuntimeState.LOST, pr=pr(state=PRState.MERGED)), Status.MERGED),
    ("merged-agent-exited", facts(activity=Activity.EXITED, pr=pr(state=PRState.MERGED)), Status.MERGED),
    # --- runtime gone outranks agent and PR facts
    ("runtime-lost", facts(runtime=RuntimeState.LOST), Status.RUNTIME_LOST),
    (
        "runtime-lost-over-input",
        facts(runtime=RuntimeState.LOST, activity=Activity.WAITING_INPUT),
        Status.RUNTIME_LOST,
    ),
    (
        "runtime-lost-over-ci",
        facts(runtime=RuntimeState.LOST, pr=pr(ci_state=CIState.FAILING)),
        Status.RUNTIME_LOST,
    ),
    (
        "runtime-lost-over-closed",
        facts(runtime=RuntimeState.LOST, pr=pr(state=PRState.CLOSED)),
        Status.RUNTIME_LOST,
    ),
    # --- inconclusive probes: detecting for a bounded number of sweeps, then stuck
    ("probe-failed-first", facts(runtime=RuntimeState.PROBE_FAILED, detecting_attempts=0), Status.DETECTING),
    (
        "probe-failed-below-max",
        facts(runtime=RuntimeState.PROBE_FAILED, detecting_attempts=MAX_DETECTING_ATTEMPTS - 1),
        Status.DETECTING,
    ),
    (
        "probe-failed-at-max",
        facts(runtime=RuntimeState.PROBE_FAILED, detecting_attempts=MAX_DETECTING_ATTEMPTS),
        Status.STUCK,
    ),
    (
        "probe-failed-over-ci",
        facts(runtime=RuntimeState.PROBE_FAILED, pr=pr(ci_state=CIState.FAILING)),
        Status.DETECTING,
    ),
    # --- the agent itself: exited, waiting for input, blocked outrank PR facts
    ("process-exited", facts(runtime=RuntimeState.EXITED), Status.EXITED),
    ("activity-exited", facts(activity=Activity.EXITED), Status.EXITED),
    ("waiting-input", facts(activity=Activity.WAITING_INPUT), Status.NEEDS_INPUT),
    (
        "waiting-input-over-ci",
        facts(activity=Activity.WAITING_INPUT, pr=pr(ci_state=CIState.FAILING)),
        Status.NEEDS_INPUT,
    ),
    ("waiting-input-over-mergeable", facts(activity=Activity.WAITING_INPUT, pr=pr()), Status.NEEDS_INPUT),
    (
        "weak-waiting-input-still-counts",
        facts(activity=Activity.WAITING_INPUT, activity_weak=True),
        Status.NEEDS_INPUT,
    ),
    ("blocked", facts(activity=Activity.BLOCKED), Status.BLOCKED),
    ("exited-over-input", facts(runtime=RuntimeState.EXITED, activity=Activity.WAITING_INPUT), Status.EXITED),
    # --- one terminal reading never ends needs_input or stuck ...
    (
        "weak-active-keeps-needs-input",
        facts(activity=Activity.ACTIVE, activity_weak=True, previous=Status.NEEDS_INPUT),
        Status.NEEDS_INPUT,
    ),
    (
        "weak-ready-keeps-stuck",
        facts(activity=Activity.READY, activity_weak=True, activity_at=NOW, previous=Status.STUCK),
        Status.STUCK,
    ),
    (
        "weak-active-keeps-needs-input-over-old-ci",
        facts(
            activity=Activity.ACTIVE,
            activity_weak=True,
            previous=Status.NEEDS_INPUT,
            previous_since=NOW - 2 * MIN,
            pr=pr(ci_state=CIState.FAILING),
            pr_changed_at=NOW - 5 * MIN,
        ),
        Status.NEEDS_INPUT,
    ),
    (
        "short-run-keeps-needs-input",
        weak_run(Activity.ACTIVE, readings=CONFIRM_READINGS - 1, span=10 * MIN, previous=Status.NEEDS_INPUT),
        Status.NEEDS_INPUT,
    ),
    (
        "quick-run-keeps-needs-input",
        weak_run(Activity.ACTIVE, readings=10, span=CONFIRM_SPAN / 2, previous=Status.NEEDS_INPUT),
        Status.NEEDS_INPUT,
    ),
    (
        "run-from-before-the-status-keeps-it",
        weak_run(Activity.ACTIVE, began=MIN // 2, previous=Status.NEEDS_INPUT),
        Status.NEEDS_INPUT,
    ),
    (
        "unknown-screen-keeps-needs-input",
        weak_run(Activity.UNKNOWN, previous=Status.NEEDS_INPUT),
        Status.NEEDS_INPUT,
    ),
    # --- ... but concordant readings do (12.1: terminal-read agents)
    (
        "confirmed-active-clears-needs-input",
        weak_run(Activity.ACTIVE, previous=Status.NEEDS_INPUT),
        Status.WORKING,
    ),
    (
        "confirmed-ready-clears-needs-input",
        weak_run(Activity.READY, previous=Status.NEEDS_INPUT),
        Status.IDLE,
    ),
    ("confirmed-active-clears-stuck", weak_run(Activity.ACTIVE, previous=Status.STUCK), Status.WORKING),
    (
        "confirmed-active-after-probes-clears-stuck",
        weak_run(Activity.ACTIVE, previous=Status.STUCK, pr=pr(ci_state=CIState.PENDING)),
        Status.CI_PENDING,
    ),
    (
        "confirmed-active-shows-old-ci-failure",
        weak_run(Activity.ACTIVE, previous=Status.NEEDS_INPUT, pr=pr(ci_state=CIState.FAILING)),
        Status.CI_FAILED,
    ),
    (
        "confirmed-ready-keeps-stuck",  # by its screen the agent has been idle all along
        weak_run(Activity.READY, previous=Status.STUCK),
        Status.STUCK,
    ),
    (
        "exactly-confirmed",
        weak_run(Activity.ACTIVE, readings=CONFIRM_READINGS, span=CONFIRM_SPAN, previous=Status.NEEDS_INPUT),
        Status.WORKING,
    ),
    # --- strong evidence: the transcript
    (
        "strong-active-clears-needs-input",
        facts(activity=Activity.ACTIVE, activity_weak=False, previous=Status.NEEDS_INPUT),
        Status.WORKING,
    ),
    (
        "strong-ready-clears-stuck",
        facts(activity=Activity.READY, activity_at=NOW - MIN, previous=Status.STUCK),
        Status.IDLE,
    ),
    (
        "old-transcript-entry-keeps-needs-input",
        facts(
            activity=Activity.ACTIVE,
            activity_at=NOW - 5 * MIN,
            previous=Status.NEEDS_INPUT,
            previous_since=NOW - 2 * MIN,
        ),
        Status.NEEDS_INPUT,
    ),
    # --- a fresh report is strong evidence; the newest strong evidence decides
    (
        "report-working-clears-needs-input",  # `ao report working` after a question was answered
        facts(
            activity=Activity.WAITING_INPUT,
            activity_weak=True,
            activity_at=NOW - MIN,
            reported=Reported.WORKING,
            reported_at=NOW,
            previous=Status.NEEDS_INPUT,
            previous_since=NOW - 3 * MIN,
        ),
        Status.WORKING,
    ),
    (
        "report-working-clears-stuck",
        facts(
            activity=Activity.READY,
            activity_weak=True,
            reported=Reported.WORKING,
            reported_at=NOW,
            previous=Status.STUCK,
            previous_since=NOW - 3 * MIN,
        ),
        Status.WORKING,
    ),
    (
        "report-then-confirmed-question",
        replace(
            weak_run(Activity.WAITING_INPUT, began=MIN // 2),
            reported=Reported.WORKING,
            reported_at=NOW - 2 * MIN,
        ),
        Status.NEEDS_INPUT,
    ),
    (
        "report-over-unconfirmed-question",
        facts(
            activity=Activity.WAITING_INPUT,
            activity_weak=True,
            activity_since=NOW,
            activity_streak=1,
            reported=Reported.WORKING,
            reported_at=NOW - MIN,
        ),
        Status.WORKING,
    ),
    (
        "newer-transcript-over-report",
        facts(activity=Activity.READY, activity_at=NOW, reported=Reported.WORKING, reported_at=NOW - MIN),
        Status.IDLE,
    ),
    (
        "report-over-older-transcript",
        facts(activity=Activity.READY, activity_at=NOW - 2 * MIN, reported=Reported.WORKING, reported_at=NOW),
        Status.WORKING,
    ),
    (
        "stale-report-does-not-hold-needs-input",  # a 6-minute-old report no longer decides
        replace(
            weak_run(Activity.READY, began=2 * MIN, previous=Status.NEEDS_INPUT),
            reported=Reported.NEEDS_INPUT,
            reported_at=NOW - 6 * MIN,
            previous_since=NOW - 6 * MIN,
        ),
        Status.IDLE,
    ),
    (
        "report-that-set-the-status-is-no-change",
        facts(
            activity=Activity.ACTIVE,
            activity_weak=True,
            reported=Reported.NEEDS_INPUT,
            reported_at=NOW - MIN,
            previous=Status.NEEDS_INPUT,
            previous_since=NOW - MIN,
        ),
        Status.NEEDS_INPUT,
    ),
    # --- a PR fact that changed after the status began
    (
        "new-ci-failure-clears-needs-input",
        facts(
            activity=Activity.ACTIVE,
            activity_weak=True,
            previous=Status.NEEDS_INPUT,
            previous_since=NOW - 5 * MIN,
            pr=pr(ci_state=CIState.FAILING),
            pr_changed_at=NOW - MIN,
        ),
        Status.CI_FAILED,
    ),
    (
        "new-mergeable-clears-stuck",
        facts(
            activity=Activity.READY,
            activity_weak=True,
            previous=Status.STUCK,
            previous_since=NOW - 5 * MIN,
            pr=pr(),
            pr_changed_at=NOW - MIN,
        ),
        Status.MERGEABLE,
    ),
    (
        "new-pr-fact-does-not-hide-a-question",
        facts(
            activity=Activity.WAITING_INPUT,
            activity_weak=True,
            previous=Status.NEEDS_INPUT,
            previous_since=NOW - 5 * MIN,
            pr=pr(ci_state=CIState.FAILING),
            pr_changed_at=NOW - MIN,
        ),
        Status.NEEDS_INPUT,
    ),
    (
        "weak-active-from-working",
        facts(activity=Activity.ACTIVE, activity_weak=True, previous=Status.WORKING),
        Status.WORKING,
    ),
    (
        "merged-clears-sticky-even-with-weak",
        facts(
            activity=Activity.ACTIVE, activity_weak=True, previous=Status.STUCK, pr=pr(state=PRState.MERGED)
        ),
        Status.MERGED,
    ),
    (
        "lost-clears-sticky",
        facts(runtime=RuntimeState.LOST, activity_weak=True, previous=Status.NEEDS_INPUT),
        Status.RUNTIME_LOST,
    ),
    (
        "exit-clears-sticky",
        facts(runtime=RuntimeState.EXITED, activity_weak=True, previous=Status.STUCK),
        Status.EXITED,
    ),
    # --- PR facts, in their own precedence
    ("pr-closed", facts(pr=pr(state=PRState.CLOSED)), Status.PR_CLOSED),
    ("pr-closed-over-ci", facts(pr=pr(state=PRState.CLOSED, ci_state=CIState.FAILING)), Status.PR_CLOSED),
    ("ci-failing", facts(pr=pr(ci_state=CIState.FAILING)), Status.CI_FAILED),
    (
        "ci-failing-over-changes",
        facts(pr=pr(ci_state=CIState.FAILING, review_decision=ReviewDecision.CHANGES_REQUESTED)),
        Status.CI_FAILED,
    ),
    ("ci-failing-on-draft", facts(pr=pr(ci_state=CIState.FAILING, draft=True)), Status.CI_FAILED),
    (
        "changes-requested",
        facts(pr=pr(review_decision=ReviewDecision.CHANGES_REQUESTED)),
        Status.CHANGES_REQUESTED,
    ),
    (
        "changes-requested-over-conflicts",
        facts(pr=pr(review_decision=ReviewDecision.CHANGES_REQUESTED, conflicts=True)),
        Status.CHANGES_REQUESTED,
    ),
    ("conflicts", facts(pr=pr(conflicts=True)), Status.MERGE_CONFLICTS),
    (
        "conflicts-over-pending-ci",
        facts(pr=pr(conflicts=True, ci_state=CIState.PENDING)),
        Status.MERGE_CONFLICTS,
    ),
    ("ci-pending", facts(pr=pr(ci_state=CIState.PENDING)), Status.CI_PENDING),
    (
        "ci-pending-over-review",
        facts(pr=pr(ci_state=CIState.PENDING, review_decision=ReviewDecision.REQUIRED)),
        Status.CI_PENDING,
    ),
    ("review-required", facts(pr=pr(review_decision=ReviewDecision.REQUIRED)), Status.REVIEW_PENDING),
    ("mergeable", facts(pr=pr()), Status.MERGEABLE),
    ("mergeable-no-review-required", facts(pr=pr(review_decision=ReviewDecision.NONE)), Status.MERGEABLE),
    # --- approved and green means something was green (12.5)
    ("no-checks-is-not-green", facts(pr=pr(ci_state=CIState.NONE)), Status.CI_PENDING),
    (
        "no-checks-no-review-is-not-green",
        facts(pr=pr(ci_state=CIState.NONE, review_decision=ReviewDecision.NONE)),
        Status.CI_PENDING,
    ),
    ("no-checks-needed", facts(pr=pr(ci_state=CIState.NONE, required_checks=())), Status.MERGEABLE),
    (
        "no-checks-needed-still-fails",
        facts(pr=pr(ci_state=CIState.FAILING, required_checks=())),
        Status.CI_FAILED,
    ),
    (
        "required-checks-passed",
        facts(
            pr=pr(ci_state=CIState.PENDING, required_checks=("tests",), passed_checks=frozenset({"tests"}))
        ),
        Status.MERGEABLE,
    ),
    (
        "required-check-missing",
        facts(
            pr=pr(
                ci_state=CIState.PASSING, required_checks=("tests", "lint"), passed_checks=frozenset({"lint"})
            )
        ),
        Status.CI_PENDING,
    ),
    (
        "approval-required-none-given",
        facts(pr=pr(review_decision=ReviewDecision.NONE, require_approval=True)),
        Status.REVIEW_PENDING,
    ),
    ("approval-required-and-given", facts(pr=pr(require_approval=True)), Status.MERGEABLE),
    ("approved-behind", facts(pr=pr(behind=True)), Status.APPROVED),
    ("approved-not-mergeable", facts(pr=pr(mergeable=False)), Status.APPROVED),
    ("approved-mergeability-unknown", facts(pr=pr(mergeable=None)), Status.APPROVED),
    # --- drafts are work in progress: the agent's own state decides
    ("draft-working", facts(pr=pr(draft=True), activity=Activity.ACTIVE), Status.WORKING),
    (
        "draft-idle-too-long",
        facts(pr=pr(draft=True), activity=Activity.IDLE, activity_at=NOW - 11 * MIN),
        Status.STUCK,
    ),
    ("draft-ci-pending", facts(pr=pr(draft=True, ci_state=CIState.PENDING)), Status.WORKING),
    # --- PR facts outrank self-reports
    (
        "pr-over-report",
        facts(pr=pr(ci_state=CIState.FAILING), reported=Reported.WORKING, reported_at=NOW),
        Status.CI_FAILED,
    ),
    # --- fresh self-reports
    ("report-needs-input", facts(reported=Reported.NEEDS_INPUT, reported_at=NOW - MIN), Status.NEEDS_INPUT),
    (
        "report-needs-input-over-ci",  # the agent's own question outranks PR facts, as a screen one does
        facts(pr=pr(ci_state=CIState.FAILING), reported=Reported.NEEDS_INPUT, reported_at=NOW),
        Status.NEEDS_INPUT,
    ),
    (
        "report-done-stuck-after-threshold",
        facts(reported=Reported.DONE, reported_at=NOW - 5 * MIN, stuck_after=4 * MIN),
        Status.STUCK,
    ),
    ("report-blocked", facts(reported=Reported.BLOCKED, reported_at=NOW), Status.BLOCKED),
    ("report-done", facts(reported=Reported.DONE, reported_at=NOW), Status.IDLE),
    ("report-working", facts(reported=Reported.WORKING, reported_at=NOW), Status.WORKING),
    (
        "report-working-over-idle",
        facts(reported=Reported.WORKING, reported_at=NOW, activity=Activity.IDLE, activity_at=NOW - 30 * MIN),
        Status.WORKING,
    ),
    ("report-stale-ignored", facts(reported=Reported.NEEDS_INPUT, reported_at=NOW - 6 * MIN), Status.WORKING),
    ("report-without-time-ignored", facts(reported=Reported.BLOCKED, reported_at=None), Status.WORKING),
    (
        "report-exactly-at-freshness-limit",
        facts(reported=Reported.BLOCKED, reported_at=NOW - 5 * MIN),
        Status.BLOCKED,
    ),
    # --- idle and the stuck threshold
    ("idle-recent", facts(activity=Activity.IDLE, activity_at=NOW - 9 * MIN), Status.IDLE),
    ("ready-recent", facts(activity=Activity.READY, activity_at=NOW), Status.IDLE),
    ("idle-at-threshold", facts(activity=Activity.IDLE, activity_at=NOW - 10 * MIN), Status.STUCK),
    ("idle-beyond-threshold", facts(activity=Activity.IDLE, activity_at=NOW - 60 * MIN), Status.STUCK),
    ("ready-beyond-threshold", facts(activity=Activity.READY, activity_at=NOW - 11 * MIN), Status.STUCK),
    (
        "custom-threshold",
        facts(activity=Activity.IDLE, activity_at=NOW - 3 * MIN, stuck_after=2 * MIN),
        Status.STUCK,
    ),
    (
        "longer-threshold-not-reached",
        facts(activity=Activity.IDLE, activity_at=NOW - 15 * MIN, stuck_after=20 * MIN),
        Status.IDLE,
    ),
    (
        "longer-threshold-reached",
        facts(activity=Activity.READY, activity_at=NOW - 20 * MIN, stuck_after=20 * MIN),
        Status.STUCK,
    ),
    ("idle-unknown-age", facts(activity=Activity.IDLE, activity_at=None), Status.IDLE),
    # --- otherwise working
    ("active", facts(activity=Activity.ACTIVE, activity_at=NOW - 60 * MIN), Status.WORKING),
    ("unknown-activity", facts(activity=Activity.UNKNOWN), Status.WORKING),
    ("runtime-unknown-running", facts(runtime=RuntimeState.UNKNOWN), Status.WORKING),
]


@pytest.mark.parametrize(("given", "expected"), [(f, s) for _, f, s in CASES], ids=[c[0] for c in CASES])
def test_derive(given: Facts, expected: Status) -> None:
    result = derive(given)
    assert result.status == expected
    assert result.zone == ZONE_OF[expected]
    assert result.reason


def test_every_status_has_a_zone() -> None:
    assert set(ZONE_OF) == set(Status)


def test_zones_of_note() -> None:
    assert ZONE_OF[Status.MERGEABLE] == Zone.MERGE
    assert {s for s, z in ZONE_OF.items() if z == Zone.REVIEW} == {Status.REVIEW_PENDING}
    assert {Status.NEEDS_INPUT, Status.STUCK, Status.ERRORED, Status.RUNTIME_LOST} <= {
        s for s, z in ZONE_OF.items() if z == Zone.RESPOND
    }
    assert ZONE_OF[Status.QUEUED] == Zone.PENDING


# --- who acts: one definition of "needs a person" (11.7) ----------------------------------------
NEEDS_A_PERSON = {
    Status.REVIEW_PENDING,  # a person's review
    Status.MERGEABLE,  # a person (or auto-merge) merges
    Status.NEEDS_INPUT,
    Status.BLOCKED,
    Status.STUCK,
    Status.EXITED,
    Status.RUNTIME_LOST,
    Status.ERRORED,
}


@pytest.mark.parametrize("status", list(Status))
def test_needs_a_person_by_default(status: Status) -> None:
    assert needs_person(zone_for(status)) == (status in NEEDS_A_PERSON)


@pytest.mark.parametrize("status", sorted(AGENT_HANDLED))
def test_a_pr_problem_needs_a_person_unless_the_agent_handles_it(status: Status) -> None:
    assert zone_for(status) == Zone.WORKING  # the default rules send it to the agent
    assert zone_for(status, agent_handles=AGENT_HANDLED - {status}) == Zone.RESPOND  # notify, or escalated
    assert needs_person(zone_for(status, agent_handles=frozenset()))


def test_derive_places_a_pr_problem_by_who_handles_it() -> None:
    failing = facts(pr=pr(ci_state=CIState.FAILING))
    assert derive(failing).zone == Zone.WORKING
    assert derive(replace(failing, agent_handles=frozenset())) == derive(failing).__class__(
        Status.CI_FAILED, Zone.RESPOND, "CI is failing"
    )
    review = derive(facts(pr=pr(review_decision=ReviewDecision.REQUIRED)))
    assert (review.status, review.zone, needs_person(review.zone)) == (
        Status.REVIEW_PENDING,
        Zone.REVIEW,
        True,
    )


def test_every_status_is_reachable() -> None:
    reached = {derive(f).status for _, f, _ in CASES}
    assert reached == set(Status)


# Exhaustive sweep over the fact space: invariants that must hold for every combination.
PR_OPTIONS = [None] + [
    PRFact(
        state=state,
        draft=draft,
        ci_state=ci,
        review_decision=review,
        mergeable=mergeable,
        conflicts=conflicts,
        behind=behind,
    )
    for state, draft, ci, review, mergeable, conflicts, behind in itertools.product(
        PRState, (False, True), CIState, ReviewDecision, (None, False, True), (False, True), (False, True)
    )
]
AGENT_OPTIONS = list(
    itertools.product(
        RuntimeState,
        Activity,
        (False, True),  # weak
        (None, NOW, NOW - 30 * MIN),  # activity_at
        (0, 1, CONFIRM_READINGS),  # activity_streak (its run began a minute ago)
        (Reported.NONE, Reported.NEEDS_INPUT, Reported.DONE),
        (Status.WORKING, Status.NEEDS_INPUT, Status.STUCK),
        (None, NOW - 5 * MIN),  # pr_changed_at
    )
)


def _all_running_facts():
    for pr_facts in [*PR_OPTIONS[::29], None]:
        for runtime, activity, weak, at, streak, reported, previous, pr_changed in AGENT_OPTIONS:
            yield Facts(
                now=NOW,
                runtime=runtime,
                activity=activity,
                activity_weak=weak,
                activity_at=at,
                activity_since=NOW - MIN,
                activity_streak=streak,
                reported=reported,
                reported_at=NOW - 2 * MIN,
                pr=pr_facts,
                pr_changed_at=pr_changed,
                previous=previous,
                previous_since=NOW - 3 * MIN,
            )


def test_invariants_over_the_fact_space() -> None:
    count = 0
    for f in _all_running_facts():
        count += 1
        result = derive(f)
        assert result.zone == ZONE_OF[result.status]
        # derive is deterministic
        assert derive(f) == result
        if f.pr is not None and f.pr.state == PRState.MERGED:
            assert result.status == Status.MERGED
        elif f.runtime == RuntimeState.LOST:
            assert result.status == Status.RUNTIME_LOST
        elif f.runtime == RuntimeState.PROBE_FAILED:
            assert result.status == Status.DETECTING
        elif f.runtime == RuntimeState.EXITED or f.activity == Activity.EXITED:
            assert result.status == Status.EXITED
        if (
            f.previous in STICKY
            and f.activity_weak
            and f.activity_streak < CONFIRM_READINGS
            and f.reported == Reported.NONE
            and f.pr_changed_at is None
            and f.runtime == RuntimeState.ALIVE
            and f.activity not in (Activity.WAITING_INPUT, Activity.BLOCKED, Activity.EXITED)
            and not (f.pr is not None and f.pr.state == PRState.MERGED)
        ):
            assert result.status == f.previous, "one terminal reading must not end a sticky status"
        # only these phases produce these statuses
        assert result.status not in (
            Status.QUEUED,
            Status.SPAWNING,
            Status.KILLED,
            Status.ERRORED,
            Status.DONE,
        )
    assert count > 10_000


@pytest.mark.parametrize("phase", [p for p in Phase if p != Phase.RUNNING])
def test_phase_decides_alone(phase: Phase) -> None:
    statuses = {
        derive(facts(phase=phase, runtime=runtime, activity=activity, pr=pr_facts)).status
        for runtime in RuntimeState
        for activity in Activity
        for pr_facts in (None, pr(), pr(state=PRState.MERGED), pr(ci_state=CIState.FAILING))
    }
    assert len(statuses) == 1


@pytest.mark.parametrize("phase", [Phase.KILLED, Phase.CLEANED])
def test_a_killed_or_cleaned_session_never_needs_a_person(phase: Phase) -> None:
    """Whatever it last showed (runtime lost, needs input, a PR problem nobody handles) and
    whatever facts were last stored, a session a person killed or ao cleaned up is done. (An
    errored one waits for a decision in respond: its agent never started.)"""
    for f in _all_running_facts():
        result = derive(replace(f, phase=phase, agent_handles=frozenset()))
        assert result.zone == Zone.DONE and not needs_person(result.zone), (f, result)


# The status the services derive uses the project's effective agent-stuck threshold as stuck_after.
STUCK_THRESHOLDS = [
    # (agent-stuck threshold in the project's reactions, minutes idle, expected status)
    (None, 9, Status.IDLE),
    (None, 10, Status.STUCK),
    ("5m", 4, Status.IDLE),
    ("5m", 6, Status.STUCK),  # shorter than the default
    ("20m", 15, Status.IDLE),  # longer than the default
    ("20m", 21, Status.STUCK),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("threshold", "minutes", "expected"), STUCK_THRESHOLDS)
def test_the_project_agent_stuck_threshold_decides_stuck(settings, tmp_path, threshold, minutes, expected):
    from django.utils import timezone

    from sessions.core import services
    from tests.factories import ProjectFactory, SessionFactory

    config = tmp_path / "ao.config.yaml"
    config.write_text(
        "projects:\n  web:\n    path: .\n    agent: custom\n    agentConfig: {command: [echo]}\n"
    )
    settings.AO_CONFIG = str(config)
    reactions = {"agent-stuck": {"threshold": threshold}} if threshold else {}
    project = ProjectFactory(key="web", session_prefix="web", reactions=reactions)
    now = timezone.now()
    session = SessionFactory(project=project, activity=Activity.IDLE, activity_at=now - minutes * MIN)

    services.session_rederive(session=session, now=now)

    session.refresh_from_db()
    assert session.status == expected


@pytest.mark.django_db
def test_the_top_level_agent_stuck_threshold_counts_too(settings, tmp_path):
    from django.utils import timezone

    from sessions.core import services
    from tests.factories import ProjectFactory, SessionFactory

    config = tmp_path / "ao.config.yaml"
    config.write_text(
        "projects:\n  web:\n    path: .\n    agent: custom\n    agentConfig: {command: [echo]}\n"
        "reactions:\n  agent-stuck:\n    threshold: 3m\n"
    )
    settings.AO_CONFIG = str(config)
    now = timezone.now()
    session = SessionFactory(
        project=ProjectFactory(key="web"), activity=Activity.IDLE, activity_at=now - 4 * MIN
    )

    services.session_rederive(session=session, now=now)

    session.refresh_from_db()
    assert (session.status, session.status_reason) == (Status.STUCK, "idle for longer than 3 min")


@pytest.mark.parametrize(
    ("changes", "green", "approved"),
    [
        ({"ci_state": CIState.NONE}, False, True),
        ({"ci_state": CIState.PENDING}, False, True),
        ({"ci_state": CIState.FAILING}, False, True),
        ({"ci_state": CIState.PASSING}, True, True),
        ({"ci_state": CIState.NONE, "required_checks": ()}, True, True),
        ({"ci_state": CIState.PASSING, "required_checks": ("e2e",)}, False, True),
        ({"review_decision": ReviewDecision.NONE}, True, True),
        ({"review_decision": ReviewDecision.REQUIRED}, True, False),
        ({"review_decision": ReviewDecision.CHANGES_REQUESTED}, True, False),
        ({"review_decision": ReviewDecision.NONE, "require_approval": True}, True, False),
        # a reviewer's open thread (ao forwards it as changes requested), approved or not
        ({"threads": (ThreadFact("t1", author="dave", association="MEMBER"),)}, True, False),
        (
            {"review_decision": ReviewDecision.NONE, "threads": (ThreadFact("t1", association="OWNER"),)},
            True,
            False,
        ),
        # ... but not a bot's, nor one of someone who cannot write to the repository (not forwarded)
        ({"threads": (ThreadFact("t1", author="lint[bot]", association="NONE", is_bot=True),)}, True, True),
        ({"threads": (ThreadFact("t1", author="passer-by", association="NONE"),)}, True, True),
    ],
)
def test_approved_and_green_has_one_definition(changes, green, approved) -> None:
    from sessions.domain.lifecycle import approved_and_green, ci_not_green, review_not_approved

    given = pr(**changes)
    assert (not ci_not_green(given), not review_not_approved(given)) == (green, approved)
    assert approved_and_green(given) == (green and approved)
    assert (derive(facts(pr=given)).status == Status.MERGEABLE) == (green and approved)


def test_an_open_reviewer_thread_is_changes_requested_not_ready_to_merge() -> None:
    """ao tells the agent to address it and holds the approved-and-green notice and auto-merge:
    the card, `ao status` and the merge button say the same (it said "Ready to merge")."""
    derived = derive(facts(pr=pr(threads=(ThreadFact("t1", author="dave", association="MEMBER"),))))

    assert (derived.status, derived.reason) == (
        Status.CHANGES_REQUESTED,
        "1 review thread of a reviewer still open",
    )
    assert zone_for(derived.status) == Zone.WORKING


def test_a_pr_ready_to_merge_is_called_approved_only_when_someone_approved_it() -> None:
    assert derive(facts(pr=pr())).reason == "approved and green, and mergeable"
    unreviewed = derive(facts(pr=pr(review_decision=ReviewDecision.NONE)))
    assert (unreviewed.status, unreviewed.reason) == (
        Status.MERGEABLE,
        "green (no review required), and mergeable",
    )
