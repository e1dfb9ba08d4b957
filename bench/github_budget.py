"""Benchmark: what ao spends of a GitHub token, against the fake GitHub (tests/fakes/github.py).

For 10, 100 and 500 sessions with open PRs (20 % with CI running), measures PR syncs of a
project through sessions.prsync with the real GitHubSCM plugin and rate-aware client, and turns
them into requests and GraphQL points per hour at ao's default cadence:

- without webhooks: every 30 s sweep reads the PRs with CI pending; all PRs every 60 s;
- with webhooks, coalesced (what ao does): deliveries within AO_WEBHOOK_COALESCE_SECONDS (2 s)
  make one refresh of the union of their PRs; all PRs every 60 s as a safety net. The hour of
  deliveries is simulated (seeded): per PR, 2 bursts of 3 deliveries (a push: push,
  pull_request.synchronize, check_suite; CI done: check_run, check_run, check_suite), the
  deliveries of a burst within 1 s, bursts at uniformly random times; each batch's refresh is
  measured against the fake GitHub;
- with webhooks, one refresh per delivery (ao before coalescing), for comparison;
- naive: 5 REST calls per PR every 30 s (what a per-PR poller spends).

Also the wall time of one sync of 500 sessions. Run: `.venv/bin/python bench/github_budget.py`.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = 30.0  # AO_SWEEP_INTERVAL
IDLE = 60.0  # AO_PR_SYNC_IDLE_INTERVAL: full sync without webhooks
HOOKED = 60.0  # AO_PR_SYNC_WEBHOOK_INTERVAL: full sync while webhooks arrive
PENDING = 0.2  # share of PRs with CI running at any moment
EVENTS_PER_PR_HOUR = 6  # e.g. a push, a check suite and its runs completing, a review
BURSTS_PER_PR_HOUR = 2  # ... arriving as 2 bursts of 3 deliveries
BURST_SPREAD = 1.0  # seconds over which one burst's deliveries arrive
WINDOW = 2.0  # AO_WEBHOOK_COALESCE_SECONDS
TOKEN_BUDGET = 5000  # per hour: REST requests and, separately, GraphQL points


def setup_django() -> None:
    base = Path(tempfile.mkdtemp(prefix="ao-bench-gh-"))
    os.environ.update(AO_HOME=str(base / "home"), DJANGO_SETTINGS_MODULE="ao_site.settings")
    for name in ("DATABASE_URL", "REDIS_URL", "AO_CONFIG"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _cost(gh, fn) -> dict:
    gh.reset_counts()
    points_before = gh.graphql_points
    started = time.monotonic()
    fn()
    return {
        "requests": gh.counts["graphql"] + gh.counts["rest"],
        "graphql": gh.counts["graphql"],
        "points": gh.graphql_points - points_before,
        "rest": gh.counts["rest"],
        "seconds": time.monotonic() - started,
    }


def measure(n: int) -> dict:
    from integrations.github.client import forget_clients
    from sessions import prsync
    from sessions.models import Project, Session
    from tests.fakes.github import FakeGitHub

    forget_clients()
    with FakeGitHub() as gh:
        os.environ["GITHUB_TOKEN"] = gh.token
        repo = gh.add_repo(f"acme/bench{n}")
        project = Project.objects.create(
            key=f"bench{n}",
            repo=f"acme/bench{n}",
            path=str(REPO),
            session_prefix=f"b{n}",
            scm="github",
            plugin_settings={"scm": {"base_url": gh.base_url, "write_interval": 0}},
        )
        for i in range(n):
            Session.objects.create(
                id=f"b{n}-{i + 1}", project=project, number=i + 1, branch=f"feat/{i}", phase="running"
            )
            pull = repo.add_pull(f"feat/{i}")
            repo.add_check_run(
                pull.head_sha, "test", status="in_progress" if i < n * PENDING else "completed"
            )
            repo.add_check_run(pull.head_sha, "lint", conclusion="success")
            gh.add_thread(pull, path="app.py", line=3, body="please rename", author="reviewer")
        prsync.pull_requests_sync(project=project)  # discovery: PRs found by branch
        full = _cost(gh, lambda: prsync.pull_requests_sync(project=project))
        plan = prsync.pr_sync_plan(project=Project.objects.get(pk=project.pk))
        partial = _cost(gh, lambda: prsync.pull_requests_sync(project=project, session_ids=plan))
        hook = _cost(gh, lambda: prsync.pull_requests_sync(project=project, session_ids=[f"b{n}-1"]))
        batches = coalesced_batches(n)
        by_size = {}
        for size in sorted({len(b) for b in batches}):
            ids = [f"b{n}-{i + 1}" for i in range(size)]
            by_size[size] = _cost(
                gh, lambda ids=ids: prsync.pull_requests_sync(project=project, session_ids=ids)
            )
        coalesced = {k: sum(by_size[len(b)][k] for b in batches) for k in ("requests", "points")}
    return {
        "full": full,
        "partial": partial,
        "partial_n": len(plan or []),
        "hook": hook,
        "batches": len(batches),
        "coalesced": coalesced,
    }


def coalesced_batches(n: int, *, seed: int = 1) -> list[set[int]]:
    """One simulated hour of deliveries for n PRs, through ao's debounce: the first delivery of a
    quiet project queues a refresh WINDOW seconds later, which takes every delivery received by
    then. Returns the PRs of each refresh."""
    rng = random.Random(seed)
    per_burst = EVENTS_PER_PR_HOUR // BURSTS_PER_PR_HOUR
    arrivals = sorted(
        (start + rng.uniform(0, BURST_SPREAD), pr)
        for pr in range(n)
        for start in (rng.uniform(0, 3600) for _ in range(BURSTS_PER_PR_HOUR))
        for _ in range(per_burst)
    )
    batches: list[set[int]] = []
    due = None
    for at, pr in arrivals:
        if due is None or at > due:
            batches.append(set())
            due = at + WINDOW
        batches[-1].add(pr)
    return batches


def per_hour(m: dict, n: int) -> dict:
    """Requests and points per hour at the default cadence (see the module docstring)."""
    polled = {
        k: m["full"][k] * 3600 / IDLE + m["partial"][k] * (3600 / SWEEP - 3600 / IDLE)
        for k in ("requests", "points")
    }
    per_delivery = {
        k: m["full"][k] * 3600 / HOOKED + n * EVENTS_PER_PR_HOUR * m["hook"][k]
        for k in ("requests", "points")
    }
    hooked = {k: m["full"][k] * 3600 / HOOKED + m["coalesced"][k] for k in ("requests", "points")}
    naive = n * 5 * 3600 / SWEEP
    return {"polled": polled, "hooked": hooked, "per_delivery": per_delivery, "naive": naive}


def main() -> None:
    setup_django()
    print(
        f"{'PRs':>5} | {'full sync (all PRs)':>22} | {'sweep (pending only)':>21} | "
        f"{'no webhooks /h':>21} | {'webhooks, coalesced /h':>22} | {'refreshes /h':>12} | "
        f"{'webhooks, per delivery /h':>25} | {'naive REST /h':>13} | full sync time"
    )
    results = {}
    for n in (10, 100, 500):
        m = measure(n)
        h = per_hour(m, n)
        results[n] = h
        print(
            f"{n:>5} | {m['full']['requests']:>3} req {m['full']['points']:>4} pts       | "
            f"{m['partial_n']:>3} PRs {m['partial']['points']:>4} pts     | "
            f"{h['polled']['requests']:>6.0f} req {h['polled']['points']:>6.0f} pts | "
            f"{h['hooked']['requests']:>7.0f} req {h['hooked']['points']:>6.0f} pts | "
            f"{m['batches']:>12} | "
            f"{h['per_delivery']['requests']:>10.0f} req {h['per_delivery']['points']:>6.0f} pts | "
            f"{h['naive']:>13.0f} | {m['full']['seconds'] * 1000:.0f} ms"
        )
    h = results[100]
    print(
        f"\nat 100 sessions ({PENDING:.0%} with CI pending; {EVENTS_PER_PR_HOUR} webhook deliveries per PR per hour): "
        f"GraphQL {h['polled']['points'] / TOKEN_BUDGET:.1%} of the 5,000 points/h budget without webhooks, "
        f"{h['hooked']['points'] / TOKEN_BUDGET:.1%} with (coalesced; "
        f"{h['per_delivery']['points'] / TOKEN_BUDGET:.1%} with a refresh per delivery); "
        f"REST {h['polled']['requests'] / TOKEN_BUDGET:.1%} / {h['hooked']['requests'] / TOKEN_BUDGET:.1%} "
        f"of 5,000 requests/h; naive polling {h['naive'] / TOKEN_BUDGET:.0%}"
    )


if __name__ == "__main__":
    main()
