"""The rate budgets of one GitHub credential, as GitHub reports them: ``X-RateLimit-*`` after
every response, ``rateLimit { cost remaining resetAt }`` in GraphQL bodies, and a block after a
secondary limit that asked for a long wait. ``GitHubClient`` refuses non-essential calls while
a budget is empty instead of burning requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from integrations.github.results import GitHubRateLimited
from integrations.records import RateStatus


@dataclass
class Budget:
    """One resource's budget (``core``, ``graphql``) as GitHub last reported it."""

    limit: int = 0
    remaining: int = 0
    reset: float = 0.0  # epoch seconds
    known: bool = False


def clock_time(epoch: float) -> str:
    """An epoch time as people read it in an error message: "14:05 UTC"."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")


class RateBudgets:
    """The budget half of ``GitHubClient``: its ``_budgets`` per resource, ``_blocked_until``,
    ``stats`` and the ``_lock`` guarding them."""

    _lock: threading.Lock
    _budgets: dict[str, Budget]
    _blocked_until: float
    stats: Any

    def rate_status(self, resource: str | None = None) -> RateStatus | None:
        """The budget of ``resource`` ("core", "graphql"), or of the scarcest one; None before any call."""
        now = time.time()
        with self._lock:
            budgets = {
                name: b
                for name, b in self._budgets.items()
                if b.known and (resource is None or name == resource)
            }
            if not budgets:
                return None

            def left(item: tuple[str, Budget]) -> float:
                b = item[1]
                if b.reset and b.reset <= now:
                    return 1.0
                return b.remaining / b.limit if b.limit else 1.0

            _, budget = min(budgets.items(), key=left)
            expired = bool(budget.reset) and budget.reset <= now
            remaining = budget.limit if expired else budget.remaining
            exhausted = (remaining <= 0) or (resource is None and self._blocked_until > now)
            reset_at = datetime.fromtimestamp(budget.reset, UTC) if budget.reset else None
            return RateStatus(limit=budget.limit, remaining=remaining, reset_at=reset_at, exhausted=exhausted)

    def _check_budget(self, resource: str, essential: bool) -> None:
        if essential:
            return
        now = time.time()
        with self._lock:
            until = 0.0
            budget = self._budgets.get(resource)
            if budget is not None and budget.known and budget.remaining <= 0 and budget.reset > now:
                until = budget.reset
            if self._blocked_until > now:
                until = max(until, self._blocked_until)
            if until:
                self.stats.refused += 1
        if until:
            raise GitHubRateLimited(f"GitHub rate limited until {clock_time(until)}", until=until)

    def _record_headers(self, headers: Mapping[str, str], default_resource: str) -> None:
        try:
            limit = int(float(headers["x-ratelimit-limit"]))
            remaining = int(float(headers["x-ratelimit-remaining"]))
            reset = float(headers.get("x-ratelimit-reset") or 0)
        except (KeyError, ValueError):
            return
        resource = headers.get("x-ratelimit-resource") or default_resource
        with self._lock:
            self._budgets[resource] = Budget(limit=limit, remaining=remaining, reset=reset, known=True)

    def _record_graphql_rate(self, rate: Mapping[str, Any]) -> int | None:
        cost = rate.get("cost")
        with self._lock:
            if isinstance(cost, int):
                self.stats.graphql_points += cost
            budget = self._budgets.setdefault("graphql", Budget())
            if isinstance(rate.get("remaining"), int):
                budget.remaining = rate["remaining"]
                budget.known = True
            if isinstance(rate.get("limit"), int):
                budget.limit = rate["limit"]
            if rate.get("resetAt"):
                try:
                    budget.reset = datetime.fromisoformat(
                        str(rate["resetAt"]).replace("Z", "+00:00")
                    ).timestamp()
                except ValueError:
                    pass
        return cost if isinstance(cost, int) else None
