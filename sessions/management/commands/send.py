from django.core.management.base import BaseCommand, CommandError

from sessions.agents.messaging import SendRefused, session_send
from sessions.cli import apiclient
from sessions.core import jobs
from sessions.management.commands._common import (
    cli_audit,
    cli_errors,
    get_session,
    remote_client,
    remote_errors,
)
from sessions.models import Actor


class Command(BaseCommand):
    help = (
        "Send a message to an agent session; it is delivered when the agent is ready. A session that "
        "is not running (killed, its runtime gone) is restored first; one that cannot be is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("session")
        parser.add_argument("text", nargs="+")
        parser.add_argument(
            "--answer-prompt",
            action="store_true",
            help="type this even if the agent is at a permission prompt (you are answering it)",
        )

    def handle(self, *args, **options):
        client = remote_client()
        if client is not None:  # AO_URL + AO_TOKEN: a remote ao, over its API
            with remote_errors():
                lines = apiclient.send(
                    client,
                    session=options["session"],
                    text=" ".join(options["text"]),
                    answers_prompt=options["answer_prompt"],
                )
            self.stdout.write("\n".join(lines))
            return
        session = get_session(options["session"])
        with cli_errors(), cli_audit():
            try:
                sent = session_send(
                    session=session,
                    text=" ".join(options["text"]),
                    sender=Actor.USER,
                    sender_name="cli",
                    answers_prompt=options["answer_prompt"],
                    # Without a worker (this command by itself) it watches a busy agent to deliver
                    # it; the running ao (the relay) hands it to its worker and says "queued".
                    watch=not jobs.has_worker(),
                )
            except SendRefused as exc:
                raise CommandError(f"not sent: {exc}") from exc
        sent.message.refresh_from_db()
        self.stdout.write(sent.describe())
