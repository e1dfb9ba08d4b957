"""``ao project ls`` / ``ao project rm KEY [--yes]``: list projects; delete one with its sessions."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from integrations.scm.local_remote import ao_remote_path
from sessions.agents.operating import project_delete
from sessions.agents.spawning import SpawnRefused
from sessions.core import selectors
from sessions.core.hosts import live_sessions
from sessions.management.commands._common import cli_audit, cli_errors
from sessions.models import Project, Session


class Command(BaseCommand):
    help = "Projects: `ao project ls`, `ao project rm KEY` (its agents stopped, its sessions deleted)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("ls", help="list projects")
        rm = sub.add_parser(
            "rm", help="stop the project's agents and delete it with its sessions (workspaces stay on disk)"
        )
        rm.add_argument("key")
        rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, action: str, **options):
        if action == "ls":
            for project in selectors.projects_all().order_by("key"):
                self.stdout.write(f"{project.key:<20} {project.path}")
            return
        with cli_errors():
            project = selectors.project_resolve(key=options["key"])
        sessions = Session.objects.filter(project=project).count()
        live = live_sessions(project=project).count()
        what = f"project {project.key} ({project.path}) with its {sessions} session(s), {live} of them live"
        if not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError(f"not deleting {what} without confirmation — add --yes")
            self.stdout.write(f"Delete {what}? Their agents are stopped; workspaces stay on disk. [y/N] ")
            self.stdout.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                raise CommandError("not deleted")
        try:
            with cli_audit():
                notes = project_delete(project=project)
        except SpawnRefused as exc:
            raise CommandError(str(exc)) from exc
        for note in notes:
            self.stdout.write(f"  {note}")
        self.stdout.write(f"deleted {what}")
        for line in _left_behind(project):
            self.stdout.write(f"  {line}")


def _left_behind(project: Project) -> list[str]:
    """What deleting ``project`` left on disk (it may hold work), and the file that would add it again."""
    lines = []
    remote = ao_remote_path(project.key)
    if remote.is_dir():
        lines.append(
            f"kept {remote}: the bare repository its agents pushed to (the only copy of work not pushed "
            "elsewhere; your checkout's origin when it had none) — remove it yourself if you do not need it"
        )
    if project.config_source and Path(project.config_source).is_file():
        lines.append(
            f"{project.config_source} still defines it: the next `ao start` (or `ao config apply`) that "
            "reads that file adds it again — remove it there, or start ao from your own repository"
        )
    return lines
