"""Personal credentials (issue 19): each person's sessions run with their own model keys.

Two people store their own keys (the API, the CLI); the project has its own (a stored secret named
by ``agentSecrets``, and ao's environment: the host's). The agent is a tiny script that writes its
environment to a file, run by the real tmux runtime; sessions are spawned, killed and restored
through the real API as those people.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from sessions.api.tokens import api_token_create
from sessions.core import secrets
from sessions.models import AuditEntry, Event, Membership, PersonalSecret, Project, Session
from tests.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.django_db]

# Writes its environment to <dump dir>/<AO_SESSION>.<n>.json, then waits like an agent at its prompt.
ENV_AGENT = r"""
import json, os, sys, time
path = os.path.join(sys.argv[1], "%s.%d.json" % (os.environ.get("AO_SESSION", "x"), time.time_ns()))
with open(path + ".tmp", "w") as f:
    json.dump(dict(os.environ), f)
os.replace(path + ".tmp", path)
print("> ", flush=True)
time.sleep(120)
"""

ALICE_ANTHROPIC = "sk-ant-api03-alice-0000000000000000000000000000"
BOB_ANTHROPIC = "sk-ant-api03-bob-1111111111111111111111111111111"
BOB_GEMINI = "AIzaSyBob-2222222222222222222222222222222"
TEAM_OPENAI = "sk-proj-team-3333333333333333333333333333333"
HOST_ANTHROPIC = "sk-ant-api03-host-4444444444444444444444444444"
HOST_GEMINI = "AIzaSyHost-5555555555555555555555555555555"
PERSONAL = (ALICE_ANTHROPIC, BOB_ANTHROPIC, BOB_GEMINI)
EVERY_VALUE = (*PERSONAL, TEAM_OPENAI, HOST_ANTHROPIC, HOST_GEMINI)


def next_dump(directory: Path, session_id: str, seen: int, *, timeout: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(directory.glob(f"{session_id}.*.json"), key=lambda p: int(p.name.split(".")[1]))
        if len(files) > seen:
            return json.loads(files[seen].read_text())
        assert time.monotonic() < deadline, f"{session_id} never wrote its environment"
        time.sleep(0.1)


def no_value_in(text: str, values=EVERY_VALUE) -> None:
    for value in values:
        assert value not in text


@pytest.fixture
def team(repo, tmux_server, tmp_path, settings, monkeypatch):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    dump = tmp_path / "env"
    dump.mkdir()
    # the host's own keys (ao's environment): part of the project's credentials
    monkeypatch.setenv("ANTHROPIC_API_KEY", HOST_ANTHROPIC)
    monkeypatch.setenv("GEMINI_API_KEY", HOST_GEMINI)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",
        runtime="tmux",
        tracker="local",
        scm="local",
        plugin_settings={
            "agent": {"command": [sys.executable, "-c", ENV_AGENT, str(dump)]},
            "runtime": {"socket_name": tmux_server},
        },
        credentials="personal-or-project",
        agent_secrets={"OPENAI_API_KEY": "team-openai"},
    )
    secrets.secret_set(name="team-openai", value=TEAM_OPENAI)
    clients = {}
    for name in ("alice", "bob", "carol"):
        user = UserFactory(username=name)
        Membership.objects.create(user=user, project=project, role="operator")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='cli')[1]}")
        clients[name] = client
    return project, clients, dump


def spawn(client, django_capture_on_commit_callbacks, **body):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post("/api/v1/projects/web/spawn", {"prompt": "hello", **body}, format="json")


@pytest.mark.slow
def test_each_persons_sessions_run_with_their_own_keys_and_never_anothers(
    team, client, django_capture_on_commit_callbacks, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    project, api, dump = team

    # each person stores their own keys: write-only
    stored = api["alice"].put(
        "/api/v1/me/credentials/ANTHROPIC_API_KEY", {"value": ALICE_ANTHROPIC}, format="json"
    )
    assert stored.status_code == 201, stored.content
    no_value_in(stored.content.decode())
    assert (
        api["bob"]
        .put("/api/v1/me/credentials/ANTHROPIC_API_KEY", {"value": BOB_ANTHROPIC}, format="json")
        .status_code
        == 201
    )
    assert (
        api["bob"]
        .put("/api/v1/me/credentials/GEMINI_API_KEY", {"value": BOB_GEMINI}, format="json")
        .status_code
        == 201
    )
    listed = api["bob"].get("/api/v1/me/credentials/")
    assert [row["name"] for row in listed.json()] == ["ANTHROPIC_API_KEY", "GEMINI_API_KEY"]
    no_value_in(listed.content.decode())
    assert api["alice"].get("/api/v1/me/credentials/").json()[0]["name"] == "ANTHROPIC_API_KEY"
    assert len(api["alice"].get("/api/v1/me/credentials/").json()) == 1  # nobody sees another's
    # stored encrypted
    assert not PersonalSecret.objects.filter(ciphertext__contains="sk-ant").exists()

    # personal-or-project: alice and bob run on their own keys, carol (none stored) on the project's
    a = spawn(api["alice"], django_capture_on_commit_callbacks)
    b = spawn(api["bob"], django_capture_on_commit_callbacks)
    c = spawn(api["carol"], django_capture_on_commit_callbacks)
    assert (a.status_code, b.status_code, c.status_code) == (201, 201, 201), (a.content, b.content, c.content)
    a_id, b_id, c_id = a.json()["id"], b.json()["id"], c.json()["id"]
    for sid in (a_id, b_id, c_id):
        session = Session.objects.get(pk=sid)
        assert session.phase == "running", session.error

    env_a, env_b, env_c = (next_dump(dump, sid, 0) for sid in (a_id, b_id, c_id))
    assert env_a["ANTHROPIC_API_KEY"] == ALICE_ANTHROPIC
    assert "GEMINI_API_KEY" not in env_a  # not the host's, not bob's
    assert "OPENAI_API_KEY" not in env_a  # not the project's
    assert env_b["ANTHROPIC_API_KEY"] == BOB_ANTHROPIC and env_b["GEMINI_API_KEY"] == BOB_GEMINI
    assert "OPENAI_API_KEY" not in env_b
    assert env_c["ANTHROPIC_API_KEY"] == HOST_ANTHROPIC and env_c["GEMINI_API_KEY"] == HOST_GEMINI
    assert env_c["OPENAI_API_KEY"] == TEAM_OPENAI
    no_value_in(json.dumps(env_a), (BOB_ANTHROPIC, BOB_GEMINI, TEAM_OPENAI, HOST_ANTHROPIC, HOST_GEMINI))
    no_value_in(json.dumps(env_b), (ALICE_ANTHROPIC, TEAM_OPENAI, HOST_ANTHROPIC, HOST_GEMINI))
    no_value_in(json.dumps(env_c), PERSONAL)

    # who spawned it and whose credentials it runs with: the API, the card, the timeline
    row = api["carol"].get(f"/api/v1/sessions/{a_id}/").json()
    assert (row["created_by"], row["credentials"], row["credentials_of"]) == ("alice", "personal", "alice")
    row = api["alice"].get(f"/api/v1/sessions/{c_id}/").json()
    assert (row["created_by"], row["credentials"], row["credentials_of"]) == ("carol", "project", None)
    client.force_login(project.memberships.get(user__username="carol").user)
    board = client.get("/p/web/").content.decode()
    assert "by alice · own keys" in board and "by carol · project keys" in board
    assert "spawned by alice; runs with alice's own model credentials" in board
    assert Event.objects.filter(
        session_id=a_id,
        kind="session.credentials",
        summary="runs with alice's own credentials (spawned by alice)",
    ).exists()
    assert Event.objects.filter(
        session_id=c_id,
        kind="session.credentials",
        summary="runs with the project's credentials (spawned by carol)",
    ).exists()

    # bob restores alice's session: it runs with alice's keys again, never bob's
    with django_capture_on_commit_callbacks(execute=True):
        assert api["bob"].post(f"/api/v1/sessions/{a_id}/kill").status_code == 200
        restored = api["bob"].post(f"/api/v1/sessions/{a_id}/restore")
    assert restored.status_code == 200, restored.content
    again = next_dump(dump, a_id, 1)
    assert again["ANTHROPIC_API_KEY"] == ALICE_ANTHROPIC and "GEMINI_API_KEY" not in again
    assert Session.objects.get(pk=a_id).credentials_of.username == "alice"
    assert Event.objects.filter(
        session_id=a_id, kind="session.restored", summary__endswith="runs with alice's own credentials"
    ).exists()

    # project mode: everyone runs with the project's credentials, alice included
    Project.objects.filter(pk=project.pk).update(credentials="project")
    d = spawn(api["alice"], django_capture_on_commit_callbacks)
    assert d.status_code == 201, d.content
    env_d = next_dump(dump, d.json()["id"], 0)
    assert env_d["ANTHROPIC_API_KEY"] == HOST_ANTHROPIC and env_d["OPENAI_API_KEY"] == TEAM_OPENAI
    assert d.json()["credentials"] == "project" and d.json()["credentials_of"] is None

    # personal only: carol has stored none, so her spawn is refused with the reason; nothing written
    Project.objects.filter(pk=project.pk).update(credentials="personal")
    count = Session.objects.count()
    refused = spawn(api["carol"], django_capture_on_commit_callbacks)
    assert refused.status_code == 409, refused.content
    assert "credentials: personal" in refused.json()["error"]["message"]
    assert "carol has stored none" in refused.json()["error"]["message"]
    assert Session.objects.count() == count

    # no value anywhere people or logs see: API answers, pages, timeline, audit, logs
    seen = [
        api["alice"].get("/api/v1/sessions/?include_done=true").content.decode(),
        api["alice"].get("/api/v1/events/").content.decode(),
        client.get(f"/s/{a_id}/").content.decode(),
        client.get(f"/s/{a_id}/timeline/").content.decode(),
        client.get("/credentials/").content.decode(),
        json.dumps(list(Event.objects.values("summary", "data")), default=str),
        json.dumps(list(AuditEntry.objects.values("target_id", "data")), default=str),
        caplog.text,
    ]
    for text in seen:
        no_value_in(text)


def test_personal_credential_names_are_credentials_not_any_variable(team) -> None:
    _project, api, _dump = team
    for name in ("PATH", "LD_PRELOAD", "AO_TOKEN", "ANTHROPIC_BASE_URL", "lower_key"):
        answer = api["alice"].put(f"/api/v1/me/credentials/{name}", {"value": "x"}, format="json")
        assert answer.status_code == 400, name
    assert not PersonalSecret.objects.exists()
    # an agent's session token is not a person
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION="Bearer nope", HTTP_X_AO_SESSION="web-1")
    assert agent.get("/api/v1/me/credentials/").status_code in (401, 403)


def test_the_cli_and_the_page_store_personal_credentials_write_only(team, client) -> None:
    _project, _api, _dump = team
    out = io.StringIO()
    call_command(
        "secret",
        "set",
        "--user",
        "alice",
        "OPENAI_API_KEY",
        stdin=io.StringIO(ALICE_ANTHROPIC + "\n"),
        stdout=out,
    )
    assert out.getvalue().strip() == "OPENAI_API_KEY of alice stored"
    out = io.StringIO()
    call_command("secret", "ls", "--user", "alice", stdout=out)
    assert "OPENAI_API_KEY" in out.getvalue() and ALICE_ANTHROPIC not in out.getvalue()
    with pytest.raises(CommandError, match="AO_URL and AO_TOKEN"):
        call_command("secret", "set", "--mine", "OPENAI_API_KEY", stdin=io.StringIO("v\n"))
    assert (
        secrets.credentials_env(
            project=_project, credentials="personal", user=PersonalSecret.objects.get().user
        )["OPENAI_API_KEY"]
        == ALICE_ANTHROPIC
    )

    client.force_login(PersonalSecret.objects.get().user)
    stored = client.post("/credentials/", {"name": "GEMINI_API_KEY", "value": BOB_GEMINI}, follow=True)
    assert stored.status_code == 200
    page = stored.content.decode()
    assert "GEMINI_API_KEY stored." in page and "OPENAI_API_KEY" in page
    no_value_in(page)
    bad = client.post("/credentials/", {"name": "PATH", "value": BOB_GEMINI})
    assert bad.status_code == 400
    no_value_in(bad.content.decode())  # a refused form never carries the value back
    assert client.post("/credentials/GEMINI_API_KEY/delete/").status_code == 302
    assert sorted(PersonalSecret.objects.values_list("name", flat=True)) == ["OPENAI_API_KEY"]
