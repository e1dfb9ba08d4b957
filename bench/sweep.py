"""Benchmark: one whole sweep of a project with 500 running sessions (`agents.project_sweep`).

Everything a sweep does runs for real except the runtime: the PR sync (the real GitHubSCM plugin
and rate-aware client against the fake GitHub, tests/fakes/github.py: 500 open PRs, two checks and
one review thread each, 20 % with CI running), per session the runtime probe, the pane read and
the agent's activity detection (the real Claude Code plugin reading a transcript of 40 entries per
session from its own `~/.claude/projects/<workspace>/` directory, plus the pane), storing the
facts, derivation, reactions, drift watch, admission and the orchestrator hooks (the conflict
watch runs git in each workspace: an empty `git init` repository per session), on SQLite
(embedded mode, background work inline).

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
import statistics
import subprocess
import sys
import tempfile
import time
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
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def register_noop_runtime() -> None:
    from integrations.base import Runtime, RuntimeHandle
    from integrations.registry import runtimes

    class BenchNoopRuntime(Runtime):
        """A runtime with no process behind it: always alive, always at the prompt."""

        def start(self, *, name, cwd, command, env) -> RuntimeHandle:
            return RuntimeHandle(runtime="bench-noop", name=name, data={})

        typed: dict[str, str] = {}

        def send_text(self, handle, text, *, clear=()) -> None:
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


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ao-bench-sweep-"))
    setup_django(base)
    register_noop_runtime()
    logging.disable(logging.INFO)  # the conflict watch notes every workspace without an origin

    from django.conf import settings
    from django.db import connection

    from integrations.github.client import forget_clients
    from sessions import agents, prsync
    from sessions.models import Project, Session
    from tests.fakes.github import FakeGitHub

    n = args.sessions
    forget_clients()
    with FakeGitHub() as gh:
        os.environ["GITHUB_TOKEN"] = gh.token
        repo = gh.add_repo("acme/sweep")
        project = Project.objects.create(
            key="sweep",
            repo="acme/sweep",
            path=str(REPO),
            session_prefix="s",
            scm="github",
            runtime="bench-noop",
            agent="claude-code",
            max_sessions=n + 10,
            plugin_settings={"scm": {"base_url": gh.base_url, "write_interval": 0}},
        )
        for i in range(n):
            workspace = base / "ws" / f"s-{i + 1}"
            workspace.mkdir(parents=True)
            subprocess.run(["git", "init", "-q", "-b", f"feat/{i}", str(workspace)], check=True)
            write_transcript(base / "claude", workspace, i)
            Session.objects.create(
                id=f"s-{i + 1}",
                project=project,
                number=i + 1,
                branch=f"feat/{i}",
                phase="running",
                agent="claude-code",
                host=settings.AO_HOST_NAME,
                workspace_path=str(workspace),
                runtime_handle={"runtime": "bench-noop", "name": f"s-{i + 1}", "data": {}},
            )
            pull = repo.add_pull(f"feat/{i}")
            repo.add_check_run(
                pull.head_sha, "test", status="in_progress" if i < n * PENDING else "completed"
            )
            repo.add_check_run(pull.head_sha, "lint", conclusion="success")
            gh.add_thread(pull, path="app.py", line=3, body="please rename", author="reviewer")
        prsync.pull_requests_sync(project=project)  # discovery: every PR found by its branch
        agents.project_sweep(project=Project.objects.get(pk=project.pk))  # warm-up: first observations

        partial, full, queries = [], [], []
        for _ in range(args.repeat):
            fresh = Project.objects.get(pk=project.pk)
            settings.DEBUG = True
            connection.queries_log.clear()
            partial.append(timed(lambda fresh=fresh: agents.project_sweep(project=fresh)))
            queries.append(len(connection.queries))
            settings.DEBUG = False
            Project.objects.filter(pk=project.pk).update(last_pr_sync_at=None)  # the safety sync is due
            fresh = Project.objects.get(pk=project.pk)
            full.append(timed(lambda fresh=fresh: agents.project_sweep(project=fresh)))
        sessions = list(Session.objects.filter(project=project).select_related("project"))
        observe = timed(lambda: [agents.session_observe(session=s) for s in sessions])
        sync = timed(lambda: prsync.pull_requests_sync(project=project))
        statuses = sorted(set(Session.objects.filter(project=project).values_list("status", flat=True)))

    print(
        f"{n} running sessions, SQLite, runtime bench-noop (no process), "
        "Claude Code activity from transcripts"
    )
    print(f"statuses after the sweeps: {', '.join(statuses)}")
    print(
        f"sweep, partial PR sync ({int(n * PENDING)} PRs with CI pending): "
        f"median {statistics.median(partial):.2f} s (runs: {', '.join(f'{t:.2f}' for t in partial)}); "
        f"~{statistics.median(queries)} SQL queries"
    )
    print(
        f"sweep with the full PR sync ({n} PRs): median {statistics.median(full):.2f} s "
        f"(runs: {', '.join(f'{t:.2f}' for t in full)})"
    )
    print(f"observing the {n} sessions alone: {observe:.2f} s ({observe / n * 1000:.1f} ms per session)")
    print(f"full PR sync alone: {sync:.2f} s")


if __name__ == "__main__":
    main()
