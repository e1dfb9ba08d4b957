"""Usage and budgets: what the agents cost, per person, agent and model, project and day or week.

The numbers are the sessions' own recorded totals (``Session.tokens_in``, ``tokens_out``,
``cost_usd``, kept up to date by each observation of the agent), grouped by who spawned the
session (``created_by``; none: ao itself, e.g. intake or the host's CLI), its agent and model, its
project, and the UTC day or week it was spawned. A session's whole usage counts on the day it was
spawned, so the page, the API and ``ao retro`` add up to exactly what the sessions recorded.

Budgets are monthly cost caps (USD, calendar months in UTC): a project's (``monthlyBudgetUsd`` in
its config) and a person's across all projects (``UserBudget``, set by a superuser). Once the month's
sessions cost the cap or more, ``spawn_budget_refusal`` gives the reason a spawn is refused and
tells the person refused (the notification's recipient, in the project's inbox), once per person,
cap and month, through the notifier the app hands down (``use_notifier``: reactions sit above the
core).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncWeek
from django.urls import NoReverseMatch
from django.utils import timezone

from ao_site import served
from reactions.models import Notification
from sessions.core import audit, selectors
from sessions.models import Project, Session, UserBudget

log = logging.getLogger(__name__)

BUCKETS = ("day", "week")
NOTIFY_RULE = "budget"
DURATION_RE = re.compile(r"^(\d+)([smhdw])\Z")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
CENTS = Decimal("0.01")
_SUMS = {
    "sessions": Count("pk"),
    "tokens_in": Sum("tokens_in"),
    "tokens_out": Sum("tokens_out"),
    "cost_usd": Sum("cost_usd"),
}

_notify: Callable[..., Any] | None = None


def use_notifier(notify: Callable[..., Any]) -> None:
    """Called once the apps are ready (sessions/apps.py) with ``reactions.notify.notify``."""
    global _notify
    _notify = notify


# --- windows ----------------------------------------------------------------------------------------
def parse_since(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """``"7d"`` → 7 days ago; ``"all"``/empty → None; an ISO date/time is taken as is (UTC unless
    it says otherwise). Shared by the usage page, the API and ``ao retro``."""
    if not value or value == "all":
        return None
    now = now or timezone.now()
    match = DURATION_RE.match(value.strip())
    if match:
        return now - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"--since {value!r}: expected e.g. 7d, 12h, 2w, all, or an ISO date") from exc
    return parsed if parsed.tzinfo else timezone.make_aware(parsed, UTC)


def month_start(now: datetime | None = None) -> datetime:
    now = (now or timezone.now()).astimezone(UTC)
    return datetime.combine(now.date().replace(day=1), time.min, tzinfo=UTC)


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


# --- usage ------------------------------------------------------------------------------------------
def _totals(row: dict) -> dict:
    tokens_in, tokens_out = row.get("tokens_in") or 0, row.get("tokens_out") or 0
    return {
        "sessions": row.get("sessions") or 0,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "tokens": tokens_in + tokens_out,
        "cost_usd": float(row.get("cost_usd") or 0),
    }


def _by_cost(rows: Iterable[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (-r["cost_usd"], -r["tokens"], r["name"]))


def _period_start(day: date, bucket: str) -> date:
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


def _periods(first: date, last: date, bucket: str) -> list[date]:
    step = timedelta(days=7 if bucket == "week" else 1)
    current, periods = _period_start(first, bucket), []
    while current <= last:
        periods.append(current)
        current += step
    return periods


def sessions_in(
    *, projects: Iterable[Project] | QuerySet[Project], since: datetime | None, until: datetime | None = None
) -> QuerySet[Session]:
    qs = Session.objects.filter(project__in=projects)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def usage_summary(
    *,
    projects: Iterable[Project] | QuerySet[Project],
    since: datetime | None,
    until: datetime | None = None,
    bucket: str = "day",
    now: datetime | None = None,
) -> dict:
    """Tokens and cost of the sessions of ``projects`` spawned in [since, until), grouped by person,
    agent and model, project, and UTC day or week (every period of the window, empty ones too)."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket {bucket!r}: expected one of {', '.join(BUCKETS)}")
    now = now or timezone.now()
    qs = sessions_in(projects=projects, since=since, until=until).order_by()
    trunc = (TruncWeek if bucket == "week" else TruncDay)("created_at", tzinfo=UTC)

    by_user = []
    for row in qs.values("created_by", "created_by__username").annotate(**_SUMS):
        name = row["created_by__username"] or ""
        by_user.append({"user": name, "name": name or "ao", **_totals(row)})
    by_model = []
    for row in qs.values("agent", "model").annotate(**_SUMS):
        name = f"{row['agent'] or '-'}/{row['model']}" if row["model"] else row["agent"] or "-"
        by_model.append({"agent": row["agent"], "model": row["model"], "name": name, **_totals(row)})
    by_project = []
    for row in qs.values("project__key").annotate(**_SUMS):
        by_project.append({"project": row["project__key"], "name": row["project__key"], **_totals(row)})

    cells: dict[date, dict[str, dict]] = {}  # period → project → the period's raw sums
    for row in qs.annotate(period=trunc).values("period", "project__key").annotate(**_SUMS):
        period = row["period"]
        day = period.astimezone(UTC).date() if isinstance(period, datetime) else period
        cells.setdefault(_period_start(day, bucket), {})[row["project__key"]] = row
    first = since.astimezone(UTC).date() if since else min(cells, default=now.astimezone(UTC).date())
    last = ((until or now) - timedelta(microseconds=1)).astimezone(UTC).date()
    over_time = []
    for period in _periods(first, max(first, last), bucket):
        per_project = cells.get(period, {})
        summed = {key: sum((p[key] or 0 for p in per_project.values()), 0) for key in _SUMS}
        over_time.append(
            {
                "period": period.isoformat(),
                **_totals(summed),
                "projects": {key: _totals(per_project[key]) for key in sorted(per_project)},
            }
        )
    totals = _totals(qs.aggregate(**_SUMS))
    return {
        "since": since.isoformat() if since else None,
        "until": (until or now).isoformat(),
        "bucket": bucket,
        "totals": totals,
        "by_user": _by_cost(by_user),
        "by_agent_model": _by_cost(by_model),
        "by_project": _by_cost(by_project),
        "over_time": over_time,
    }


def usage_for(
    *,
    user,
    since: str = "30d",
    bucket: str = "day",
    project_key: str | None = None,
    now: datetime | None = None,
) -> dict:
    """The usage page and ``GET /api/v1/usage``: the projects the person can see (or the one named,
    ``selectors.NotFound`` if they cannot see it), with the budgets they may see. ``ValueError`` for
    a bad window or bucket."""
    now = now or timezone.now()
    projects = selectors.projects_visible_to(user).order_by("key")
    if project_key:
        projects = projects.filter(key=project_key[:63])
        if not projects.exists():
            raise selectors.NotFound(f"no project {project_key!r} visible to you")
    summary = usage_summary(projects=projects, since=parse_since(since, now=now), bucket=bucket, now=now)
    return {
        "window": since or "all",
        "project": project_key or None,
        **summary,
        "budgets": budgets_for(projects=projects, people=budget_rows_visible(user), now=now),
    }


# --- budgets ----------------------------------------------------------------------------------------
def month_cost(*, project: Project | None = None, user=None, now: datetime | None = None) -> Decimal:
    """What this month's sessions of the project (or spawned by the user, in every project) cost."""
    qs = Session.objects.filter(created_at__gte=month_start(now))
    if project is not None:
        qs = qs.filter(project=project)
    if user is not None:
        qs = qs.filter(created_by=user)
    return qs.aggregate(cost=Sum("cost_usd"))["cost"] or Decimal(0)


def _money(value: Decimal) -> str:
    return f"${Decimal(value).quantize(CENTS)}"


def budget_refusal(*, project: Project, user=None, now: datetime | None = None) -> tuple[str, str] | None:
    """Why a spawn in ``project`` by ``user`` is over budget, as (title, reason); None when it is not.
    The project's cap is checked first, then the person's."""
    start = month_start(now)
    month = f"{start:%B %Y} (UTC)"
    resume = f"spawns resume on {_next_month(start):%Y-%m-%d}"
    cap = project.monthly_budget_usd
    if cap is not None:
        spent = month_cost(project=project, now=now)
        if spent >= cap:
            return (
                f"project {project.key} is over its {_money(cap)} monthly budget",
                f"project {project.key} is over its monthly budget: {_money(spent)} spent in {month} of "
                f"{_money(cap)} (monthlyBudgetUsd); {resume} or when the budget is raised",
            )
    budget = UserBudget.objects.filter(user=user).first() if getattr(user, "pk", None) else None
    if budget is not None:
        spent = month_cost(user=user, now=now)
        if spent >= budget.monthly_budget_usd:
            name = user.get_username()
            return (
                f"{name} is over their {_money(budget.monthly_budget_usd)} monthly budget",
                f"{name} is over their monthly budget: {_money(spent)} spent in {month} of "
                f"{_money(budget.monthly_budget_usd)}; {resume} or when a superuser raises it "
                f"(ao budget set {name} AMOUNT)",
            )
    return None


def spawn_budget_refusal(*, project: Project, by=None, now: datetime | None = None) -> str | None:
    """The reason a spawn must be refused for its budget (and the person refused is told, once per
    cap and month), or None."""
    refusal = budget_refusal(project=project, user=by, now=now)
    if refusal is None:
        return None
    title, reason = refusal
    title = f"Spawn refused: {title}"
    person = by if getattr(by, "pk", None) else None
    told = Notification.objects.filter(
        project=project, rule=NOTIFY_RULE, title=title, recipient=person, created_at__gte=month_start(now)
    ).exists()
    if not told and _notify is not None:
        try:
            _notify(
                project=project,
                title=title,
                body=reason,
                priority="warning",
                rule=NOTIFY_RULE,
                url=_page_url(),
                recipient=person,
            )
        except Exception:  # telling people must never turn the refusal into a crash
            log.exception("could not record the budget notification for project %s", project.key)
    return reason


def _page_url() -> str:
    try:
        return f"{served.agent_url()}{served.dashboard_path('usage')}"
    except NoReverseMatch:
        return ""


def budget_rows_visible(user, *, everyone: bool = False) -> QuerySet[UserBudget]:
    """The people's budgets a person may see: their own; a superuser (or the host's CLI,
    ``everyone``) everyone's."""
    people = UserBudget.objects.select_related("user").order_by("user__username")
    if everyone or getattr(user, "is_superuser", False):
        return people
    return people.filter(user=user) if getattr(user, "pk", None) else people.none()


def budgets_for(
    *, projects: Iterable[Project], people: Iterable[UserBudget], now: datetime | None = None
) -> list[dict]:
    """The caps of ``projects`` (those that have one) and of ``people``, with this month's spend."""
    rows = [
        _budget_row("project", p.key, p.monthly_budget_usd, month_cost(project=p, now=now))
        for p in projects
        if p.monthly_budget_usd is not None
    ]
    rows += [
        _budget_row("user", b.user.get_username(), b.monthly_budget_usd, month_cost(user=b.user, now=now))
        for b in people
    ]
    month = f"{month_start(now):%Y-%m}"
    return [{**row, "month": month} for row in rows]


def _budget_row(scope: str, name: str, cap: Decimal, spent: Decimal) -> dict:
    return {
        "scope": scope,
        "name": name,
        "monthly_budget_usd": float(cap),
        "spent_usd": float(spent),
        "used_pct": round(float(spent / cap) * 100) if cap else (100 if spent >= cap else 0),
        "over": spent >= cap,
    }


def user_budget_set(*, user, amount: Decimal | None) -> UserBudget | None:
    """Set (or with None remove) a person's monthly budget."""
    if amount is None:
        if UserBudget.objects.filter(user=user).delete()[0]:
            audit.record(action="budget.remove", target=("user", user.get_username()))
        return None
    if amount < 0:
        raise ValueError("a budget is 0 or more")
    budget, _ = UserBudget.objects.update_or_create(
        user=user, defaults={"monthly_budget_usd": Decimal(amount).quantize(CENTS)}
    )
    audit.record(
        action="budget.set",
        target=("user", user.get_username()),
        data={"monthly_budget_usd": str(budget.monthly_budget_usd)},
    )
    return budget
