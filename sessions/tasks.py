"""Celery tasks: thin wrappers that claim work and call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from ao_site.celery import sweep_tick
from integrations.base import IntegrationError
from integrations.registry import ConfigurationError, plugin_for
from reactions import services as reactions
from sessions.agents import messaging, observing, operating, starting
from sessions.core import hosts, jobs, services
from sessions.domain.lifecycle import Phase
from sessions.flows import sweep, webhooks
from sessions.models import Actor, Project, Session
from sessions.prs import prsync
from sessions.watchers import intake, orchestrator

log = logging.getLogger(__name__)

# A task interrupted by a lost database connection runs again on a fresh one (ao_site.celery says
# so once per outage): after 1, 2, 4, 8, 16 s (jittered), then the sweep finds the work.
DB_RETRY = dict(
    autoretry_for=(InterfaceError, OperationalError), retry_backoff=1, retry_backoff_max=16, max_retries=5
)


@shared_task(name="sessions.sweep_due_projects", ignore_result=True, **DB_RETRY)
def sweep_due_projects_task() -> None:
    """Beat fans out: one sweep task per project that is due and not being swept. A task not
    started within one tick expires (the next tick queues a fresh one if still due)."""
    expires = sweep_tick()
    hosts.hosts_gone_mark()  # agent hosts whose worker stopped heart-beating: their sessions marked
    for project_id in services.projects_due_for_sweep():
        project_sweep_task.apply_async(args=[project_id], expires=expires)
    for project_id in webhooks.refreshes_overdue():  # a coalesced webhook refresh whose task was lost
        webhook_refresh_task.apply_async(args=[project_id], expires=expires)


@shared_task(name="sessions.sweep_project", ignore_result=True, acks_late=True, **DB_RETRY)
def project_sweep_task(project_id: int) -> None:
    lease = services.project_sweep_claim(project_id=project_id)
    if lease is None:
        return  # another sweep of this project is running, or it was just swept
    try:
        project = Project.objects.filter(pk=project_id).first()
        if project is not None:
            with lease.heartbeat():
                sweep.project_sweep(project=project, keep=lease.keep)
    except services.SweepLeaseLost as exc:
        log.warning("sweep stopped: %s", exc)
    finally:
        services.project_sweep_release(lease=lease)


@shared_task(name="sessions.start", ignore_result=True, acks_late=True)
def session_start_task(session_id: str) -> None:
    starting.session_start(session_id=session_id)


@shared_task(name="sessions.operate", ignore_result=True, acks_late=True)
def session_operate_task(
    session_id: str, action: str, request_event: int = 0, by=None, actor: str = "", params=None
) -> None:
    """A kill, restore or clean-up requested from another host, run on the session's host."""
    operating.session_operate(
        session_id=session_id,
        action=action,
        request_event=request_event,
        by=by,
        actor=actor or Actor.USER,
        params=params,
    )


@shared_task(name="sessions.observe", ignore_result=True, **DB_RETRY)
def session_observe_task(session_id: str) -> None:
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is not None:
        observing.session_observe(session=session)
        if session.phase == Phase.RUNNING:  # its facts were stored: the reactions look at them
            reactions.session_react_after_commit(session_id=session.pk)


DELIVERY_RETRY_SECONDS = 2
DELIVERY_RETRY_ROUNDS = jobs.DELIVERY_RETRY_ROUNDS  # then the sweep keeps trying at its own pace


@shared_task(name="sessions.deliver_messages", ignore_result=True, acks_late=True, **DB_RETRY)
def messages_deliver_task(session_id: str, wait: float = 0.0, rounds: int = 0) -> None:
    from django.conf import settings

    _sent, held = messaging.messages_deliver(session_id=session_id, wait=wait)
    if held and not settings.CELERY_TASK_ALWAYS_EAGER and rounds < DELIVERY_RETRY_ROUNDS:
        host = Session.objects.filter(pk=session_id).values_list("host", flat=True).first()
        messages_deliver_task.apply_async(
            args=[session_id],
            kwargs={"rounds": rounds + 1},
            countdown=DELIVERY_RETRY_SECONDS,
            queue=jobs.host_queue(host or settings.AO_HOST_NAME),
        )


@shared_task(name="sessions.webhook_refresh", ignore_result=True, acks_late=True, **DB_RETRY)
def webhook_refresh_task(project_id: int, refs: dict | None = None) -> None:
    """The coalesced refresh of every pending webhook delivery of a project (sessions/flows/webhooks.py).
    ``refs``: what a task queued by an older ao carried; drained along with the rest."""
    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        webhooks.webhook_refresh(project=project, extra=refs)


@shared_task(name="sessions.intake_sweep", ignore_result=True, acks_late=True)
def intake_sweep_task(project_id: int) -> None:
    """The project's backlog intake, soon after an issue got the intake label (a webhook)."""
    webhooks.intake_sweep_started(project_id)
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    try:
        notes = intake.intake_sweep(project=project)
    except (ConfigurationError, IntegrationError) as exc:
        log.warning("intake of %s after a webhook failed: %s", project.key, exc)
        return
    if notes:
        log.info("%s: backlog intake (webhook): %s", project.key, notes)


@shared_task(name="sessions.run_checks", ignore_result=True, acks_late=True)
def checks_run_task(project_id: int, number: int, force: bool = False) -> None:
    """Run ao-hosted checks (local CI) on a PR's head, then refresh the session that owns it."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    plugin_for(project, "scm").run_checks(number=number, force=force)
    session_ids = prsync.sessions_for_refs(project=project, numbers=[number])
    if session_ids:
        webhooks.pull_requests_refresh(project=project, session_ids=session_ids)


# --- the orchestrator agent (sessions/watchers/orchestrator.py) ------------------------------------------------
@shared_task(name="sessions.orchestrator_launch", ignore_result=True, acks_late=True)
def orchestrator_launch_task(session_id: str) -> None:
    orchestrator.orchestrator_launch(session_id=session_id)
