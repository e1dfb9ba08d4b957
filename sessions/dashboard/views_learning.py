"""The retrospective page and lesson decisions (the learning loop). Thin: permission, a
selector or service, render. Viewers read; project admins accept or reject lessons."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from sessions.core import selectors
from sessions.dashboard.views_common import page_context, project_for
from sessions.models import Lesson, Project
from sessions.watchers import lessons, outcomes

WINDOWS = (("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"), ("all", "all time"))
BAR_MAX = 12  # bars per chart
BAR_STEP = 24  # pixels per bar


def bars(items: list[tuple[str, float, str]], *, scale: float | None = None) -> dict:
    """A server-side bar chart for the SVG partial: rows (label, value shown, bar width in
    percent of ``scale`` or of the largest value, y offset) and the chart's height."""
    items = items[:BAR_MAX]
    top = scale if scale is not None else max((value for _, value, _ in items), default=0)
    rows = [
        {"label": label, "shown": shown, "pct": round(100 * value / top, 1) if top else 0, "y": BAR_STEP * i}
        for i, (label, value, shown) in enumerate(items)
    ]
    return {"rows": rows, "height": BAR_STEP * len(rows)}


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{round(rate * 100)}%"


def retro_context(project: Project, window: str) -> dict:
    since = outcomes.parse_since(window)
    summary = outcomes.retro_summary(projects=[project], since=since)
    by_model = summary["by_model"]
    charts = {
        "success": bars(
            [
                (name, s["success_rate"] or 0, f"{_percent(s['success_rate'])} of {s['sessions']}")
                for name, s in by_model.items()
            ],
            scale=1.0,
        ),
        "checks": bars(
            [
                (c["name"], c["sessions"], f"{c['sessions']} · first {c['failed_first']}")
                for c in summary["failing_checks"]
            ]
        ),
        "patterns": bars(
            [
                (p["pattern"], p["cost_usd"], f"${p['cost_usd']:.2f} · {p['sessions']}")
                for p in summary["failure_patterns"]
            ]
        ),
        "first_pr": bars(
            [
                (name, s["median_first_pr_seconds"] or 0, _minutes(s["median_first_pr_seconds"]))
                for name, s in by_model.items()
            ]
        ),
    }
    rows = list(Lesson.objects.filter(project=project).select_related("decided_by").order_by("status", "-pk"))
    accepted = []
    for lesson in rows:
        if lesson.status != Lesson.State.ACCEPTED:
            continue
        effect = lessons.lesson_effect(lesson)
        before, after = effect["before"] or {}, effect["after"] or {}
        accepted.append(
            {
                "lesson": lesson,
                "effect": effect,
                "bars": bars(
                    [
                        ("before", before.get("rate") or 0, _share(before)),
                        ("after", after.get("rate") or 0, _share(after)),
                    ],
                    scale=1.0,
                ),
            }
        )
    return {
        "project": project,
        "summary": summary,
        "overall": summary["overall"],
        "success_pct": _percent(summary["overall"]["success_rate"]),
        "first_pr": _minutes(summary["overall"]["median_first_pr_seconds"]),
        "to_merge": _minutes(summary["overall"]["median_merge_seconds"]),
        "model_rows": [
            {
                "name": name,
                **s,
                "success": _percent(s["success_rate"]),
                "first_pr": _minutes(s["median_first_pr_seconds"]),
                "to_merge": _minutes(s["median_merge_seconds"]),
            }
            for name, s in by_model.items()
        ],
        "charts": charts,
        "window": window,
        "windows": WINDOWS,
        "proposed": [lesson for lesson in rows if lesson.status == Lesson.State.PROPOSED],
        "accepted": accepted,
        "rejected": [lesson for lesson in rows if lesson.status == Lesson.State.REJECTED],
    }


def _share(m: dict) -> str:
    return f"{m['hits']} of {m['sessions']}" if m.get("sessions") else "no sessions yet"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{round(seconds / 60)} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


@login_required
@require_GET
def retro(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.VIEW)
    window = request.GET.get("since") or "30d"
    if window not in dict(WINDOWS):
        window = "30d"
    context = retro_context(project, window)
    context = page_context(
        request, **context, can_decide=selectors.can(request.user, project, selectors.ADMIN)
    )
    return render(request, "sessions/retro.html", context)


@login_required
@require_POST
def lesson_decide(request: HttpRequest, key: str, lesson_id: int) -> HttpResponse:
    project = project_for(request, key, selectors.ADMIN)
    lesson = get_object_or_404(Lesson, pk=lesson_id, project=project)
    decision = request.POST.get("decision")
    if decision not in ("accept", "reject"):
        messages.error(request, "Choose accept or reject.")
    else:
        lesson = lessons.lesson_decide(lesson=lesson, accept=decision == "accept", by=request.user)
        messages.success(request, f"Lesson #{lesson.pk} {lesson.status}.")
    window = request.POST.get("since")
    url = reverse("learning:retro", args=[project.key])
    return redirect(f"{url}?since={window}" if window in dict(WINDOWS) else url)
