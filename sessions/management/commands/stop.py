"""``ao stop``: stop the ``ao start`` running from this AO_HOME."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ao_site import runner


class Command(BaseCommand):
    help = "Stop the running `ao start` (SIGTERM, then wait for a clean shutdown)."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=30.0, help="seconds to wait for it to stop (default 30)"
        )

    def handle(self, *args, timeout: float, **options) -> None:
        pid, stopped = runner.stop_running(timeout=timeout)
        if pid is None:
            self.stdout.write(f"ao is not running (no live pid file in {settings.AO_HOME}).")
            return
        if not stopped:
            raise CommandError(
                f"ao (pid {pid}) did not stop within {timeout:.0f} s — wait longer (`ao stop --timeout 120`) "
                f"or force it with `kill -9 {pid}`"
            )
        self.stdout.write(f"ao (pid {pid}) stopped.")
