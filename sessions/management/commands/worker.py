"""``ao worker``: a Celery worker for background work (scale-out; needs REDIS_URL)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ao_site import preflight, runner
from ao_site.celery import app
from sessions.api.tokens import api_token_authenticate
from sessions.core.hosts import HostHeartbeat, HostRefused, host_register
from sessions.flows.watch import ActivityWatcher


class Command(BaseCommand):
    help = "Run background work: consumes queue `ao` and this agent host's `host.<NAME>` (needs REDIS_URL)."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--host",
            dest="host_name",
            metavar="NAME",
            default=None,
            help="agent host name: also consume queue host.NAME (default: this machine's host name)",
        )
        parser.add_argument(
            "--concurrency", type=int, default=8, help="tasks run at once, in threads (default 8)"
        )
        parser.add_argument(
            "--shared",
            action="store_true",
            help="a shared host (any operator's sessions): without AO_TOKEN, or with a superuser's; "
            "with another person's AO_TOKEN the host is their personal host",
        )
        parser.add_argument(
            "--max-sessions",
            type=int,
            default=None,
            metavar="N",
            help="live sessions this host runs at most (default: AO_MAX_SESSIONS_PER_HOST)",
        )

    def handle(
        self,
        *args,
        host_name: str | None,
        concurrency: int,
        shared: bool,
        max_sessions: int | None,
        **options,
    ) -> None:
        preflight.require_scale_out("worker")
        name = runner.validate_host_name(host_name) if host_name is not None else runner.default_host_name()
        if concurrency < 1:
            raise CommandError(f"--concurrency must be at least 1, not {concurrency}")
        preflight.check_database()
        preflight.check_redis()
        preflight.warn_if_no_tmux(self.stderr)
        if max_sessions is not None and max_sessions < 1:
            raise CommandError(f"--max-sessions must be at least 1, not {max_sessions}")
        host = _register(name, shared=shared, max_sessions=max_sessions)
        # this process is that host now: what it spawns or restores records it, and it runs (not
        # re-queues) the runtime work of the sessions that live here
        settings.AO_HOST_NAME = name

        app.set_current()
        app.set_default()
        queues = [settings.CELERY_TASK_DEFAULT_QUEUE, f"host.{name}"]
        worker = app.Worker(
            hostname=f"ao.{os.getpid()}@{name}",
            queues=queues,
            pool="threads",
            concurrency=concurrency,
            loglevel=settings.LOGGING["loggers"]["celery"]["level"],
            quiet=True,
            redirect_stdouts=False,
            without_gossip=True,
            without_mingle=True,
        )
        whose = "shared" if host.shared else f"personal host of {host.owner.get_username()}"
        self.stdout.write(
            f"ao worker for host {name!r} ({whose}): queues {', '.join(queues)}, {concurrency} threads, "
            f"broker {preflight.redis_where(settings.REDIS_URL)} (Ctrl-C stops)."
        )
        self.stdout.flush()
        watcher = ActivityWatcher()
        watcher.start()
        heartbeat = HostHeartbeat(name)  # Host.last_seen: a host that stops beating is gone
        heartbeat.start()
        try:
            worker.start()
        finally:
            heartbeat.stop()
            watcher.stop()
        if worker.exitcode:
            raise CommandError(
                f"the worker stopped with status {worker.exitcode} — see the log above",
                returncode=worker.exitcode,
            )


def _register(name: str, *, shared: bool, max_sessions: int | None):
    """Register the host: as AO_TOKEN's person's (personal unless a superuser says --shared), or,
    without a token, as the machine operator's shared host. The token is checked, never printed."""
    user = None
    raw = os.environ.get("AO_TOKEN", "").strip()
    if raw:
        token = api_token_authenticate(raw)
        if token is None:
            raise CommandError("AO_TOKEN is not an active API token of an active user (ao token create)")
        user = token.user
    try:
        return host_register(name=name, user=user, shared=shared, max_sessions=max_sessions)
    except HostRefused as exc:
        raise CommandError(f"host {name} not registered: {exc}") from exc
