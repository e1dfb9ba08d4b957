"""The usage page (``/usage/``): tokens and cost per person, agent and model, project and day or
week, with the monthly budgets. The numbers are ``sessions.core.usage.usage_for``'s, as the API and
``ao retro`` give them; the charts are drawn from the same JSON (``static/ao/usage.js``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from sessions.core import selectors, usage
from sessions.dashboard.views_common import page_context

WINDOWS = (("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"), ("365d", "a year"))
BUCKETS = (("day", "per day"), ("week", "per week"))


@login_required
@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    window = request.GET.get("since") or "30d"
    bucket = request.GET.get("bucket") or "day"
    project = request.GET.get("project") or ""
    window = window if window in dict(WINDOWS) else "30d"
    bucket = bucket if bucket in dict(BUCKETS) else "day"
    try:
        data = usage.usage_for(user=request.user, since=window, bucket=bucket, project_key=project or None)
    except selectors.NotFound as exc:
        raise Http404(str(exc)) from exc

    def link(**changes) -> str:
        params = {"since": window, "bucket": bucket, "project": project, **changes}
        return "?" + urlencode({k: v for k, v in params.items() if v})

    context = page_context(
        request,
        usage=data,
        window=window,
        bucket=bucket,
        project=project,
        windows=[(label, link(since=key), key == window) for key, label in WINDOWS],
        buckets=[(label, link(bucket=key), key == bucket) for key, label in BUCKETS],
        projects=[
            (key, link(project=key), key == project)
            for key in selectors.projects_visible_to(request.user)
            .order_by("key")
            .values_list("key", flat=True)
        ],
        all_projects=link(project=""),
        api_url="/api/v1/usage" + link(),
    )
    return render(request, "sessions/usage.html", context)
