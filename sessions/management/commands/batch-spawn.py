from django.core.management.base import BaseCommand, CommandError

from sessions.agents.spawning import session_spawn
from sessions.cli import apiclient
from sessions.core import selectors
from sessions.domain.lifecycle import Phase
from sessions.management.commands._common import (
    DOMAIN_ERRORS,
    cli_audit,
    cli_errors,
    refuse_runtime_without_a_server,
    remote_client,
    remote_errors,
)
from sessions.models import Actor


class Command(BaseCommand):
    help = "Spawn one session per issue: `ao batch-spawn 12 13 14`."

    def add_arguments(self, parser):
        parser.add_argument("issues", nargs="+")
        parser.add_argument("--project", "-p")
        parser.add_argument("--agent", "-a")

    def handle(self, *args, **options):
        client = remote_client()
        if client is not None:  # AO_URL + AO_TOKEN: a remote ao, over its API
            with remote_errors():
                ok, failed = apiclient.batch_spawn(
                    client, project=options["project"], issues=options["issues"], agent=options["agent"]
                )
            for line in ok:
                self.stdout.write(line)
            for line in failed:
                self.stderr.write(line)
            if failed:
                raise CommandError(f"{len(failed)} of {len(ok) + len(failed)} spawns failed")
            return
        with cli_errors():
            project = selectors.project_resolve(key=options["project"])
            refuse_runtime_without_a_server(project)
        failures = 0
        for ref in dict.fromkeys(options["issues"]):  # each issue once, in the order given
            try:
                with cli_audit():
                    session = session_spawn(
                        project=project,
                        issue_ref=ref,
                        agent=options["agent"],
                        actor=Actor.USER,
                        actor_name="cli",
                    )
            except DOMAIN_ERRORS as exc:
                failures += 1
                self.stderr.write(f"{ref}: not spawned: {exc}")
                continue
            session.refresh_from_db()
            self.stdout.write(f"{ref}: {session.id} {session.get_status_display().lower()}")
            if session.phase == Phase.ERRORED:
                failures += 1
                self.stderr.write(f"{ref}: {session.id} did not start: {session.error}")
        if failures:
            raise CommandError(f"{failures} of {len(options['issues'])} spawns failed")
