"""Reactions: the writes. Claim, then act — at most once per (session, rule, fingerprint).

``session_react`` reads a session's stored facts, asks ``reactions.engine`` what the rules
call for, and for each decision claims its durable ``ReactionAttempt`` row before acting:

- the row is unique per (session, rule, fingerprint): ``get_or_create`` inside a transaction,
  then a conditional ``UPDATE ... SET attempts = attempts + 1 WHERE attempts = <seen>`` so
  exactly one caller (of two workers, a duplicate webhook, a re-run sweep, a restarted worker)
  wins each attempt; the loser does nothing;
- **send-to-agent** queues the text with ``sessions.agents.messaging.message_queue`` (sender
  ``reaction``, sender name = the rule), so it waits while the agent is mid-turn or at a
  permission prompt;
- **notify** goes through ``reactions.notify.notify``; a notification for the same rule and
  session within ``COALESCE_WINDOW`` is coalesced (recorded on the timeline, not sent);
- **auto-merge** merges through the project's SCM plugin with the expected head SHA;
- **retries**: the same send-to-agent fingerprint observed again is re-armed only when the
  agent received the last message, finished a turn after it (activity idle/ready since the
  delivery) and ``RETRY_COOLDOWN`` has passed — the failure persisted although the agent dealt
  with it. Attempt n beyond ``retries`` or a count ``escalateAfter``, or the same fingerprint
  still seen a duration ``escalateAfter`` after its first attempt, becomes an **escalation**: a
  notification to a person (at the rule's ``priority`` when the config sets one, else ``urgent``)
  and a ``reaction.escalated`` timeline entry, once; nothing more is sent for that fingerprint.
  Notify and auto-merge act once per fingerprint and never escalate (a person is already told);
- ``includeSummary: true`` appends :func:`fleet_summary` to the rule's notifications and escalations.

Auto-cleanup (``autoCleanupOnMerge: true`` in the project's reactions): once a session's PR has
merged, the session is ended and its workspace removed when the agent is not mid-turn (or
after ``CLEANUP_GRACE``), through ``sessions.agents.operating.session_cleanup(force=False)``: unpushed
work is never removed; a refusal is recorded and a person told. For a session on another agent
host (scale-out) the clean-up is requested on that host, which records a refusal the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from ao_site.dbretry import database_connection_lost
from integrations.base import IntegrationError, TransientIntegrationError
from integrations.registry import ConfigurationError, plugin_for
from reactions import engine, messages
from reactions import rules as R
from reactions.models import Notification, ReactionAttempt
from reactions.notify import notify
from sessions.agents import messaging, operating
from sessions.core import selectors
from sessions.core import services as session_services
from sessions.domain.lifecycle import Activity, Phase, PRState, RuntimeState
from sessions.models import Actor, Message, Session
from sessions.prs import prsync
from sessions.watchers.decisions import decisions_digest

log = logging.getLogger(__name__)

RETRY_COOLDOWN = timedelta(minutes=2)
COALESCE_WINDOW = timedelta(minutes=10)
CLEANUP_GRACE = timedelta(minutes=5)
# Rules whose fingerprint is a set of review threads: a retry or an escalation asks first whether
# they are still open (_threads_confirmed).
THREAD_RULES = frozenset({R.CHANGES_REQUESTED, R.BOT_REVIEW_COMMENTS})


@dataclass(frozen=True)
class Outcome:
    """What one reaction did: sent, notified, escalated, coalesced, merged, merge_failed,
    skipped_untrusted, cleaned, cleanup_refused, cleanup_requested (on the session's host)."""

    rule: str
    fingerprint: str
    did: str
    attempt: int = 0
    session_id: str = ""


def _with_facts():
    """Sessions read with what the engine's facts need: the project, the PR and the count of
    messages not yet taken up (one query for any number of sessions)."""
    pending = (
        Message.objects.filter(
            session=OuterRef("pk"), state__in=[Message.State.QUEUED, Message.State.DELIVERED]
        )
        .values("session")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Session.objects.select_related("project", "pull_request").annotate(
        pending_messages=Coalesce(Subquery(pending), 0)
    )


def session_react(
    *, session: Session, now: datetime | None = None, global_overrides: dict | None = None
) -> list[Outcome]:
    """Decide and act on a session's current stored facts. Safe to call any number of times."""
    now = now or timezone.now()
    current = _with_facts().filter(pk=session.pk).first()
    if current is None:
        return []
    return _react([current], now=now, global_overrides=global_overrides)[current.pk]


def sessions_react(
    *, session_ids: list[str], now: datetime | None = None, global_overrides: dict | None = None
) -> dict[str, list[Outcome]]:
    """``session_react`` for several sessions (a sweep's observed ones), their facts and their
    reactions' bookkeeping read in a few queries for all of them; a decision that waits (most
    sweeps repeat one) then costs no query. One session's failure is logged and does not stop
    the others. Returns the outcomes by session id."""
    if not session_ids:
        return {}
    now = now or timezone.now()
    order = {pk: i for i, pk in enumerate(session_ids)}
    sessions = sorted(_with_facts().filter(pk__in=session_ids), key=lambda s: order[s.pk])
    return _react(sessions, now=now, global_overrides=global_overrides)


_UNREAD = object()  # _apply: the decision's bookkeeping row was not read in advance


def _react(
    sessions: list[Session], *, now: datetime, global_overrides: dict | None
) -> dict[str, list[Outcome]]:
    if global_overrides is None:
        global_overrides = R.global_overrides_current()
    rules_by_project: dict[int, dict[str, R.Rule]] = {}
    facts = selectors.reaction_facts_many(sessions, now=now)
    decided: dict[str, tuple[dict[str, R.Rule], list[engine.Decision]]] = {}
    for session in sessions:
        rules = rules_by_project.get(session.project_id)
        if rules is None:
            rules = rules_by_project[session.project_id] = R.rules_for(
                session.project, global_overrides=global_overrides
            )
        decided[session.pk] = (rules, engine.decide(facts[session.pk], rules))
    # the bookkeeping rows of every decision, in one query
    keys = {
        (d.session_id or pk, engine.UNTRUSTED if d.action == "skip" else d.rule, d.fingerprint)
        for pk, (_rules, decisions) in decided.items()
        for d in decisions
    }
    known: dict[tuple[str, str, str], ReactionAttempt] = {}
    if keys:
        rows = ReactionAttempt.objects.filter(
            session_id__in={k[0] for k in keys}, fingerprint__in={k[2] for k in keys}
        )
        known = {(r.session_id, r.rule, r.fingerprint): r for r in rows}
        _preload_last_messages(list(known.values()), now=now)
    out: dict[str, list[Outcome]] = {}
    for session in sessions:
        rules, decisions = decided[session.pk]
        outcomes: list[Outcome] = []
        for decision in decisions:
            key = (
                decision.session_id or session.pk,
                engine.UNTRUSTED if decision.action == "skip" else decision.rule,
                decision.fingerprint,
            )
            try:
                outcome = _apply(session, decision, rules, now=now, known=known.get(key))
            except Exception:  # one rule's failure must not stop the others, nor the observer
                log.exception("reaction %s on %s failed", decision.rule, session.pk)
                continue
            if outcome is not None:
                outcomes.append(outcome)
        out[session.pk] = outcomes
    try:
        cleaned = _auto_cleanups(sessions, now=now)
    except Exception:
        log.exception("auto-cleanup check for %s failed", ", ".join(s.pk for s in sessions))
        cleaned = []
    for outcome in cleaned:
        # one session's call answers for the deferred clean-ups it did too
        owner = outcome.session_id if outcome.session_id in out and len(sessions) > 1 else sessions[0].pk
        out[owner].append(outcome)
    return out


def session_react_after_commit(*, session_id: str) -> None:
    """Run ``session_react`` once the caller's transaction has committed: the flows that observe a
    session or record its PR's facts ask this (recording asks for nothing)."""
    transaction.on_commit(lambda: _react_safely(session_id))


def sessions_react_after_commit(*, session_ids: list[str]) -> None:
    """Run ``sessions_react`` for all of ``session_ids`` once the caller's transaction has
    committed (the sweep: its PR sync's sessions, then its observed ones)."""
    ids = list(session_ids)
    transaction.on_commit(lambda: sessions_react_safely(session_ids=ids))


def sessions_react_safely(*, session_ids: list[str]) -> None:
    """``sessions_react`` that never breaks its caller (a sweep): failures are logged."""
    try:
        sessions_react(session_ids=session_ids)
    except Exception as exc:
        if database_connection_lost(exc):  # said once per outage; the next sweep reacts again
            return
        log.exception("reactions for %d sessions failed", len(session_ids))


def _react_safely(session_id: str) -> None:
    try:
        session_react(session=Session(pk=session_id))  # it reads the session itself (gone: nothing)
    except Exception as exc:  # reactions never break the sweep or the webhook refresh
        if database_connection_lost(exc):  # said once per outage; the next sweep reacts again
            return
        log.exception("reactions for %s failed", session_id)


# --- claiming ----------------------------------------------------------------------------------------
def _row(session_id: str, rule: str, fingerprint: str, *, now: datetime, detail: dict) -> ReactionAttempt:
    row, created = ReactionAttempt.objects.get_or_create(
        session_id=session_id, rule=rule, fingerprint=fingerprint, defaults={"detail": detail}
    )
    if created:  # first_at/last_at are auto fields; an UPDATE sets them to the caller's clock
        ReactionAttempt.objects.filter(pk=row.pk).update(first_at=now, last_at=now)
        row.first_at = row.last_at = now
    return row


def _claim(row: ReactionAttempt, *, now: datetime, escalate: bool = False) -> bool:
    """Take attempt ``row.attempts + 1`` (or the escalation); False if someone else did first."""
    values = {"attempts": F("attempts") + 1, "last_at": now}
    if escalate:
        values.update(escalated=True, escalated_at=now)
    won = ReactionAttempt.objects.filter(pk=row.pk, attempts=row.attempts, escalated=False).update(**values)
    return won == 1


def _preload_last_messages(rows: list[ReactionAttempt], *, now: datetime) -> None:
    """The last message of each row that ``_rearmed`` would read (sent before, not escalated,
    cool-down over), in one query, kept on the row as ``last_message``: a send-to-agent decision
    that stays (unresolved review threads) would read it per session and sweep."""
    wanted = {
        row.pk: (row.detail or {}).get("message")
        for row in rows
        if row.attempts and not row.escalated and now - row.last_at >= RETRY_COOLDOWN
    }
    ids = {message_id for message_id in wanted.values() if message_id is not None}
    found = Message.objects.in_bulk(list(ids)) if ids else {}
    for row in rows:
        if row.pk in wanted:
            setattr(row, "last_message", found.get(wanted[row.pk]))  # noqa: B010 (not a field)


def _rearmed(session: Session, row: ReactionAttempt, *, now: datetime) -> bool:
    """A send-to-agent fingerprint seen again counts as a new attempt only when the agent took the
    last message and has finished a turn since, and the cool-down has passed."""
    if now - row.last_at < RETRY_COOLDOWN:
        return False
    message_id = (row.detail or {}).get("message")
    if hasattr(row, "last_message"):  # _preload_last_messages
        message = row.last_message
    else:
        message = Message.objects.filter(pk=message_id).first() if message_id is not None else None
    if message is None or message.delivered_at is None:
        return False
    if message.state not in (Message.State.DELIVERED, Message.State.CONFIRMED, Message.State.UNCONFIRMED):
        return False  # queued (again) or failed
    return (
        session.activity in (Activity.IDLE, Activity.READY)
        and session.activity_at is not None
        and session.activity_at > message.delivered_at
    )


# --- acting --------------------------------------------------------------------------------------------
def _apply(
    session: Session, decision: engine.Decision, rules: dict, *, now: datetime, known=_UNREAD
) -> Outcome | None:
    """Act on one decision. ``known``: its bookkeeping row as read before (None: there was
    none), or not given (read here)."""
    if decision.action == "skip":
        return _skip_untrusted(session, decision, now=now, known=known)
    if decision.rule == R.AGENT_IDLE and not _no_pr_confirmed(session, decision, rules, now=now, known=known):
        return None
    if decision.rule in THREAD_RULES and not _threads_confirmed(
        session, decision, rules, now=now, known=known
    ):
        return None
    if decision.rule == R.CI_FAILED and not _ci_confirmed(session, decision, rules, now=now, known=known):
        return None
    rule = rules[decision.rule]
    target = session
    if decision.session_id and decision.session_id != session.pk:
        target = Session.objects.select_related("project").get(pk=decision.session_id)
    merge = False
    if known is _UNREAD:
        known = _known(target.pk, decision.rule, decision.fingerprint)
    if known is not None and _step(target, decision, rule, known, now=now) == engine.WAIT:
        return None  # most sweeps repeat a decision that waits: no transaction for it (rows only move on)
    with transaction.atomic():
        row = _row(target.pk, decision.rule, decision.fingerprint, now=now, detail=decision.data)
        step = _step(target, decision, rule, row, now=now)
        if step == engine.WAIT or not _claim(row, now=now, escalate=step == engine.ESCALATE):
            return None
        attempt = row.attempts + 1
        if step == engine.ESCALATE:
            _escalate(target, decision, rule, row)
            return Outcome(decision.rule, decision.fingerprint, "escalated", attempt, target.pk)
        if decision.action == R.SEND:
            _send(target, decision, row, attempt=attempt)
            return Outcome(decision.rule, decision.fingerprint, "sent", attempt, target.pk)
        if decision.action == R.NOTIFY:
            did = _notify(target, decision, now=now, summary=rule.include_summary)
            return Outcome(decision.rule, decision.fingerprint, did, attempt, target.pk)
        merge = decision.action == R.AUTO_MERGE
    if merge:  # outside the claim's transaction: no lock held during the SCM call
        return _merge(target, decision, row, attempt=attempt)
    return None


def _step(
    session: Session, decision: engine.Decision, rule: R.Rule, row: ReactionAttempt, *, now: datetime
) -> str:
    """What this attempt at ``decision`` does now (engine.plan_attempt on its stored attempts)."""
    rearmed = bool(row.attempts) and decision.action == R.SEND and _rearmed(session, row, now=now)
    return engine.plan_attempt(
        rule,
        action=decision.action,
        attempts=row.attempts,
        first_at=row.first_at,
        escalated=row.escalated,
        now=now,
        rearmed=rearmed,
    )


def _known(session_id: str, rule: str, fingerprint: str) -> ReactionAttempt | None:
    return ReactionAttempt.objects.filter(session_id=session_id, rule=rule, fingerprint=fingerprint).first()


def _goes_out(
    session: Session, decision: engine.Decision, rules: dict, *, now: datetime, known=_UNREAD
) -> bool:
    """Whether acting on ``decision`` would go out now (no bookkeeping row yet, or its next step
    is not to wait): what the confirmations below ask before they spend an SCM read."""
    row = _known(session.pk, decision.rule, decision.fingerprint) if known is _UNREAD else known
    return row is None or _step(session, decision, rules[decision.rule], row, now=now) != engine.WAIT


def _no_pr_confirmed(
    session: Session, decision: engine.Decision, rules: dict, *, now: datetime, known=_UNREAD
) -> bool:
    """Before telling an agent (or a person) there is no pull request, when that would go out
    now: ask the SCM for the session's branch first. A PR found is stored (no message); an SCM
    that cannot answer defers the message to a later observation."""
    if not _goes_out(session, decision, rules, now=now, known=known):
        return True  # nothing goes out: no need to ask
    found = prsync.session_pull_request_find(session=session)
    if found:  # the PR found was stored: the reactions look at the session again (after commit)
        session_react_after_commit(session_id=session.pk)
    return found is False


def _still_so(session: Session, decision: engine.Decision, rules: dict, *, now: datetime, known, ask) -> bool:
    """Before acting again on what the agent was told (a retry, an escalation to a person), when
    that would go out now: ``ask()`` the SCM whether it still holds (True / False / None: no
    answer). What the read found is stored and, when it no longer holds, the reactions look at
    the session again; an SCM that cannot answer defers the act to a later look."""
    row = _known(session.pk, decision.rule, decision.fingerprint) if known is _UNREAD else known
    if row is None or not row.attempts:
        return True  # nothing told yet: the read that found it is the fresh one
    if not _goes_out(session, decision, rules, now=now, known=row):
        return True  # nothing goes out: no need to ask
    still = ask()
    if still is False:
        session_react_after_commit(session_id=session.pk)
    return still is True


def _threads_confirmed(
    session: Session, decision: engine.Decision, rules: dict, *, now: datetime, known=_UNREAD
) -> bool:
    """Review threads: their resolution shows in no conditional read, so what ao stored may be an
    hour old, and changes-requested escalates after 30 minutes."""
    threads = (decision.data or {}).get("threads") or ()
    if not threads:
        return True
    return _still_so(session, decision, rules, now=now, known=known,
                     ask=lambda: prsync.session_threads_open(session=session, thread_ids=threads))  # fmt: skip


def _ci_confirmed(
    session: Session, decision: engine.Decision, rules: dict, *, now: datetime, known=_UNREAD
) -> bool:
    """Failing checks: a person re-running them moves neither the PR nor its head, so without a
    webhook ao would tell the agent again (and then a person) that CI fails while it runs again."""
    data = decision.data or {}
    if not data.get("sha") or not data.get("checks"):
        return True
    return _still_so(session, decision, rules, now=now, known=known,
                     ask=lambda: prsync.session_checks_failing(session=session, sha=data["sha"], names=data["checks"]))  # fmt: skip


def _send(session: Session, decision: engine.Decision, row: ReactionAttempt, *, attempt: int) -> None:
    message = messaging.message_queue(
        session=session, text=decision.text, sender=Actor.REACTION, sender_name=decision.rule
    )
    ReactionAttempt.objects.filter(pk=row.pk).update(
        detail={**decision.data, **_history(row), "message": message.pk}
    )
    _record(
        session,
        decision,
        kind="reaction.sent",
        summary=f"{decision.rule}: message sent to the agent"
        + (f" (attempt {attempt})" if attempt > 1 else ""),
        attempt=attempt,
        message=message.pk,
    )


def _record(session: Session, decision: engine.Decision, *, kind: str, summary: str, **data) -> None:
    """A reaction's timeline entry (its data starts with the rule and the fingerprint)."""
    session_services.event_record(
        project=session.project,
        session=session,
        kind=kind,
        summary=summary,
        actor=Actor.REACTION,
        actor_name=decision.rule,
        data={"rule": decision.rule, "fingerprint": decision.fingerprint, **data},
    )


def _tell(
    session: Session,
    decision: engine.Decision,
    *,
    kind: str,
    line: str,
    title: str,
    body: str,
    priority: str,
    summary: bool,
    **data,
) -> None:
    """Notify a person (with :func:`fleet_summary` appended when ``summary``) and record ``kind``
    (``line``) on the timeline with the notification's id."""
    if summary:
        body = f"{body}\n\n{fleet_summary(session.project)}"
    notification = notify(
        project=session.project,
        session=session,
        title=title,
        body=body,
        priority=priority,
        rule=decision.rule,
        url=decision.url,
    )
    _record(session, decision, kind=kind, summary=line, **data, notification=notification.pk)


def _history(row: ReactionAttempt) -> dict:
    previous = (row.detail or {}).get("message")
    earlier = [*(row.detail or {}).get("messages", []), *([previous] if previous else [])]
    return {"messages": earlier} if earlier else {}


def fleet_summary(project) -> str:
    """A short picture of the project for a person: its sessions per zone and what needs a person
    (``includeSummary: true``). Reuses the board's zones and the decisions digest."""
    from django.db.models import Count

    counts = dict(
        Session.objects.filter(project=project).values_list("zone").annotate(n=Count("pk")).order_by()
    )
    return messages.fleet_summary(project.key, counts, decisions_digest(project))


def _notify(session: Session, decision: engine.Decision, *, now: datetime, summary: bool = False) -> str:
    """Tell a person, unless this rule told them about this session within the window."""
    if Notification.objects.filter(
        session=session, rule=decision.rule, created_at__gt=now - COALESCE_WINDOW
    ).exists():
        _record(
            session,
            decision,
            kind="reaction.coalesced",
            summary=f"{decision.rule}: not notified again within {int(COALESCE_WINDOW.total_seconds() // 60)} min",
        )
        return "coalesced"
    _tell(
        session,
        decision,
        kind="reaction.notified",
        line=f"{decision.rule}: {decision.title}",
        title=decision.title,
        body=decision.text,
        priority=decision.priority,
        summary=summary,
    )
    return "notified"


def _escalate(session: Session, decision: engine.Decision, rule: R.Rule, row: ReactionAttempt) -> None:
    sent = row.attempts if decision.action == R.SEND else 0
    title = messages.escalation_title(session.pk, decision.rule, sent)
    _tell(
        session,
        decision,
        kind="reaction.escalated",
        line=title,
        title=title,
        body=f"ao stopped acting on its own. Last time it would have sent:\n\n{decision.text}",
        priority=rule.escalation_priority,
        summary=rule.include_summary,
        attempts=sent,
        since=row.first_at.isoformat(),
    )
    if decision.rule in selectors.HANDED_BY.values():
        # the agent no longer handles it: a person does (lifecycle.zone_for) -- the card moves now
        session_services.session_rederive(session=session)


def _merge(session: Session, decision: engine.Decision, row: ReactionAttempt, *, attempt: int) -> Outcome:
    pr = session.pull_request
    project = session.project

    def record(kind: str, summary: str, **data) -> None:
        session_services.event_record(
            project=project,
            session=session,
            kind=kind,
            summary=summary,
            actor=Actor.REACTION,
            actor_name=decision.rule,
            data={"number": pr.number, "sha": pr.head_sha, **data},
        )

    # only the commit the decision found approved and green: the SCM refuses if the head moved since
    checked = decision.data.get("sha") or pr.head_sha
    try:
        plugin_for(project, "scm").merge(number=pr.number, expected_head_sha=checked)
    except TransientIntegrationError as exc:
        # give the attempt back: the next observation tries again
        ReactionAttempt.objects.filter(pk=row.pk, attempts=attempt).update(attempts=F("attempts") - 1)
        record("reaction.merge_failed", f"auto-merge of PR #{pr.number} failed, will retry: {exc}")
        return Outcome(decision.rule, decision.fingerprint, "merge_failed", attempt, session.pk)
    except (IntegrationError, ConfigurationError) as exc:
        record("reaction.merge_failed", f"auto-merge of PR #{pr.number} refused: {exc}", error=str(exc)[:500])
        notify(
            project=project,
            session=session,
            priority="action",
            rule=decision.rule,
            url=decision.url,
            title=f"{session.pk}: auto-merge of PR #{pr.number} refused",
            body=f"{exc}\n\n{decision.text}",
        )
        _refresh(session)  # e.g. the head moved since it was checked: the board shows the new one
        return Outcome(decision.rule, decision.fingerprint, "merge_failed", attempt, session.pk)
    record("reaction.merged", f"PR #{pr.number} merged automatically at {pr.head_sha[:7]}")
    notify(
        project=project,
        session=session,
        priority="info",
        rule=decision.rule,
        url=decision.url,
        title=f"{session.pk}: PR #{pr.number} merged automatically",
        body=decision.text,
    )
    _refresh(session)
    return Outcome(decision.rule, decision.fingerprint, "merged", attempt, session.pk)


def _refresh(session: Session) -> None:
    """Read the merged PR back so the session moves on (and auto-cleanup can follow)."""
    try:
        result = prsync.pull_requests_sync(project=session.project, session_ids=[session.pk])
    except Exception as exc:
        log.warning("refreshing %s after the merge failed (the next sweep will): %s", session.pk, exc)
        return
    for session_id in result.recorded:  # the reactions look at what the refresh stored (after commit)
        session_react_after_commit(session_id=session_id)


def _skip_untrusted(
    session: Session, decision: engine.Decision, *, now: datetime, known=_UNREAD
) -> Outcome | None:
    if known is not _UNREAD and known is not None and known.attempts:
        return None  # recorded before: no transaction for it
    with transaction.atomic():
        row = _row(session.pk, engine.UNTRUSTED, decision.fingerprint, now=now, detail=decision.data)
        if row.attempts or not _claim(row, now=now):
            return None
        session_services.event_record(
            project=session.project,
            session=session,
            kind="reaction.untrusted_skipped",
            summary=decision.title,
            actor=Actor.REACTION,
            actor_name=engine.UNTRUSTED,
            data=decision.data,
        )
    return Outcome(engine.UNTRUSTED, decision.fingerprint, "skipped_untrusted", 1, session.pk)


# --- auto-cleanup after merge -------------------------------------------------------------------------
def _auto_cleanups(sessions: list[Session], *, now: datetime) -> list[Outcome]:
    """Clean up these sessions whose PR merged, and any of their projects' sessions whose cleanup
    was deferred because their agent was mid-turn (they are no longer observed once done)."""
    candidates = [s for s in sessions if R.auto_cleanup_on_merge(s.project)]
    projects = {s.project_id for s in candidates}
    if not projects:
        return []
    deferred = (
        ReactionAttempt.objects.filter(session__project__in=projects, rule=engine.AUTO_CLEANUP, attempts=0)
        .exclude(session__in=[s.pk for s in sessions])
        .exclude(session__phase=Phase.CLEANED)
        .values_list("session_id", flat=True)
    )
    candidates += list(Session.objects.select_related("project").filter(pk__in=list(deferred)))
    outcomes = []
    for candidate in candidates:
        outcome = _auto_cleanup(candidate, now=now)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _auto_cleanup(session: Session, *, now: datetime) -> Outcome | None:
    pr = getattr(session, "pull_request", None)
    if (
        pr is None
        or pr.state != PRState.MERGED
        or session.kind != Session.Kind.WORKER
        or session.phase == Phase.CLEANED
    ):
        return None
    fingerprint = f"pr-{pr.number}"
    with transaction.atomic():
        row = _row(session.pk, engine.AUTO_CLEANUP, fingerprint, now=now, detail={"number": pr.number})
        busy = session.runtime_state == RuntimeState.ALIVE and session.activity == Activity.ACTIVE
        if row.attempts or (busy and now - row.first_at < CLEANUP_GRACE):
            return None  # done already, or wait for the agent's turn to end (or the grace period)
        if not _claim(row, now=now):
            return None
    try:
        done = operating.session_cleanup(session=session, force=False, actor=Actor.REACTION)
    except Exception as exc:  # refused (unpushed work) or failed: keep everything, tell a person
        session_services.auto_cleanup_refused(session=session, exc=exc)
        return Outcome(engine.AUTO_CLEANUP, fingerprint, "cleanup_refused", 1, session.pk)
    if isinstance(done, operating.Requested):  # runs on the session's host; a refusal is handled there
        return Outcome(engine.AUTO_CLEANUP, fingerprint, "cleanup_requested", 1, session.pk)
    return Outcome(engine.AUTO_CLEANUP, fingerprint, "cleaned", 1, session.pk)
