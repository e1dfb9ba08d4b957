"""The commands ``ao`` runs without Django: ``ao version``, and what agents run (``ao report``,
``ao pr create`` with AO_URL + AO_SESSION + AO_TOKEN set), which talk to ao over HTTP; and
``ao status``, ``ao session ls``, ``ao send`` and ``ao spawn``, which ask a running ao: a remote one
over its API (AO_URL + a user's AO_TOKEN, ``sessions.cli.apiclient``), else the ``ao start`` / ``ao
web`` serving this AO_HOME, which runs the command for them (``sessions.cli.cli_relay``). When neither
is there they load Django and run themselves.

This module imports only the standard library and ``sessions.cli.agent_client``: an agent calls these
commands many times per task, and loading Django, the apps and Celery cost about 1 CPU-second a
call. Their arguments are defined here once; the management commands (``report``, ``pr``,
``version``) use the same definitions and actions, so ``call_command`` and ``ao <command> --help``
behave as before.

In an agent's shell (``agent_session``: AO_SESSION with its session token, without AO_HOME or
DATABASE_URL) ``run`` handles every call: ``ao report``, ``ao pr create``, help, and one line refusing
the rest; Django and AO_HOME are never loaded there.

Otherwise ``run(argv)`` handles only a plain, valid call. Anything else (``--help``, a bad flag, an
abbreviated option, one of Django's shared options such as ``--traceback``, ``ao pr ls``, ``ao pr
create --branch``) returns None and ``ao`` runs the management command as before, which prints the
usual usage line and error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ao_site import __version__
from ao_site.procs import pid_alive
from sessions.cli import agent_client, apiclient, status_text
from sessions.cli.httpclient import RedirectRefused, open_url

# What an agent may report: sessions.domain.lifecycle.Reported without its empty "none" (a test keeps the two equal).
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
    merge.add_argument(
        "--force",
        action="store_true",
        help="merge without the approval or the passing check the project requires",
    )
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
    return [
        f"ao {__version__}",
        f"Python {platform.python_version()}",
        f"Django {_version('django')}",
        f"Celery {_version('celery')}",
        f"Channels {_version('channels')}",
        f"Daphne {_version('daphne')}",
    ]


def compact_usage(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and its subcommands' parsers a one-line usage: ``ao spawn [options] [issue]``
    (``--help`` lists the options). Django's parsers would print every shared option in it."""
    positionals = []
    for action in parser._actions:
        if action.option_strings:
            continue
        if isinstance(action, argparse._SubParsersAction):
            positionals.append("{" + ",".join(action.choices) + "} ...")
            for sub in action.choices.values():
                compact_usage(sub)
            continue
        name = action.metavar or action.dest
        positionals.append(
            {"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [{name} ...]"}.get(action.nargs, name)
        )
    parser.usage = " ".join(["%(prog)s [options]", *positionals])


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


# --- ao status, ao session ls, ao send, ao spawn: asked of a running ao ------------------------------
RELAY_FILE = "cli.json"  # in AO_HOME, written by the serving ao (sessions.cli.cli_relay)
CALLER_ENV = ("USER", "LOGNAME", "AO_SESSION")  # who runs the command, for the audit

# The --project option of commands that act on one project (selectors.project_resolve picks the default).
PROJECT_HELP = (
    "project key (default: the project whose checkout or session worktree holds the current directory, "
    "or the only one)"
)


def add_spawn_arguments(parser: argparse.ArgumentParser) -> None:
    """``ao spawn``'s arguments (the management command uses them too)."""
    parser.add_argument("issue", nargs="?", help="issue reference in the project's tracker (e.g. 123)")
    parser.add_argument("--project", "-p", help=PROJECT_HELP)
    parser.add_argument("--agent", "-a", help="agent plugin (default: the project's agent)")
    parser.add_argument("--prompt", help="what to do (with or instead of an issue)")
    parser.add_argument("--branch", help="branch name (default: derived from the issue)")
    parser.add_argument(
        "--host",
        metavar="NAME",
        help="agent host to run on (default: yours, then one you are allowed on, then a shared one, "
        "the first with room); refused with the reason when you may not use it",
    )
    parser.add_argument(
        "--no-issue-check",
        action="store_true",
        help="spawn even if the tracker does not know the issue (the agent gets no issue context)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the new session as JSON (the fields of `ao session ls --json`, and host, workspace, error)",
    )


def _add_status_arguments(parser: argparse.ArgumentParser) -> None:
    # ``ao status``'s options but --watch (a loop: the full command runs it)
    parser.add_argument("--json", dest="as_json", action="store_true")
    parser.add_argument("--live", action="store_true")


def _add_session_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("ls", add_help=False, allow_abbrev=False)
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--include-terminated", action="store_true")
    ls.add_argument("--project", "-p")


def _add_send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session")
    parser.add_argument("text", nargs="+")
    parser.add_argument("--answer-prompt", action="store_true")


ASKED = {
    "status": _add_status_arguments,
    "session": _add_session_arguments,
    "send": _add_send_arguments,
    "spawn": add_spawn_arguments,
}


def relayable(argv: list[str]) -> dict | None:
    """The options of ``ao <argv>`` when a running ao can answer it (a plain, valid ``ao status``,
    ``ao session ls``, ``ao send`` or ``ao spawn``), else None."""
    if not argv or argv[0] not in ASKED:
        return None
    return _parse(f"ao {argv[0]}", ASKED[argv[0]], argv[1:])


def database_id(database_url: str) -> str:
    """Which database a process uses, without saying its URL (which may hold a password)."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:16]


def _ao_home() -> Path:
    return Path(os.environ.get("AO_HOME") or Path.home() / ".ao").expanduser()  # as ao_site.home


def _remote(argv: list[str], options: dict, client) -> int:
    """``ao status``, ``ao session ls``, ``ao send`` or ``ao spawn`` against a remote ao (AO_URL + AO_TOKEN)."""
    if argv[0] == "status":
        snapshot = apiclient.status_snapshot(client, include_done=not options["live"])
        text = (
            status_text.dump_json(snapshot, compact=False)
            if options["as_json"]
            else status_text.render_table(snapshot)
        )
        lines = [text]
    elif argv[0] == "session":
        lines = apiclient.session_ls(
            client,
            project=options["project"],
            include_done=options["include_terminated"],
            as_json=options["json"],
        )
    elif argv[0] == "spawn":
        keys = ("project", "issue", "prompt", "agent", "branch", "host")
        lines = apiclient.spawn(
            client,
            **{k: options[k] for k in keys},
            missing_issue_ok=options["no_issue_check"],
            as_json=options["json"],
        )
    else:
        lines = apiclient.send(
            client,
            session=options["session"],
            text=" ".join(options["text"]),
            answers_prompt=options["answer_prompt"],
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _relay(argv: list[str]) -> int | None:
    """Have the ao serving this AO_HOME run ``ao <argv>``; its exit status, or None when no ao
    serves it here (then the command runs itself)."""
    try:
        info = json.loads((_ao_home() / RELAY_FILE).read_text())
        pid, url, token = int(info["pid"]), str(info["url"]), str(info["token"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if info.get("database") != database_id(os.environ.get("DATABASE_URL", "")) or not pid_alive(pid):
        return None  # another database than this shell's, or the server is gone
    if not url.startswith(("http://", "https://")):
        return None
    body: dict = {"argv": argv, "env": {k: os.environ[k] for k in CALLER_ENV if k in os.environ}}
    try:  # where the command runs: which project it means when it names none (selectors.project_resolve)
        body["cwd"] = os.getcwd()
    except OSError:
        pass  # a directory since removed: the server decides as for a directory no project holds
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        f"{url.rstrip('/')}/api/v1/cli",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with open_url(request, timeout=600) as response:
            answer = json.loads(response.read())
    except RedirectRefused as exc:  # not the ao that wrote the door file: nothing was done there
        sys.stderr.write(f"ao: the running ao at {url} was not reached: {exc}\n")
        return 1
    except urllib.error.HTTPError:
        return None  # refused (an old token, arguments it does not take): nothing was done
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionError | FileNotFoundError):
            return None  # nothing listens (it is starting, or stopped uncleanly): nothing was done
        sys.stderr.write(f"ao: the running ao at {url} did not answer: {exc.reason}\n")
        return 1
    except (TimeoutError, OSError, ValueError) as exc:  # it may have acted: do not run it again
        sys.stderr.write(f"ao: the running ao at {url} did not answer: {exc}\n")
        return 1
    if answer.get("fallback"):
        return None
    sys.stdout.write(answer["stdout"])
    sys.stdout.flush()
    sys.stderr.write(answer["stderr"])
    return int(answer["status"])


def _asked(argv: list[str]) -> int | None:
    options = relayable(argv)
    if options is None:
        return None
    try:
        client = apiclient.client_from_env()
        if client is not None:
            return _remote(argv, options, client)
    except apiclient.ApiError as exc:
        sys.stderr.write(f"ao: {exc}\n")
        return 1
    return _relay(argv)


# --- inside an agent: what its session token allows, nothing else ---------------------------------
AGENT_CAN_RUN = "`ao report STATE [NOTE] [--pr URL]` and `ao pr create [--title T] [--body B] [--force]`"
HELP_ARGS = ([], ["-h"], ["--help"], ["help"])


def agent_session() -> str:
    """The session whose agent's shell this is, or "": AO_SESSION with its session token, no
    person's token (``ao_...``) and none of ao's own settings (AO_HOME, DATABASE_URL: the
    orchestrator gets them on purpose, its `ao` drives this ao)."""
    session, token = os.environ.get("AO_SESSION", ""), os.environ.get("AO_TOKEN", "")
    if not session or token.startswith(apiclient.USER_TOKEN_PREFIX):
        return ""
    return "" if os.environ.get("AO_HOME") or os.environ.get("DATABASE_URL") else session


def _agent_parser(prog: str, add_arguments) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, allow_abbrev=False)
    add_arguments(parser)
    compact_usage(parser)
    return parser


def _add_agent_pr_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Push this session's branch and open its PR (run again: push and update it)."
    parser.add_argument("--title", default="")
    parser.add_argument("--body", default="")
    parser.add_argument("--force", action="store_true", help="force-push the branch")


def _agent_run(argv: list[str], session: str) -> int:
    """``ao <argv>`` in the agent of ``session``: what its session token allows over HTTP (``ao
    report``, ``ao pr create``), help, and one line refusing the rest. Never ao's database or
    AO_HOME (an agent has neither: before, ``ao pr ls`` made a ~/.ao and said to run `ao start`,
    or listed another ao's data)."""
    if argv in HELP_ARGS:
        sys.stdout.write(
            f"ao {__version__}, in ao session {session}: ao runs these for you\n"
            "  ao report STATE [NOTE] [--pr URL]   your state for the dashboard: "
            f"{', '.join(REPORT_STATES)}\n"
            "  ao pr create [--title T] [--body B] [--force]   push this branch and open (or update) its PR\n"
            "  ao version\n"
        )
        return 0
    if argv[0] == "report":
        options, action = vars(_agent_parser("ao report", add_report_arguments).parse_args(argv[1:])), report
    elif argv[:2] == ["pr", "create"]:
        parser = _agent_parser("ao pr create", _add_agent_pr_create_arguments)
        options, action = vars(parser.parse_args(argv[2:])), pr_create_over_http
    else:
        words = argv[:1] + [word for word in argv[1:2] if word.isalpha() and word.islower()]
        sys.stderr.write(
            f"ao: `ao {' '.join(words)}` is not for agents: in ao session {session} you run {AGENT_CAN_RUN} "
            "(not an agent? `unset AO_SESSION AO_TOKEN`, or set AO_HOME)\n"
        )
        return 1
    try:
        line = action(options)
    except agent_client.AgentClientError as exc:
        sys.stderr.write(f"ao: {exc}\n")
        return 1
    sys.stdout.write(line + "\n")
    return 0


def run(argv: list[str]) -> int | None:
    """Run ``ao <argv>`` without Django and return its exit status, or None when it needs Django."""
    if argv in (["version"], ["--version"], ["-V"]):
        print("\n".join(version_lines()))
        return 0
    if session := agent_session():
        try:
            return _agent_run(argv, session)
        except KeyboardInterrupt:
            return 130
    if argv and argv[0] in ASKED:
        try:
            return _asked(argv)
        except KeyboardInterrupt:
            return 130
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
