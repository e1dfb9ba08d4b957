"""``ao version``: ao's version and the versions it runs on (``ao`` itself prints it without Django)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sessions.cli import light_commands


class Command(BaseCommand):
    help = "Print the versions of ao, Python, Django and the servers ao runs on."
    requires_system_checks = []
    requires_migrations_checks = False

    def handle(self, *args, **options) -> None:
        self.stdout.write("\n".join(light_commands.version_lines()))
