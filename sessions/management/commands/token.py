"""``ao token create NAME [--user U]`` / ``ao token ls`` / ``ao token revoke ID``: API tokens."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from sessions.api.tokens import api_token_create, api_token_revoke
from sessions.management.commands._common import cli_audit
from sessions.models import ApiToken


class Command(BaseCommand):
    help = "API tokens for bots and the remote CLI: create (shown once), ls, revoke."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token; prints it once")
        create.add_argument("name")
        create.add_argument("--user", "-u", help="whose token (default: the only superuser)")
        ls = sub.add_parser("ls", help="list tokens (prefix only; never the token)")
        ls.add_argument("--user", "-u")
        ls.add_argument("--json", action="store_true")
        ls.add_argument("--all", action="store_true", help="also revoked tokens")
        revoke = sub.add_parser("revoke", help="revoke a token by id")
        revoke.add_argument("id", type=int)

    def handle(self, *args, **options):
        with cli_audit():
            getattr(self, "_" + options["action"])(options)

    def _user(self, username: str | None):
        users = get_user_model().objects
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user {username!r} (`ao createsuperuser` makes one)")
            return user
        supers = list(users.filter(is_superuser=True, is_active=True)[:2])
        if len(supers) != 1:
            raise CommandError("say whose token it is with --user USERNAME")
        return supers[0]

    def _create(self, options):
        user = self._user(options["user"])
        try:
            token, raw = api_token_create(user=user, name=options["name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(
            f"token {token.pk} {token.name!r} for {user.get_username()} — shown once, store it now:"
        )
        self.stdout.write(raw)

    def _ls(self, options):
        tokens = ApiToken.objects.select_related("user")
        if options["user"]:
            tokens = tokens.filter(user=self._user(options["user"]))
        if not options["all"]:
            tokens = tokens.filter(revoked_at__isnull=True)
        rows = [
            {
                "id": t.pk,
                "name": t.name,
                "user": t.user.get_username(),
                "prefix": t.prefix,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in tokens
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("no tokens")
            return
        self.stdout.write(f"{'ID':<5} {'NAME':<24} {'USER':<16} {'PREFIX':<13} {'LAST USED':<25} REVOKED")
        for r in rows:
            self.stdout.write(
                f"{r['id']:<5} {r['name'][:24]:<24} {r['user'][:16]:<16} {r['prefix']:<13} "
                f"{r['last_used_at'] or 'never':<25} {r['revoked_at'] or '-'}"
            )

    def _revoke(self, options):
        token = ApiToken.objects.filter(pk=options["id"]).first()
        if token is None:
            raise CommandError(f"no token {options['id']} (see `ao token ls`)")
        if not api_token_revoke(token=token):
            raise CommandError(f"token {token.pk} was already revoked")
        self.stdout.write(f"token {token.pk} {token.name!r} revoked")
