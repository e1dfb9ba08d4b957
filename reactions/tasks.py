"""Celery tasks for reactions: thin wrappers around ``reactions.notify``."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

import ao_site.celery  # noqa: F401  # these shared tasks use ao's Celery app, whoever imports them
from reactions import notify

log = logging.getLogger(__name__)


@shared_task(name="reactions.deliver_notification", ignore_result=True, acks_late=True)
def notification_delivery_send_task(delivery_id: int) -> None:
    """Try one delivery; schedule the next try after the backoff (or, when tasks run eagerly in the
    CLI, wait for it here). Never raises: failures are recorded on the delivery."""
    while True:
        try:
            delay = notify.notification_delivery_attempt(delivery_id=delivery_id)
        except Exception:  # the database, not the notifier: leave the delivery for the resume sweep
            log.exception("notification delivery %s could not be attempted", delivery_id)
            return
        if delay is None:
            return
        if settings.CELERY_TASK_ALWAYS_EAGER:
            time.sleep(delay)
            continue
        notification_delivery_send_task.apply_async(args=[delivery_id], countdown=delay)
        return


@shared_task(name="reactions.resume_deliveries", ignore_result=True)
def notification_deliveries_resume_task() -> None:
    """Periodic: re-enqueue deliveries left pending by a lost task."""
    notify.notification_deliveries_resume()
