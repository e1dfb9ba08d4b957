"""``ao secret set NAME`` / ``ao secret ls`` / ``ao secret rm NAME``: secrets stored in ao.

Plugin settings name them (``token_secret: github-prod``) instead of holding the value. The value
is read from stdin, or from a hidden prompt on a terminal, so it never lands in shell history or
a process listing; nothing prints it back.
"""

from __future__ import annotations

import getpass
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from sessions import secrets
from sessions.management.commands._common import cli_audit
from sessions.models import Secret


class Command(BaseCommand):
    help = "Secrets stored in ao, named by plugin settings: set (value on stdin), ls, rm. Never shown."
    stealth_options = ("stdin",)  # call_command(..., stdin=StringIO(...)) in tests

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        set_ = sub.add_parser(
            "set",
            help="create or replace a secret; the value is read from stdin (or a hidden prompt)",
            description="Pipe the value in (`ao secret set github-prod < token.txt`) or type it at the "
            "hidden prompt. One trailing newline is dropped.",
        )
        set_.add_argument("name", help="letters, digits, - or _ (e.g. github-prod)")
        ls = sub.add_parser("ls", help="list secrets: names and when they changed, never values")
        ls.add_argument("--json", action="store_true")
        rm = sub.add_parser("rm", help="delete a secret")
        rm.add_argument("name")

    def handle(self, *args, **options):
        with cli_audit():
            getattr(self, "_" + options["action"])(options)

    def _read_value(self, options) -> str:
        stream = options.get("stdin") or sys.stdin
        if stream.isatty():
            value = getpass.getpass(f"value of secret {options['name']} (hidden): ")
        else:
            value = stream.read(secrets.MAX_SECRET_CHARS + 2)
        if value.endswith("\n"):
            value = value[:-1]
        return value.removesuffix("\r")

    def _set(self, options):
        name = options["name"]
        try:
            secrets.validate_secret_name(name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        value = self._read_value(options)
        if not value.strip():
            raise CommandError(
                f"no value for secret {name!r}: pipe it in (`ao secret set {name} < file`) or type it at "
                "the prompt"
            )
        try:
            replaced = Secret.objects.filter(name=name).exists()
            secrets.secret_set(name=name, value=value)
        except ValueError as exc:  # the message names the limit, never the value
            raise CommandError(str(exc)) from None
        self.stdout.write(f"secret {name} {'replaced' if replaced else 'stored'}")

    def _ls(self, options):
        rows = [
            {"name": name, "updated_at": updated.isoformat()}
            for name, updated in Secret.objects.order_by("name").values_list("name", "updated_at")
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("no secrets (add one with `ao secret set NAME`)")
            return
        width = max(24, *(len(r["name"]) for r in rows))
        self.stdout.write(f"{'NAME':<{width}} UPDATED")
        for r in rows:
            self.stdout.write(f"{r['name']:<{width}} {r['updated_at']}")

    def _rm(self, options):
        name = options["name"]
        if not secrets.secret_delete(name):
            raise CommandError(f"no secret {name!r} (see `ao secret ls`)")
        self.stdout.write(f"secret {name} deleted")
