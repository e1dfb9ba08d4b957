from django.core.management.base import BaseCommand

from sessions import selectors
from sessions.agents import session_spawn
from sessions.management.commands._common import cli_errors
from sessions.models import Actor


class Command(BaseCommand):
    help = "Spawn an agent session on an issue (or with a prompt) in its own worktree and tmux session."

    def add_arguments(self, parser):
        parser.add_argument("issue", nargs="?", help="issue reference in the project's tracker (e.g. 123)")
        parser.add_argument("--project", "-p", help="project key (default: the only project)")
        parser.add_argument("--agent", "-a", help="agent plugin (default: the project's agent)")
        parser.add_argument("--prompt", help="what to do (with or instead of an issue)")
        parser.add_argument("--branch", help="branch name (default: derived from the issue)")

    def handle(self, *args, **options):
        with cli_errors():
            project = selectors.project_resolve(key=options["project"])
            session = session_spawn(
                project=project,
                issue_ref=options["issue"],
                prompt=options["prompt"],
                agent=options["agent"],
                branch=options["branch"],
                actor=Actor.USER,
                actor_name="cli",
            )
        session.refresh_from_db()
        self.stdout.write(f"{session.id}: {session.get_status_display().lower()} — {session.status_reason}")
        if session.error:
            self.stderr.write(f"error: {session.error}")
        if session.workspace_path:
            self.stdout.write(f"  workspace: {session.workspace_path} (branch {session.branch})")
