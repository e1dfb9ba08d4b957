import json

from django.core.management.base import BaseCommand, CommandError

from integrations.base import IntegrationError
from integrations.registry import ConfigurationError, plugin_for
from sessions.agents import issues as issue_service
from sessions.cli import apiclient
from sessions.core import selectors
from sessions.management.commands._common import PROJECT_HELP, cli_audit, remote_client, remote_errors


class Command(BaseCommand):
    help = "Issues of a project's tracker: `ao issue add TITLE`, `ao issue ls`, `ao issue show N`."

    def add_arguments(self, parser):
        parser.add_argument(
            "--project",
            "-p",
            help=PROJECT_HELP,
        )
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="create an issue (local tracker)")
        add.add_argument("title")
        add.add_argument("--body", default="")
        add.add_argument("--label", action="append", default=[], dest="labels")
        add.add_argument(
            "--blocked-by",
            action="append",
            default=[],
            dest="blocked_by",
            metavar="N",
            help="an issue this one is blocked by (repeatable; local tracker)",
        )
        ls = sub.add_parser("ls", help="list open issues")
        ls.add_argument("--label")
        ls.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="show one issue")
        show.add_argument("ref")
        show.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        client = remote_client()
        if client is not None:  # AO_URL + AO_TOKEN: a remote ao, over its API
            with remote_errors():
                lines = apiclient.issue(
                    client, project=options["project"], action=options["action"], options=options
                )
            self.stdout.write("\n".join(lines))
            return
        with cli_audit():
            self._local(options)

    def _local(self, options):
        try:
            project = selectors.project_resolve(key=options["project"])
            tracker = plugin_for(project, "tracker")
            action = options["action"]
            if action == "add":
                issue, blockers = issue_service.issue_create(
                    project=project,
                    title=options["title"],
                    body=options["body"],
                    labels=options["labels"],
                    blocked_by=options["blocked_by"] or (),
                )
                self.stdout.write(f"created #{issue.ref}: {issue.title}")
                if blockers:
                    self.stdout.write(f"blocked by {_refs(blockers)}")
            elif action == "ls":
                issues = tracker.list_issues(label=options["label"])
                if options["json"]:
                    self.stdout.write(json.dumps([_issue_dict(i) for i in issues], indent=2))
                for issue in [] if options["json"] else issues:
                    labels = f"  [{', '.join(issue.labels)}]" if issue.labels else ""
                    self.stdout.write(f"#{issue.ref:<6} {issue.title}{labels}")
            else:
                issue = tracker.get_issue(options["ref"])
                try:
                    blockers = tracker.blocked_by(issue.ref)
                except IntegrationError as exc:
                    blockers, unavailable = None, str(exc)
                if options["json"]:
                    self.stdout.write(json.dumps({**_issue_dict(issue), "blocked_by": blockers}, indent=2))
                else:
                    self.stdout.write(f"#{issue.ref} {issue.title} ({issue.state})")
                    if blockers is None:
                        self.stdout.write(f"blocked by: unknown ({unavailable})")
                    elif blockers:
                        self.stdout.write(f"blocked by: {_refs(blockers)}")
                    self.stdout.write(f"\n{issue.body}")
        except (ConfigurationError, IntegrationError, ValueError, selectors.NotFound) as exc:
            raise CommandError(str(exc)) from exc


def _refs(refs) -> str:
    return ", ".join(f"#{r}" if str(r).isdigit() else str(r) for r in refs)


def _issue_dict(issue) -> dict:
    return {
        "ref": issue.ref,
        "title": issue.title,
        "body": issue.body,
        "url": issue.url,
        "labels": list(issue.labels),
        "state": issue.state,
    }
