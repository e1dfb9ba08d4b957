from django.core.management.base import BaseCommand

from sessions import apiclient
from sessions.management.commands._common import (
    cli_audit,
    cli_errors,
    get_session,
    remote_client,
    remote_errors,
)
from sessions.messaging import message_queue
from sessions.models import Actor, Message


class Command(BaseCommand):
    help = "Send a message to an agent session; it is delivered when the agent is ready."

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
            message = message_queue(
                session=session,
                text=" ".join(options["text"]),
                sender=Actor.USER,
                sender_name="cli",
                answers_prompt=options["answer_prompt"],
            )
        message.refresh_from_db()
        state = {
            Message.State.QUEUED: "queued (delivered when the agent is ready)",
            Message.State.DELIVERED: "delivered",
            Message.State.CONFIRMED: "delivered and confirmed",
            Message.State.FAILED: f"failed: {message.last_error}",
        }[message.state]
        self.stdout.write(f"message {message.pk} to {session.id}: {state}")
