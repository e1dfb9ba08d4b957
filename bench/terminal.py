"""Benchmark: the browser terminal through a real `ao start` (daphne + relay + tmux).

Measures:
- keystroke → echo latency through the websocket relay (operator socket → relay pty → tmux →
  bash's readline echo → relay → the same socket), p50/p95/max, on an idle server and again
  while another session floods its pane (`yes`) to 20 viewers;
- resident memory (RSS) of the ao process: before, peak and end of the flood with 20 viewers
  (15 reading and acknowledging like a browser, 5 connected but never reading);
- the flood delivered to the reading viewers, and the relay's Ctrl-C → prompt time under it.

The viewers run in a child process (their own GIL) so they do not slow the measuring client.
Ctrl-C is sent from a second operator socket that does not read: with Python's sync websockets
client, a socket busy receiving a flood can starve its own ``send`` for a second or more (its
reader thread holds the connection's mutex), which would measure the client, not ao. The
machine is shared: run it on a quiet one, numbers under load are several times worse.

Run: `.venv/bin/python bench/terminal.py [--keys 200] [--viewers 20] [--flood-seconds 10]`.
Prints a table. Uses an isolated tmux server (-L) and a throwaway AO_HOME.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from websockets.sync.client import ClientConnection, connect

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_embedded import (  # noqa: E402 - after the path insert
    LINK_RE,
    ao_env,
    ao_process,
    django_shell,
    free_port,
    git_repo,
    login_with_link,
)

PROMPT = "bench$ "
ACK_EVERY = 32 * 1024  # what terminal.js does
SEED = """
from sessions.models import Project, Session
project = Project.objects.create(
    key="bench", name="Bench", path={path!r}, session_prefix="bench", runtime="tmux",
    plugin_settings={{"runtime": {{"socket_name": {socket!r}}}}},
)
for n in (1, 2):
    Session.objects.create(
        id=f"bench-{{n}}", project=project, number=n, agent="claude-code", phase="running",
        runtime_state="alive", status="working", zone="working",
        runtime_handle={{"runtime": "tmux", "name": f"bench-{{n}}", "data": {{"socket_name": {socket!r}}}}},
    )
print("seeded")
"""


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10, check=False
    ).stdout


def start_shell(socket: str, name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    subprocess.run(
        ["tmux", "-L", socket, "new-session", "-d", "-s", name, "-x", "120", "-y", "40",
         "--", "env", f"PS1={PROMPT}", "HISTFILE=/dev/null", "bash", "--norc", "--noprofile", "-i"],
        env=env, check=True, timeout=10,
    )  # fmt: skip
    tmux(socket, "set-option", "-t", f"={name}", "status", "off")  # no clock redraws in the echo stream


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_terminal(port: int, cookie: str, session: str) -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{port}/ws/terminal/{session}/",
        origin=f"http://127.0.0.1:{port}",
        additional_headers={"Cookie": cookie},
        open_timeout=10,
        max_size=None,
    )


def drain(ws: ClientConnection, seconds: float, received: list[int] | None = None) -> None:
    deadline = time.monotonic() + seconds
    total = acked = 0
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = ws.recv(timeout=remaining)
        except TimeoutError:
            break
        if isinstance(message, bytes):
            total += len(message)
            if total - acked >= ACK_EVERY:
                acked = total
                ws.send(json.dumps({"type": "ack", "bytes": total}))
    if received is not None:
        received.append(total)


def echo_latencies(ws: ClientConnection, keys: int) -> list[float]:
    """Type one letter at a time; time until a frame carrying it comes back."""
    total = 0
    samples = []
    letters = "abcdefghijklmnopqrstuvwxyz"
    for i in range(keys):
        char = letters[i % len(letters)]
        if i and i % len(letters) == 0:
            ws.send(json.dumps({"type": "input", "data": "\x15"}))  # C-u: clear the line
            drain(ws, 0.1)
        sent = time.perf_counter()
        ws.send(json.dumps({"type": "input", "data": char}))
        while True:
            message = ws.recv(timeout=5)
            if isinstance(message, bytes):
                total += len(message)
                ws.send(json.dumps({"type": "ack", "bytes": total}))
                if char.encode() in message:
                    samples.append(time.perf_counter() - sent)
                    break
        time.sleep(0.01)
    ws.send(json.dumps({"type": "input", "data": "\x15"}))
    return samples


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Viewer(threading.Thread):
    def __init__(self, port: int, cookie: str, session: str, *, reads: bool, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.ws = open_terminal(port, cookie, session)
        self.reads, self.stop, self.bytes, self.acked, self.resyncs = reads, stop, 0, 0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.reads:
                time.sleep(0.1)  # connected, never reading: TCP and the ack window fill up
                continue
            try:
                message = self.ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except Exception:
                return
            if isinstance(message, bytes):
                self.bytes += len(message)
                if self.bytes - self.acked >= ACK_EVERY:  # like terminal.js
                    self.acked = self.bytes
                    self.ws.send(json.dumps({"type": "ack", "bytes": self.bytes}))
            elif json.loads(message)["type"] == "resync":
                self.resyncs += 1

    def close(self) -> None:
        self.ws.close()


def run_viewers(port, cookie, count, stuck, stop, results) -> None:
    """In a child process (its own GIL): ``count`` viewers of the flooding session."""
    local_stop = threading.Event()
    viewers = [Viewer(port, cookie, "bench-2", reads=i >= stuck, stop=local_stop) for i in range(count)]
    for viewer in viewers:
        viewer.start()
    stop.wait()
    local_stop.set()
    reading = [v for v in viewers if v.reads]
    results.put(([v.bytes for v in reading], sum(v.resyncs for v in reading)))
    for viewer in viewers:
        viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--stuck", type=int, default=5, help="viewers that never read")
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    args = parser.parse_args()

    socket = f"ao-bench-{uuid.uuid4().hex[:6]}"
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ao-bench-term-") as tmp:
        base = Path(tmp)
        (base / "home").mkdir()
        (base / "repo").mkdir()
        workdir = git_repo(base / "repo")
        port = free_port()
        env = ao_env(base / "home")
        start_shell(socket, "bench-1")
        start_shell(socket, "bench-2")
        try:
            with ao_process(["start", "--port", str(port)], env, cwd=workdir) as ao:
                cookie = login_with_link(ao.wait_for(LINK_RE).group(1))
                django_shell(env, SEED.format(path=str(workdir), socket=socket))
                pid = ao.proc.pid

                operator = open_terminal(port, cookie, "bench-1")
                drain(operator, 1.0)
                idle = echo_latencies(operator, args.keys)
                rss_before = rss_kib(pid)

                stop = multiprocessing.get_context("spawn").Event()
                results = multiprocessing.get_context("spawn").Queue()
                crowd = multiprocessing.get_context("spawn").Process(
                    target=run_viewers,
                    args=(port, cookie, args.viewers, args.stuck, stop, results),
                    daemon=True,
                )
                crowd.start()
                time.sleep(2.0)  # connected and attached
                flooder = open_terminal(port, cookie, "bench-2")
                control = open_terminal(port, cookie, "bench-2")  # an operator who only types
                drain(flooder, 0.5)
                flooder.send(json.dumps({"type": "input", "data": "yes " + "flood-" * 15 + "\r"}))
                peak = rss_before
                samples: list[float] = []
                sampler_stop = threading.Event()

                def sample_rss() -> None:
                    nonlocal peak
                    while not sampler_stop.is_set():
                        peak = max(peak, rss_kib(pid))
                        time.sleep(0.05)

                sampler = threading.Thread(target=sample_rss, daemon=True)
                sampler.start()
                flood_started = time.monotonic()
                cpu_started = cpu_seconds(pid)
                time.sleep(1.0)
                samples.extend(echo_latencies(operator, min(args.keys, 100)))
                time.sleep(max(0.0, args.flood_seconds - (time.monotonic() - flood_started)))
                flood_elapsed = time.monotonic() - flood_started
                cpu_share = (cpu_seconds(pid) - cpu_started) / flood_elapsed
                rss_flood_end = rss_kib(pid)

                sent = time.monotonic()
                control.send(json.dumps({"type": "input", "data": "\x03"}))
                while time.monotonic() - sent < 10:
                    lines = [
                        row
                        for row in tmux(socket, "capture-pane", "-p", "-t", "=bench-2:").splitlines()
                        if row.strip()
                    ]
                    if lines and lines[-1].strip() == PROMPT.strip():
                        break
                    time.sleep(0.01)
                ctrl_c = time.monotonic() - sent
                sampler_stop.set()
                stop.set()
                reading_bytes, resyncs = results.get(timeout=30)
                crowd.join(10)
                delivered = statistics.mean(reading_bytes) / flood_elapsed if reading_bytes else 0
                for ws in (flooder, control, operator):
                    ws.close()
                time.sleep(1.0)
                rss_after = rss_kib(pid)
        finally:
            tmux(socket, "kill-server")

    def latency_row(name: str, values: list[float]) -> tuple[str, str]:
        return name, (
            f"p50 {statistics.median(values) * 1000:6.2f} ms   p95 {pct(values, 95) * 1000:6.2f} ms   "
            f"max {max(values) * 1000:6.2f} ms   (n={len(values)})"
        )

    rows.append(latency_row("keystroke → echo, idle", idle))
    rows.append(latency_row(f"keystroke → echo, {args.viewers} viewers on a flood", samples))
    rows.append(("ao CPU during the flood", f"{cpu_share * 100:7.0f} %  (one core = 100 %)"))
    rows.append(("RSS before the flood", f"{rss_before / 1024:7.1f} MiB"))
    rows.append(
        (
            f"RSS peak during {flood_elapsed:.0f} s flood",
            f"{peak / 1024:7.1f} MiB  (+{(peak - rss_before) / 1024:.1f})",
        )
    )
    rows.append(("RSS at the end of the flood", f"{rss_flood_end / 1024:7.1f} MiB"))
    rows.append(("RSS after everyone left", f"{rss_after / 1024:7.1f} MiB"))
    rows.append(
        ("flood delivered per reading viewer", f"{delivered / 1024 / 1024:7.2f} MiB/s  ({resyncs} resyncs)")
    )
    rows.append(
        ("Ctrl-C → prompt during the flood", f"{ctrl_c * 1000:7.0f} ms  (sent by a second operator socket)")
    )
    width = max(len(name) for name, _ in rows)
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 60}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
