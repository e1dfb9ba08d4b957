"""Benchmark: CPU and wall time of one `ao` command start, as a process, the way agents call it.

Measures, for each command, the CPU seconds (user + system, from the OS's accounting of the
finished child) and wall seconds of N runs after one warm-up, and prints min / median / max:
- `ao version`;
- `ao report working "note"` and `ao pr create --title ...` from an agent's environment
  (AO_URL + AO_SESSION + AO_TOKEN) against a tiny local HTTP server that answers like ao;
- `ao status` against an empty AO_HOME (a read command that still loads Django).

Run: `.venv/bin/python bench/cli_start.py [--runs 10]`. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    cpu, wall = [], []
    for i in range(runs + 1):  # the first run warms the caches and is not counted
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([*AO, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 and args[0] != "status":
            raise SystemExit(f"ao {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        if i:
            cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
            wall.append(elapsed)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AO_", "DATABASE_URL", "REDIS_URL"))}
        base.update(AO_HOME=tmp, AO_SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")  # noqa: S106
        agent = dict(
            base,
            AO_URL=f"http://127.0.0.1:{server.server_port}",
            AO_SESSION="bench-1",
            AO_TOKEN="bench-token",  # noqa: S106 - the fake server accepts any token
        )
        cases = [
            ("ao version", ["version"], base),
            ("ao report working (agent)", ["report", "working", "adding the feature"], agent),
            ("ao pr create (agent)", ["pr", "create", "--title", "Add the feature"], agent),
            ("ao status (no ao running)", ["status"], base),
        ]
        print(f"{opts.runs} runs each after one warm-up; CPU = user + system seconds of the process")
        print(f"{'command':<28} {'CPU-s min/median/max':>24} {'wall-s min/median/max':>24}")
        for label, args, env in cases:
            cpu, wall = measure(args, env, opts.runs)
            print(
                f"{label:<28} {min(cpu):>7.3f} {statistics.median(cpu):>7.3f} {max(cpu):>7.3f}"
                f"  {min(wall):>7.3f} {statistics.median(wall):>7.3f} {max(wall):>7.3f}"
            )
    server.shutdown()


if __name__ == "__main__":
    main()
