"""Work asked for while the broker (Redis) is down is accepted and done once it is back: a spawn
and a message sent through the API of a real `ao web` whose Redis was killed are answered (not
500), kept in the database, and carried out by `ao worker` and `ao beat` after Redis restarts
empty (the tasks queued for them were never sent). The event stream, which needs the channel
layer, answers 503 with the reason meanwhile."""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.test_api_without_redis import TOKEN
from tests.faults.test_db_terminated import LOGGING_AGENT
from tests.helpers.procs import SHORT_LEASES
from tests.test_embedded import ao_env, ao_process, django_shell, free_port, git_repo, run_ao, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(400)]

PROJECT = """
import sys
from sessions.models import Project
Project.objects.create(
    key="bd", name="broker down", path={repo!r}, session_prefix="bd", agent="custom", runtime="tmux",
    tracker="local", sweep_interval=1,
    plugin_settings={{
        "agent": {{"command": [{python!r}, "-u", {script!r}, {log!r}], "ready_pattern": r"^> ?$"}},
        "runtime": {{"socket_name": {socket!r}, "enter_delay": 0.05}},
    }},
)
"""


def eventually(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def test_a_spawn_and_a_message_sent_while_the_broker_is_down_are_done_when_it_is_back(
    tmp_path: Path, fresh_postgres, private_redis, tmux_server
):
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    agent_log = tmp_path / "agent.log"
    script = tmp_path / "agent.py"
    script.write_text(LOGGING_AGENT)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = ao_env(
        tmp_path / "home",
        DATABASE_URL=fresh_postgres,
        REDIS_URL=private_redis.url,
        AO_CHANNEL_PREFIX=f"ao-fault-{secrets.token_hex(4)}",
        AO_SWEEP_INTERVAL="1",
        **SHORT_LEASES,
        AO_HOST_NAME="fault-b",
        AO_WORKSPACES_ROOT=str(tmp_path / "workspaces"),
    )
    assert run_ao(["migrate", "-v", "0"], env).returncode == 0
    django_shell(
        env,
        PROJECT.format(
            repo=str(repo), python=sys.executable, script=str(script), log=str(agent_log), socket=tmux_server
        ),
    )
    token = django_shell(env, TOKEN).strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}

    with ao_process(["web", "--port", str(port)], env, cwd=tmp_path) as web:
        web.wait_for(rf"ao web is serving {base}/")
        wait_http(f"{base}/healthz")
        private_redis.kill()

        spawned = httpx.post(
            f"{base}/api/v1/projects/bd/spawn", json={"prompt": "fix the build"}, headers=auth, timeout=60
        )
        assert spawned.status_code == 201, spawned.text
        session_id = spawned.json()["id"]
        sent = httpx.post(
            f"{base}/api/v1/sessions/{session_id}/send",
            json={"text": "hello-while-down"},
            headers=auth,
            timeout=60,
        )
        assert sent.status_code == 201, sent.text
        stream = httpx.get(f"{base}/api/v1/events/stream", headers=auth, timeout=30)
        assert stream.status_code == 503, (stream.status_code, stream.text)
        assert "Redis" in stream.json()["error"]["message"]
        assert "Traceback" not in web.output and "Internal Server Error" not in web.output, web.output
        assert web.output.count("the broker is unreachable") <= 1, web.output

        private_redis.start()  # empty: what was queued for the workers never reached it
        with (
            ao_process(["worker", "--host", "fault-b", "--concurrency", "2"], env, cwd=tmp_path) as worker,
            ao_process(["beat"], env, cwd=tmp_path) as beat,
        ):
            worker.wait_for(r"queues ao, host\.fault-b")
            beat.wait_for(r"ao beat is scheduling")

            def delivered() -> bool:
                text = agent_log.read_text() if agent_log.exists() else ""
                return "hello-while-down" in text and "fix the build" in text

            assert eventually(delivered, 180), (
                worker.output,
                django_shell(env, STATE.format(sid=session_id)),
            )
            lines = agent_log.read_text().splitlines()
            task = [n for n, line in enumerate(lines) if "fix the build" in line]
            assert len(task) == 1 and lines.count("hello-while-down") == 1, lines
            assert task[0] < lines.index("hello-while-down"), lines  # its task first, then the message


STATE = """
from sessions.models import Session
s = Session.objects.get(pk={sid!r})
print(s.phase, s.runtime_state, s.activity, s.error, list(s.messages.values_list("state", "text")))
"""
