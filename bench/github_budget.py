"""Benchmark: what ao's PR sync spends of a GitHub token in an hour, against the fake GitHub
(tests/fakes/github.py: it answers If-None-Match with 304 when a read would return the same body,
charges GraphQL points with GitHub's published cost formula, and counts every request).

For N sessions, each with an open PR (two finished checks, one review thread), one simulated hour
of sweeps every 30 s runs ``sessions.prs.prsync.pull_requests_sweep`` for real (the real GitHubSCM
plugin and rate-aware client), on a simulated clock (``timezone.now`` is patched; the PRs' times
on the fake follow it), after a first sweep that reads everything (not counted). Scenarios:

- unchanged: nothing happens on GitHub for the hour;
- changing: 6 events per PR per hour (seeded, uniformly random times): push (a new commit, its
  CI starting), CI finished, review, review thread, push, CI finished;
- changing, with webhooks: the same events, each announced by a delivery that makes ao refresh
  the PRs it concerns (deliveries within AO_WEBHOOK_COALESCE_SECONDS, 2 s, in one refresh); the
  sweeps then probe every AO_PR_SYNC_WEBHOOK_INTERVAL (60 s) only.

Each is run with ao as it is (ETag-guarded change probe; only changed PRs read, a few at a time
with REST), with GraphQL reads only (the github SCM's ``rest_reads: 0``: every changed PR read
in one batched GraphQL query, as ao did before the REST reader), and as it was before the probe
(the change probe switched off and GraphQL reads only, so the sweep follows the old plan: PRs
with CI pending or no PR every sweep, everything every 60 s). Beside them, a model of an ETag-guarded
poller (the reference system's way): N+1 conditional REST reads every 30 s (the PR list and
each PR's checks), and a full batch re-read (one GraphQL query per 50 PRs, priced like ao's
full read of the same PRs) in every 30 s in which something changed; its charged requests are
the reads that did not come back 304 (the list and the changed PRs' check reads).

Requests are every HTTP request (304s included: GitHub's secondary limits count them); charged
ones are those that spend the hourly REST quota (not 304s). Points are GraphQL points.
Run: `.venv/bin/python bench/github_budget.py [--sessions 5 20 100]`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = 30  # AO_SWEEP_INTERVAL, seconds
HOUR = 3600
EVENTS = ("push", "ci", "review", "thread", "push", "ci")  # per PR per hour, in this order
WINDOW = 2.0  # AO_WEBHOOK_COALESCE_SECONDS
BATCH = 50  # PRs per GraphQL query (the github SCM's batch_size)
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


class Clock:
    """``django.utils.timezone.now`` for the run: a simulated time, two hours back (so GitHub's
    times are never in the fake's own "now")."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    def __call__(self) -> datetime:
        return self.at


def schedule(n: int, *, seed: int = 1) -> list[tuple[float, int, str]]:
    """(seconds into the hour, PR index, event) for one hour, sorted."""
    rng = random.Random(seed)
    out = []
    for pr in range(n):
        times = sorted(rng.uniform(0, HOUR) for _ in EVENTS)
        out.extend((t, pr, kind) for t, kind in zip(times, EVENTS, strict=True))
    return sorted(out)


def apply(gh, repo, pull, kind: str, at: datetime, rng: random.Random) -> None:
    """One event on the fake GitHub, at simulated time ``at``."""
    if kind == "ci":
        running = [c for c in repo.checks_for(pull.head_sha) if c.status != "completed"]
        with gh.lock:
            for check in running:
                check.status, check.completed_at = "completed", at
                check.conclusion = "failure" if rng.random() < 0.25 else "success"
        return  # a check does not move the PR (GitHub's PR list is unchanged)
    if kind == "push":
        gh.push(pull)
        repo.add_check_run(pull.head_sha, "test", status="in_progress")
        repo.add_check_run(pull.head_sha, "lint", conclusion="success")
    elif kind == "review":
        gh.add_review(pull, state=rng.choice(["APPROVED", "CHANGES_REQUESTED", "COMMENTED"]))
    elif kind == "thread":
        gh.add_thread(pull, body="please rename this", author="reviewer")
    with gh.lock:
        pull.updated_at = at


def simulate(n: int, *, probe: bool, changing: bool, hooked: bool = False, rest: bool = True) -> dict:
    from django.core.cache import cache
    from django.utils import timezone

    from integrations.base import SCM
    from integrations.github.pool import forget_clients
    from integrations.scm.github import GitHubSCM
    from sessions.models import Project, Session, WebhookDelivery
    from sessions.prs import prsync
    from tests.fakes.github import FakeGitHub

    forget_clients()
    cache.clear()
    clock = Clock()
    saved_now, saved_probe = timezone.now, GitHubSCM.pull_request_changes
    timezone.now = clock
    if not probe:
        GitHubSCM.pull_request_changes = SCM.pull_request_changes
    key = f"b{n}{int(probe)}{int(changing)}{int(hooked)}{int(rest)}"
    try:
        with FakeGitHub() as gh:
            os.environ["GITHUB_TOKEN"] = gh.token
            repo = gh.add_repo(f"acme/{key}")
            project = Project.objects.create(
                key=key,
                repo=f"acme/{key}",
                path=str(REPO),
                session_prefix=key,
                scm="github",
                plugin_settings={
                    "scm": {
                        "base_url": gh.base_url,
                        "write_interval": 0,
                        **({} if rest else {"rest_reads": 0}),
                    }
                },
            )
            pulls, sessions = [], []
            for i in range(n):
                sessions.append(
                    Session.objects.create(
                        id=f"{key}-{i + 1}",
                        project=project,
                        number=i + 1,
                        branch=f"feat/{i}",
                        phase="running",
                    )
                )
                pull = repo.add_pull(f"feat/{i}")
                repo.add_check_run(pull.head_sha, "test", conclusion="success")
                repo.add_check_run(pull.head_sha, "lint", conclusion="success")
                gh.add_thread(pull, path="app.py", line=3, body="please rename", author="reviewer")
                pull.updated_at = clock.at - timedelta(minutes=5)
                pulls.append(pull)
            start = clock.at

            def sweep() -> None:
                prsync.pull_requests_sweep(project=Project.objects.get(pk=project.pk))

            sweep()  # the first sweep reads everything (PRs found by branch): not counted
            sweep()  # ... and the next records the base branch once: not counted either
            gh.reset_counts()
            points_before = gh.graphql_points
            events = schedule(n) if changing else []
            rng = random.Random(2)
            refreshes = 0
            for k in range(1, HOUR // SWEEP + 1):
                window_end = start + timedelta(seconds=k * SWEEP)
                due = [e for e in events if start + timedelta(seconds=e[0]) <= window_end]
                events = events[len(due) :]
                batches: list[tuple[float, set[int]]] = []
                for offset, index, kind in due:
                    at = start + timedelta(seconds=offset)
                    clock.at = at
                    apply(gh, repo, pulls[index], kind, at, rng)
                    if hooked:
                        if batches and offset <= batches[-1][0]:
                            batches[-1][1].add(index)
                        else:
                            batches.append((offset + WINDOW, {index}))
                for at, indexes in batches:  # each coalesced refresh, WINDOW after its first delivery
                    clock.at = start + timedelta(seconds=at)
                    WebhookDelivery.objects.create(
                        project=project, delivery_id=f"{key}-{k}-{at}", event="push"
                    )
                    prsync.pull_requests_sync(project=project, session_ids=[sessions[i].pk for i in indexes])
                    refreshes += 1
                if hooked and not batches and k == 1:
                    WebhookDelivery.objects.create(project=project, delivery_id=f"{key}-0", event="ping")
                clock.at = window_end
                sweep()
            counts = dict(gh.counts)
            points = gh.graphql_points - points_before
        return {
            "requests": counts.get("rest", 0) + counts.get("graphql", 0) + counts.get("304", 0),
            "charged": counts.get("rest", 0),
            "not_modified": counts.get("304", 0),
            "graphql": counts.get("graphql", 0),
            "points": points,
            "refreshes": refreshes,
        }
    finally:
        timezone.now = saved_now
        GitHubSCM.pull_request_changes = saved_probe


def reference(n: int, *, changing: bool, full_points: int) -> dict:
    """The ETag-guarded poller model (module docstring), on the same event schedule."""
    sweeps = HOUR // SWEEP
    changed_windows: dict[int, set[int]] = {}
    for offset, index, _kind in schedule(n) if changing else []:
        changed_windows.setdefault(min(sweeps, int(offset // SWEEP) + 1), set()).add(index)
    batches = -(-n // BATCH)
    requests = (n + 1) * sweeps + batches * len(changed_windows)
    charged = sum(1 + len(prs) for prs in changed_windows.values())
    return {
        "requests": requests,
        "charged": charged,
        "points": full_points * len(changed_windows),
        "change_sweeps": len(changed_windows),
    }


def full_read_points(n: int) -> int:
    """GraphQL points of ao's read of all n PRs in one sweep (the reference's re-read's price)."""
    from integrations.scm.github import graphql_cost

    per_query = graphql_cost(min(n, BATCH) * 5)  # a state read: 5 connections per PR
    return per_query * -(-n // BATCH)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, nargs="*", default=[5, 20, 100])
    args = parser.parse_args()
    setup_django()
    import logging

    logging.disable(logging.WARNING)
    head = (
        f"{'N':>4} | {'scenario':<22} | {'who':<26} | {'requests/h':>10} | {'charged/h':>9} | "
        f"{'304s/h':>6} | {'GraphQL/h':>9} | {'points/h':>8} | {'points/session/h':>16}"
    )
    print(head)
    print("-" * len(head))
    for n in args.sessions:
        for label, changing, hooked in (
            ("unchanged", False, False),
            ("6 events/PR/h", True, False),
            ("6 events/PR/h, webhooks", True, True),
        ):
            rows = [
                ("ao (probe, REST reads)", simulate(n, probe=True, changing=changing, hooked=hooked)),
                (
                    "ao, GraphQL reads only",
                    simulate(n, probe=True, changing=changing, hooked=hooked, rest=False),
                ),
                (
                    "ao before (no probe)",
                    simulate(n, probe=False, changing=changing, hooked=hooked, rest=False),
                ),
            ]
            if not hooked:
                ref = reference(n, changing=changing, full_points=full_read_points(n))
                rows.append(
                    ("ETag-guarded poller model", {**ref, "not_modified": ref["requests"] - ref["charged"]})
                )
            for who, r in rows:
                print(
                    f"{n:>4} | {label:<22} | {who:<26} | {r['requests']:>10} | {r['charged']:>9} | "
                    f"{r['not_modified']:>6} | {r.get('graphql', '-'):>9} | {r['points']:>8} | "
                    f"{r['points'] / n:>16.2f}"
                )
        print()


if __name__ == "__main__":
    main()
