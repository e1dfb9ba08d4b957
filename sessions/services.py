"""Writes. Every change to sessions goes through a function here; only services write rows,
enqueue tasks and broadcast (after commit)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from sessions import lifecycle, realtime
from sessions.lifecycle import CIState, Facts, PRFacts, PRState, ReviewDecision, Zone
from sessions.models import Actor, Event, Project, Session

SWEEP_LEASE = timedelta(minutes=5)


def event_record(
    *,
    project: Project,
    session: Session | None,
    kind: str,
    summary: str,
    actor: str = Actor.SYSTEM,
    actor_user=None,
    actor_name: str = "",
    data: dict[str, Any] | None = None,
) -> Event:
    return Event.objects.create(
        project=project,
        session=session,
        kind=kind,
        summary=summary[:500],
        actor=actor,
        actor_user=actor_user,
        actor_name=actor_name,
        data=data or {},
    )


def session_create(
    *,
    project: Project,
    kind: str = Session.Kind.WORKER,
    issue_ref: str = "",
    issue_title: str = "",
    prompt: str = "",
    agent: str = "",
    by=None,
) -> Session:
    """Create a session row with the next id of its project, allocated atomically.

    The counter is bumped with an UPDATE ... SET n = n + 1 inside the transaction, which takes the
    row lock (PostgreSQL) or the write lock (SQLite, IMMEDIATE transactions) first, so concurrent
    spawns never share a number.
    """
    with transaction.atomic():
        if kind == Session.Kind.ORCHESTRATOR:
            number = None
            session_id = f"{project.session_prefix}-orchestrator"
        else:
            Project.objects.filter(pk=project.pk).update(next_session_number=F("next_session_number") + 1)
            number = Project.objects.values_list("next_session_number", flat=True).get(pk=project.pk) - 1
            session_id = f"{project.session_prefix}-{number}"
        session = Session(
            id=session_id,
            project=project,
            number=number,
            kind=kind,
            issue_ref=issue_ref,
            issue_title=issue_title,
            prompt=prompt,
            agent=agent or project.agent,
            created_by=by,
        )
        session.full_clean(exclude=["project", "created_by"])
        session.save(force_insert=True)
        session_rederive(session=session, record=False)
        event_record(
            project=project,
            session=session,
            kind="session.created",
            summary=f"{session.id} created" + (f" for {issue_ref}" if issue_ref else ""),
            actor=Actor.USER if by else Actor.SYSTEM,
            actor_user=by,
        )
        transaction.on_commit(lambda: realtime.card_changed(session.id))
    return session


def session_facts(session: Session, *, now: datetime | None = None) -> Facts:
    """Gather a session's stored facts for the derivation function."""
    pr = getattr(session, "pull_request", None) if session.pk else None
    pr_facts = None
    if pr is not None:
        pr_facts = PRFacts(
            state=PRState(pr.state),
            draft=pr.draft,
            ci=CIState(pr.ci_state),
            review=ReviewDecision(pr.review_decision),
            mergeable=pr.mergeable,
            conflicts=pr.conflicts,
            behind=pr.behind,
        )
    return Facts(
        now=now or timezone.now(),
        phase=lifecycle.Phase(session.phase),
        runtime=lifecycle.RuntimeState(session.runtime_state),
        activity=lifecycle.Activity(session.activity),
        activity_at=session.activity_at,
        activity_weak=session.activity_weak,
        reported=lifecycle.Reported(session.reported_state),
        reported_at=session.reported_at,
        pr=pr_facts,
        detecting_attempts=session.detecting_attempts,
        previous=lifecycle.Status(session.status),
    )


def session_rederive(
    *, session: Session, now: datetime | None = None, record: bool = True, actor: str = Actor.SYSTEM
) -> bool:
    """Derive status and zone from the stored facts; on a change write them, an Event and a push.

    Returns True when the status or zone changed.
    """
    derived = lifecycle.derive(session_facts(session, now=now))
    before = {"status": session.status, "zone": session.zone}
    changed = (derived.status, derived.zone) != (session.status, session.zone)
    session.status, session.zone, session.status_reason = derived.status, derived.zone, derived.reason
    if not changed:
        if record:
            Session.objects.filter(pk=session.pk).update(status_reason=derived.reason)
        return False
    session.status_changed_at = now or timezone.now()
    if derived.zone == Zone.DONE and session.ended_at is None:
        session.ended_at = session.status_changed_at
    if not record:
        return True
    Session.objects.filter(pk=session.pk).update(
        status=session.status,
        zone=session.zone,
        status_reason=session.status_reason,
        status_changed_at=session.status_changed_at,
        ended_at=session.ended_at,
        updated_at=timezone.now(),
    )
    event_record(
        project=session.project,
        session=session,
        kind="status.changed",
        summary=f"{before['status']} → {derived.status}: {derived.reason}",
        actor=actor,
        data={"before": before, "after": {"status": derived.status, "zone": derived.zone}},
    )
    session_id = session.pk
    transaction.on_commit(lambda: realtime.card_changed(session_id))
    return True


def project_sweep_claim(*, project_id: int, now: datetime | None = None) -> bool:
    """Claim the project's sweep lease; False if another sweep holds an unexpired one."""
    now = now or timezone.now()
    claimed = (
        Project.objects.filter(pk=project_id)
        .filter(Q(sweep_lease_until__isnull=True) | Q(sweep_lease_until__lt=now))
        .update(sweep_lease_until=now + SWEEP_LEASE)
    )
    return claimed == 1


def project_sweep_release(*, project_id: int) -> None:
    Project.objects.filter(pk=project_id).update(sweep_lease_until=None, last_swept_at=timezone.now())


def project_sweep(*, project: Project, now: datetime | None = None) -> int:
    """Re-observe every live session of the project and re-derive its status. Returns changes."""
    changes = 0
    live = Session.objects.filter(project=project).exclude(zone=Zone.DONE).select_related("project")
    for session in live:
        with transaction.atomic():
            if session_rederive(session=session, now=now):
                changes += 1
    return changes


def projects_due_for_sweep(*, now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    due = []
    for pk, interval, last in Project.objects.values_list("pk", "sweep_interval", "last_swept_at"):
        every = timedelta(seconds=interval or settings.AO_SWEEP_INTERVAL)
        if last is None or now - last >= every:
            due.append(pk)
    return due
