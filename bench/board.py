"""Benchmark: the live dashboard.

1. Server time and SQL query count to render the board (`/p/<key>/`, and `/` for all projects)
   with 50 and 500 sessions, each with a PR, review threads, checks and events. The query count
   must not grow with the number of sessions.
2. Time from a fact change to the card updating in a connected browser, p50/p95 over N changes:
   a real `ao start` (embedded web + worker + beat), headless Chromium on the board, and the
   session's activity flipped in the database behind ao's back (a plain SQL UPDATE, no service
   call) so that the path measured is the product's: sweep -> re-derive -> coalesced render ->
   websocket -> out-of-band swap. The browser records when the card lands in its new column.

Run: `.venv/bin/python bench/board.py [--sizes 50 500] [--changes 100] [--sweep-interval 0.5]`.
Needs Playwright, /usr/bin/chromium and tmux for part 2 (`--no-browser` skips it).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# --- 1. render time and query count ---------------------------------------------------------------
def setup_django(base: Path) -> None:
    os.environ.update(AO_HOME=str(base / "home"), AO_SECRET_KEY="bench-secret-key-" + "x" * 40)
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "ao_site.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def populate(project, start: int, count: int) -> None:
    from sessions.models import CheckRun, Event, PullRequest, ReviewThread, Session

    zones = [
        ("working", "working"),
        ("ci_pending", "pending"),
        ("ci_failed", "review"),
        ("needs_input", "respond"),
        ("mergeable", "merge"),
        ("merged", "done"),
    ]
    sessions = []
    for n in range(start, start + count):
        status, zone = zones[n % len(zones)]
        sessions.append(
            Session(
                id=f"{project.session_prefix}-{n}",
                project=project,
                number=n,
                agent="claude-code",
                issue_ref=str(n),
                issue_title=f"Benchmark task {n}",
                phase="running",
                runtime_state="alive",
                activity="active",
                status=status,
                zone=zone,
                cost_usd=n / 100,
            )
        )
    Session.objects.bulk_create(sessions)
    prs = PullRequest.objects.bulk_create(
        PullRequest(project=project, session=s, number=s.number, branch=f"feat/{s.number}", head_sha="a" * 40)
        for s in sessions
    )
    ReviewThread.objects.bulk_create(
        ReviewThread(pull_request=pr, external_id=f"t{pr.number}-{i}", body="fix", resolved=i == 0)
        for pr in prs
        for i in range(3)
    )
    CheckRun.objects.bulk_create(
        CheckRun(
            pull_request=pr, head_sha=pr.head_sha, name=f"check-{i}", status="completed", conclusion="success"
        )
        for pr in prs
        for i in range(2)
    )
    Event.objects.bulk_create(
        Event(project=project, session=s, kind="note", summary=f"event {i} of {s.id}")
        for s in sessions
        for i in range(5)
    )


def bench_render(sizes: list[int], repeats: int) -> list[tuple[str, int, float, int]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from sessions.models import Membership, Project

    project = Project.objects.create(key="bench", path="/tmp/bench", session_prefix="bench")
    user = get_user_model().objects.create_user("bench-viewer", password="bench-password-0")  # noqa: S106
    Membership.objects.create(user=user, project=project, role="viewer")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    rows = []
    have = 0
    for size in sorted(sizes):
        populate(project, have + 1, size - have)
        have = size
        for url in ("/p/bench/", "/"):
            for _ in range(2):
                assert client.get(url).status_code == 200
            times = []
            for _ in range(repeats):
                with CaptureQueriesContext(connection) as queries:
                    t0 = time.perf_counter()
                    response = client.get(url)
                    times.append(time.perf_counter() - t0)
                assert response.status_code == 200
            rows.append((url, size, statistics.median(times) * 1000, len(queries.captured_queries)))
    return rows


# --- 2. fact change -> card moved in the browser ------------------------------------------------------
OBSERVER = """
() => {
  window.__moves = [];
  const seen = () => {
    const card = document.getElementById('card-e2e-1');
    return card ? card.closest('.col-body, .done-list').id : null;
  };
  let last = seen();
  new MutationObserver(() => {
    const now = seen();
    if (now && now !== last) { window.__moves.push([now, Date.now()]); last = now; }
  }).observe(document.body, {childList: true, subtree: true});
}
"""


def bench_live(changes: int, sweep_interval: str) -> tuple[list[float], list[float], int]:
    from tests.dashboard.browser import chromium, live_server

    with (
        tempfile.TemporaryDirectory(prefix="ao-bench-board-") as tmp,
        live_server(Path(tmp), sweep_interval=sweep_interval) as live,
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        live.sign_in(page)
        page.goto(f"{live.base}/p/e2e/?mode=simple")
        page.wait_for_selector("#live-indicator[data-state=live]")
        page.wait_for_selector("#col-working #card-e2e-1")
        page.evaluate(OBSERVER)
        db = sqlite3.connect(Path(live.env["AO_HOME"]) / "ao.sqlite3", timeout=20)
        latencies, pushes, missed = [], [], 0
        for i in range(changes):
            activity, column = ("waiting_input", "col-action") if i % 2 == 0 else ("ready", "col-working")
            before = page.evaluate("window.__moves.length")
            now = datetime.now(UTC)
            db.execute(
                "UPDATE agent_sessions_session SET activity = ?, activity_at = ? WHERE id = 'e2e-1'",
                (activity, now.strftime("%Y-%m-%d %H:%M:%S.%f")),
            )
            db.commit()
            t0 = time.time() * 1000
            try:
                page.wait_for_function(f"window.__moves.length > {before}", timeout=15_000)
            except Exception:
                missed += 1
                continue
            where, at = page.evaluate("window.__moves[window.__moves.length - 1]")
            if where != column:
                missed += 1
                continue
            latencies.append(at - t0)
            (changed_at,) = db.execute(
                "SELECT status_changed_at FROM agent_sessions_session WHERE id = 'e2e-1'"
            ).fetchone()
            written = datetime.fromisoformat(changed_at).replace(tzinfo=UTC).timestamp() * 1000
            pushes.append(at - written)
        db.close()
        return latencies, pushes, missed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--sweep-interval", default="0.5")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ao-bench-render-") as tmp:
        setup_django(Path(tmp))
        rows = bench_render(args.sizes, args.repeats)
    print("\nBoard render (Django test client, SQLite, server time incl. template)")
    print(f"| {'page':<12} | {'sessions':>8} | {'median ms':>9} | {'SQL queries':>11} |")
    print(f"| {'-' * 12} | {'-' * 8}:| {'-' * 9}:| {'-' * 11}:|")
    for url, size, ms, queries in rows:
        print(f"| {url:<12} | {size:>8} | {ms:>9.1f} | {queries:>11} |")

    if args.no_browser:
        return
    latencies, pushes, missed = bench_live(args.changes, args.sweep_interval)
    print(
        f"\nCard moved in the browser ({len(latencies)} changes, {missed} missed, sweep every {args.sweep_interval} s)"
    )
    print(f"| {'measured from':<48} | p50 ms | p95 ms | max ms |")
    print(f"| {'-' * 48} | ------:| ------:| ------:|")
    for label, values in (
        ("fact UPDATE in the database (waits for a sweep)", latencies),
        ("status written by the sweep (push path only)", pushes),
    ):
        if values:
            print(
                f"| {label:<48} | {pct(values, 0.5):>6.0f} | {pct(values, 0.95):>6.0f} | {max(values):>6.0f} |"
            )


if __name__ == "__main__":
    main()
