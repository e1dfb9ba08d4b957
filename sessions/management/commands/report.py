from django.core.management.base import BaseCommand, CommandError

from sessions.cli import agent_client, light_commands


class Command(BaseCommand):
    help = "For agents: report your state to ao (`ao report working|needs_input|blocked|done [NOTE] [--pr URL]`)."

    def add_arguments(self, parser):
        light_commands.add_report_arguments(parser)

    def handle(self, *args, **options):
        try:
            line = light_commands.report(options)
        except agent_client.AgentClientError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(line)
