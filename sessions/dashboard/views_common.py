"""What every dashboard page shares: the context of the navigation (unread count, whether the
browser terminal exists) and the permission checks.

Every page and action checks the person's role in the project (``selectors.can``): viewers
read, operators act (spawn, send, kill, restore, merge), admins configure. A project a person
has no role in is answered with 404, like one that does not exist (and its sessions too); a role
too low for an action is a 403. The all-projects board shows only visible projects.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from reactions import notify
from sessions.core import selectors
from sessions.models import Project, Session


def unread_count_for(user) -> int | None:
    """The person's unread notification count (None when there is no inbox)."""
    try:
        return notify.unread_count(user)
    except (ImportError, AttributeError):
        return None


def page_context(request: HttpRequest, **context) -> dict:
    """Context every page shares: the unread notification count, when notifications exist."""
    context.setdefault("unread_count", unread_count_for(request.user))
    context.setdefault("has_terminal", _has_terminal())
    return context


def _has_terminal() -> bool:
    """Whether the browser terminal partial exists (it is built alongside the dashboard)."""
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template

    try:
        get_template("sessions/_terminal.html")
    except TemplateDoesNotExist:
        return False
    return True


# --- permission helpers ----------------------------------------------------------------------------
# A project the person has no role in does not exist for them: 404, as for one that does not exist
# (the same page), so that ids cannot be probed. A role too low for the action is a 403.
def project_for(request: HttpRequest, key: str, need: str) -> Project:
    project = get_object_or_404(selectors.projects_visible_to(request.user), key=key)
    if not selectors.can(request.user, project, need):
        raise PermissionDenied(f"you need the {need} role in {project.key}")
    return project


def session_for(request: HttpRequest, session_id: str, need: str) -> Session:
    session = get_object_or_404(
        Session.objects.select_related("project", "pull_request", "created_by", "credentials_of").filter(
            project__in=selectors.projects_visible_to(request.user)
        ),
        pk=session_id,
    )
    if not selectors.can(request.user, session.project, need):
        raise PermissionDenied(f"you need the {need} role in {session.project.key}")
    return session
