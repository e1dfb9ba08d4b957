"""Benchmark: one whole sweep of a project with N running sessions (`sweep.project_sweep`).

Everything a sweep does runs for real except the runtime: the PR sync (the real GitHubSCM plugin
and rate-aware client against the fake GitHub, tests/fakes/github.py: N open PRs, two checks and
one review thread each, 20 % with CI running), per session the runtime probe, the pane read and
the agent's activity detection (the real Claude Code plugin reading a transcript of 40 entries per
session from its own `~/.claude/projects/<workspace>/` directory, plus the pane), storing the
facts, derivation, reactions, drift watch, admission and the orchestrator hooks (the conflict
watch looks at each workspace: an empty `git init` repository per session; it runs git there
only when something may have changed, so the measured sweeps, seconds apart with nothing moved,
run none after the warm-up: see docs/PERFORMANCE.md for the re-checks' share), on SQLite
(embedded mode, background work inline) or PostgreSQL (`--database`).

The runtime is a no-op plugin registered by this script (`bench-noop`): `probe` answers "alive",
`read_output` returns a fixed Claude Code prompt screen (with the last text sent, as if the
agent echoed it) and `send_text` (a reaction's message) only remembers the text; no process.
Inline message deliveries do not wait for the agent (`AO_INLINE_DELIVERY_WAIT=0`; `ao start`
delivers in its worker). With tmux each probe and pane read is a `tmux` subprocess (a few ms
each); that cost is not in these figures.

Measured: a sweep whose PR sync is partial (the PRs with CI pending: most sweeps), a sweep that
also reads all 500 PRs (the safety sync, every 150 s without webhooks), and, for where the time
goes, the observation of the 500 sessions alone and the full PR sync alone.
Run: `.venv/bin/python bench/sweep.py [--sessions 500] [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PENDING = 0.2
PANE = "\n".join(
    ["╭──────────────────────────╮", '│ > Try "fix lint errors"  │', "╰──────────────────────────╯"]
)


def setup_django(base: Path) -> None:
    os.environ.update(
        AO_HOME=str(base / "home"),
        DJANGO_SETTINGS_MODULE="ao_site.settings",
        CLAUDE_CONFIG_DIR=str(base / "claude"),
        # embedded mode runs a message delivery inline; as in `ao start`, do not wait on the agent
        AO_INLINE_DELIVERY_WAIT="0",
    )
    for name in ("DATABASE_URL", "REDIS_URL", "AO_CONFIG"):
        os.environ.pop(name, None)
    if os.environ.get("BENCH_DATABASE_URL"):
        os.environ["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def register_noop_runtime() -> None:
    from integrations.base import Runtime
    from integrations.records import RuntimeHandle
    from integrations.registry import runtimes

    class BenchNoopRuntime(Runtime):
        """A runtime with no process behind it: always alive, always at the prompt."""

        def start(self, *, name, cwd, command, env) -> RuntimeHandle:
            return RuntimeHandle(runtime="bench-noop", name=name, data={})

        typed: dict[str, str] = {}

        def send_text(self, handle, text, *, clear=(), paste=False) -> None:
            self.typed[handle.name] = text  # a reaction's message: "typed", and echoed by the pane

        def read_output(self, handle, *, lines=200) -> str:
            text = self.typed.get(handle.name)
            return f"> {text}\n{PANE}" if text else PANE

        def is_alive(self, handle) -> bool:
            return True

        def kill(self, handle) -> None:
            pass

    runtimes.add("bench-noop", BenchNoopRuntime)


def write_transcript(claude_dir: Path, workspace: Path, index: int) -> None:
    from integrations.agent.claude_code import encode_project_path

    folder = claude_dir / "projects" / encode_project_path(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime.now(UTC) - timedelta(minutes=30)
    lines = []
    for i in range(40):
        at = (start + timedelta(seconds=30 * i)).isoformat().replace("+00:00", "Z")
        if i % 2 == 0:
            entry = {"type": "user", "message": {"role": "user", "content": f"step {i}"}}
        else:
            entry = {
                "type": "assistant",
                "message": {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "name": "Edit", "input": {"file_path": f"app{i}.py"}}]
                    if i < 39
                    else [{"type": "text", "text": "Done: the tests pass."}],
                    "stop_reason": "end_turn" if i == 39 else "tool_use",
                    "usage": {"input_tokens": 1200, "output_tokens": 300},
                },
            }
        lines.append(json.dumps({**entry, "timestamp": at, "sessionId": f"conv-{index}"}))
    (folder / f"conv-{index}.jsonl").write_text("\n".join(lines) + "\n")


class QueryCounter:
    """Every SQL statement the connection runs (Django's own query log stops at 9,000), by a
    rough template (literals replaced), to find the ones run once per session."""

    def __init__(self) -> None:
        self.count = 0
        self.templates: Counter[str] = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        self.templates[TEMPLATE.sub("?", sql)[:160]] += 1
        return execute(sql, params, many, context)


TEMPLATE = re.compile(r"'[^']*'|\b\d+\b|%s(?:, %s)*|\"s\d+_x\d+\"")


def measured(fn, counter: QueryCounter) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, SQL statements) of ``fn()``. CPU is this thread's plus the
    child processes' it waited for (git in the conflict watch); the fake GitHub answers on its own
    threads, so its CPU is not in the figure (nor is PostgreSQL's server's)."""
    from django.db import connection

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    counter.count = 0
    counter.templates.clear()
    cpu, kids, wall = time.thread_time(), children(), time.perf_counter()
    with connection.execute_wrapper(counter):
        fn()
    return time.thread_time() - cpu + children() - kids, time.perf_counter() - wall, counter.count


def run(n: int, repeat: int, base: Path, top: int, changed: float = 0.2) -> dict:
    from django.conf import settings

    from integrations.github.pool import forget_clients
    from sessions.flows import sweep
    from sessions.models import Project, Session
    from sessions.prs import prsync  # after django.setup(): they import the models
    from tests.fakes.github import FakeGitHub, push

    forget_clients()
    key = f"sweep{n}"
    counter = QueryCounter()
    with FakeGitHub() as gh:
        os.environ["GITHUB_TOKEN"] = gh.token
        repo = gh.add_repo(f"acme/{key}")
        project = Project.objects.create(
            key=key,
            repo=f"acme/{key}",
            path=str(REPO),
            session_prefix=key,
            scm="github",
            runtime="bench-noop",
            agent="claude-code",
            max_sessions=n + 10,
            plugin_settings={"scm": {"base_url": gh.base_url, "write_interval": 0}},
        )
        pulls = []
        for i in range(n):
            workspace = base / key / f"s-{i + 1}"
            workspace.mkdir(parents=True)
            subprocess.run(["git", "init", "-q", "-b", f"feat/{i}", str(workspace)], check=True)
            write_transcript(base / "claude", workspace, i)
            Session.objects.create(
                id=f"{key}-{i + 1}",
                project=project,
                number=i + 1,
                branch=f"feat/{i}",
                phase="running",
                agent="claude-code",
                host=settings.AO_HOST_NAME,
                workspace_path=str(workspace),
                runtime_handle={"runtime": "bench-noop", "name": f"{key}-{i + 1}", "data": {}},
            )
            pull = repo.add_pull(f"feat/{i}")
            repo.add_check_run(
                pull.head_sha, "test", status="in_progress" if i < n * PENDING else "completed"
            )
            repo.add_check_run(pull.head_sha, "lint", conclusion="success")
            gh.add_thread(pull, path="app.py", line=3, body="please rename", author="reviewer")
            pull.updated_at -= timedelta(minutes=5)
            pulls.append(pull)
        prsync.pull_requests_sync(project=project)  # discovery: every PR found by its branch
        for _ in range(2):  # warm-up: first observations, the probe's first looks
            sweep.project_sweep(project=Project.objects.get(pk=project.pk))

        out: dict[str, list[tuple[float, float, int]]] = {"quiet": [], "changed": [], "full": []}
        tops: dict[str, list[tuple[str, int]]] = {}
        for r in range(repeat):
            # a quiet sweep: nothing changed on GitHub (the probe's looks answer 304)
            out["quiet"].append(
                measured(lambda: sweep.project_sweep(project=Project.objects.get(pk=project.pk)), counter)
            )
            tops["quiet"] = counter.templates.most_common(top)
            # a sweep after a new commit on a share of the PRs (20 %): those are read and stored
            size = max(1, int(n * changed))
            for pull in pulls[(size * r) % n : (size * r) % n + size]:
                push(pull)
                pull.updated_at -= timedelta(seconds=10 + r)
            out["changed"].append(
                measured(lambda: sweep.project_sweep(project=Project.objects.get(pk=project.pk)), counter)
            )
            tops["changed"] = counter.templates.most_common(top)
            # a sweep with the full PR sync (every AO_PR_SYNC_FULL_INTERVAL, and without a probe)
            Project.objects.filter(pk=project.pk).update(last_pr_sync_at=None)
            out["full"].append(
                measured(lambda: sweep.project_sweep(project=Project.objects.get(pk=project.pk)), counter)
            )
            tops["full"] = counter.templates.most_common(top)
        statuses = sorted(set(Session.objects.filter(project=project).values_list("status", flat=True)))
    return {"n": n, "runs": out, "tops": tops, "statuses": statuses}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--top", type=int, default=0, help="print the N most frequent SQL templates")
    parser.add_argument(
        "--changed",
        type=float,
        default=0.2,
        help="share of the PRs with a new commit in the 'changed' sweep (0.05: few enough for REST reads)",
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ao-bench-sweep-"))
    if args.database:
        os.environ["BENCH_DATABASE_URL"] = args.database
    setup_django(base)
    register_noop_runtime()
    logging.disable(logging.INFO)  # the conflict watch notes every workspace without an origin
    from django.db import connection

    print(
        f"database: {connection.vendor}; runtime bench-noop (no process); Claude Code activity from transcripts"
    )
    for n in args.sessions:
        result = run(n, args.repeat, base, args.top, args.changed)
        print(f"\n{n} running sessions (statuses after: {', '.join(result['statuses'])})")
        for name, label in (
            ("quiet", "sweep, nothing changed on GitHub"),
            ("changed", f"sweep, {args.changed:.0%} of the PRs with a new commit (read and stored)"),
            ("full", "sweep with the full PR sync"),
        ):
            runs = result["runs"][name]
            cpu = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            queries = statistics.median(r[2] for r in runs)
            print(
                f"  {label}: CPU {cpu:.2f} s ({cpu / n * 1000:.2f} ms/session), wall {wall:.2f} s, "
                f"{queries:.0f} SQL statements ({queries / n:.1f}/session); "
                f"runs: {', '.join(f'{r[0]:.2f}s/{r[2]}q' for r in runs)}"
            )
            for template, count in result["tops"].get(name, ()):
                print(f"      {count:>6}  {template}")


if __name__ == "__main__":
    main()
