"""Reads: query helpers used by views, consumers, the CLI and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from sessions.models import Project, Session


def projects_all() -> QuerySet[Project]:
    return Project.objects.all()


def sessions_for_board(*, project: Project | None = None, include_done: bool = True) -> QuerySet[Session]:
    qs = Session.objects.select_related("project", "pull_request").order_by("-created_at")
    if project is not None:
        qs = qs.filter(project=project)
    if not include_done:
        qs = qs.exclude(zone="done")
    return qs


def session_for_card(*, session_id: str) -> Session | None:
    return Session.objects.select_related("project", "pull_request").filter(pk=session_id).first()
