from django.core.management.base import BaseCommand, CommandError

from sessions import agent_client
from sessions.lifecycle import Reported

STATES = [c for c in Reported.values if c]


class Command(BaseCommand):
    help = "For agents: report your state to ao (`ao report working|needs_input|blocked|done [NOTE] [--pr URL]`)."

    def add_arguments(self, parser):
        parser.add_argument("state", choices=STATES)
        parser.add_argument("note", nargs="*", help="a short note shown on the dashboard")
        parser.add_argument("--pr", default="", help="URL of the pull request you opened")

    def handle(self, *args, **options):
        body = {"state": options["state"], "note": " ".join(options["note"]), "pr": options["pr"]}
        try:
            result = agent_client.post("report", body)
        except agent_client.AgentClientError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"reported {options['state']}; {result['session']} is now {result['status']}")
