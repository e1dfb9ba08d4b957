"""Celery tasks: thin wrappers that claim work and call one service."""

from __future__ import annotations

from celery import shared_task

from sessions import services
from sessions.models import Project


@shared_task(name="sessions.sweep_due_projects", ignore_result=True)
def sweep_due_projects_task() -> None:
    """Beat fans out: one sweep task per project that is due."""
    for project_id in services.projects_due_for_sweep():
        project_sweep_task.delay(project_id)


@shared_task(name="sessions.sweep_project", ignore_result=True, acks_late=True)
def project_sweep_task(project_id: int) -> None:
    if not services.project_sweep_claim(project_id=project_id):
        return  # another sweep of this project is running
    try:
        project = Project.objects.filter(pk=project_id).first()
        if project is not None:
            services.project_sweep(project=project)
    finally:
        services.project_sweep_release(project_id=project_id)
