import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sessions.cli.doctor import check_notifiers_send, run_checks


class Command(BaseCommand):
    help = "Check git, tmux, agent CLIs, database, Redis and the config file; say how to fix each problem."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the checks as JSON")
        parser.add_argument("--path", type=Path, default=None, help="where to look for ao.config.yaml")
        parser.add_argument(
            "--test-notify",
            action="store_true",
            help="send a test notification through each configured notifier and report each result",
        )

    def handle(self, *args, **options):
        checks = run_checks(start=options["path"])
        if options["test_notify"]:
            checks.extend(check_notifiers_send(options["path"]))
        failed = [c for c in checks if not c.ok and c.required]
        if options["json"]:
            self.stdout.write(
                json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}, indent=2)
            )
        else:
            for check in checks:
                mark = "ok  " if check.ok else ("FAIL" if check.required else "warn")
                self.stdout.write(f"{mark} {check.name}: {check.detail}")
                if not check.ok and check.fix:
                    self.stdout.write(f"     fix: {check.fix}")
        if failed:
            raise CommandError(
                f"{len(failed)} check(s) failed: " + ", ".join(c.name for c in failed), returncode=1
            )
