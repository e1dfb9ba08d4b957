"""``{% configure_url project as url %}``: the admin change page of a project, for the people who
may configure it there (staff with the admin role in it, or superusers), else an empty string."""

from __future__ import annotations

from django import template
from django.urls import reverse

from sessions.dashboard.admin_scope import admin_project_ids

register = template.Library()


@register.simple_tag(takes_context=True)
def configure_url(context, project) -> str:
    request = context.get("request")
    user = getattr(request, "user", None)
    if project is None or user is None or not user.is_authenticated or not user.is_staff:
        return ""
    if not user.is_superuser and project.pk not in admin_project_ids(user):
        return ""
    return reverse("admin:agent_sessions_project_change", args=[project.pk])
