"""The hosts page (``/hosts/``): the agent hosts a person may use, and who may use theirs (issue 19).

The same services as ``GET /api/v1/hosts`` and ``ao host allow|deny`` (``sessions.core.hosts``): each
host's owner, whether it is shared, online, its live sessions of its cap; on a personal host its
owner (and superusers) see who else may use it, let someone in and stop them. Anyone else's
attempt is refused with the reason, and nothing changes.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from sessions.core import hosts
from sessions.dashboard.views_common import page_context


@login_required
@require_GET
def hosts_page(request: HttpRequest) -> HttpResponse:
    rows = hosts.host_rows(user=request.user)
    return render(request, "sessions/hosts.html", page_context(request, hosts=rows))


@login_required
@require_POST
def host_allow(request: HttpRequest, name: str) -> HttpResponse:
    username = request.POST.get("user", "").strip()
    if not username:
        messages.error(request, "Name the person to allow (their username).")
        return redirect("sessions:hosts")
    try:
        added = hosts.host_allow(name=name, username=username, by=request.user)
    except hosts.HostRefused as exc:
        messages.error(request, str(exc))
        return redirect("sessions:hosts")
    messages.success(
        request, f"{username} {'may now use' if added else 'was already allowed on'} host {name}."
    )
    return redirect("sessions:hosts")


@login_required
@require_POST
def host_deny(request: HttpRequest, name: str, username: str) -> HttpResponse:
    try:
        hosts.host_deny(name=name, username=username, by=request.user)
    except hosts.HostRefused as exc:
        messages.error(request, str(exc))
        return redirect("sessions:hosts")
    messages.success(request, f"{username} may no longer start sessions on host {name}.")
    return redirect("sessions:hosts")
