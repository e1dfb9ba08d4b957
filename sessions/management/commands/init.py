"""``ao init``: write ao.config.yaml for a repository by inspecting it."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sessions.core.config.discovery import CONFIG_FILENAME
from sessions.core.config.init import config_init, config_init_text
from sessions.core.config.problems import ConfigError


class Command(BaseCommand):
    help = (
        f"Write {CONFIG_FILENAME} at the root of a git repository, from its origin remote, default "
        "branch and the agent CLIs on PATH."
    )
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--path", type=Path, default=Path("."), help="the repository (default: current directory)"
        )
        parser.add_argument("--force", action="store_true", help=f"replace an existing {CONFIG_FILENAME}")
        parser.add_argument(
            "--print", action="store_true", dest="print_only", help="print the config instead of writing it"
        )

    def handle(self, *args, path: Path, force: bool, print_only: bool, **options) -> None:
        try:
            if print_only:
                self.stdout.write(config_init_text(repo=path), ending="")
                return
            written = config_init(repo=path, force=force)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Wrote {written}. Check it, then run `ao start`.")
