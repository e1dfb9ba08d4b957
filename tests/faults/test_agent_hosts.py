"""Two people, two agent hosts on this machine (two real `ao worker --host` processes against
PostgreSQL and a private Redis, and `ao beat`): alice's personal host (her AO_TOKEN, cap 1) and a
shared one (no token). Each spawn runs on the host the rules choose (personal first, then shared,
within the caps); bob may not spawn on alice's host, nor take it over, and the local `ao spawn
--host` says why; only alice (and superusers) may type into her session there. Then alice's
worker is SIGKILLed: its session is marked runtime lost (not "working") and she is notified,
while the sessions on the shared host carry on."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.faults.test_db_terminated import LOGGING_AGENT, db_value, eventually
from tests.test_embedded import AoProcess, ao_env, django_shell, git_repo, run_ao

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(420)]

SETUP = """
import sys
from django.contrib.auth import get_user_model
from sessions.api.tokens import api_token_create
from sessions.models import Membership, Project
User = get_user_model()
project = Project.objects.create(
    key="hosts", name="hosts", path={repo!r}, session_prefix="hst", agent="custom", runtime="tmux",
    tracker="local", sweep_interval=1,
    plugin_settings={{
        "agent": {{"command": [sys.executable, "-u", {script!r}, {log!r}], "ready_pattern": r"^> ?$"}},
        "runtime": {{"socket_name": {socket!r}, "enter_delay": 0.05}},
    }},
)
tokens = {{}}
for name in ("alice", "bob"):
    user = User.objects.create_user(name, password="pw-" + name)
    Membership.objects.create(user=user, project=project, role="operator")
    tokens[name] = api_token_create(user=user, name="worker")[1]
User.objects.create_superuser("root", password="pw-root")
print(tokens["alice"])
print(tokens["bob"])
"""

SPAWN = """
from django.contrib.auth import get_user_model
from sessions.agents import spawning
from sessions.models import Project
by = get_user_model().objects.get(username={user!r})
try:
    session = spawning.session_spawn(project=Project.objects.get(key="hosts"), prompt="work", by=by, host={host!r})
except spawning.SpawnRefused as exc:
    print("REFUSED", exc)
else:
    print(session.pk, session.host, session.phase)
"""

STATE = """
import json
from reactions.models import Notification
from sessions.models import Session
print(json.dumps({{
    "sessions": {{s.pk: [s.host, s.phase, s.runtime_state, s.status] for s in Session.objects.all()}},
    "notified": list(Notification.objects.filter(rule="host.gone").values_list("session_id", "title")),
}}))
"""

TYPING = """
from django.contrib.auth import get_user_model
from sessions.dashboard import terminal
from sessions.models import Session
User = get_user_model()
for pk in {pks!r}:
    session = Session.objects.get(pk=pk)
    owner = terminal.typing_owner(session)
    print(pk, [terminal._may_type(User.objects.get(username=n), session.project_id, owner_id=owner)
               for n in ("alice", "bob", "root")])
"""


def test_personal_and_shared_hosts(tmp_path: Path, fresh_postgres, private_redis, tmux_server, request):
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    script = tmp_path / "agent.py"
    script.write_text(LOGGING_AGENT)
    env = ao_env(
        tmp_path / "home",
        DATABASE_URL=fresh_postgres,
        REDIS_URL=private_redis.url,
        AO_CHANNEL_PREFIX=f"ao-hosts-{secrets.token_hex(4)}",
        AO_SWEEP_INTERVAL="1",
        AO_HOST_NAME="hosts-web",  # where the shell's spawns are made: no worker runs there
        AO_HOST_HEARTBEAT="1",
        AO_HOST_GONE_AFTER="6",
        AO_WORKSPACES_ROOT=str(tmp_path / "workspaces"),
    )
    assert run_ao(["migrate", "-v", "0"], env).returncode == 0
    setup = SETUP.format(
        repo=str(repo), script=str(script), log=str(tmp_path / "agent.log"), socket=tmux_server
    )
    alice_token, bob_token = django_shell(env, setup).split()
    processes: dict[str, AoProcess] = {}

    def start(name: str, args: list[str], **extra: str) -> AoProcess:
        processes[name] = AoProcess(args, {**env, **extra}, cwd=tmp_path)
        return processes[name]

    def save_logs() -> None:
        for name, process in processes.items():
            process.kill()
            (tmp_path / f"{name}.log").write_text(process.output)

    request.addfinalizer(save_logs)

    start("beat", ["beat"]).wait_for(r"ao beat is scheduling")
    worker = ["worker", "--concurrency", "4", "--host"]
    start("alice-box", [*worker, "alice-box", "--max-sessions", "1"], AO_TOKEN=alice_token).wait_for(
        r"host 'alice-box' \(personal host of alice\)"
    )
    start("shared-box", [*worker, "shared-box"]).wait_for(r"host 'shared-box' \(shared\)")

    # bob can neither take alice's host over nor register a shared one with his token
    taken = run_ao([*worker, "alice-box"], {**env, "AO_TOKEN": bob_token})
    assert taken.returncode != 0 and "host alice-box is alice's" in taken.stderr, taken.stderr
    shared = run_ao([*worker, "bob-shared", "--shared"], {**env, "AO_TOKEN": bob_token})
    assert shared.returncode != 0 and "only a superuser" in shared.stderr, shared.stderr

    def spawn(user: str, host: str | None = None) -> list[str]:
        return django_shell(env, SPAWN.format(user=user, host=host)).strip().split(maxsplit=2)

    # bob may not use alice's personal host: refused with the reason, nothing written
    refused = " ".join(spawn("bob", "alice-box"))
    assert refused.startswith("REFUSED") and "alice's personal host" in refused, refused
    cli = run_ao(["spawn", "--project", "hosts", "--prompt", "x", "--host", "alice-box"], env)
    assert cli.returncode != 0 and "alice's personal host" in cli.stderr, cli.stderr

    # alice's first session runs on her host; her second finds it full (cap 1) and runs on the
    # shared one; bob's runs on the shared one; alice asking for her full host waits for a slot
    alice_1, host, _ = spawn("alice")
    assert host == "alice-box"
    alice_2, host, _ = spawn("alice")
    assert host == "shared-box"
    bob_1, host, _ = spawn("bob")
    assert host == "shared-box"
    alice_3, host, phase = spawn("alice", "alice-box")
    assert (host, phase) == ("alice-box", "queued")

    def state() -> dict:
        return json.loads(django_shell(env, STATE.format()))

    def all_running() -> bool:
        running = db_value(
            fresh_postgres,
            "SELECT count(*) FROM agent_sessions_session"
            " WHERE phase = 'running' AND runtime_state = 'alive' AND id = ANY(%s)",
            [[alice_1, alice_2, bob_1]],
        )
        return running == 3

    assert eventually(all_running, 90), (
        state(),
        processes["alice-box"].output,
        processes["shared-box"].output,
    )
    assert state()["sessions"][alice_3][1] == "queued"  # the cap held

    # only alice (and superusers) type into her session on her host; anyone with the role into
    # the shared host's
    typing = dict(
        line.split(" ", 1) for line in django_shell(env, TYPING.format(pks=[alice_1, bob_1])).splitlines()
    )
    assert typing == {alice_1: "[True, False, True]", bob_1: "[True, True, True]"}, typing

    # alice's host goes away: her session there is marked, she is told; the shared host's go on
    processes["alice-box"].kill()

    def marked() -> bool:
        lost = "SELECT runtime_state = 'lost' FROM agent_sessions_session WHERE id = %s"
        told = "SELECT count(*) FROM reactions_notification WHERE rule = 'host.gone'"
        return db_value(fresh_postgres, lost, [alice_1]) and db_value(fresh_postgres, told) > 0

    assert eventually(marked, 90), state()
    final = state()
    assert final["sessions"][alice_1][3] == "runtime_lost"  # not "working"
    assert final["notified"] == [[alice_1, f"alice: session {alice_1} lost its host alice-box"]]
    for pk in (alice_2, bob_1):
        assert final["sessions"][pk][1:3] == ["running", "alive"], final
    for name in ("beat", "shared-box"):
        assert "Traceback" not in processes[name].output, processes[name].output
