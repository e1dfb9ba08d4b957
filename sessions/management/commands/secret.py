"""``ao secret set NAME`` / ``ao secret ls`` / ``ao secret rm NAME``: secrets stored in ao.

Plugin settings name them (``token_secret: github-prod``) instead of holding the value. The value
is read from stdin, or from a hidden prompt on a terminal, so it never lands in shell history or
a process listing; nothing prints it back.

Personal credentials (a person's own model keys, issue 19): ``--mine`` acts as the person whose API
token is in AO_TOKEN (with AO_URL: over the API, like the Credentials page); on the ao host, the
operator may use ``--user NAME`` instead (they hold the database anyway). NAME is then the
environment variable the agents read, e.g. ``ao secret set --mine ANTHROPIC_API_KEY``.
"""

from __future__ import annotations

import getpass
import json
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from sessions.core import secrets
from sessions.management.commands._common import cli_audit, remote_client, remote_errors
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
        set_.add_argument(
            "name",
            help="letters, digits, - or _ (e.g. github-prod); personal: the variable, e.g. OPENAI_API_KEY",
        )
        ls = sub.add_parser("ls", help="list secrets: names and when they changed, never values")
        ls.add_argument("--json", action="store_true")
        rm = sub.add_parser("rm", help="delete a secret")
        rm.add_argument("name")
        for each in (set_, ls, rm):
            whose = each.add_mutually_exclusive_group()
            whose.add_argument(
                "--mine",
                action="store_true",
                help="your personal credential (AO_URL + your AO_TOKEN), used only by the sessions you spawn",
            )
            whose.add_argument(
                "--user", metavar="NAME", help="on the ao host: that person's personal credential"
            )

    def handle(self, *args, **options):
        if options.get("mine") or options.get("user"):
            self._personal(options)
            return
        with cli_audit():
            getattr(self, "_" + options["action"])(options)

    def _personal(self, options):
        """A personal credential: over the API as AO_TOKEN's person (--mine), or locally (--user)."""
        action, name = options["action"], options.get("name") or ""
        if action != "ls":
            try:
                secrets.validate_personal_name(name)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        value = self._read_value(options) if action == "set" else ""
        if action == "set" and not value.strip():
            raise CommandError(
                f"no value for {name}: pipe it in (`ao secret set --mine {name} < file`) or type it"
            )
        if options.get("mine"):
            client = remote_client()
            if client is None:
                raise CommandError(
                    "--mine acts as the person of AO_TOKEN: set AO_URL and AO_TOKEN (your API token from the "
                    "Tokens page); on the ao host use --user NAME"
                )
            with remote_errors():
                if action == "set":
                    client.request("PUT", f"me/credentials/{name}", body={"value": value})
                    self.stdout.write(
                        f"{name} {'replaced' if client.last_status == 200 else 'stored'} (yours)"
                    )
                elif action == "rm":
                    client.request("DELETE", f"me/credentials/{name}")
                    self.stdout.write(f"{name} deleted (yours)")
                else:
                    self._personal_rows(client.get("me/credentials/"), options)
            return
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        with cli_audit():
            if action == "set":
                replaced = secrets.personal_secrets_of(user).filter(name=name).exists()
                try:
                    secrets.personal_secret_set(user=user, name=name, value=value)
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
                self.stdout.write(f"{name} of {user.get_username()} {'replaced' if replaced else 'stored'}")
            elif action == "rm":
                if not secrets.personal_secret_delete(user=user, name=name):
                    raise CommandError(f"{user.get_username()} has no personal credential {name}")
                self.stdout.write(f"{name} of {user.get_username()} deleted")
            else:
                rows = [
                    {"name": r.name, "updated_at": r.updated_at.isoformat()}
                    for r in secrets.personal_secrets_of(user)
                ]
                self._personal_rows(rows, options)

    def _personal_rows(self, rows, options):
        if options["json"]:
            self.stdout.write(json.dumps([{k: r[k] for k in ("name", "updated_at")} for r in rows], indent=2))
        elif not rows:
            self.stdout.write(
                "no personal credentials (add one with `ao secret set --mine ANTHROPIC_API_KEY`)"
            )
        else:
            for r in rows:
                self.stdout.write(f"{r['name']:<32} {r['updated_at']}")

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
