"""The Celery application. Tasks live in each app's ``tasks.py`` and stay thin."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ao_site.settings")

app = Celery("ao")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Celery's "current app" is per thread: make ao's app the fallback in every thread (daphne's
# sync-view threads, the embedded worker's pool), or shared tasks there would use a default app
# with an AMQP broker.
app.set_default()


def sweep_tick() -> float:
    """Seconds between beat's sweep fan-out ticks. A sweep task a tick queued expires after one
    tick (sessions.tasks): one not started before the next tick is dropped, not piled up."""
    from django.conf import settings

    return min(5.0, float(settings.AO_SWEEP_INTERVAL))


def _beat_schedule() -> dict:
    tick = sweep_tick()
    return {
        "sweep-due-projects": {"task": "sessions.sweep_due_projects", "schedule": tick},
        # deliveries whose retry was lost (restart, in-memory broker) are picked up again
        "resume-notification-deliveries": {"task": "reactions.resume_deliveries", "schedule": 300.0},
    }


@app.on_after_finalize.connect
def _setup_periodic_tasks(sender: Celery, **kwargs) -> None:
    sender.conf.beat_schedule = _beat_schedule()
