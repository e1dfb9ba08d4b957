"""Backlog intake: issues carrying the project's intake label are claimed and given to a worker.

Each sweep (while ``Project.intake_enabled``) lists the tracker's open issues with
``intake_label``, and for each one not claimed yet, while the project and host caps leave room
(``spawning.admission_check``): inserts a unique ``IntakeClaim(project, issue_ref)`` row first —
so two sweeps racing never spawn twice for one issue —, moves the labels (in progress on, backlog
off) and spawns a worker on the issue. An issue that already has a live worker is adopted
instead of spawned again. When a claimed worker's PR merged, the labels move to done (once).
When a claimed worker finished without a merged PR (killed by a person, PR closed, failed to
start: ``outcomes.finished_sessions`` minus merged), the claim is *released*: the in-progress
label comes off, the backlog label is not put back (someone stopped the work on purpose), and the
claim row is deleted, so labelling the issue for intake again makes a later sweep claim it anew.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.base import IntegrationError, IssueNotFound
from integrations.records import IssueState
from integrations.registry import ConfigurationError, plugin_for
from reactions.notify import notify
from sessions.agents import spawning
from sessions.core import audit, services, usage
from sessions.domain.lifecycle import Phase, PRState, Status
from sessions.models import Actor, IntakeClaim, Project, Session
from sessions.watchers import outcomes

log = logging.getLogger(__name__)

LIST_LIMIT = 50
# A claim still without a worker after this long was left by a sweep that died between claiming and
# spawning (a spawn takes well under a second): the next sweep finishes it.
CLAIM_STALE = timedelta(minutes=2)


def _order(ref: str) -> tuple:
    return (0, int(ref), "") if ref.isdigit() else (1, 0, ref)


def _live_worker_for(project: Project, issue_ref: str) -> Session | None:
    return (
        Session.objects.live().filter(project=project, kind=Session.Kind.WORKER, issue_ref=issue_ref).first()
    )


# --- switches and reads -----------------------------------------------------------------------------
def intake_set(*, project: Project, enabled: bool, by=None, actor: str = Actor.USER) -> list[str]:
    """Turn intake on or off. Turning it on also releases failed claims, so they are tried again."""
    notes = []
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(intake_enabled=enabled, updated_at=timezone.now())
        project.intake_enabled = enabled
        if enabled:
            released, _ = IntakeClaim.objects.filter(project=project, state=IntakeClaim.State.FAILED).delete()
            if released:
                notes.append(f"released {released} failed claim(s): they are tried again")
        services.event_record(
            project=project,
            session=None,
            kind="intake.switched",
            summary=f"backlog intake turned {'on' if enabled else 'off'}",
            actor=actor,
            actor_user=by,
        )
        audit.record(action="intake.on" if enabled else "intake.off", target=project, project=project)
    return notes


def intake_claims(*, project: Project):
    return IntakeClaim.objects.filter(project=project).select_related("session")


# --- the sweep ----------------------------------------------------------------------------------------
def intake_sweep(*, project: Project) -> list[str]:
    """Move labels of merged work to done, release the claims of abandoned work, then (intake on)
    claim backlog issues up to the cap."""
    project.refresh_from_db(fields=["intake_enabled", "max_sessions"])
    notes = intake_complete(project=project)
    notes += intake_release(project=project)
    if project.intake_enabled:
        notes += intake_resume(project=project)
        notes += intake_claim(project=project)
    return notes


def intake_complete(*, project: Project) -> list[str]:
    """Claims whose worker's PR merged: labels in progress → done. Idempotent: the claim moves to
    ``done`` with a conditional UPDATE after the (idempotent) label change."""
    spawned = IntakeClaim.objects.filter(
        project=project,
        state=IntakeClaim.State.SPAWNED,
        session__pull_request__state=PRState.MERGED,
    ).select_related("session")
    if not spawned.exists():
        return []
    tracker = plugin_for(project, "tracker")
    notes = []
    for claim in spawned:
        try:
            tracker.set_labels(
                claim.issue_ref,
                add=[project.intake_done_label],
                remove=[project.intake_in_progress_label, project.intake_label],
            )
        except IntegrationError as exc:
            log.warning("intake: labels of %s not moved to done: %s", claim.issue_ref, exc)
            continue
        with transaction.atomic():
            moved = IntakeClaim.objects.filter(pk=claim.pk, state=IntakeClaim.State.SPAWNED).update(
                state=IntakeClaim.State.DONE, done_at=timezone.now()
            )
            if moved != 1:
                continue
            services.event_record(
                project=project,
                session=claim.session,
                kind="intake.done",
                summary=f"issue {claim.issue_ref}: PR merged, labelled {project.intake_done_label}",
                data={"issue": claim.issue_ref},
            )
        notes.append(f"#{claim.issue_ref} done")
    return notes


def _ended_why(session: Session) -> tuple[str, str]:
    """(reason key, words) for a finished session that did not merge."""
    if session.phase == Phase.KILLED:
        return "killed", "its worker was killed"
    if session.phase == Phase.ERRORED:
        return "errored", "its worker failed to start"
    if session.status == Status.PR_CLOSED:
        return "pr_closed", "its PR was closed without merging"
    if session.phase == Phase.CLEANED:
        return "cleaned", "its worker was cleaned up without a merged PR"
    return "ended", f"its worker ended ({session.status}) without a merged PR"


def intake_release(*, project: Project) -> list[str]:
    """Claims whose worker finished without a merged PR (the outcomes' ``abandoned``): the
    in-progress label comes off — the backlog label is *not* put back: a person stopped the work —
    and the claim row is deleted, so labelling the issue for intake again claims it anew.

    Idempotent across repeated and racing sweeps: the label change is idempotent, and only the sweep
    whose conditional DELETE removed the row records ``intake.released``. A tracker error leaves the
    claim in place: the next sweep tries again."""
    abandoned = (
        IntakeClaim.objects.filter(
            project=project,
            state=IntakeClaim.State.SPAWNED,
            session__in=outcomes.finished_sessions(project=project),
        )
        .exclude(outcomes.merged_q("session__"))
        .select_related("session")
    )
    if not abandoned.exists():
        return []
    tracker = plugin_for(project, "tracker")
    notes = []
    for claim in abandoned:
        try:
            tracker.set_labels(claim.issue_ref, remove=[project.intake_in_progress_label])
        except IssueNotFound:
            pass  # the issue is gone: no label to take off, the claim is released all the same
        except IntegrationError as exc:
            log.warning("intake: %s not released, in-progress label not removed: %s", claim.issue_ref, exc)
            continue
        assert claim.session is not None  # session__in above: only claims with a session
        reason, why = _ended_why(claim.session)
        with transaction.atomic():
            released, _ = IntakeClaim.objects.filter(
                pk=claim.pk, state=IntakeClaim.State.SPAWNED, session=claim.session
            ).delete()
            if not released:
                continue  # another sweep released (or completed) it first
            on_purpose = (
                "a failed start is not retried by itself"
                if reason == "errored"
                else "it was stopped on purpose"
            )
            services.event_record(
                project=project,
                session=claim.session,
                kind="intake.released",
                summary=(
                    f"issue {claim.issue_ref} released: {why}; {project.intake_in_progress_label} removed, "
                    f"{project.intake_label} not put back ({on_purpose}): label the issue "
                    f"{project.intake_label} again to have intake take it up"
                ),
                data={"issue": claim.issue_ref, "reason": reason},
            )
        notes.append(f"#{claim.issue_ref} released ({reason})")
    return notes


def intake_resume(*, project: Project, now=None) -> list[str]:
    """Finish claims a crashed sweep left without a worker: adopt the issue's live worker if one
    exists, else move the labels (again: idempotent) and spawn. Each stale claim is taken by one
    sweep with a conditional UPDATE that restarts its clock."""
    now = now or timezone.now()
    stale = IntakeClaim.objects.filter(
        project=project,
        state=IntakeClaim.State.CLAIMED,
        session__isnull=True,
        created_at__lt=now - CLAIM_STALE,
    )
    notes: list[str] = []
    tracker = None
    for claim in stale.order_by("created_at"):
        if not IntakeClaim.objects.filter(pk=claim.pk, created_at=claim.created_at).update(created_at=now):
            continue  # another sweep took it
        existing = _live_worker_for(project, claim.issue_ref)
        if existing is not None:
            IntakeClaim.objects.filter(pk=claim.pk).update(session=existing, state=IntakeClaim.State.SPAWNED)
            notes.append(f"#{claim.issue_ref} adopted by {existing.id}")
            continue
        tracker = tracker or plugin_for(project, "tracker")
        try:
            tracker.set_labels(
                claim.issue_ref, add=[project.intake_in_progress_label], remove=[project.intake_label]
            )
        except IntegrationError as exc:
            notes.append(f"#{claim.issue_ref}: labels not changed ({exc}); tried again next sweep")
            continue
        notes.append(_spawn(project=project, claim=claim, tracker=tracker))
        if notes[-1].startswith("stopped"):
            break
    return notes


def intake_claim(*, project: Project) -> list[str]:
    """Claim labelled issues and spawn their workers while the caps leave room."""
    over_budget = usage.spawn_budget_refusal(project=project)  # before any tracker read or label write
    if over_budget:
        return [f"stopped: {over_budget}"]
    tracker = plugin_for(project, "tracker")
    issues = sorted(
        tracker.list_issues(label=project.intake_label, limit=LIST_LIMIT), key=lambda i: _order(i.ref)
    )
    taken = set(
        IntakeClaim.objects.filter(project=project, issue_ref__in=[i.ref for i in issues]).values_list(
            "issue_ref", flat=True
        )
    )
    notes: list[str] = []
    host = settings.AO_HOST_NAME
    for issue in issues:
        if issue.ref in taken or issue.state != IssueState.OPEN:  # mapped once, by the tracker plugin
            continue
        existing = _live_worker_for(project, issue.ref)
        if existing is None:
            reason = spawning.admission_check(project=project, host=host)
            if reason:
                notes.append(f"stopped: {reason}")
                break
        try:
            with transaction.atomic():
                claim = IntakeClaim.objects.create(
                    project=project,
                    issue_ref=issue.ref,
                    issue_title=issue.title[:500],
                    session=existing,
                    state=IntakeClaim.State.SPAWNED if existing else IntakeClaim.State.CLAIMED,
                )
        except IntegrityError:
            continue  # another sweep claimed it first
        try:
            tracker.set_labels(
                issue.ref, add=[project.intake_in_progress_label], remove=[project.intake_label]
            )
        except IntegrationError as exc:
            IntakeClaim.objects.filter(pk=claim.pk).delete()  # nothing spawned: try again next sweep
            notes.append(f"#{issue.ref}: labels not changed ({exc}); not claimed")
            break
        if existing is not None:
            services.event_record(
                project=project,
                session=existing,
                kind="intake.claimed",
                summary=f"issue {issue.ref} is in the backlog and already has this worker",
                data={"issue": issue.ref, "adopted": True},
            )
            notes.append(f"#{issue.ref} adopted by {existing.id}")
            continue
        notes.append(_spawn(project=project, claim=claim, tracker=tracker))
        if notes[-1].startswith("stopped"):
            break
    return notes


def _spawn(*, project: Project, claim: IntakeClaim, tracker) -> str:
    try:
        session = spawning.session_spawn(
            project=project, issue_ref=claim.issue_ref, actor=Actor.SYSTEM, actor_name="intake"
        )
    except spawning.SpawnRefused as exc:
        # over the cap (refuseOverCap) after all: release the claim, put the issue back
        IntakeClaim.objects.filter(pk=claim.pk).delete()
        _labels_back(project, tracker, claim.issue_ref)
        return f"stopped: #{claim.issue_ref} not spawned: {exc}"
    except (ConfigurationError, IntegrationError, ValueError) as exc:
        IntakeClaim.objects.filter(pk=claim.pk).update(state=IntakeClaim.State.FAILED, error=str(exc)[:500])
        _labels_back(project, tracker, claim.issue_ref)
        services.event_record(
            project=project,
            session=None,
            kind="intake.failed",
            summary=f"issue {claim.issue_ref} not spawned: {exc}",
            data={"issue": claim.issue_ref},
        )
        notify(
            project=project,
            title=f"Backlog issue {claim.issue_ref} could not be started",
            body=f"{exc}\nFix the cause, then `ao intake on` tries it again.",
            priority="warning",
            rule="intake-failed",
        )
        return f"#{claim.issue_ref} failed: {exc}"
    with transaction.atomic():
        IntakeClaim.objects.filter(pk=claim.pk).update(session=session, state=IntakeClaim.State.SPAWNED)
        services.event_record(
            project=project,
            session=session,
            kind="intake.claimed",
            summary=f"claimed backlog issue {claim.issue_ref}: labelled {project.intake_in_progress_label}",
            data={"issue": claim.issue_ref},
        )
    return f"#{claim.issue_ref} → {session.id}"


def _labels_back(project: Project, tracker, ref: str) -> None:
    try:
        tracker.set_labels(ref, add=[project.intake_label], remove=[project.intake_in_progress_label])
    except IntegrationError as exc:
        log.warning("intake: labels of %s not restored: %s", ref, exc)
