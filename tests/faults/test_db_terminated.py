"""Every database connection of a scale-out install terminated (``pg_terminate_backend``) three
times, 2 s apart, while messages are being delivered and sweeps run: `ao web`, `ao worker` and
`ao beat` stay up, every message reaches its agent exactly once, every session's status is what
its facts give, and each process logs a line per outage instead of a traceback per broken query."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.helpers.procs import SHORT_LEASES
from tests.test_embedded import ao_env, ao_process, django_shell, free_port, git_repo, run_ao, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(400)]

SESSIONS = 3
MESSAGES = 4  # per session
OUTAGES = 3

# The agent: a prompt, and every line it receives appended to a log it shares with the others
# (one O_APPEND write per line), then a second of "work" before the prompt comes back.
LOGGING_AGENT = """
import sys, time
log = sys.argv[1]
print('> ', end='', flush=True)
for line in sys.stdin:
    line = line.strip().replace('\\x1b[200~', '').replace('\\x1b[201~', '')
    if line:
        with open(log, 'a') as f:
            f.write(line + '\\n')
        print('received: ' + line, flush=True)
        if line.startswith('fault-msg'):
            time.sleep(1)
    print('> ', end='', flush=True)
"""

SPAWN = """
import sys
from sessions.agents import spawning
from sessions.models import Project
project = Project.objects.filter(key="dbf").first() or Project.objects.create(
    key="dbf", name="db faults", path={repo!r}, session_prefix="dbf", agent="custom", runtime="tmux",
    tracker="local", sweep_interval=1,
    plugin_settings={{
        "agent": {{"command": [sys.executable, "-u", {script!r}, {log!r}], "ready_pattern": r"^> ?$"}},
        "runtime": {{"socket_name": {socket!r}, "enter_delay": 0.05}},
    }},
)
print(spawning.session_spawn(project=project, by=None).pk)
"""

RUNNING = """
from sessions.models import Session
print(Session.objects.filter(phase="running", runtime_state="alive").count())
print(list(Session.objects.values_list("pk", "phase", "runtime_state", "activity", "status", "error")))
"""

SEND = """
from sessions.agents import messaging
from sessions.models import Session
for n in range({messages}):
    for session in Session.objects.select_related("project").order_by("pk"):
        messaging.session_send(session=session, text=f"fault-msg {{session.pk}} {{n}}", sender_name="fault")
print("queued")
"""

# state of every message; a session whose stored status differs from what its facts give
SETTLED = """
from sessions.domain import lifecycle; from sessions.core import services
from sessions.models import Message, Session
print(sorted(set(Message.objects.filter(text__startswith="fault-msg").values_list("state", flat=True))))
for session in Session.objects.select_related("project"):
    derived = lifecycle.derive(services.session_facts(session))
    if derived.status != session.status:
        print("WRONG", session.pk, session.status, derived.status)
"""

SWEPT_SINCE = """
from sessions.models import Project
print(Project.objects.filter(last_swept_at__gt={since!r}).count())
"""


def eventually(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def _admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql", parts.netloc, "/postgres", "", "")), parts.path.lstrip("/")


def backends(database_url: str) -> int:
    """How many connections ao's processes hold to the database now."""
    import psycopg

    admin, name = _admin_url(database_url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [name]
        ).fetchone()
    return row[0]


def db_value(database_url: str, query: str, params: list | None = None):
    """One value from a plain query on ao's database. The polls use this, not a `django_shell`
    (a Django start-up each, about a second of CPU: polled every half second they slowed the
    very processes the test waits for); what they wait for is the same stored fact."""
    import psycopg

    url = urlunsplit(("postgresql", *urlsplit(database_url)[1:]))
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(query, params).fetchone()[0]


RUNNING_COUNT = (
    "SELECT count(*) FROM agent_sessions_session WHERE phase = 'running' AND runtime_state = 'alive'"
)
MESSAGE_STATES = (
    "SELECT array_agg(DISTINCT state ORDER BY state) FROM agent_sessions_message WHERE text LIKE 'fault-msg%'"
)


def terminate_backends(database_url: str) -> int:
    """Terminate every connection to the database but this one; how many were."""
    import psycopg

    admin, name = _admin_url(database_url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchall()
    return len(rows)


def test_processes_ride_out_terminated_database_connections(
    tmp_path: Path, fresh_postgres, private_redis, tmux_server, request
):
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    agent_log = tmp_path / "agent.log"
    script = tmp_path / "agent.py"
    script.write_text(LOGGING_AGENT)
    port = free_port()
    env = ao_env(
        tmp_path / "home",
        DATABASE_URL=fresh_postgres,
        REDIS_URL=private_redis.url,
        AO_CHANNEL_PREFIX=f"ao-fault-{secrets.token_hex(4)}",
        AO_SWEEP_INTERVAL="1",
        **SHORT_LEASES,
        AO_HOST_NAME="fault-db",
        AO_WORKSPACES_ROOT=str(tmp_path / "workspaces"),
    )
    assert run_ao(["migrate", "-v", "0"], env).returncode == 0

    with (
        ao_process(["web", "--port", str(port)], env, cwd=tmp_path) as web,
        ao_process(["worker", "--host", "fault-db", "--concurrency", "4"], env, cwd=tmp_path) as worker,
        ao_process(["beat"], env, cwd=tmp_path) as beat,
    ):
        request.addfinalizer(
            lambda: [
                (tmp_path / f"{name}.log").write_text(p.output)
                for name, p in (("web", web), ("worker", worker), ("beat", beat))
            ]
        )
        web.wait_for(rf"ao web is serving http://127\.0\.0\.1:{port}/")
        worker.wait_for(r"queues ao, host\.fault-db")
        beat.wait_for(r"ao beat is scheduling")
        wait_http(f"http://127.0.0.1:{port}/healthz")
        spawned = []
        for count in range(1, SESSIONS + 1):  # one at a time: concurrent `git worktree add`s race
            spawn = SPAWN.format(repo=str(repo), script=str(script), log=str(agent_log), socket=tmux_server)
            spawned.append(django_shell(env, spawn).strip())
            assert eventually(lambda n=count: db_value(fresh_postgres, RUNNING_COUNT) == n, 60), (
                django_shell(env, RUNNING),
                worker.output,
            )

        assert django_shell(env, SEND.format(messages=MESSAGES)).strip() == "queued"
        assert eventually(lambda: agent_log.exists() and "fault-msg" in agent_log.read_text(), 60), (
            worker.output
        )
        terminated = []
        for outage in range(OUTAGES):  # deliveries and sweeps are under way
            if outage:  # 2 s on, and once the processes have connected again: each round hits
                time.sleep(2)
                assert eventually(lambda: backends(fresh_postgres) > 0, 60), worker.output
            terminated.append(terminate_backends(fresh_postgres))
        assert all(count > 0 for count in terminated), terminated
        recovered = django_shell(env, "from django.utils import timezone\nprint(timezone.now().isoformat())")

        expected = sorted(f"fault-msg {sid} {n}" for sid in spawned for n in range(MESSAGES))

        def settled() -> str:
            out = django_shell(env, SETTLED)
            return out if out.strip() == "['confirmed']" else ""

        assert eventually(lambda: db_value(fresh_postgres, MESSAGE_STATES) == ["confirmed"], 180), (
            django_shell(env, SETTLED),
            worker.output,
        )
        assert eventually(settled, 60), (django_shell(env, SETTLED), worker.output)
        # a sweep after the recovery has passed over every session
        assert eventually(
            lambda: django_shell(env, SWEPT_SINCE.format(since=recovered.strip())).strip() == "1", 60
        )

        def received() -> list[str]:
            return sorted(line for line in agent_log.read_text().splitlines() if line.startswith("fault-msg"))

        # confirmed is what ao saw; the agent's own log may trail it by its second of "work" per message
        eventually(lambda: len(received()) >= len(expected), 60)
        assert received() == expected  # each message exactly once: none lost, none typed twice
        assert "WRONG" not in django_shell(env, SETTLED)
        for process in (web, worker, beat):
            assert process.proc.poll() is None, process.output
            assert "Traceback" not in process.output, process.output
            lost = [line for line in process.lines if re.search(r"database connection (was )?lost", line)]
            assert len(lost) <= OUTAGES, process.output
