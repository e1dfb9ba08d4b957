"""The commands ``ao`` runs without Django: ``ao version``, and what agents run (``ao report``,
``ao pr create`` with AO_URL + AO_SESSION + AO_TOKEN set), which talk to ao over HTTP.

This module imports only the standard library and ``sessions.agent_client``: an agent calls these
commands many times per task, and loading Django, the apps and Celery cost about 1 CPU-second a
call. Their arguments are defined here once; the management commands (``report``, ``pr``,
``version``) use the same definitions and actions, so ``call_command`` and ``ao <command> --help``
behave as before.

``run(argv)`` handles only a plain, valid call. Anything else (``--help``, a bad flag, an
abbreviated option, one of Django's shared options such as ``--traceback``, ``ao pr ls``, ``ao pr
create --branch``) returns None and ``ao`` runs the management command as before, which prints the
usual usage line and error.
"""

from __future__ import annotations

import argparse
import platform
import sys

from sessions import agent_client

# What an agent may report: sessions.lifecycle.Reported without its empty "none" (a test keeps the two equal).
REPORT_STATES = ("working", "needs_input", "blocked", "done")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("state", choices=REPORT_STATES)
    parser.add_argument("note", nargs="*", help="a short note shown on the dashboard")
    parser.add_argument("--pr", default="", help="URL of the pull request you opened")


def report(options: dict) -> str:
    """Send an ``ao report``; the line to print. Raises AgentClientError."""
    body = {"state": options["state"], "note": " ".join(options["note"]), "pr": options["pr"]}
    result = agent_client.post("report", body)
    return f"reported {options['state']}; {result['session']} is now {result['status']}"


def add_pr_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project", "-p", help="project key (default: from AO_SESSION, the cwd, or the only one)"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="push the current branch and open a PR for it")
    create.add_argument("--title", default="")
    create.add_argument("--body", default="")
    create.add_argument("--branch", help="branch to open (default: the one checked out here)")
    create.add_argument("--base", help="branch to merge into (default: the project's default)")
    create.add_argument("--session", help="session opening it (default: $AO_SESSION)")
    create.add_argument("--force", action="store_true", help="force-push the branch")
    ls = sub.add_parser("ls", help="list PRs")
    ls.add_argument("--all", action="store_true", help="include merged and closed PRs")
    ls.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one PR with checks, reviews and conflicts")
    show.add_argument("number", type=int)
    review = sub.add_parser("review", help="approve, request changes or comment")
    review.add_argument("number", type=int)
    verdict = review.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", dest="state", action="store_const", const="approved")
    verdict.add_argument("--request-changes", dest="state", action="store_const", const="changes_requested")
    verdict.add_argument("--comment", dest="state", action="store_const", const="commented")
    review.add_argument("--body", default="")
    review.add_argument("--path", default="")
    review.add_argument("--line", type=int)
    review.add_argument("--as", dest="reviewer", help="reviewer name (default: $AO_SESSION or your login)")
    merge = sub.add_parser("merge", help="merge into the base branch in the remote")
    merge.add_argument("number", type=int)
    merge.add_argument("--method", choices=["squash", "ff", "merge"])
    merge.add_argument("--expect-head", default="", help="refuse unless the head is this sha")
    close = sub.add_parser("close", help="close without merging")
    close.add_argument("number", type=int)
    ci = sub.add_parser("ci", help="run the check command on the PR's head now")
    ci.add_argument("number", type=int)
    ci.add_argument("--force", action="store_true", help="rerun even if this head was checked")
    for each in (create, ls, show, review, merge, close, ci):  # `ao pr ls -p web` works too
        each.add_argument("--project", "-p", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def pr_create_goes_over_http(options: dict) -> bool:
    """Inside an agent's session, ``ao pr create`` asks ao (maybe on another machine) to push and open it."""
    return (
        options["action"] == "create" and agent_client.agent_identity() is not None and not options["branch"]
    )


def pr_create_over_http(options: dict) -> str:
    """Send an agent's ``ao pr create``; the line to print. Raises AgentClientError."""
    result = agent_client.post(
        "pr", {"title": options["title"], "body": options["body"], "force": options["force"]}
    )
    verb = "opened" if result["created"] else "updated"
    return f"{verb} PR #{result['number']} for {result['branch']}: {result['url'] or result['title']}"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # only `ao version` pays for it

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def version_lines() -> list[str]:
    from ao_site import __version__

    return [
        f"ao {__version__}",
        f"Python {platform.python_version()}",
        f"Django {_version('django')}",
        f"Celery {_version('celery')}",
        f"Channels {_version('channels')}",
        f"Daphne {_version('daphne')}",
    ]


class _NotHere(Exception):
    """The arguments need the full command (help, an error to print, an option only it has)."""


class _StrictParser(argparse.ArgumentParser):
    """A parser that never prints or exits: help, abbreviations and errors go to the full command."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.update(add_help=False, allow_abbrev=False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise _NotHere(message)


def _parse(prog: str, add_arguments, args: list[str]) -> dict | None:
    parser = _StrictParser(prog=prog)
    add_arguments(parser)
    try:
        return vars(parser.parse_args(args))
    except _NotHere:
        return None


def run(argv: list[str]) -> int | None:
    """Run ``ao <argv>`` without Django and return its exit status, or None when it needs Django."""
    if argv in (["version"], ["--version"], ["-V"]):
        print("\n".join(version_lines()))
        return 0
    if not argv or argv[0] not in ("report", "pr"):
        return None
    if argv[0] == "report":
        options = _parse("ao report", add_report_arguments, argv[1:])
        action = report
    else:
        options = _parse("ao pr", add_pr_arguments, argv[1:])
        if options is None or not pr_create_goes_over_http(options):
            return None
        action = pr_create_over_http
    if options is None:
        return None
    try:
        line = action(options)
    except agent_client.AgentClientError as exc:
        sys.stderr.write(f"ao: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(line + "\n")
    return 0
