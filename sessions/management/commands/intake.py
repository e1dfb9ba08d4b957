"""``ao intake on|off|status [--project P]``: backlog intake of a project."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from sessions.core import selectors
from sessions.management.commands._common import PROJECT_HELP, cli_audit, cli_errors
from sessions.models import Actor
from sessions.watchers import intake


class Command(BaseCommand):
    help = "Backlog intake: claim issues labelled for agents and spawn workers for them (on, off, status)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        on = sub.add_parser("on", help="claim labelled issues on each sweep (also retries failed ones)")
        off = sub.add_parser("off", help="stop claiming issues (running workers go on)")
        status = sub.add_parser("status", help="whether intake is on, its labels and its claims")
        status.add_argument("--json", action="store_true")
        for each in (on, off, status):
            each.add_argument(
                "--project",
                "-p",
                help=PROJECT_HELP,
            )

    def handle(self, *args, **options):
        with cli_errors(), cli_audit():
            project = selectors.project_resolve(key=options["project"])
            action = options["action"]
            if action in ("on", "off"):
                for note in intake.intake_set(project=project, enabled=action == "on", actor=Actor.USER):
                    self.stdout.write(note)
                self.stdout.write(f"intake {action} for {project.key} (label {project.intake_label})")
                return
            self._status(project, options)

    def _status(self, project, options):
        claims = [
            {
                "issue": c.issue_ref,
                "title": c.issue_title,
                "state": c.state,
                "session": c.session_id,
                "error": c.error,
            }
            for c in intake.intake_claims(project=project)
        ]
        row = {
            "project": project.key,
            "enabled": project.intake_enabled,
            "label": project.intake_label,
            "in_progress_label": project.intake_in_progress_label,
            "done_label": project.intake_done_label,
            "max_sessions": project.max_sessions,
            "claims": claims,
        }
        if options["json"]:
            self.stdout.write(json.dumps(row, indent=2))
            return
        self.stdout.write(
            f"intake {'on' if row['enabled'] else 'off'} for {project.key}: {row['label']} → "
            f"{row['in_progress_label']} → {row['done_label']} (cap {row['max_sessions'] or 'none'})"
        )
        for claim in claims:
            error = f" — {claim['error']}" if claim["error"] else ""
            self.stdout.write(
                f"  #{claim['issue']:<6} {claim['state']:<8} {claim['session'] or '-':<14}{error}"
            )
