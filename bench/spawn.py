"""Benchmark: spawn latency and message latency with real git worktrees, tmux and the stand-in agent.

Measures, in embedded mode (SQLite, tasks run in-process):
- time from a spawn request to the stand-in agent's first prompt visible in its tmux pane,
  for 1 spawn and for N concurrent spawns (threads calling the same service the CLI calls);
- time from queueing a message (what `ao send` does) to its text appearing in the agent's pane.

Run: `.venv/bin/python bench/spawn.py [--concurrent 20] [--messages 20]`. Prints a table.

`--cli` times what a person (or an orchestrator) does instead: the `ao spawn` command as a
process, in rounds of `--at-once` separate processes started together (`--rounds` of them), and
counts the spawns that fail. Per spawn: the command's exit, the agent's prompt (`> `) visible in
its pane, and the task prompt received (the stand-in echoes it). A poller lists the tmux
server's sessions and reads their panes every 20 ms. Between rounds the round's agents are
stopped (their tmux sessions killed) so a round does not compete with the last one's agents.
Run: `.venv/bin/python bench/spawn.py --cli [--rounds 10] [--at-once 10] [--server]`. With
`--server`, a real `ao start` serves the same (clean) AO_HOME during the rounds, as on a machine
where ao runs: the commands then ask it to spawn (`sessions.cli.cli_relay`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "tests" / "agent_standin" / "standin_agent.py"


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_repo(base: Path) -> Path:
    origin, project = base / "origin.git", base / "project"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=base)
    git("init", "-q", "-b", "main", str(project), cwd=base)
    (project / "README.md").write_text("bench\n")
    git("add", "README.md", cwd=project)
    git("commit", "-q", "-m", "initial", cwd=project)
    git("remote", "add", "origin", str(origin), cwd=project)
    git("push", "-q", "-u", "origin", "main", cwd=project)
    return project


def pane(socket: str, name: str) -> str:
    out = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", f"={name}:", "-S", "-50"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout


def wait_for_text(socket: str, name: str, text: str, *, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in pane(socket, name):
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError(f"{text!r} never appeared in {name}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(ao: str, env: dict[str, str], *, cwd: Path, log: Path) -> subprocess.Popen:
    """`ao start` on a free port for this AO_HOME; returns once its CLI door (cli.json) is open."""
    import socket as sockets

    with sockets.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = log.open("w")
    proc = subprocess.Popen(
        [ao, "start", "--port", str(port), "--no-browser-link"], env=env, cwd=cwd, stdout=out, stderr=out
    )
    door = Path(env["AO_HOME"]) / "cli.json"
    deadline = time.monotonic() + 120
    while not (door.exists() and f":{port}/" in log.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"`ao start` did not come up: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc


def cli_main(args) -> None:
    """`ao spawn` as processes: see the module's docstring."""
    import json
    import resource

    base = Path(tempfile.mkdtemp(prefix="ao-bench-spawn-cli-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AO_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        AO_HOME=str(base / "home"),
        AO_SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",  # noqa: S106
        AO_WORKSPACES_ROOT=str(base / "workspaces"),
        AO_MAX_SESSIONS_PER_HOST="1000",
        AO_LOG_LEVEL="WARNING",
        HOME=str(base / "agent-home"),
        STANDIN_WORK_SECONDS="0.2",
        GIT_AUTHOR_NAME="ao bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="ao bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
    )
    (base / "agent-home").mkdir()
    ao = str(Path(sys.executable).with_name("ao"))
    socket = f"ao-bench-cli-{uuid.uuid4().hex[:6]}"
    shim = base / "claude"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n')
    shim.chmod(0o755)
    project = make_repo(base)
    config = base / "ao.config.yaml"
    config.write_text(
        "projects:\n  bench:\n    path: " + json.dumps(str(project)) + "\n    sessionPrefix: b\n"
        "    tracker: local\n    sweepInterval: 3600\n    orchestrator: {enabled: false}\n"
        f"    runtime: {{plugin: tmux, socket_name: {socket}, enter_delay: 0.05}}\n"
        f"    agent: {{plugin: claude-code, binary: {json.dumps(str(shim))}, home: {json.dumps(str(base / 'agent-home'))}}}\n"
    )
    for cmd in (["migrate", "--verbosity", "0"], ["config", "apply", str(config)]):
        subprocess.run([ao, *cmd], env=env, check=True, capture_output=True, timeout=120)
    server = start_server(ao, env, cwd=project, log=base / "ao-start.log") if args.server else None

    seen: dict[str, dict[str, float]] = {}  # session -> {"ready": t, "prompt": t}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            names = subprocess.run(
                ["tmux", "-L", socket, "list-sessions", "-F", "#{session_name}"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.split()
            for name in names:
                marks = seen.setdefault(name, {})
                if "prompt" in marks:
                    continue
                text, now = pane(socket, name), time.monotonic()
                if "> " in text:
                    marks.setdefault("ready", now)
                if "received: " in text:
                    marks["prompt"] = now
            time.sleep(0.02)

    def one(n: int) -> dict:
        started = time.monotonic()
        proc = subprocess.run(
            [ao, "spawn", "--project", "bench", "--prompt", f"bench task {n}"],
            env=env,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=300,
        )
        done = time.monotonic()
        session = proc.stdout.split(":")[0].strip() if proc.returncode == 0 else ""
        error = "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"started": started, "exit": done - started, "session": session, "error": error}

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    results: list[dict] = []
    round_walls: list[float] = []
    ready_walls: list[float] = []  # per round: the first start to the last agent's prompt visible
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        for r in range(args.rounds):
            n0 = r * args.at_once
            with ThreadPoolExecutor(max_workers=args.at_once) as pool:
                batch = list(pool.map(one, range(n0, n0 + args.at_once)))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(
                b["session"] and "prompt" not in seen.get(b["session"], {}) for b in batch
            ):
                time.sleep(0.05)
            for b in batch:
                marks = seen.get(b["session"], {})
                b["ready"] = marks["ready"] - b["started"] if "ready" in marks else None
                b["prompt"] = marks["prompt"] - b["started"] if "prompt" in marks else None
            ends = [b["started"] + b["prompt"] for b in batch if b["prompt"] is not None]
            if ends:
                round_walls.append(max(ends) - min(b["started"] for b in batch))
            shown = [b["started"] + b["ready"] for b in batch if b["ready"] is not None]
            if shown:
                ready_walls.append(max(shown) - min(b["started"] for b in batch))
            results += batch
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
            print(
                f"round {r + 1}: {sum(1 for b in batch if b['error'])} failed; "
                f"all agents' prompts visible after {ready_walls[-1] if shown else float('nan'):.2f} s, "
                f"all task prompts received after {round_walls[-1] if ends else float('nan'):.2f} s",
                flush=True,
            )
    finally:
        stop.set()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
        if server is not None:
            server.terminate()
            server.wait(60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    failed = [b for b in results if b["error"]]
    ok = [b for b in results if not b["error"]]

    def stats(key: str) -> str:
        values = [b[key] for b in ok if b[key] is not None]
        if not values:
            return "-"
        return (
            f"p50 {statistics.median(values):.2f} s  p95 {pct(values, 0.95):.2f} s  max {max(values):.2f} s"
        )

    print(
        f"{len(results)} `ao spawn` processes, {args.at_once} at once, {args.rounds} rounds, "
        + ("`ao start` serving" if server is not None else "no ao serving")
    )
    print(f"failures: {len(failed)}")
    for b in failed[:10]:
        print(f"  {b['error']}")
    print(f"command exit:           {stats('exit')}")
    print(f"agent prompt visible:   {stats('ready')}")
    print(f"task prompt received:   {stats('prompt')}")
    if ready_walls:
        print(f"a round, all agents' prompts visible: median {statistics.median(ready_walls):.2f} s")
    if round_walls:
        print(f"a round, all task prompts received: median {statistics.median(round_walls):.2f} s")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"CPU of the children (ao spawn, git, tmux, agents): {cpu / max(1, len(results)):.2f} CPU-s per spawn"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--cli", action="store_true", help="time `ao spawn` processes (see above)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--at-once", type=int, default=10)
    parser.add_argument("--server", action="store_true", help="with --cli: a real `ao start` serving")
    args = parser.parse_args()
    if args.cli:
        cli_main(args)
        return

    base = Path(tempfile.mkdtemp(prefix="ao-bench-spawn-"))
    os.environ.update(
        AO_HOME=str(base / "home"),
        AO_MAX_SESSIONS_PER_HOST=str(args.concurrent + 5),
        HOME=str(base / "agent-home"),
        STANDIN_WORK_SECONDS="0.2",
        GIT_AUTHOR_NAME="ao bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="ao bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
    )
    for name in ("DATABASE_URL", "REDIS_URL", "AO_CONFIG"):
        os.environ.pop(name, None)
    (base / "agent-home").mkdir()
    sys.path.insert(0, str(REPO))
    os.environ["DJANGO_SETTINGS_MODULE"] = "ao_site.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from sessions.agents import messaging, observing, spawning
    from sessions.models import Project

    socket = f"ao-bench-{uuid.uuid4().hex[:6]}"
    bin_dir = base / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "claude"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n')
    shim.chmod(0o755)
    project = Project.objects.create(
        key="bench",
        path=str(make_repo(base)),
        session_prefix="b",
        agent="claude-code",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={"agent": {"binary": str(shim), "home": str(base / "agent-home")},
                         "runtime": {"socket_name": socket, "enter_delay": 0.05}},
    )  # fmt: skip
    from django.conf import settings

    settings.AO_WORKSPACES_ROOT = base / "workspaces"

    def spawn_and_wait(n: int) -> float:
        from django.db import connection

        started = time.monotonic()
        session = spawning.session_spawn(project=project, prompt=f"bench task {n}")
        session.refresh_from_db()
        if session.phase != "running":
            raise RuntimeError(f"{session.id}: {session.error}")
        seen = wait_for_text(socket, session.id, "> ")
        connection.close()
        return seen - started

    try:
        single = [spawn_and_wait(0)]
        with ThreadPoolExecutor(max_workers=args.concurrent) as pool:
            t0 = time.monotonic()
            concurrent = list(pool.map(spawn_and_wait, range(1, args.concurrent + 1)))
            wall = time.monotonic() - t0

        # message latency: queue a message the way `ao send` does, wait until the pane shows it
        target = project.sessions.order_by("created_at").first()
        wait_for_text(socket, target.id, "received: You are", timeout=60)
        message_times = []
        for i in range(args.messages):
            while True:  # wait until the agent is at its prompt again
                observing.session_observe(session=target)
                target.refresh_from_db()
                if target.activity in ("ready", "idle"):
                    break
                time.sleep(0.05)
            text = f"ping-{i}-{uuid.uuid4().hex[:6]}"
            seen: list[float] = []
            watcher = threading.Thread(
                target=lambda text=text, seen=seen: seen.append(
                    wait_for_text(socket, target.id, f"received: {text}")
                )
            )
            watcher.start()
            t = time.monotonic()
            # delivery (and the delivery service's own confirmation watch) runs inline, as in `ao send`
            messaging.message_queue(session=target, text=text, sender_name="bench")
            watcher.join(timeout=60)
            message_times.append(seen[0] - t)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)

    print(f"spawn → first prompt visible, 1 spawn:          {single[0] * 1000:8.0f} ms")
    print(
        f"spawn → first prompt visible, {args.concurrent} concurrent:     "
        f"p50 {statistics.median(concurrent) * 1000:6.0f} ms  p95 {pct(concurrent, 0.95) * 1000:6.0f} ms  "
        f"max {max(concurrent) * 1000:6.0f} ms  (all {args.concurrent} ready after {wall * 1000:.0f} ms)"
    )
    print(
        f"ao send → text in the agent's pane ({args.messages} msgs): "
        f"p50 {statistics.median(message_times) * 1000:6.0f} ms  p95 {pct(message_times, 0.95) * 1000:6.0f} ms"
    )


if __name__ == "__main__":
    main()
