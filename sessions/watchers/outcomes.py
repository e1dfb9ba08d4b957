"""The learning loop, part one: what each finished session came to, and retrospectives.
(The commits of an agent carry ``Ao-*`` trailers, set up when it starts: ``sessions.agents.trailers``.)

- :func:`outcome_compute` reads one finished session's timeline and rows (events, PR, check
  runs, messages, notifications) and returns its metrics; :func:`outcome_record` stores them in
  the session's one :class:`~sessions.models.Outcome` row (idempotent); the sweep calls
  :func:`outcomes_record_due` for sessions that finished since.
- :func:`retro_summary` aggregates outcomes per project, agent and model for ``ao retro`` and
  the retro page.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from reactions.models import Notification
from sessions.core.usage import parse_since  # noqa: F401  re-exported: retro's --since
from sessions.domain.lifecycle import Phase, PRState, ReviewDecision, Status, Zone
from sessions.models import Actor, Event, Message, Outcome, Project, PullRequest, Session
from sessions.watchers import lessons

log = logging.getLogger(__name__)

# --- outcomes ----------------------------------------------------------------------------------------
FINISHED_PHASES = (Phase.KILLED, Phase.CLEANED, Phase.ERRORED)
# Statuses in which the session waited for a person (the respond zone).
HUMAN_STATUSES = frozenset(
    {
        Status.NEEDS_INPUT,
        Status.BLOCKED,
        Status.STUCK,
        Status.EXITED,
        Status.RUNTIME_LOST,
        Status.ERRORED,
    }
)
NEEDS_INPUT_RULE = "agent-needs-input"
RECORD_BATCH = 200


def finished_sessions(*, project: Project | None = None):
    qs = Session.objects.filter(kind=Session.Kind.WORKER).filter(
        Q(zone=Zone.DONE) | Q(phase__in=FINISHED_PHASES)
    )
    return qs.filter(project=project) if project is not None else qs


def merged_q(prefix: str = "") -> Q:
    """Sessions that merged, as a query: the three signs ``outcome_compute`` reads (a ``pr.merged``
    event, the PR's state, the status). ``prefix`` reaches a session from another model
    (``"session__"``)."""
    return (
        Q(**{f"{prefix}events__kind": "pr.merged"})
        | Q(**{f"{prefix}pull_request__state": PRState.MERGED})
        | Q(**{f"{prefix}status": Status.MERGED})
    )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 1)


def _reason_of(summary: str) -> str:
    """``"working → needs_input: the agent is waiting"`` → ``"the agent is waiting"``."""
    _, sep, reason = summary.partition(": ")
    return reason.strip() if sep else ""


def input_key(text: str) -> str:
    """A stable key for what an agent waited on: ``"Running npm install --save x"`` →
    ``"running npm install"`` (a command's first two words), else the normalized first line."""
    line = " ".join((text or "").split()).strip().rstrip(".?!:")
    if not line:
        return ""
    if line.lower().startswith("running "):
        words = line.split()[1:3]
        return "running " + " ".join(words).lower()
    return re.sub(r"\d+", "N", line.lower())[:120]


def outcome_compute(session: Session) -> dict:
    """The metrics of one session from its recorded timeline and rows (reads only)."""
    events = list(Event.objects.filter(session=session).order_by("created_at", "pk"))
    pr = PullRequest.objects.filter(session=session).first()
    start = session.created_at

    def first(kind: str) -> Event | None:
        return next((e for e in events if e.kind == kind), None)

    opened = first("pr.opened")
    first_pr_at = opened.created_at if opened else (pr.created_at if pr else None)
    merged_event = first("pr.merged")
    merged = bool(
        merged_event or (pr is not None and pr.state == PRState.MERGED) or session.status == Status.MERGED
    )
    merged_at = None
    if merged:
        merged_at = (
            merged_event.created_at if merged_event else (session.ended_at or session.status_changed_at)
        )

    ci_ran, ordered = _ci_cycles(events, pr, start)
    failed_checks = Counter(name for cycle in ordered for name in cycle["checks"])
    first_failed = sorted(ordered[0]["checks"]) if ordered else []

    review_rounds = sum(
        1
        for e in events
        if e.kind == "review.changed" and (e.data or {}).get("review") == ReviewDecision.CHANGES_REQUESTED
    )

    senders = Counter(Message.objects.filter(session=session).values_list("sender", flat=True))
    escalated = [e for e in events if e.kind == "reaction.escalated"]

    reasons, input_keys = _human_reasons(session, events)
    killed_by = next((e for e in events if e.kind == "session.killed" and e.actor == Actor.USER), None)

    human_messages = senders.get(Actor.USER, 0)
    waited = any(r["why"] in HUMAN_STATUSES or r["why"].startswith("reported") for r in reasons)
    ended_at = session.ended_at or session.status_changed_at or (events[-1].created_at if events else None)
    return {
        "result": Outcome.Result.MERGED if merged else Outcome.Result.ABANDONED,
        "end_status": session.status,
        "agent": session.agent,
        "model": session.model,
        "started_at": start,
        "ended_at": ended_at,
        "first_pr_seconds": _seconds(start, first_pr_at),
        "merge_seconds": _seconds(start, merged_at),
        "pr_open_to_merge_seconds": _seconds(first_pr_at, merged_at),
        "ci_ran": ci_ran,
        "ci_failure_cycles": len(ordered),
        "failed_checks": dict(sorted(failed_checks.items())),
        "first_failed_checks": first_failed,
        "review_rounds": review_rounds,
        "human_messages": human_messages,
        "reaction_messages": senders.get(Actor.REACTION, 0),
        "orchestrator_messages": senders.get(Actor.ORCHESTRATOR, 0),
        "escalations": len(escalated),
        "escalated_rules": sorted({str((e.data or {}).get("rule") or e.actor_name) for e in escalated}),
        "needed_human": bool(human_messages or escalated or waited),
        "human_reasons": reasons,
        "input_keys": dict(sorted(input_keys.items())),
        "killed_by_user": killed_by.actor_user.get_username() if killed_by and killed_by.actor_user else "",
        "tokens_in": session.tokens_in,
        "tokens_out": session.tokens_out,
        "cost_usd": Decimal(session.cost_usd or 0),
    }


def _ci_cycles(events: list[Event], pr: PullRequest | None, start: datetime) -> tuple[bool, list[dict]]:
    """Whether CI ran, and its failing cycles in order, each {"at", "checks"}: a failing cycle is
    a distinct head commit on which CI failed (a re-run counts once)."""
    ci_ran = False
    cycles: dict[str, dict] = {}
    for e in events:
        if e.kind != "ci.changed":
            continue
        state = (e.data or {}).get("ci", "")
        ci_ran = ci_ran or state in ("pending", "passing", "failing")
        if state == "failing":
            sha = (e.data or {}).get("sha") or f"event-{e.pk}"
            cycle = cycles.setdefault(sha, {"at": e.created_at, "checks": set()})
            cycle["checks"].update(str(name) for name in (e.data or {}).get("failed") or [])
    if pr is not None:
        for check in pr.checks.all():
            ci_ran = True
            if check.failed:
                at = check.completed_at or check.updated_at
                cycle = cycles.setdefault(check.head_sha, {"at": at, "checks": set()})
                cycle["checks"].add(check.name)
    return ci_ran, sorted(cycles.values(), key=lambda c: c["at"] or start)


def _human_reasons(session: Session, events: list[Event]) -> tuple[list[dict], Counter[str]]:
    """Why the session waited for a person ({"why", "detail"}, each once, in order), and how often
    each kind of question it asked came up (``input_key``)."""
    reasons: list[dict] = []
    input_keys: Counter[str] = Counter()

    def because(why: str, detail: str, *, key: bool = False) -> None:
        item = {"why": why, "detail": detail[:300]}
        if item not in reasons:
            reasons.append(item)
        if key and input_key(detail):
            input_keys[input_key(detail)] += 1

    for e in events:
        data = e.data or {}
        if e.kind == "status.changed":
            after = (data.get("after") or {}).get("status", "")
            if after in HUMAN_STATUSES:
                because(after, _reason_of(e.summary))
        elif e.kind == "agent.report" and data.get("state") in ("needs_input", "blocked"):
            because(
                f"reported {data['state']}", str(data.get("note") or ""), key=data["state"] == "needs_input"
            )
        elif e.kind == "reaction.escalated":
            because("escalated", str(data.get("rule") or e.actor_name or ""))
    marker = f"{session.id} needs input: "
    for title in (
        Notification.objects.filter(session=session, rule=NEEDS_INPUT_RULE)
        .order_by("created_at", "pk")
        .values_list("title", flat=True)
    ):
        question = title.split(marker, 1)[1] if marker in title else title
        because("needs_input", question, key=True)
    if session.phase == Phase.ERRORED and session.error:
        because("errored", session.error.splitlines()[0][:300])
    return reasons, input_keys


# Outcome columns filled from outcome_compute's dict; the rest of the dict goes to ``data``.
_COLUMNS = (
    "result",
    "end_status",
    "agent",
    "model",
    "started_at",
    "ended_at",
    "first_pr_seconds",
    "merge_seconds",
    "ci_ran",
    "ci_failure_cycles",
    "failed_checks",
    "first_failed_checks",
    "review_rounds",
    "human_messages",
    "reaction_messages",
    "orchestrator_messages",
    "escalations",
    "needed_human",
    "human_reasons",
    "tokens_in",
    "tokens_out",
    "cost_usd",
)


def outcome_record(*, session: Session, now: datetime | None = None) -> Outcome:
    """Store (or refresh) the session's outcome. Idempotent: one row per session."""
    values = outcome_compute(session)
    defaults = {key: values.pop(key) for key in _COLUMNS}
    defaults.update(project=session.project, data=values, computed_at=now or timezone.now())
    outcome, _ = Outcome.objects.update_or_create(session=session, defaults=defaults)
    return outcome


def outcomes_due(*, project: Project):
    """Finished worker sessions without an outcome, or whose status changed since it was computed."""
    return (
        finished_sessions(project=project)
        .filter(Q(outcome__isnull=True) | Q(status_changed_at__gt=F("outcome__computed_at")))
        .select_related("project")
        .order_by("created_at")
    )


def outcomes_record_due(*, project: Project) -> list[str]:
    """Record the outcomes of sessions that finished since the last pass (called by the sweep),
    then refresh the project's lesson proposals and their effects. Returns the session ids.

    Learning must never break a sweep: one session's failure is logged and skipped.
    """
    recorded: list[str] = []
    for session in outcomes_due(project=project)[:RECORD_BATCH]:
        try:
            with transaction.atomic():
                outcome_record(session=session)
            recorded.append(session.pk)
        except Exception:
            log.exception("recording the outcome of %s failed", session.pk)
    if recorded:
        try:
            with transaction.atomic():
                lessons.lessons_propose(project=project)
                lessons.lessons_track(project=project)
        except Exception:
            log.exception("proposing lessons for %s failed", project.key)
    return recorded


# --- retrospectives ----------------------------------------------------------------------------------
def outcomes_in(*, projects: Iterable[Project] | None = None, since: datetime | None = None):
    qs = Outcome.objects.select_related("project", "session")
    if projects is not None:
        qs = qs.filter(project__in=list(projects))
    if since is not None:
        qs = qs.filter(Q(ended_at__gte=since) | Q(ended_at__isnull=True, started_at__gte=since))
    return qs.order_by("started_at", "pk")


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def _money(value) -> float:
    return round(float(value or 0), 4)


def group_stats(rows: list[Outcome]) -> dict:
    total = len(rows)
    merged = sum(1 for o in rows if o.result == Outcome.Result.MERGED)
    cost = sum((Decimal(o.cost_usd or 0) for o in rows), Decimal(0))
    return {
        "sessions": total,
        "merged": merged,
        "abandoned": total - merged,
        "success_rate": round(merged / total, 3) if total else None,
        "median_first_pr_seconds": _median(o.first_pr_seconds for o in rows),
        "median_merge_seconds": _median(o.merge_seconds for o in rows),
        "ci_failure_cycles": sum(o.ci_failure_cycles for o in rows),
        "review_rounds": sum(o.review_rounds for o in rows),
        "needed_human": sum(1 for o in rows if o.needed_human),
        "human_messages": sum(o.human_messages for o in rows),
        "reaction_messages": sum(o.reaction_messages for o in rows),
        "escalations": sum(o.escalations for o in rows),
        "tokens": sum(o.tokens_in + o.tokens_out for o in rows),
        "cost_usd": _money(cost),
        "cost_per_merge_usd": _money(cost / merged) if merged else None,
    }


def failure_pattern(o: Outcome) -> str | None:
    """A short name for what went wrong in a session, or None if it went through cleanly."""
    checks = ", ".join(sorted(o.failed_checks)) if o.failed_checks else ""
    if o.result == Outcome.Result.MERGED:
        if o.ci_failure_cycles:
            return f"merged after CI failures ({checks})"
        if o.review_rounds:
            return "merged after requested changes"
        return None
    if o.ci_failure_cycles:
        return f"abandoned after CI failures ({checks})"
    if o.review_rounds:
        return "abandoned after requested changes"
    whys = [r.get("why", "") for r in o.human_reasons or []]
    if "needs_input" in whys or "reported needs_input" in whys:
        return "abandoned waiting for input"
    if o.end_status == Status.ERRORED or "errored" in whys:
        return "errored"
    if o.first_pr_seconds is None:
        return f"abandoned before a PR ({o.end_status})"
    return f"abandoned ({o.end_status})"


def retro_summary(*, projects: Iterable[Project] | None = None, since: datetime | None = None) -> dict:
    """Outcomes summarised overall and per project, agent and model (JSON-ready)."""
    rows = list(outcomes_in(projects=projects, since=since))
    by: dict[str, dict[str, list[Outcome]]] = {
        key: defaultdict(list) for key in ("project", "agent", "model")
    }
    for o in rows:
        by["project"][o.project.key].append(o)
        by["agent"][o.agent or "?"].append(o)
        by["model"][f"{o.agent or '?'}/{o.model}" if o.model else (o.agent or "?")].append(o)

    checks: dict[str, dict] = {}
    for o in rows:
        for name, n in (o.failed_checks or {}).items():
            entry = checks.setdefault(name, {"name": name, "cycles": 0, "sessions": 0, "failed_first": 0})
            entry["cycles"] += n
            entry["sessions"] += 1
            entry["failed_first"] += int(name in (o.first_failed_checks or []))
    ci_sessions = sum(1 for o in rows if o.ci_ran)

    patterns: dict[str, dict] = {}
    for o in rows:
        name = failure_pattern(o)
        if name is None:
            continue
        entry = patterns.setdefault(name, {"pattern": name, "sessions": 0, "cost_usd": Decimal(0), "ids": []})
        entry["sessions"] += 1
        entry["cost_usd"] += Decimal(o.cost_usd or 0)
        entry["ids"].append(o.session_id)
    for entry in patterns.values():
        entry["cost_usd"] = _money(entry["cost_usd"])

    humans = [
        {
            "session": o.session_id,
            "project": o.project.key,
            "agent": o.agent,
            "model": o.model,
            "result": o.result,
            "human_messages": o.human_messages,
            "escalations": o.escalations,
            "reasons": [
                f"{r['why']}: {r['detail']}" if r.get("detail") else r["why"] for r in o.human_reasons
            ],
        }
        for o in rows
        if o.needed_human
    ]
    return {
        "since": since.isoformat() if since else None,
        "generated_at": timezone.now().isoformat(),
        "overall": group_stats(rows),
        "by_project": {key: group_stats(v) for key, v in sorted(by["project"].items())},
        "by_agent": {key: group_stats(v) for key, v in sorted(by["agent"].items())},
        "by_model": {key: group_stats(v) for key, v in sorted(by["model"].items())},
        "ci_sessions": ci_sessions,
        "failing_checks": sorted(checks.values(), key=lambda c: (-c["sessions"], -c["cycles"], c["name"])),
        "failure_patterns": sorted(
            patterns.values(), key=lambda p: (-p["cost_usd"], -p["sessions"], p["pattern"])
        ),
        "needed_humans": humans,
    }
