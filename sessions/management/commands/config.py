"""``ao config check|apply [FILE]``: validate ao.config.yaml, or write it to the database without a restart;
``ao config schema``: its JSON Schema, for editors."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sessions.core import services
from sessions.core.config.discovery import config_discover
from sessions.core.config.export import config_json_schema_text
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError
from sessions.management.commands._common import cli_audit

EXIT_CONFIG = 2


class Command(BaseCommand):
    help = "Check ao.config.yaml, or apply it to the running ao (projects, reactions, notifiers) without a restart."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        check = sub.add_parser("check", help="report every problem in the file (changes nothing)")
        apply = sub.add_parser(
            "apply", help="check, then write the file's projects and rules to the database"
        )
        sub.add_parser("schema", help="print the JSON Schema of ao.config.yaml (for editors)")
        for each in (check, apply):
            each.add_argument(
                "file",
                nargs="?",
                type=Path,
                help="default: AO_CONFIG, else the nearest ao.config.yaml upwards",
            )

    def handle(self, *args, action: str, file: Path | None = None, **options):
        if action == "schema":
            self.stdout.write(config_json_schema_text(), ending="")
            return
        path = file or config_discover(None)
        if path is None:
            raise CommandError("no ao.config.yaml here or above (set AO_CONFIG, or run `ao init`)")
        try:
            loaded = config_load(path)
            for warning in loaded.warnings:
                self.stderr.write(f"warning: {warning}")
            if action == "check":
                self.stdout.write(f"{path}: OK ({len(loaded.projects)} projects)")
                return
            with cli_audit():
                notes = services.config_apply(config=loaded, source=str(path), applied_by="ao config apply")
        except ConfigError as exc:  # the file, or a clash with the database (apply)
            for problem in exc.problems:
                self.stderr.write(str(problem))
            self.stderr.write(f"ao: {path} has {len(exc.problems)} problem(s); nothing was changed")
            raise SystemExit(EXIT_CONFIG) from None
        self.stdout.write(f"applied {path}")
        for note in notes:
            self.stdout.write(f"  {note}")
