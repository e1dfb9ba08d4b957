"""Benchmark: CPU and wall time of one `ao` command start, as a process, the way agents call it.

Measures, for each command, the CPU seconds (user + system, from the OS's accounting of the
finished child) and wall seconds of N runs after one warm-up, and prints min / median / max:
- `ao version`;
- `ao report working "note"` and `ao pr create --title ...` from an agent's environment
  (AO_URL + AO_SESSION + AO_TOKEN) against a tiny local HTTP server that answers like ao;
- `ao status`, `ao session ls` and `ao send` against an AO_HOME with no ao running (they load
  Django and read the database themselves);
- the floor under those three: a minimal Django (auth and contenttypes only, the same SQLite
  database) that sets up and runs one query, the least any command that loads Django can cost;
- the same three while a real `ao start` serves that AO_HOME (they ask it: sessions.cli.cli_relay);
  `ao send` goes to a seeded session whose agent is not running, so the figure is the command,
  not the agent (`--no-start` leaves these out).

PYTHONDONTWRITEBYTECODE is removed from the children's environment: a user's install has its
.pyc files, and without them every start compiles ao's modules again.

Run: `.venv/bin/python bench/cli_start.py [--runs 10]`. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AO = [str(Path(sys.executable).with_name("ao"))]


class FakeAo(BaseHTTPRequestHandler):
    """Answers the two agent endpoints the way ao does (shape only; no database)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.endswith("/report"):
            answer = {"session": "bench-1", "status": body.get("state", "working")}
        elif self.path.endswith("/pr"):
            answer = {"created": True, "number": 1, "branch": "feat/x", "url": "", "title": body.get("title")}
        else:
            self.send_error(404)
            return
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def measure(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """``ao <args>`` (or, for the floor, the command ``args`` itself) ``runs`` times."""
    command = args if args[0] == sys.executable else [*AO, *args]
    cpu, wall = [], []
    for i in range(runs + 1):  # the first run warms the caches and is not counted
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 and args[0] != "send":  # a send may be refused: timed all the same
            raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr.strip()}")
        if i:
            cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
            wall.append(elapsed)
    return cpu, wall


SEED = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from sessions.models import Project, Session
project = Project.objects.create(key="bench", name="bench", path={path!r}, session_prefix="bench", runtime="process")
for n in range(1, 11):
    Session.objects.create(id=f"bench-{{n}}", project=project, number=n, agent="claude-code", issue_ref=str(n),
        issue_title="a task", phase="running", runtime_state="alive", activity="active", status="working",
        zone="working")
"""

# The floor: Django with no app of ao's, set up, and one query on the bench's database.
FLOOR = """
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}},
    USE_TZ=True,
)
django.setup()
from django.contrib.auth.models import User
User.objects.count()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-start", action="store_true", help="leave out the cases with `ao start` running")
    opts = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        skip = ("AO_", "DATABASE_URL", "REDIS_URL", "PYTHONDONTWRITEBYTECODE")
        base = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        base.update(AO_HOME=tmp, AO_SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")  # noqa: S106
        base.update(
            AO_INLINE_DELIVERY_WAIT="0", AO_LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="ao_site.settings"
        )
        subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "shell", "-c", SEED.format(path=tmp)],
            env=base, cwd=REPO, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        agent = dict(
            base,
            AO_URL=f"http://127.0.0.1:{server.server_port}",
            AO_SESSION="bench-1",
            AO_TOKEN="bench-token",  # noqa: S106 - the fake server accepts any token
        )
        reads = [
            ("ao status", ["status"], base),
            ("ao session ls", ["session", "ls"], base),
            ("ao send", ["send", "bench-2", "hello"], base),
        ]
        cases = [
            ("ao version", ["version"], base),
            ("ao report working (agent)", ["report", "working", "adding the feature"], agent),
            ("ao pr create (agent)", ["pr", "create", "--title", "Add the feature"], agent),
            *((f"{label} (no ao running)", args, env) for label, args, env in reads),
            (
                "minimal Django (the floor)",
                [sys.executable, "-c", FLOOR.format(db=f"{tmp}/ao.sqlite3")],
                base,
            ),
        ]
        print(f"{opts.runs} runs each after one warm-up; CPU = user + system seconds of the process")
        print(f"{'command':<34} {'CPU-s min/median/max':>24} {'wall-s min/median/max':>24}")

        def row(label: str, args: list[str], env: dict[str, str]) -> None:
            cpu, wall = measure(args, env, opts.runs)
            print(
                f"{label:<34} {min(cpu):>7.3f} {statistics.median(cpu):>7.3f} {max(cpu):>7.3f}"
                f"  {min(wall):>7.3f} {statistics.median(wall):>7.3f} {max(wall):>7.3f}",
                flush=True,
            )

        for case in cases:
            row(*case)
        if not opts.no_start:
            port = free_port()
            ao = subprocess.Popen(
                [*AO, "start", "--port", str(port), "--no-browser-link"],
                env=dict(base, AO_SWEEP_INTERVAL="3600"), cwd=tmp,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while not (Path(tmp) / "cli.json").exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(2)  # the listener binds after the file is written
                for label, args, env in reads:
                    row(f"{label} (ao start running)", args, env)
            finally:
                ao.terminate()
                ao.wait(60)
    server.shutdown()


if __name__ == "__main__":
    main()
