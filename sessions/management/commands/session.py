import json
import os
import re
import shlex
import shutil

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sessions.agents import claiming, operating, plugins
from sessions.cli import apiclient
from sessions.core import selectors
from sessions.domain.text import strip_controls
from sessions.management.commands._common import (
    DOMAIN_ERRORS,
    cli_audit,
    cli_errors,
    get_session,
    refuse_runtime_without_a_server,
    remote_client,
    remote_errors,
)
from sessions.models import Actor


class Command(BaseCommand):
    help = "Agent sessions: ls, kill, restore, cleanup, attach, claim-pr."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("ls", help="list sessions")
        ls.add_argument("--json", action="store_true")
        ls.add_argument("--include-terminated", action="store_true", help="also list done sessions")
        ls.add_argument("--project", "-p")
        kill = sub.add_parser("kill", help="stop a session's agent (its workspace stays)")
        kill.add_argument("session")
        restore = sub.add_parser("restore", help="restart a session in its workspace, resuming the agent")
        restore.add_argument("session")
        cleanup = sub.add_parser(
            "cleanup",
            help="end sessions whose PR merged/closed or whose runtime is gone and remove workspaces",
        )
        cleanup.add_argument("--project", "-p")
        cleanup.add_argument("--dry-run", action="store_true")
        cleanup.add_argument("--force", action="store_true", help="also remove workspaces with unpushed work")
        attach = sub.add_parser("attach", help="attach your terminal to the session's tmux session")
        attach.add_argument("session")
        attach.add_argument("--print", action="store_true", help="only print the command")
        claim = sub.add_parser(
            "claim-pr",
            help="make an open PR opened outside ao the session's (its branch is checked out in the "
            "session's workspace; ao then follows its CI and reviews)",
        )
        claim.add_argument("session")
        claim.add_argument("pr", metavar="PR", help="the PR's number or URL")

    def handle(self, *args, **options):
        client = remote_client()
        if client is not None:  # AO_URL + AO_TOKEN: a remote ao, over its API
            self._remote(client, options)
            return
        with cli_audit():
            getattr(self, "_" + options["action"].replace("-", "_"))(options)

    def _remote(self, client, options):
        action = options["action"]
        with remote_errors():
            if action == "ls":
                lines = apiclient.session_ls(
                    client,
                    project=options["project"],
                    include_done=options["include_terminated"],
                    as_json=options["json"],
                )
            elif action == "kill":
                lines = apiclient.session_kill(client, session=options["session"])
            elif action == "restore":
                lines = apiclient.session_restore(client, session=options["session"])
            elif action == "claim-pr":
                lines = apiclient.session_claim_pr(client, session=options["session"], pr=options["pr"])
            else:
                raise CommandError(
                    f"`ao session {action}` runs on the agent host; it is not available over the API"
                )
        self.stdout.write("\n".join(lines))

    def _ls(self, options):
        with cli_errors():
            project = selectors.project_resolve(key=options["project"]) if options["project"] else None
        sessions = selectors.sessions_for_board(project=project, include_done=options["include_terminated"])
        rows = [selectors.session_summary(s) for s in sessions]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("no sessions")
            return
        self.stdout.write(
            f"{'SESSION':<18} {'STATUS':<18} {'ZONE':<8} {'AGENT':<12} {'ISSUE':<8} {'AGE':<6} TITLE"
        )
        now = timezone.now()
        for s, row in zip(sessions, rows, strict=True):
            age = _age(now - s.created_at)
            issue, title = (strip_controls(row[k] or "", one_line=True) for k in ("issue", "title"))
            self.stdout.write(
                f"{row['id']:<18} {row['status']:<18} {row['zone']:<8} {row['agent']:<12} "
                f"{issue or '-':<8} {age:<6} {title[:50]}"
            )

    def _kill(self, options):
        session = get_session(options["session"])
        with cli_errors():
            requested = operating.session_kill(session=session, actor=Actor.USER, reason="ao session kill")
        if requested:
            self.stdout.write(f"{session.id}: {requested}")
            return
        session.refresh_from_db()
        refusal = operating.restore_refusal(session)
        if refusal:
            self.stdout.write(f"{session.id} killed; it cannot be restored: {refusal}")
            return
        self.stdout.write(f"{session.id} killed; `ao session restore {session.id}` brings it back")

    def _restore(self, options):
        session = get_session(options["session"])
        refuse_runtime_without_a_server(session.project)
        with cli_errors():
            requested = operating.session_restore(session=session, actor=Actor.USER)
        if requested:
            self.stdout.write(f"{session.id}: {requested}")
            return
        session.refresh_from_db()
        self.stdout.write(f"{session.id} restored: {session.status_reason}")

    def _cleanup(self, options):
        with cli_errors():
            project = selectors.project_resolve(key=options["project"]) if options["project"] else None
        candidates = list(operating.cleanup_candidates(project=project))
        if not candidates:
            self.stdout.write("nothing to clean up")
            return
        refused = 0
        for session in candidates:
            if options["dry_run"]:  # the same check the clean-up makes before it touches anything
                host = operating.runs_elsewhere(session)
                with cli_errors():
                    why = "" if host else operating.cleanup_refusal(session=session, force=options["force"])
                if why:
                    refused += 1
                    self.stdout.write(f"would keep {session.id}: {why}")
                elif host:
                    self.stdout.write(f"would ask host {host} to clean up {session.id}")
                else:
                    self.stdout.write(f"would clean up {session.id} ({session.get_status_display().lower()})")
                continue
            try:
                done = operating.session_cleanup(session=session, force=options["force"], actor=Actor.USER)
            except DOMAIN_ERRORS as exc:
                refused += 1
                self.stderr.write(f"{session.id}: kept: {exc}")
                continue
            if isinstance(done, operating.Requested):
                self.stdout.write(f"{session.id}: {done}")
                continue
            self.stdout.write(f"cleaned up {session.id}")
        if refused and not options["dry_run"]:
            raise CommandError(f"{refused} session(s) kept; use --force to remove unpushed work")

    def _attach(self, options):
        session = get_session(options["session"])
        with cli_errors():
            handle = plugins.runtime_handle_for(session)
            argv = plugins.context_for(session).runtime.attach_command(handle) if handle else []
        if not argv:
            raise CommandError(f"{session.id} has no attachable runtime (runtime: {session.runtime_state})")
        if options["print"] or not os.isatty(1) or shutil.which(argv[0]) is None:
            self.stdout.write(shlex.join(argv))
            return
        os.execvp(argv[0], argv)  # noqa: S606 - an argv list, no shell

    def _claim_pr(self, options):
        session = get_session(options["session"])
        number = _pr_number(options["pr"])
        with cli_errors():
            claiming.session_pr_claim(session=session, number=number, actor=Actor.USER)
        self.stdout.write(f"{session.id} now has PR #{number}")


def _pr_number(text: str) -> int:
    """A PR's number from ``7``, ``#7`` or its URL (…/pull/7)."""
    match = re.fullmatch(r"#?([1-9][0-9]{0,9})", text.strip()) or re.search(
        r"(?:/pulls?/|#)([1-9][0-9]{0,9})/?(?:[?#].*)?$", text.strip()
    )
    if not match:
        raise CommandError(f"{text!r} is not a PR number or URL (…/pull/<number>)")
    return int(match.group(1))


def _age(delta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
