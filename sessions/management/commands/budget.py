"""``ao budget set USER AMOUNT`` / ``ao budget rm USER`` / ``ao budget ls``: monthly cost caps.

A person's cap (USD per calendar month, UTC) covers the sessions they spawn in every project; once
their month's sessions cost that much, their spawns are refused with the reason. Projects have
their own cap in the config (``monthlyBudgetUsd``). Only the host's operator (this command) and
superusers (the admin) set people's caps.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from sessions.core import usage
from sessions.management.commands._common import cli_audit
from sessions.models import Project, UserBudget


class Command(BaseCommand):
    help = "Monthly cost caps: set a person's (USD), remove it, list every cap with this month's spend."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        set_ = sub.add_parser("set", help="set a person's monthly budget in USD (0: no spawns)")
        set_.add_argument("user", help="username")
        set_.add_argument("amount", help="USD per calendar month (UTC), e.g. 50 or 12.5")
        rm = sub.add_parser("rm", help="remove a person's monthly budget")
        rm.add_argument("user")
        ls = sub.add_parser("ls", help="every project's and person's cap with this month's spend")
        ls.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        with cli_audit():
            getattr(self, "_" + options["action"])(options)

    def _user(self, name: str):
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise CommandError(f"no user {name!r}")
        return user

    def _set(self, options):
        user = self._user(options["user"])
        try:
            amount = Decimal(options["amount"].lstrip("$"))
        except InvalidOperation:
            raise CommandError(f"{options['amount']!r} is not an amount in USD (e.g. 50 or 12.5)") from None
        if not amount.is_finite() or amount < 0 or amount >= 10**10:
            raise CommandError(f"{options['amount']!r}: a budget is 0 or more (USD)")
        budget = usage.user_budget_set(user=user, amount=amount)
        spent = usage.month_cost(user=user)
        self.stdout.write(
            f"{user.get_username()}: ${budget.monthly_budget_usd} per month; ${spent:.2f} spent this month"
        )

    def _rm(self, options):
        user = self._user(options["user"])
        if not UserBudget.objects.filter(user=user).exists():
            raise CommandError(f"{user.get_username()} has no budget (see `ao budget ls`)")
        usage.user_budget_set(user=user, amount=None)
        self.stdout.write(f"{user.get_username()}: no budget")

    def _ls(self, options):
        rows = usage.budgets_for(
            projects=Project.objects.order_by("key"), people=usage.budget_rows_visible(None, everyone=True)
        )
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write(
                "no budgets (a project's: monthlyBudgetUsd in ao.config.yaml; a person's: `ao budget set USER AMOUNT`)"
            )
            return
        self.stdout.write(f"month {rows[0]['month']} (UTC)")
        width = max(12, *(len(r["name"]) + len(r["scope"]) + 1 for r in rows))
        self.stdout.write(f"{'BUDGET':<{width}} {'SPENT':>12} {'CAP':>12}  USED")
        for r in rows:
            name = f"{r['scope']} {r['name']}"
            over = "  over: spawns refused" if r["over"] else ""
            self.stdout.write(
                f"{name:<{width}} {r['spent_usd']:>12.2f} {r['monthly_budget_usd']:>12.2f}  {r['used_pct']}%{over}"
            )
