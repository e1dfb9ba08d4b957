from django.core.management.base import BaseCommand, CommandError

from sessions import selectors
from sessions.agents import session_spawn
from sessions.management.commands._common import DOMAIN_ERRORS, cli_errors
from sessions.models import Actor


class Command(BaseCommand):
    help = "Spawn one session per issue: `ao batch-spawn 12 13 14`."

    def add_arguments(self, parser):
        parser.add_argument("issues", nargs="+")
        parser.add_argument("--project", "-p")
        parser.add_argument("--agent", "-a")

    def handle(self, *args, **options):
        with cli_errors():
            project = selectors.project_resolve(key=options["project"])
        failures = 0
        for ref in dict.fromkeys(options["issues"]):  # each issue once, in the order given
            try:
                session = session_spawn(
                    project=project, issue_ref=ref, agent=options["agent"], actor=Actor.USER, actor_name="cli"
                )
            except DOMAIN_ERRORS as exc:
                failures += 1
                self.stderr.write(f"{ref}: not spawned: {exc}")
                continue
            session.refresh_from_db()
            self.stdout.write(f"{ref}: {session.id} {session.get_status_display().lower()}")
        if failures:
            raise CommandError(f"{failures} of {len(options['issues'])} spawns failed")
