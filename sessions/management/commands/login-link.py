"""``ao login-link [USERNAME]``: a fresh one-time login link (valid 15 minutes, works once)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ao_site import served
from sessions.dashboard.views_auth import one_time_login_url


class Command(BaseCommand):
    help = "Print a fresh one-time login link for a person (default: the first admin), e.g. when the first one expired."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="whose link (default: the first active superuser)")

    def handle(self, *args, username: str | None, **options):
        users = get_user_model().objects.filter(is_active=True)
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(
                    f"no active account {username!r} (create one in the admin or with `ao createsuperuser`)"
                )
        else:
            user = users.filter(is_superuser=True).order_by("pk").first()
            if user is None:
                raise CommandError("no admin account yet: `ao start` creates one on its first run")
        base = served.agent_url()
        # stdout only, never a log: the link logs its holder in
        self.stdout.write(
            f"One-time login link for {user.get_username()} (valid 15 minutes, works once; open it and press Sign in):"
        )
        self.stdout.write(f"  {one_time_login_url(user, base_url=base)}")
