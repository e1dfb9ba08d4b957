import json
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError

from sessions.agents.spawning import IssueMissing, session_spawn
from sessions.cli import apiclient
from sessions.cli.light_commands import add_spawn_arguments
from sessions.core import selectors
from sessions.domain.lifecycle import Phase
from sessions.management.commands._common import (
    cli_audit,
    cli_errors,
    refuse_runtime_without_a_server,
    remote_client,
    remote_errors,
)
from sessions.models import Actor


class Command(BaseCommand):
    help = "Spawn an agent session on an issue (or with a prompt) in its own worktree and tmux session."

    def add_arguments(self, parser):
        add_spawn_arguments(parser)  # shared with the relayed path (sessions.cli.light_commands)

    def handle(self, *args, **options):
        client = remote_client()
        if client is not None:  # AO_URL + AO_TOKEN: a remote ao, over its API
            with remote_errors():
                keys = ("project", "issue", "prompt", "agent", "branch", "host")
                lines = apiclient.spawn(
                    client,
                    **{k: options[k] for k in keys},
                    missing_issue_ok=options["no_issue_check"],
                    as_json=options["json"],
                )
                self.stdout.write("\n".join(lines))
            return
        with cli_errors(), cli_audit(), _issue_hint(options["issue"]):
            project = selectors.project_resolve(key=options["project"])
            refuse_runtime_without_a_server(project)
            session = session_spawn(
                project=project,
                issue_ref=options["issue"],
                prompt=options["prompt"],
                agent=options["agent"],
                branch=options["branch"],
                actor=Actor.USER,
                actor_name="cli",
                missing_issue_ok=options["no_issue_check"],
                host=options["host"],
            )
        session.refresh_from_db()
        if options["json"]:
            spawned = {
                **selectors.session_summary(session),
                "host": session.host,
                "workspace": session.workspace_path,
                "error": session.error,
            }
            self.stdout.write(json.dumps(spawned, indent=2))
        else:
            self.stdout.write(
                f"{session.id}: {session.get_status_display().lower()} — {session.status_reason} "
                f"(host {session.host})"
            )
            if session.workspace_path:
                self.stdout.write(f"  workspace: {session.workspace_path} (branch {session.branch})")
            if others := selectors.issue_sessions_live(session):
                self.stdout.write(
                    f"  note: issue #{session.issue_ref} also has live session(s) {', '.join(others)} "
                    "(each works on its own branch; `ao session kill ID` stops one)"
                )
        if session.phase == Phase.ERRORED:  # scripts see it in the exit status, people in one line
            raise CommandError(f"{session.id} did not start: {session.error}")


@contextmanager
def _issue_hint(issue: str | None):
    """A missing issue is refused with the two ways on: check the number, or go ahead without it."""
    try:
        yield
    except IssueMissing as exc:
        raise CommandError(
            f"{exc} — check the number (`ao issue ls`), or spawn without it: `ao spawn {issue} --no-issue-check`"
        ) from exc
