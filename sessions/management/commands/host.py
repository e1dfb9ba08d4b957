"""``ao host ls`` / ``ao host allow NAME USER`` / ``ao host deny NAME USER``: agent hosts.

``ls`` lists the hosts you may use (their owner, shared or personal, online, cap and live
sessions; who else may use yours). ``allow`` lets a person's sessions run on your personal host,
``deny`` stops their new ones (those running carry on). With AO_URL and your AO_TOKEN it acts as
you over the API: only a host's owner or a superuser may change who uses it. On the ao host,
without a token, it acts as the machine's operator (every host).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from sessions.core import hosts
from sessions.management.commands._common import cli_audit, remote_client, remote_errors


class Command(BaseCommand):
    help = "Agent hosts: list them; let a person use your personal host, or stop them."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("ls", help="the hosts you may use (every host on the ao host)")
        ls.add_argument("--json", action="store_true")
        for action, text in (
            ("allow", "let USER's sessions run on your personal host NAME"),
            ("deny", "stop USER's new sessions running on your personal host NAME"),
        ):
            one = sub.add_parser(action, help=text)
            one.add_argument("name", help="the host (ao worker --host NAME)")
            one.add_argument("user", help="username")

    def handle(self, *args, **options):
        action = options["action"]
        client = remote_client()
        if client is not None:  # AO_URL + AO_TOKEN: as that person, over the API
            with remote_errors():
                if action == "ls":
                    self._rows(client.get("hosts"), options)
                    return
                path = f"hosts/{quote(options['name'], safe='')}/allowed/{quote(options['user'], safe='')}"
                client.request("PUT" if action == "allow" else "DELETE", path)
                again = action == "allow" and client.last_status == 200
                self._done(action, options, again=again)
            return
        if action == "ls":
            self._rows(hosts.host_rows(user=None), options)
            return
        with cli_audit():
            try:
                if action == "allow":
                    added = hosts.host_allow(name=options["name"], username=options["user"], by=None)
                else:
                    hosts.host_deny(name=options["name"], username=options["user"], by=None)
                    added = True
            except hosts.HostRefused as exc:
                raise CommandError(str(exc)) from None
        self._done(action, options, again=not added)

    def _done(self, action: str, options, *, again: bool) -> None:
        name, user = options["name"], options["user"]
        if action == "allow":
            self.stdout.write(f"{user} {'was already' if again else 'is now'} allowed on host {name}")
        else:
            self.stdout.write(f"{user} may no longer start sessions on host {name}")

    def _rows(self, rows: list[dict], options) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2, cls=DjangoJSONEncoder))
            return
        if not rows:
            self.stdout.write("no agent hosts you may use (start one: ao worker --host NAME)")
            return
        width = max(8, *(len(r["name"]) for r in rows))
        self.stdout.write(f"{'HOST':<{width}}  {'KIND':<18} {'STATE':<8} SESSIONS  ALLOWED")
        for r in rows:
            kind = "shared" if r["shared"] else f"personal: {r['owner']}"
            state = "online" if r["online"] else "offline"
            allowed = ", ".join(r["allowed"]) if r.get("allowed") else ("-" if r.get("allowed") == [] else "")
            self.stdout.write(
                f"{r['name']:<{width}}  {kind:<18} {state:<8} {r['running']}/{r['max_sessions']:<6} {allowed}"
            )
