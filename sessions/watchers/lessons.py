"""The learning loop, part two: lessons ao proposes from outcomes, people decide, workers learn.

A *pattern* is something seen across a project's recent outcomes, with a metric that measures
it (hits / sessions); :func:`proposals_from` finds them (pure), :func:`lessons_propose` stores one
:class:`~sessions.models.Lesson` per pattern (idempotent: proposing again refreshes the evidence
of a still-proposed lesson, and never revives a decided one). An admin accepts or rejects it
(:func:`lesson_decide`, from ``ao lessons`` or the retro page); acceptance freezes the metric as
the *baseline*. Accepted worker rules go into the prompt of later workers of the project
(:func:`lessons_for_prompt`, a read in ``selectors``), and :func:`lesson_effect` computes the same metric over the
sessions started since, so people see whether the pattern dropped.

Patterns:

- ``first-failing-check:<check>`` — a check was the first to fail in many sessions with CI →
  a worker rule: run it before pushing.
- ``needs-input:<agent>:<what>`` — an agent stopped for the same thing (a permission prompt,
  "Running npm install") again and again → allow it in the agent's settings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions.core import audit
from sessions.core.selectors import lessons_for_prompt  # noqa: F401  re-exported: the prompt reads it there
from sessions.models import Lesson, Outcome, Project

WINDOW = timedelta(days=30)  # proposals and baselines look at this much history
MIN_HITS = 3  # a pattern must have been seen at least this often
MIN_RATE = 0.25  # ... and in at least this share of the sessions it applies to
MIN_AFTER = 3  # sessions after acceptance before an effect is judged
FIRST_CHECK, NEEDS_INPUT = "first-failing-check", "needs-input"


def _code(text: str, limit: int = 80) -> str:
    """Text safe inside a Markdown code span on one line (check names come from CI config)."""
    return " ".join(re.sub(r"[`\x00-\x1f\x7f]", " ", text or "").split())[:limit]


@dataclass(frozen=True)
class Proposal:
    pattern: str
    kind: str
    text: str
    prompt_text: str
    evidence: dict = field(default_factory=dict)


# --- metrics -------------------------------------------------------------------------------------------
def metric(pattern: str, outcomes: list[Outcome]) -> dict:
    """How often ``pattern`` shows in ``outcomes``: {"hits", "sessions", "rate", "times"}."""
    family, _, rest = pattern.partition(":")
    if family == FIRST_CHECK:
        population = [o for o in outcomes if o.ci_ran]
        hits = [o for o in population if rest in (o.first_failed_checks or [])]
        times = len(hits)
    elif family == NEEDS_INPUT:
        agent, _, key = rest.partition(":")
        population = [o for o in outcomes if o.agent == agent]
        counts = [int(((o.data or {}).get("input_keys") or {}).get(key, 0)) for o in population]
        hits = [o for o, n in zip(population, counts, strict=True) if n]
        times = sum(counts)
    else:
        raise ValueError(f"unknown lesson pattern {pattern!r}")
    n = len(population)
    return {
        "hits": len(hits),
        "sessions": n,
        "rate": round(len(hits) / n, 3) if n else None,
        "times": times,
        "session_ids": [o.session_id for o in hits][:20],
    }


def proposals_from(outcomes: list[Outcome]) -> list[Proposal]:
    """The patterns worth a lesson in these outcomes (pure)."""
    proposals: list[Proposal] = []
    first = Counter(name for o in outcomes if o.ci_ran for name in (o.first_failed_checks or []))
    for name, _ in sorted(first.items(), key=lambda kv: (-kv[1], kv[0])):
        pattern = f"{FIRST_CHECK}:{name}"
        m = metric(pattern, outcomes)
        if m["hits"] < MIN_HITS or (m["rate"] or 0) < MIN_RATE:
            continue
        check = _code(name)
        proposals.append(
            Proposal(
                pattern=pattern[:200],
                kind=Lesson.Kind.WORKER_RULE,
                text=(
                    f"`{check}` failed first in {m['hits']} of {m['sessions']} sessions → add "
                    f'"run `{check}` before pushing" to the worker rules'
                ),
                prompt_text=(
                    f"Before you push, run the project's `{check}` check locally (the same command CI runs) "
                    f"and fix what it reports: it was the first check to fail in {m['hits']} of "
                    f"{m['sessions']} recent sessions."
                ),
                evidence={"metric": pattern, **m},
            )
        )
    waits: Counter[tuple[str, str]] = Counter()
    for o in outcomes:
        for key, n in ((o.data or {}).get("input_keys") or {}).items():
            waits[(o.agent, key)] += int(n)
    for (agent, key), times in sorted(waits.items(), key=lambda kv: (-kv[1], kv[0])):
        if times < MIN_HITS or not agent:
            continue
        pattern = f"{NEEDS_INPUT}:{agent}:{key}"[:200]
        m = metric(pattern, outcomes)
        what = _code(key, 120)
        hint = ""
        if key.startswith("running ") and agent == "claude-code":
            hint = f" (e.g. `Bash({_code(key.removeprefix('running '))}:*)` in the agent's `allow` list)"
        proposals.append(
            Proposal(
                pattern=pattern,
                kind=Lesson.Kind.AGENT_SETTINGS,
                text=(
                    f"{_code(agent)} needed input on `{what}` {times} times in {m['hits']} sessions → "
                    f"allow it in the agent's settings{hint}"
                ),
                prompt_text="",
                evidence={"metric": pattern, **m},
            )
        )
    return proposals


# --- services ------------------------------------------------------------------------------------------
def _recent(project: Project, *, now: datetime, before: datetime | None = None) -> list[Outcome]:
    qs = Outcome.objects.filter(project=project, started_at__gte=now - WINDOW)
    if before is not None:
        qs = qs.filter(started_at__lt=before)
    return list(qs.order_by("started_at", "pk"))


def lessons_propose(*, project: Project, now: datetime | None = None) -> list[Lesson]:
    """Store a proposal for each pattern in the project's recent outcomes; returns the new ones.

    One lesson per (project, pattern): an existing proposed lesson gets fresh evidence, an
    accepted or rejected one is left alone (people already decided).
    """
    now = now or timezone.now()
    created: list[Lesson] = []
    for p in proposals_from(_recent(project, now=now)):
        evidence = {**p.evidence, "computed_at": now.isoformat(), "window_days": WINDOW.days}
        existing = Lesson.objects.filter(project=project, pattern=p.pattern).first()
        if existing is None:
            try:
                with transaction.atomic():
                    created.append(
                        Lesson.objects.create(
                            project=project,
                            pattern=p.pattern,
                            kind=p.kind,
                            text=p.text,
                            prompt_text=p.prompt_text,
                            evidence=evidence,
                        )
                    )
            except IntegrityError:  # a concurrent proposal got there first
                pass
        elif existing.status == Lesson.State.PROPOSED:
            Lesson.objects.filter(pk=existing.pk, status=Lesson.State.PROPOSED).update(
                text=p.text, prompt_text=p.prompt_text, evidence=evidence, updated_at=now
            )
    return created


def lesson_decide(*, lesson: Lesson, accept: bool, by=None, now: datetime | None = None) -> Lesson:
    """Accept or reject a lesson. Accepting freezes the metric over the sessions before now as the
    baseline; later workers of the project get its prompt text from then on."""
    now = now or timezone.now()
    with transaction.atomic():
        lesson = Lesson.objects.select_for_update().get(pk=lesson.pk)
        lesson.status = Lesson.State.ACCEPTED if accept else Lesson.State.REJECTED
        lesson.decided_by = by if getattr(by, "is_authenticated", False) else None
        lesson.decided_at = now
        if accept:
            recent = _recent(lesson.project, now=now, before=now)
            lesson.baseline = {**metric(lesson.pattern, recent), "at": now.isoformat()}
            lesson.later = {}
        lesson.save()
        audit.record(
            action="lesson.accept" if accept else "lesson.reject",
            target=("lesson", lesson.pk),
            project=lesson.project,
            data={"pattern": lesson.pattern},
        )
    return lesson


def _since_acceptance(lesson: Lesson) -> list[Outcome]:
    return list(
        Outcome.objects.filter(project=lesson.project, started_at__gte=lesson.decided_at).order_by(
            "started_at", "pk"
        )
    )


def lessons_track(*, project: Project, now: datetime | None = None) -> int:
    """Store each accepted lesson's metric over the sessions started since it was accepted."""
    now = now or timezone.now()
    changed = 0
    for lesson in Lesson.objects.filter(
        project=project, status=Lesson.State.ACCEPTED, decided_at__isnull=False
    ):
        later = metric(lesson.pattern, _since_acceptance(lesson))
        if {k: lesson.later.get(k) for k in later} != later:
            Lesson.objects.filter(pk=lesson.pk).update(later={**later, "at": now.isoformat()}, updated_at=now)
            changed += 1
    return changed


def lesson_effect(lesson: Lesson) -> dict:
    """Before/after for an accepted lesson: the baseline and the live metric since acceptance."""
    if lesson.status != Lesson.State.ACCEPTED or lesson.decided_at is None:
        return {"before": lesson.baseline or None, "after": None, "verdict": "not accepted"}
    before = lesson.baseline or {}
    after = metric(lesson.pattern, _since_acceptance(lesson))
    if before.get("rate") is None:
        verdict = "no baseline: no sessions before acceptance"
    elif after["sessions"] < MIN_AFTER:
        verdict = f"too early: {after['sessions']} session(s) since"
    elif after["rate"] < before["rate"]:
        verdict = "dropped"
    elif after["rate"] > before["rate"]:
        verdict = "rose"
    else:
        verdict = "unchanged"
    return {"before": before, "after": after, "verdict": verdict}


# --- reads ---------------------------------------------------------------------------------------------
def lesson_summary(lesson: Lesson) -> dict:
    """The stable JSON shape of a lesson for `ao lessons ls --json`."""
    return {
        "id": lesson.pk,
        "project": lesson.project.key,
        "kind": lesson.kind,
        "pattern": lesson.pattern,
        "status": lesson.status,
        "text": lesson.text,
        "prompt_text": lesson.prompt_text,
        "evidence": lesson.evidence,
        "decided_by": lesson.decided_by.get_username() if lesson.decided_by is not None else None,
        "decided_at": lesson.decided_at.isoformat() if lesson.decided_at else None,
        "effect": lesson_effect(lesson) if lesson.status == Lesson.State.ACCEPTED else None,
        "created_at": lesson.created_at.isoformat(),
    }
