"""The Celery application. Tasks live in each app's ``tasks.py`` and stay thin."""

from __future__ import annotations

import logging
import os
import time

from celery import Celery, signals
from celery.beat import Scheduler

from ao_site.dbretry import database_connection_lost, work_succeeded

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

    # local: the settings import this module; config needs them
    from sessions.core.config.schema import MIN_SWEEP_INTERVAL

    return min(float(MIN_SWEEP_INTERVAL), float(settings.AO_SWEEP_INTERVAL))


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


log = logging.getLogger("ao.beat")
BROKER_RETRY_FIRST = 1.0  # seconds before the first retry after the broker went away
BROKER_RETRY_MAX = 30.0


def broker_unreachable(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) is the broker connection failing."""
    import kombu.exceptions
    import redis

    kinds = (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError, OSError)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class BeatScheduler(Scheduler):
    """celery's in-memory scheduler that rides out a broker outage: one warning when the broker
    goes away and one when it is back, not a traceback per due task; while it is away, due work
    waits (retried after 1 s, doubling up to 30 s) and a run missed meanwhile is skipped, not
    replayed (the sweep fan-out is idempotent: the next tick finds what is due)."""

    down_since: float | None = None
    retry_in = 0.0
    next_try = 0.0

    def tick(self, *args, **kwargs) -> float:
        if self.down_since is not None:
            wait = self.next_try - time.monotonic()
            if wait > 0:
                return wait
        return super().tick(*args, **kwargs)

    def apply_entry(self, entry, producer=None) -> None:
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:
            if not broker_unreachable(exc):
                log.error("ao beat: could not queue %s: %s", entry.name, exc)
                return
            if self.down_since is None:
                self.down_since, self.retry_in = time.monotonic(), BROKER_RETRY_FIRST
                reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
                log.warning(
                    "ao beat: the broker is unreachable (%s); scheduling resumes when it is back", reason
                )
            else:
                self.retry_in = min(self.retry_in * 2, BROKER_RETRY_MAX)
            self.next_try = time.monotonic() + self.retry_in
            return
        if self.down_since is not None:
            log.warning(
                "ao beat: the broker is back after %d s; scheduling again", time.monotonic() - self.down_since
            )
            self.down_since = None


# --- database connections that go away: ao_site.dbretry (no Celery there: the CLI uses it too) ---------
@signals.task_prerun.connect
def _fresh_connections(**kwargs) -> None:
    from django import db

    db.close_old_connections()  # a connection a dead server left behind is not reused


@signals.task_retry.connect
def _retried(reason=None, **kwargs) -> None:
    exc = getattr(reason, "exc", reason)
    if isinstance(exc, BaseException):
        database_connection_lost(exc)


@signals.task_success.connect
def _succeeded(**kwargs) -> None:
    work_succeeded()
