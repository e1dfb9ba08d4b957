"""``ao version``: ao's version and the versions it runs on."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

import django
from django.core.management.base import BaseCommand

import ao_site


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


class Command(BaseCommand):
    help = "Print the versions of ao, Python, Django and the servers ao runs on."
    requires_system_checks = []
    requires_migrations_checks = False

    def handle(self, *args, **options) -> None:
        lines = [
            f"ao {ao_site.__version__}",
            f"Python {platform.python_version()}",
            f"Django {django.get_version()}",
            f"Celery {_version('celery')}",
            f"Channels {_version('channels')}",
            f"Daphne {_version('daphne')}",
        ]
        self.stdout.write("\n".join(lines))
