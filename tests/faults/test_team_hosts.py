"""Issue 19's "done when", with the real things: two people, each with their own model key, and
two agent hosts on this machine, scale-out (PostgreSQL, a private Redis, `ao beat`, `ao web` on
host h1 serving its terminals, two `ao worker --host` processes, each host with its own tmux
server as if on its own machine). The agent is the stand-in (Claude Code's transcripts, tokens
and cost) started through the real Claude Code plugin; it writes its environment to a file.

- alice's session runs on h1, her personal host, with her key; bob's on h2, the shared host,
  with his; neither key, nor anybody's API token, nor the host's own key reaches the other's agent;
- bob may not use h1 until alice allows him (`PUT /api/v1/hosts/h1/allowed/bob`), and then h1's
  cap (one live session) queues his spawn;
- bob (an operator) and carol (a viewer) watch alice's terminal read-only over the websocket of
  the real daphne: what they type never reaches the agent, what alice types does;
- alice's monthly budget holds: once her sessions' recorded cost passes it, her spawn is refused
  with the reason and she is notified (and bob is not);
- the usage API's numbers are the sessions' recorded tokens and cost.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from sessions.cli.apiclient import ApiClient, ApiError
from tests.faults.test_db_terminated import eventually
from tests.helpers.fixtures import kill_tmux_server
from tests.sessions.test_personal_credentials import next_dump
from tests.terminal.conftest import Server
from tests.terminal.test_websocket import Reader, open_terminal, send
from tests.test_embedded import AoProcess, ao_env, django_shell, free_port, git_repo, run_ao, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

STANDIN = Path(__file__).resolve().parents[1] / "agent_standin" / "standin_agent.py"
TURN_COST = Decimal("0.40")  # what each reply of the stand-in costs (its transcript's costUSD)
KEYS = {"alice": "alice-key", "bob": "bob-key"}
H2_OWN_KEY = "h2-operators-own-key"  # in h2's worker's environment: a personal-mode session must not get it

SETUP = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from sessions.api.tokens import api_token_create
from sessions.models import Membership, Project
User = get_user_model()
project = Project.objects.create(
    key="team", name="team", path={repo!r}, session_prefix="tm", agent="claude-code", runtime="tmux",
    tracker="local", scm="local", sweep_interval=1, credentials="personal",
    plugin_settings={{
        "agent": {{"binary": {shim!r}, "home": {home!r}, "permissions": "auto-edit"}},
        "runtime": {{"socket_name": {socket!r}, "enter_delay": 0.05}},
    }},
)
out = {{"tokens": {{}}, "cookies": {{}}}}
for name, role in (("alice", "operator"), ("bob", "operator"), ("carol", "viewer")):
    user = User.objects.create_user(name, email=name + "@example.test", password=None)
    Membership.objects.create(user=user, project=project, role=role)
    out["tokens"][name] = api_token_create(user=user, name="cli")[1]
    client = Client()
    client.force_login(user)
    out["cookies"][name] = "sessionid=" + client.cookies["sessionid"].value
root = User.objects.create_superuser("root", password=None)
out["tokens"]["root"] = api_token_create(user=root, name="cli")[1]
print("SETUP=" + json.dumps(out))
"""


def test_two_people_on_two_hosts_with_their_own_keys(tmp_path: Path, fresh_postgres, private_redis, request):
    (tmp_path / "repo").mkdir()
    repo = git_repo(tmp_path / "repo")
    home = tmp_path / "agent-home"  # HOME of ao's processes and the agents: the stand-in's transcripts
    dumps = tmp_path / "env"
    for directory in (home, dumps):
        directory.mkdir()
    shim = tmp_path / "bin" / "claude"
    shim.parent.mkdir()
    shim.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "
        f'--env-dump {shlex.quote(str(dumps))} --turn-cost {TURN_COST} "$@"\n'
    )
    shim.chmod(0o755)
    socket = f"ao-team-{secrets.token_hex(4)}"
    machines = {}  # each host's own tmux server (TMUX_TMPDIR), as on its own machine
    for name in ("h1", "h2", "beat"):
        machines[name] = tmp_path / f"tmux-{name}"
        machines[name].mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = ao_env(
        tmp_path / "ao-home",
        HOME=str(home),
        DATABASE_URL=fresh_postgres,
        REDIS_URL=private_redis.url,
        AO_CHANNEL_PREFIX=f"ao-team-{secrets.token_hex(4)}",
        AO_SWEEP_INTERVAL="1",
        AO_HOST_HEARTBEAT="1",
        AO_URL=base,
        AO_WORKSPACES_ROOT=str(tmp_path / "workspaces"),
        STANDIN_WORK_SECONDS="0.3",
    )
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "AO_TOKEN"):
        env.pop(name, None)
    assert run_ao(["migrate", "-v", "0"], env).returncode == 0
    setup = SETUP.format(repo=str(repo), shim=str(shim), home=str(home), socket=socket)
    seeded = json.loads(django_shell(env, setup).split("SETUP=", 1)[1])
    tokens, cookies = seeded["tokens"], seeded["cookies"]
    api = {name: ApiClient(base, token) for name, token in tokens.items()}

    processes: dict[str, AoProcess] = {}

    def start(name: str, args: list[str], machine: str, **extra: str) -> AoProcess:
        extra_env = {**env, "TMUX_TMPDIR": str(machines[machine]), **extra}
        processes[name] = AoProcess(args, extra_env, cwd=tmp_path)
        return processes[name]

    def finish() -> None:
        for name, process in processes.items():
            process.kill()
            (tmp_path / f"{name}.log").write_text(process.output)
        for machine in machines.values():
            kill_tmux_server(socket, tmpdir=machine)

    request.addfinalizer(finish)

    worker = ["worker", "--concurrency", "3", "--host"]
    start("beat", ["beat"], "beat").wait_for(r"ao beat is scheduling")
    start("h1", [*worker, "h1", "--max-sessions", "1"], "h1", AO_TOKEN=tokens["alice"]).wait_for(
        r"host 'h1' \(personal host of alice\)"
    )
    start("h2", [*worker, "h2"], "h2", OPENAI_API_KEY=H2_OWN_KEY).wait_for(r"host 'h2' \(shared\)")
    start("web", ["web", "--port", str(port)], "h1", AO_HOST_NAME="h1").wait_for(
        rf"ao web is serving {base}/"
    )
    wait_http(f"{base}/healthz")

    # each person stores their own model key (write-only); alice's month is capped below one reply
    for name, key in KEYS.items():
        api[name].request("PUT", "me/credentials/ANTHROPIC_API_KEY", body={"value": key})
    budget = run_ao(["budget", "set", "alice", "0.30"], env)
    assert budget.returncode == 0, budget.stderr

    def spawn(who: str, **body) -> dict:
        return api[who].request("POST", "projects/team/spawn", body={"prompt": "add a health check", **body})

    def refused(who: str, **body) -> ApiError:
        with pytest.raises(ApiError) as exc:
            spawn(who, **body)
        return exc.value

    # alice's session runs on her host; bob's may not, so on the shared one
    alice_1 = spawn("alice", host="h1")
    bob_1 = spawn("bob")
    assert (alice_1["host"], bob_1["host"]) == ("h1", "h2")
    denied = refused("bob", host="h1")
    assert denied.status == 409 and "h1 is alice's personal host and they have not allowed bob" in str(denied)

    def session(pk: str) -> dict:
        return api["root"].get(f"sessions/{pk}/")

    def running() -> bool:
        return all(session(s["id"])["phase"] == "running" for s in (alice_1, bob_1))

    assert eventually(running, 120), ([session(s["id"]) for s in (alice_1, bob_1)], logs(processes))

    # each agent has its spawner's key and nobody else's: not the other's, not the host's own, no
    # person's API token (h1's worker runs with alice's)
    env_alice, env_bob = next_dump(dumps, alice_1["id"], 0), next_dump(dumps, bob_1["id"], 0)
    assert env_alice["ANTHROPIC_API_KEY"] == "alice-key" and env_bob["ANTHROPIC_API_KEY"] == "bob-key"
    assert "bob-key" not in json.dumps(env_alice) and "alice-key" not in json.dumps(env_bob)
    assert "OPENAI_API_KEY" not in env_bob  # the shared host's own key: personal mode hands out none
    for dumped in (env_alice, env_bob):
        for token in tokens.values():
            assert token not in json.dumps(dumped)
    # and each runs on its host's machine: its tmux server, not the other's
    assert has_tmux_session(socket, machines["h1"], alice_1["id"]) and has_tmux_session(
        socket, machines["h2"], bob_1["id"]
    )
    assert not has_tmux_session(socket, machines["h2"], alice_1["id"])
    assert not has_tmux_session(socket, machines["h1"], bob_1["id"])
    assert session(alice_1["id"])["credentials_of"] == "alice"

    # alice lets bob use her host: now h1's cap (1 live session, hers) queues his spawn there
    api["alice"].request("PUT", "hosts/h1/allowed/bob")
    assert api["alice"].last_status == 201
    bob_2 = spawn("bob", host="h1")
    assert (bob_2["host"], bob_2["phase"]) == ("h1", "queued")
    not_his = api["bob"]
    with pytest.raises(ApiError, match="only alice, who owns host h1, or a superuser"):
        not_his.request("PUT", "hosts/h1/allowed/carol")
    h1 = {row["name"]: row for row in api["alice"].get("hosts")}["h1"]
    assert (h1["owner"], h1["online"], h1["running"], h1["max_sessions"], h1["allowed"]) == (
        "alice",
        True,
        1,
        1,
        ["bob"],
    )

    # read-only: bob (an operator) and carol (a viewer) watch alice's terminal, only alice types
    server = Server(port=port, env=env, socket_name=socket, session=alice_1["id"], cookies=cookies, log=str)
    with (
        open_terminal(server, who="bob", session=alice_1["id"]) as bob_ws,
        open_terminal(server, who="carol", session=alice_1["id"]) as carol_ws,
        open_terminal(server, who="alice", session=alice_1["id"]) as alice_ws,
    ):
        bob_sees, carol_sees, alice_sees = Reader(bob_ws), Reader(carol_ws), Reader(alice_ws)
        assert bob_sees.control("hello", timeout=30)["may_type"] is False
        assert carol_sees.control("hello", timeout=30)["may_type"] is False
        assert alice_sees.control("hello", timeout=30)["may_type"] is True
        send(bob_ws, type="input", data="bob-sneaked\r")  # a modified browser
        send(carol_ws, type="input", data="carol-sneaked\r")
        assert bob_sees.control("readonly", timeout=30) == {"type": "readonly"}
        assert carol_sees.control("readonly", timeout=30) == {"type": "readonly"}
        send(alice_ws, type="input", data="alice-typed\r")
        bob_sees.sees(b"received: alice-typed", timeout=30)  # they still watch live
    pane = tmux_pane(socket, machines["h1"], alice_1["id"])
    assert "received: alice-typed" in pane and "sneaked" not in pane

    # alice's month: her replies' recorded cost passes her $0.30 cap, so her next spawn is refused
    def spent(pk: str) -> Decimal:
        return Decimal(str(session(pk)["cost_usd"]))

    # each reply's cost is recorded once the agent has written it (after its tool call's tokens)
    replied = eventually(lambda: all(spent(s["id"]) >= TURN_COST for s in (alice_1, bob_1)), 90)
    assert replied, [session(s["id"]) for s in (alice_1, bob_1)]
    before = len(api["root"].get("sessions/", include_done="true")["results"])
    over = refused("alice", host="h1")
    assert over.status == 409
    assert "alice is over their monthly budget" in str(over) and "of $0.30" in str(over), str(over)
    assert len(api["root"].get("sessions/", include_done="true")["results"]) == before  # nothing written
    hers = api["alice"].get("notifications/", mine="true")["results"]
    assert [(n["title"], n["recipient"]) for n in hers if n["rule"] == "budget"] == [
        ("Spawn refused: alice is over their $0.30 monthly budget", "alice")
    ]
    assert not [n for n in api["bob"].get("notifications/", mine="true")["results"] if n["rule"] == "budget"]
    assert spawn("bob")["host"] == "h2"  # the cap is alice's alone

    # the usage API's numbers are the sessions' recorded tokens and cost
    def usage_matches() -> tuple[dict, list[dict]] | None:
        rows = api["root"].get("sessions/", include_done="true")["results"]
        usage = api["root"].get("usage", since="all")
        again = api["root"].get("sessions/", include_done="true")["results"]
        return (usage, rows) if rows == again else None  # not read while an observation wrote

    read = eventually(usage_matches, 60)
    assert read, "the sessions' numbers never held still"
    usage, rows = read
    for person in ("alice", "bob"):
        theirs = [r for r in rows if r["created_by"] == person]
        by_user = next(u for u in usage["by_user"] if u["user"] == person)
        assert by_user["sessions"] == len(theirs)
        assert by_user["tokens_in"] == sum(r["tokens_in"] for r in theirs) > 0
        assert by_user["tokens_out"] == sum(r["tokens_out"] for r in theirs) > 0
        assert Decimal(str(by_user["cost_usd"])) == sum(Decimal(str(r["cost_usd"])) for r in theirs) > 0
    assert usage["totals"]["tokens"] == sum(r["tokens_in"] + r["tokens_out"] for r in rows)
    assert Decimal(str(usage["totals"]["cost_usd"])) == sum(Decimal(str(r["cost_usd"])) for r in rows)
    budget_row = next(b for b in usage["budgets"] if b["scope"] == "user" and b["name"] == "alice")
    assert budget_row["over"] is True and Decimal(str(budget_row["spent_usd"])) == sum(
        Decimal(str(r["cost_usd"])) for r in rows if r["created_by"] == "alice"
    )

    assert session(bob_2["id"])["phase"] == "queued"  # h1's cap held all along
    for name, process in processes.items():
        assert "Traceback" not in process.output, (name, process.output)


def has_tmux_session(socket: str, machine: Path, name: str) -> bool:
    return (
        subprocess.run(
            ["tmux", "-L", socket, "has-session", "-t", f"={name}"],
            env={**os.environ, "TMUX_TMPDIR": str(machine)},
            capture_output=True,
            timeout=10,
            check=False,
        ).returncode
        == 0
    )


def tmux_pane(socket: str, machine: Path, name: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", f"={name}:", "-S", "-200"],
        env={**os.environ, "TMUX_TMPDIR": str(machine)},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout


def logs(processes: dict[str, AoProcess]) -> dict[str, str]:
    return {name: process.output[-3000:] for name, process in processes.items()}
