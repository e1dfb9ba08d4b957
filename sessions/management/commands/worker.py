"""``ao worker``: a Celery worker for background work (scale-out; needs REDIS_URL)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ao_site import runner


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

    def handle(self, *args, host_name: str | None, concurrency: int, **options) -> None:
        runner.require_scale_out("worker")
        name = runner.validate_host_name(host_name) if host_name is not None else runner.default_host_name()
        if concurrency < 1:
            raise CommandError(f"--concurrency must be at least 1, not {concurrency}")
        runner.check_database()
        runner.check_redis()
        runner.warn_if_no_tmux(self.stderr)
        # this process is that host now: what it spawns or restores records it, and it runs (not
        # re-queues) the runtime work of the sessions that live here
        settings.AO_HOST_NAME = name

        from ao_site.celery import app

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
        self.stdout.write(
            f"ao worker for host {name!r}: queues {', '.join(queues)}, {concurrency} threads, "
            f"broker {runner.redis_where(settings.REDIS_URL)} (Ctrl-C stops)."
        )
        self.stdout.flush()
        from sessions.watch import ActivityWatcher  # this host's agents' activity, between sweeps

        watcher = ActivityWatcher()
        watcher.start()
        try:
            worker.start()
        finally:
            watcher.stop()
        if worker.exitcode:
            raise CommandError(
                f"the worker stopped with status {worker.exitcode} — see the log above",
                returncode=worker.exitcode,
            )
