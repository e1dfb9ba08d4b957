"""A session running with a person's own model credentials takes terminal input only from that
person (and superusers); the project's other operators watch it read-only (issue 19). A real
`ao start`, its websocket and a real tmux pane."""

from __future__ import annotations

import json

import pytest

from tests.terminal.conftest import Server, pane_text, start_shell, tmux
from tests.terminal.test_websocket import Reader, open_terminal, send

pytestmark = pytest.mark.slow

SEED = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from sessions.models import Membership, Project, Session
User = get_user_model()
project = Project.objects.get(key="term")
owner = User.objects.get(username="operator")
Session.objects.create(
    id="term-3", project=project, number=3, kind="worker", agent="claude-code", phase="running",
    runtime_state="alive", status="working", zone="working", created_by=owner,
    credentials="personal", credentials_of=owner,
    runtime_handle={"runtime": "tmux", "name": "term-3", "data": {"socket_name": %r}},
)
other = User.objects.create_user("operator2", password=None)
Membership.objects.create(user=other, project=project, role="operator")
client = Client()
client.force_login(other)
print("COOKIE=" + json.dumps("sessionid=" + client.cookies["sessionid"].value))
"""


@pytest.fixture
def owned(server: Server):
    from tests.test_embedded import django_shell

    start_shell(server.socket_name, "term-3")
    output = django_shell(server.env, SEED % server.socket_name)
    server.cookies["operator2"] = json.loads(output.split("COOKIE=", 1)[1])
    yield "term-3"
    tmux(server.socket_name, "kill-session", "-t", "=term-3", check=False)


def test_only_the_owner_and_superusers_type_into_a_session_on_their_own_credentials(
    server: Server, owned: str
) -> None:
    with (
        open_terminal(server, who="operator2", session=owned) as other,
        open_terminal(server, who="operator", session=owned) as owner,
        open_terminal(server, who="admin", session=owned) as admin,
    ):
        watcher, typist, root = Reader(other), Reader(owner), Reader(admin)
        assert watcher.control("hello")["may_type"] is False  # an operator, but not the owner
        assert typist.control("hello")["may_type"] is True
        assert root.control("hello")["may_type"] is True

        send(other, type="input", data="echo other-sneaked-$((1+1))\r")  # a modified browser
        assert watcher.control("readonly") == {"type": "readonly"}
        send(owner, type="input", data="echo owner-typed-$((6*7))\r")
        watcher.sees(b"owner-typed-42")  # the other operator still watches live
        send(admin, type="input", data="echo root-typed-$((2+3))\r")
        typist.sees(b"root-typed-5")
    pane = pane_text(server.socket_name, owned)
    assert "owner-typed-42" in pane and "root-typed-5" in pane
    assert "other-sneaked" not in pane
