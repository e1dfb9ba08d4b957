"""Background work, enqueued by task name: the core's one way to ask for a task.

Services never import a tasks module (tasks are interfaces, above them): they name the task
(`SESSION_START`, ...) and `enqueue` finds it in the Celery app's registry. The call is the task's
own `apply_async`, so nothing changes with the scale: with a broker (Redis, or the embedded
server's in-memory transport) the task is sent to its queue; when tasks run eagerly (the CLI in
embedded mode, tests) it runs here and now, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.conf import settings

import ao_site

if TYPE_CHECKING:
    from celery import Task

log = logging.getLogger(__name__)

# The names of the tasks the core and the layers above it enqueue (their @shared_task name=).
SESSION_START = "sessions.start"
SESSION_OPERATE = "sessions.operate"
SESSION_OBSERVE = "sessions.observe"
MESSAGES_DELIVER = "sessions.deliver_messages"
WEBHOOK_REFRESH = "sessions.webhook_refresh"
INTAKE_SWEEP = "sessions.intake_sweep"
CHECKS_RUN = "sessions.run_checks"
ORCHESTRATOR_LAUNCH = "sessions.orchestrator_launch"
NOTIFICATION_DELIVER = "reactions.deliver_notification"

# A delivery task re-schedules itself this many times while the agent is busy, then leaves the
# message to the sweep; the sweep's own attempts pass this, so they are one attempt each.
DELIVERY_RETRY_ROUNDS = 150


def host_queue(host: str) -> str:
    """The queue of the tasks that run on agent host ``host`` (its workspaces and runtimes)."""
    return f"host.{host}"


def task(name: str) -> Task:
    """The registered task ``name``. A process that has not imported the apps' tasks modules yet
    (a CLI command) imports them now, as a worker does at start; an unknown name raises
    ``celery.exceptions.NotRegistered``."""
    app = ao_site.celery_app  # Celery loads with the first task: a command that sends none never loads it
    if name not in app.tasks:
        app.loader.import_default_modules()
    return app.tasks[name]


_inline: ContextVar[bool] = ContextVar("ao_jobs_inline", default=False)


@contextmanager
def inline(enabled: bool = True) -> Iterator[None]:
    """Tasks enqueued in this block (by this thread) run here and now, as they do where tasks run
    eagerly: the running ao runs a CLI command for this machine's ``ao`` (``sessions.cli.cli_relay``)
    as the command runs by itself in embedded mode, which has no worker of its own (``ao spawn``
    returns with the agent started and its task typed, not with a start handed to a worker)."""
    token = _inline.set(enabled)
    try:
        yield
    finally:
        _inline.reset(token)


def runs_inline() -> bool:
    """Whether a task enqueued now runs in this thread (eager mode, or ``inline``)."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER or _inline.get())


def has_worker() -> bool:
    """Whether a worker takes this process's background work: ``ao start``'s own worker threads
    (also while a task runs ``inline`` here for a relayed CLI command), or ``ao worker`` through
    the broker. False where tasks run eagerly: a CLI command by itself, a shell, tests."""
    return not settings.CELERY_TASK_ALWAYS_EAGER


def enqueue(name: str, args: list | tuple = (), kwargs: dict[str, Any] | None = None, **options: Any):
    """Enqueue the task ``name`` with ``args``/``kwargs``; ``options`` as Celery's apply_async
    (``queue``, ``countdown``, ``expires``).

    When the broker cannot be reached the task is not sent and None is returned: every task here
    stands for work the database already holds (a spawning session, a queued message, a due
    check, a pending notification), which the sweep (or the beat's resume job) finds and does once
    the broker is back, so the request that asked for it still succeeds. One warning per outage."""
    if _inline.get() and not settings.CELERY_TASK_ALWAYS_EAGER:
        # as Celery's eager mode: here and now (no queue, no countdown), its errors raised
        return task(name).apply(args=list(args), kwargs=kwargs or {}, throw=True)
    if kwargs:
        options["kwargs"] = kwargs
    try:
        result = task(name).apply_async(args=list(args), **options)
    except broker_errors() as exc:
        _broker_down(name, exc)
        return None
    _broker_up()
    return result


def broker_errors() -> tuple[type[BaseException], ...]:
    """What apply_async raises when the broker is unreachable (kombu wraps redis-py's errors)."""
    from kombu.exceptions import OperationalError  # local: loaded with Celery, by the task being sent

    return (OperationalError, ConnectionError, TimeoutError)


_outage: dict[str, float | None] = {"since": None}
_outage_lock = threading.Lock()


def _broker_down(name: str, exc: BaseException) -> None:
    with _outage_lock:
        first = _outage["since"] is None
        if first:
            _outage["since"] = time.monotonic()
    if first:
        log.warning(
            "the broker is unreachable (%s): %s and the work queued after it wait in the database; "
            "the sweep carries them out when the broker is back",
            exc,
            name,
        )


def _broker_up() -> None:
    if _outage["since"] is None:
        return
    with _outage_lock:
        since, _outage["since"] = _outage["since"], None
    if since is not None:
        log.warning(
            "the broker is back after %d s: background work is queued again", time.monotonic() - since
        )
