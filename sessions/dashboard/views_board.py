"""The board (all projects, or one), its cards, the "needs you" strip of decisions and the inbox.
Thin: parse, check permission (``views_common``), call a selector or service, render.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from reactions import notify
from sessions.core import selectors
from sessions.dashboard.views_common import page_context, project_for
from sessions.domain.lifecycle import Status, Zone, needs_person
from sessions.models import Event, Project, Session
from sessions.watchers import conflicts, decisions

log = logging.getLogger(__name__)

# --- the board ------------------------------------------------------------------------------------
SIMPLE, DETAILED = "simple", "detailed"
MODE_COOKIE = "ao_board_mode"
DONE_SHOWN = 30
ATTENTION_ZONES = tuple(z for z in Zone if needs_person(z))  # the "need you" pill (lifecycle.needs_person)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    hint: str
    zones: tuple[str, ...]


COLUMNS = {
    # Keys stay (element ids, links); labels say who acts. Every column but working and waiting
    # needs a person, and the "need you" pill counts exactly those (lifecycle.needs_person).
    SIMPLE: (
        Column("working", "Agent working", "incl. fixing CI, reviews, conflicts", (Zone.WORKING,)),
        Column("pending", "Waiting", "on CI, a free slot, mergeability", (Zone.PENDING,)),
        Column("action", "Needs you", "review requested, an answer, a decision", (Zone.REVIEW, Zone.RESPOND)),
        Column("merge", "Ready to merge", "approved and green", (Zone.MERGE,)),
    ),
    DETAILED: (
        Column("working", "Agent working", "incl. fixing CI, reviews, conflicts", (Zone.WORKING,)),
        Column("pending", "Waiting", "on CI, a free slot, mergeability", (Zone.PENDING,)),
        Column("review", "Review requested", "a person's review of the PR", (Zone.REVIEW,)),
        Column("respond", "Needs a decision", "input, stuck, exited, errored, escalated", (Zone.RESPOND,)),
        Column("merge", "Ready to merge", "approved and green", (Zone.MERGE,)),
    ),
}


def board_queryset() -> QuerySet[Session]:
    """Sessions with everything a card shows, in one query (constant in the number of sessions)."""
    last_event = Event.objects.filter(session=OuterRef("pk")).order_by("-created_at", "-pk")
    return (
        Session.objects.select_related("project", "pull_request", "created_by", "credentials_of")
        .annotate(
            open_threads=Count(
                "pull_request__threads",
                filter=Q(pull_request__threads__resolved=False, pull_request__threads__is_bot=False),
            ),
            last_event_summary=Subquery(last_event.values("summary")[:1]),
            last_event_at=Subquery(last_event.values("created_at")[:1]),
        )
        .order_by("-updated_at", "-created_at")
    )


def card_session(session_id: str) -> Session | None:
    """One card's session, with its open file overlaps (pushes and the detail page)."""
    session = board_queryset().filter(pk=session_id).first()
    if session is not None:
        session.card_overlaps = conflicts.overlaps_for(session)
    return session


def _attach_overlaps(sessions: list[Session], projects) -> None:
    """Give each card its open file overlaps: one query per project rendered, not per card."""
    shown = {s.project_id for s in sessions}
    by_session: dict[str, list] = {}
    for project in projects:
        if project.pk in shown:
            by_session.update(conflicts.overlaps_by_session(project=project))
    for session in sessions:
        session.card_overlaps = by_session.get(session.pk, [])


def render_card(session: Session) -> str:
    """The card alone (page and HTMX responses)."""
    return render_to_string("sessions/_card.html", {"session": session, "show_project": True})


def _mode(request: HttpRequest) -> str:
    mode = request.GET.get("mode") or request.COOKIES.get(MODE_COOKIE) or SIMPLE
    return mode if mode in COLUMNS else SIMPLE


def _board_context(request: HttpRequest, *, project: Project | None) -> dict:
    visible = list(selectors.projects_visible_to(request.user))
    keys = {p.key for p in visible}
    f_project = request.GET.get("project", "") if project is None else project.key
    f_agent = request.GET.get("agent", "")
    f_status = request.GET.get("status", "")
    if f_project and f_project not in keys:
        f_project = ""
    scope = [project] if project is not None else visible
    if f_project and project is None:
        scope = [p for p in visible if p.key == f_project]

    live, done, done_total = _board_sessions(scope, agent=f_agent, status=f_status)
    mode = _mode(request)
    columns, zone_counts = _board_columns(live, done_total=done_total, mode=mode)
    attention = sum(zone_counts[zone] for zone in ATTENTION_ZONES)
    agents = _agents_of(visible)

    query = {
        k: v
        for k, v in {
            "project": f_project if project is None else "",
            "agent": f_agent,
            "status": f_status,
        }.items()
        if v
    }
    ws_query = {"project": project.key} if project is not None else {}
    return {
        "project": project,
        "projects": visible,
        "columns": columns,
        "done": done,
        "done_total": done_total,
        "zone_counts": zone_counts,
        "zone_summary": [(z.value, z.label, zone_counts[z.value]) for z in Zone if z != Zone.DONE],
        "attention": attention,
        "mode": mode,
        "other_mode": DETAILED if mode == SIMPLE else SIMPLE,
        "filters": {"project": f_project, "agent": f_agent, "status": f_status},
        "filtering": bool(query),
        "querystring": urlencode(query),
        "agents": agents,
        "statuses": Status.choices,
        "zones": [(z.value, z.label) for z in Zone],
        "ws_url": "/ws/board/" + (f"?{urlencode(ws_query)}" if ws_query else ""),
        "show_project": project is None and len(visible) > 1,
        "scm_exhausted": selectors.scm_budgets_exhausted(scope),
        "can_spawn": project is not None and selectors.can(request.user, project, selectors.OPERATE),
        "needs_you_url": (
            reverse("sessions:project-needs-you", args=[project.key])
            if project is not None
            else reverse("sessions:needs-you")
            + (f"?{urlencode({'project': f_project})}" if f_project else "")
        ),
    }


def _board_sessions(
    scope: list[Project], *, agent: str, status: str
) -> tuple[list[Session], list[Session], int]:
    """The sessions of the projects in ``scope`` that pass the filters: the live ones, the latest
    done ones (at most DONE_SHOWN) and how many are done, with their overlaps attached."""
    qs = board_queryset().filter(project__in=[p.pk for p in scope])
    if agent:
        qs = qs.filter(agent=agent)
    if status:
        qs = qs.filter(Q(status=status) | Q(zone=status))
    live = list(qs.exclude(zone=Zone.DONE))
    done_qs = qs.filter(zone=Zone.DONE)
    done = list(done_qs[:DONE_SHOWN])
    done_total = done_qs.count()
    _attach_overlaps(live + done, scope)
    return live, done, done_total


def _board_columns(live: list[Session], *, done_total: int, mode: str) -> tuple[list[dict], dict[str, int]]:
    """The mode's columns with their live sessions, and the count per zone (done: ``done_total``)."""
    zone_counts = {zone.value: 0 for zone in Zone}
    by_zone: dict[str, list[Session]] = {zone.value: [] for zone in Zone}
    for session in live:
        by_zone[session.zone].append(session)
        zone_counts[session.zone] += 1
    zone_counts[Zone.DONE] = done_total
    columns = [
        {
            "column": column,
            "sessions": [s for zone in column.zones for s in by_zone[zone]],
            "count": sum(zone_counts[zone] for zone in column.zones),
            "drop": " ".join(f"drop-{zone}" for zone in column.zones),
        }
        for column in COLUMNS[mode]
    ]
    return columns, zone_counts


def _agents_of(projects: list[Project]) -> list[str]:
    """The agents the sessions of ``projects`` ran, sorted: the agent filter's choices."""
    return sorted(
        {
            a
            for a in Session.objects.filter(project__in=[p.pk for p in projects])
            .values_list("agent", flat=True)
            .order_by()
            .distinct()
            if a
        }
    )


def _board_response(request: HttpRequest, *, project: Project | None) -> HttpResponse:
    partial = bool(request.htmx) and request.GET.get("partial") == "body"
    context = page_context(request, partial=partial, **_board_context(request, project=project))
    template = "sessions/_board_body.html" if partial else "sessions/board.html"
    response = render(request, template, context)
    if request.GET.get("mode") in COLUMNS:
        response.set_cookie(MODE_COOKIE, request.GET["mode"], max_age=365 * 24 * 3600, samesite="Lax")
    return response


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    return _board_response(request, project=None)


# Kept for the URL name the first page used.
index = board


@login_required
@require_GET
def project_board(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.VIEW)
    return _board_response(request, project=project)


# --- "needs you": the decisions strip at the top of the board ---------------------------------------
# Loaded by the board after it rendered (and again on resync/pushes): ranking the decisions reads
# each live session's PR threads and overlaps, so it would make the board's query count grow with
# the number of sessions.
def _needs_you_response(request: HttpRequest, *, project: Project | None) -> HttpResponse:
    error = ""
    try:
        items = decisions.decisions_for(request.user, project=project)
    except Exception as exc:  # advice only: never break the board
        log.exception("decisions for %s failed", request.user)
        items, error = [], f"Could not rank what needs you: {exc.__class__.__name__}"
    context = {
        "decisions": items,
        "decisions_error": error,
        "needs_you_url": request.get_full_path(),
        "loaded": True,
    }
    return render(request, "sessions/_needs_you.html", context)


@login_required
@require_GET
def needs_you(request: HttpRequest) -> HttpResponse:
    """The strip of the all-projects board (``?project=`` as the board's filter; a project one
    cannot see is ignored, not leaked)."""
    key = request.GET.get("project", "")
    project = None
    if key:
        project = Project.objects.filter(key=key).first()
        if project is None or not selectors.can(request.user, project, selectors.VIEW):
            project = None
    return _needs_you_response(request, project=project)


@login_required
@require_GET
def project_needs_you(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.VIEW)
    return _needs_you_response(request, project=project)


# --- inbox ----------------------------------------------------------------------------------------
INBOX_SHOWN = 100


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The person's notifications (projects they can see), newest first; POST marks them read."""
    if request.method == "POST":
        ids = request.POST.getlist("ids") or list(
            notify.inbox_for(request.user, unread_only=True).values_list("pk", flat=True)[:INBOX_SHOWN]
        )
        notify.mark_read(request.user, ids)
        return redirect("sessions:inbox")
    if request.method != "GET":
        return HttpResponse(status=405)
    notifications = list(notify.inbox_for(request.user).order_by("-created_at", "-pk")[:INBOX_SHOWN])
    unread_ids = set(
        notify.inbox_for(request.user, unread_only=True)
        .filter(pk__in=[n.pk for n in notifications])
        .values_list("pk", flat=True)
    )
    return render(
        request,
        "sessions/inbox.html",
        page_context(request, notifications=notifications, unread_ids=unread_ids),
    )
