"""``ao orchestrator start|stop|status [--project P]``: the project's orchestrator agent."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from sessions.core import selectors
from sessions.management.commands._common import PROJECT_HELP, cli_audit, cli_errors
from sessions.models import Actor
from sessions.watchers import orchestrator


class Command(BaseCommand):
    help = "The project's orchestrator agent (<prefix>-orchestrator): start, stop, status."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        start = sub.add_parser("start", help="start the orchestrator (or restart it if it stopped)")
        stop = sub.add_parser("stop", help="stop the orchestrator's agent; it stays stopped until started")
        status = sub.add_parser("status", help="the orchestrator's state")
        status.add_argument("--json", action="store_true")
        prompt = sub.add_parser("prompt", help="print the orchestrator's generated prompt")
        for each in (start, stop, status, prompt):
            each.add_argument(
                "--project",
                "-p",
                help=PROJECT_HELP,
            )

    def handle(self, *args, **options):
        with cli_errors(), cli_audit():
            project = selectors.project_resolve(key=options["project"])
            getattr(self, "_" + options["action"])(project, options)

    def _start(self, project, options):
        session = orchestrator.orchestrator_start(project=project, actor=Actor.USER)
        session.refresh_from_db()
        self.stdout.write(f"{session.id}: {session.get_status_display().lower()} — {session.status_reason}")
        if session.error:
            self.stderr.write(f"error: {session.error}")

    def _stop(self, project, options):
        session = orchestrator.orchestrator_stop(project=project, actor=Actor.USER)
        if session is None:
            self.stdout.write(f"project {project.key} has no orchestrator")
            return
        self.stdout.write(f"{session.id} stopped; `ao orchestrator start` brings it back")

    def _status(self, project, options):
        session = orchestrator.orchestrator_for(project)
        project.refresh_from_db()
        row = {
            "project": project.key,
            "enabled": project.orchestrator_enabled,
            "agent": orchestrator.orchestrator_agent_key(project),
            "session": session.id if session else None,
            "status": session.status if session else None,
            "zone": session.zone if session else None,
            "reason": session.status_reason if session else "",
            "workspace": session.workspace_path if session else "",
            "restarts": project.orchestrator_restarts,
            "intake": project.intake_enabled,
        }
        if options["json"]:
            self.stdout.write(json.dumps(row, indent=2))
            return
        if session is None:
            self.stdout.write(
                f"{project.key}: no orchestrator yet (`ao orchestrator start`); "
                f"{'enabled' if project.orchestrator_enabled else 'disabled'} in the config"
            )
            return
        self.stdout.write(f"{session.id}: {session.status} ({session.zone}) — {session.status_reason}")
        self.stdout.write(f"  agent {row['agent']}, workspace {row['workspace'] or '-'}")
        self.stdout.write(
            f"  restarts since healthy: {row['restarts']}; intake {'on' if row['intake'] else 'off'}"
        )

    def _prompt(self, project, options):
        self.stdout.write(orchestrator.orchestrator_prompt(project))
