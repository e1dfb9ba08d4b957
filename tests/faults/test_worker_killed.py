"""Real `ao worker` processes SIGKILLed at the worst moments of a scale-out install (PostgreSQL,
a private Redis, `ao beat`): a worker dies after it claimed a message and before it typed it
(twice: the first worker at its 3rd claim, the worker that replaces it at its 1st), then a worker
dies in the middle of a sweep, holding the project's sweep lease. Counted at the agent: every
message arrives exactly once; and the sweeps resume within the lease's bound.

The kills come from ``AO_FAILPOINTS`` (ao_site/failpoints.py): the process SIGKILLs itself at the
named point, so the fault lands at the same place on every run."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.faults.test_db_terminated import (
    LOGGING_AGENT,
    MESSAGE_STATES,
    RUNNING,
    RUNNING_COUNT,
    SEND,
    SETTLED,
    SPAWN,
    db_value,
    eventually,
)
from tests.helpers.procs import SHORT_LEASES
from tests.test_embedded import AoProcess, ao_env, django_shell, git_repo, run_ao

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(480)]

SESSIONS = 3
MESSAGES = 3  # per session
# The processes run with SHORT_LEASES (claim 10 s, sweep 15 s): the same recovery as with the
# production leases (30 s, 45 s), sooner. The bounds are timeouts, with room for a busy machine.
CLAIM_BOUND = 120  # s: the claim lease and the sweeps that follow it
SWEEP_BOUND = 90  # s: a dead sweeper holds its project no longer than its lease

TIMELINE = """
from sessions.models import Event, Message
for m in Message.objects.order_by("pk"):
    print(m.pk, m.session_id, m.text[:20], m.state, m.attempts, m.last_error[:60])
for e in Event.objects.filter(kind__startswith="message").order_by("pk"):
    print(e.created_at.time(), e.session_id, e.kind, e.summary[:140])
"""

LAST_SWEPT = "SELECT coalesce(max(extract(epoch FROM last_swept_at)), 0) FROM agent_sessions_project"


def test_workers_killed_after_a_claim_and_mid_sweep_lose_nothing(
    tmp_path: Path, fresh_postgres, private_redis, tmux_server, request
):
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    agent_log = tmp_path / "agent.log"
    script = tmp_path / "agent.py"
    script.write_text(LOGGING_AGENT)
    env = ao_env(
        tmp_path / "home",
        DATABASE_URL=fresh_postgres,
        REDIS_URL=private_redis.url,
        AO_CHANNEL_PREFIX=f"ao-fault-{secrets.token_hex(4)}",
        AO_SWEEP_INTERVAL="1",
        **SHORT_LEASES,
        AO_HOST_NAME="fault-w",
        AO_WORKSPACES_ROOT=str(tmp_path / "workspaces"),
    )
    assert run_ao(["migrate", "-v", "0"], env).returncode == 0
    processes: dict[str, AoProcess] = {}

    def start(name: str, args: list[str], failpoints: str = "") -> AoProcess:
        process = AoProcess(args, {**env, "AO_FAILPOINTS": failpoints}, cwd=tmp_path)
        processes[name] = process
        return process

    def worker(name: str, failpoints: str = "") -> AoProcess:
        process = start(name, ["worker", "--host", "fault-w", "--concurrency", "4"], failpoints)
        process.wait_for(r"queues ao, host\.fault-w")
        return process

    def died(process: AoProcess, point: str) -> None:
        assert eventually(lambda: process.proc.poll() is not None, CLAIM_BOUND), process.output
        assert f"failpoint {point} reached" in process.output, process.output

    def save_logs() -> None:
        for name, process in processes.items():
            process.kill()
            (tmp_path / f"{name}.log").write_text(process.output)

    request.addfinalizer(save_logs)

    start("beat", ["beat"]).wait_for(r"ao beat is scheduling")
    first = worker("worker-1", "message.claimed@3")
    spawned = []
    for count in range(1, SESSIONS + 1):
        spawn = SPAWN.format(repo=str(repo), script=str(script), log=str(agent_log), socket=tmux_server)
        spawned.append(django_shell(env, spawn).strip())
        assert eventually(lambda n=count: db_value(fresh_postgres, RUNNING_COUNT) == n, 60), (
            django_shell(env, RUNNING),
            first.output,
        )
    expected = sorted(f"fault-msg {sid} {n}" for sid in spawned for n in range(MESSAGES))
    assert django_shell(env, SEND.format(messages=MESSAGES)).strip() == "queued"

    # The first worker dies holding a claim on its 3rd message; the one that replaces it dies on
    # its first claim; two clean workers take over 5 s later.
    died(first, "message.claimed")
    second = worker("worker-2", "message.claimed@1")
    died(second, "message.claimed")
    time.sleep(5)
    worker("worker-3")
    worker("worker-4")

    def settled() -> str:
        out = django_shell(env, SETTLED)
        return out if out.strip() == "['confirmed']" else ""

    assert eventually(lambda: db_value(fresh_postgres, MESSAGE_STATES) == ["confirmed"], CLAIM_BOUND * 2), (
        django_shell(env, SETTLED)
    )
    assert eventually(settled, 60), django_shell(env, SETTLED)

    def received() -> list[str]:
        return sorted(line for line in agent_log.read_text().splitlines() if line.startswith("fault-msg"))

    # confirmed is what ao saw; the agent's own log may trail it by its second of "work" per message
    eventually(lambda: len(received()) >= len(expected), 60)
    assert received() == expected, django_shell(env, TIMELINE)  # none lost, none typed twice

    # Mid-sweep: only a worker that dies inside its next sweep runs; then a clean one.
    for name in ("worker-3", "worker-4"):
        processes[name].kill()
    sweeper = worker("worker-5", "sweep.claimed@1")
    died(sweeper, "sweep.claimed")
    killed_at = time.time()
    worker("worker-6")
    assert eventually(lambda: float(db_value(fresh_postgres, LAST_SWEPT)) > killed_at, SWEEP_BOUND), (
        processes["worker-6"].output
    )
    assert "WRONG" not in django_shell(env, SETTLED)
    assert processes["beat"].proc.poll() is None, processes["beat"].output
    for name in ("beat", "worker-6"):
        assert "Traceback" not in processes[name].output, processes[name].output
