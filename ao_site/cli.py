"""The ``ao`` command: a friendly front for ao's Django management commands.

``ao <command> [options]`` runs the management command of that name with ``prog`` set to
``ao``. ao's own commands report a failure as one ``ao: <what> — <fix>`` line on stderr and a
non-zero exit status; every other Django command (``ao migrate``, ``ao createsuperuser``,
``ao shell``) is passed through to Django unchanged. ``ao version`` and the agents' commands
(``ao report``, ``ao pr create`` over HTTP) run without Django: see ``sessions.cli.light_commands``.
"""

from __future__ import annotations

import difflib
import os
import sys

from ao_site import __version__
from ao_site.commands import ao_commands
from sessions.cli import light_commands
from sessions.cli.apiclient import remote_refusal

HELP_FLAGS = ("-h", "--help", "help")
# The commands that run Django's system checks (they start ao, or check it). The others skip them:
# the checks import every URL module (DRF, the API schema): about 0.5 CPU-s for each `ao spawn`.
CHECKED_COMMANDS = frozenset({"start", "web", "worker", "beat", "doctor", "init"})
# The long-running commands: their log is ao's (AO_LOG_LEVEL, INFO by default). The others log
# warnings and errors only unless AO_LOG_LEVEL says otherwise.
SERVER_COMMANDS = frozenset({"start", "web", "worker", "beat"})


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ao_site.settings")
    import django

    # ao's Celery app loads with the first task sent (sessions.core.jobs): a command that sends
    # none (`ao status`) does not pay for it.
    django.setup()


def _one_line_help(app: str, name: str) -> str:
    from django.core.management import load_command_class

    try:
        text = load_command_class(app, name).help or ""
    except Exception as exc:  # a broken command must not break `ao --help`
        return f"(cannot load: {type(exc).__name__})"
    return text.strip().splitlines()[0] if text.strip() else ""


def print_help() -> None:
    commands = ao_commands()
    width = max((len(name) for name in commands), default=8) + 2
    lines = [
        f"ao {__version__}: run a fleet of AI coding agents and supervise them.",
        "",
        "usage: ao <command> [options]     (ao <command> --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}{_one_line_help(app, name)}" for name, app in commands.items()]
    lines += [
        "",
        "Any Django management command works too, e.g. `ao migrate`, `ao createsuperuser`,",
        "`ao changepassword <user>`; `ao help --all` lists them.",
    ]
    print("\n".join(lines))


def _run_ao_command(app: str, name: str, args: list[str]) -> int:
    """Run one of ao's commands; a CommandError becomes one ``ao: ...`` line and its exit code."""
    from django.core.management import load_command_class
    from django.core.management.base import CommandError, handle_default_options
    from django.db import DatabaseError, connections

    command = load_command_class(app, name)
    # A bad flag or argument: argparse prints one usage line and the error, and exits with 2.
    command._called_from_command_line = True
    parser = command.create_parser("ao", name)
    light_commands.compact_usage(parser)
    options = parser.parse_args(args)
    if name not in CHECKED_COMMANDS and hasattr(options, "skip_checks"):
        options.skip_checks = True
        # Nor does Celery run them at this command's first task (its Django fixup runs every check
        # when it imports the tasks modules: the whole URLconf, the API's views, the admin; about
        # 0.5 CPU-s for an `ao send` that queues a message).
        os.environ.setdefault("CELERY_SKIP_CHECKS", "1")
    handle_default_options(options)
    cmd_options = vars(options)
    positional = cmd_options.pop("args", ())
    try:
        command.execute(*positional, **cmd_options)
    except CommandError as exc:
        if cmd_options.get("traceback"):
            raise
        sys.stderr.write(f"ao: {exc}\n")
        return exc.returncode
    except DatabaseError as exc:  # no tables yet, or the database is unreachable: one line, the fix
        if cmd_options.get("traceback"):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        sys.stderr.write(
            f"ao: the database failed: {first} — if ao's tables are missing run `ao start` (or `ao migrate`), "
            "else check DATABASE_URL and that the database is running\n"
        )
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            connections.close_all()
        except Exception:  # noqa: S110 - closing at exit must not mask the real outcome
            pass
    return 0


SIGPIPE_STATUS = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader went away


def main(argv: list[str] | None = None) -> int:
    """``ao <argv>``; output into a pipe whose reader is gone (``ao session ls | head -1``) ends the
    command quietly with 141, as other commands end, not with a BrokenPipeError traceback."""
    try:
        status = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # nothing more can be written there, at exit either: Python would print that it could not flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_STATUS
    return status


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `ao version` and what agents run (`ao report`, `ao pr create` over HTTP) need no Django:
    # loading it costs about 1 CPU-second, and agents call these many times per task.
    if (status := light_commands.run(argv)) is not None:
        return status
    if argv and argv[0] not in SERVER_COMMANDS:
        # a one-shot command says what it did on stdout; ao's INFO lines are the server's log
        os.environ.setdefault("AO_LOG_LEVEL", "WARNING")
    try:
        _setup()
    except Exception as exc:  # settings that cannot load: say what and stop
        sys.stderr.write(f"ao: cannot load settings: {exc}\n")
        return 2

    if not argv or (len(argv) == 1 and argv[0] in HELP_FLAGS):
        print_help()
        return 0
    if argv[0] == "help" and len(argv) == 2 and argv[1] in ao_commands():
        argv = [argv[1], "--help"]
    if argv[0] in ("--version", "-V"):
        argv = ["version"]

    commands = ao_commands()
    if argv[0] in commands:
        if refusal := remote_refusal(argv[0], argv[1:]):
            sys.stderr.write(f"ao: {refusal}\n")
            return 1
        return _run_ao_command(commands[argv[0]], argv[0], argv[1:])

    from django.core.management import ManagementUtility, get_commands

    asked = argv[1] if argv[0] == "help" and len(argv) == 2 and not argv[1].startswith("-") else argv[0]
    if not asked.startswith("-") and asked != "help" and asked not in get_commands():
        # Django's own answer exits 1 and says `manage.py`: one line, the nearest command, 2 (a usage error)
        nearest = difflib.get_close_matches(asked, [*commands, *get_commands()], n=1)
        hint = f"; did you mean `ao {nearest[0]}`?" if nearest else ""
        sys.stderr.write(f"ao: unknown command {asked!r}{hint} (`ao help` lists the commands)\n")
        return 2
    try:
        ManagementUtility(["ao", *argv]).execute()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
