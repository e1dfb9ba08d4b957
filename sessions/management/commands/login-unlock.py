"""``ao login-unlock USERNAME`` / ``ao login-unlock --address IP`` / ``ao login-unlock --list``:
see and lift the lockouts that stop password guessing (docs/SECURITY.md)."""

from __future__ import annotations

from axes.models import AccessAttempt
from django.core.management.base import BaseCommand, CommandError

from sessions.core.login_lockout import login_lockouts, login_lockouts_lift
from sessions.management.commands._common import cli_audit


class Command(BaseCommand):
    help = "Lift a login lockout after too many wrong passwords: of an account, or of an address (--list shows them)."

    def add_arguments(self, parser):
        parser.add_argument(
            "username", nargs="?", help="clear this account's failed logins (from every address)"
        )
        parser.add_argument(
            "--address", help="clear the failed logins from this client address (every account)"
        )
        parser.add_argument(
            "--list", dest="show", action="store_true", help="show the lockouts in force and change nothing"
        )

    def handle(self, *args, username: str | None, address: str | None, show: bool, **options):
        if show:
            if username or address:
                raise CommandError("--list takes no account or address: `ao login-unlock --list`")
            lockouts = login_lockouts()
            for lockout in lockouts:
                self.stdout.write(str(lockout))
            if not lockouts:
                self.stdout.write("No logins are locked out.")
            return
        if not username and not address:
            raise CommandError(
                "whose lockout? `ao login-unlock USERNAME`, `ao login-unlock --address IP` (`--list` shows them)"
            )
        attempts = AccessAttempt.objects.all()
        if username:
            attempts = attempts.filter(username=username)
        if address:
            attempts = attempts.filter(ip_address=address)
        with cli_audit():
            lifted = login_lockouts_lift(attempts=attempts)
        for attempt in lifted:
            self.stdout.write(
                f"Cleared {attempt.failures_since_start} failed logins of {attempt.username} from {attempt.ip_address}."
            )
        if not lifted:
            whose = " and ".join(filter(None, [username and repr(username), address and f"from {address}"]))
            self.stdout.write(f"No failed logins recorded for {whose}: nothing to lift.")
