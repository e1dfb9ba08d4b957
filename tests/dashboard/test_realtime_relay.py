"""A CLI command beside a running `ao start` hands its live updates to the server, which broadcasts
them; only announcements signed with this AO_HOME's key, and fresh ones, are taken."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from sessions.core import realtime
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def received(channel: str, timeout: float = 2) -> dict:
    async def receive() -> dict:
        import asyncio

        return await asyncio.wait_for(get_channel_layer().receive(channel), timeout=timeout)

    return async_to_sync(receive)()


def post(client, payload: dict, *, signature: str | None = None, body: bytes | None = None):
    body = body if body is not None else json.dumps(payload).encode()
    return client.post(
        "/internal/realtime",
        body,
        content_type="application/json",
        HTTP_X_AO_RELAY_SIGNATURE=realtime.relay_signature(body) if signature is None else signature,
    )


def test_a_relayed_change_is_broadcast_to_the_open_boards(client) -> None:
    session = SessionFactory()
    board = listen(realtime.BOARD_GROUP)

    response = post(client, {"ts": time.time(), "cards": [session.pk]})

    assert response.status_code == 204
    message = received(board)
    assert (message["type"], message["session"]) == ("card.html", session.pk)
    assert f'id="card-{session.pk}"' in message["html"]


@pytest.mark.parametrize(
    ("payload", "signature"),
    [
        ({"ts": time.time(), "cards": ["x-1"]}, "0" * 64),  # not signed with this AO_HOME's key
        ({"ts": time.time(), "cards": ["x-1"]}, ""),  # not signed at all
        ({"ts": time.time() - 3600, "cards": ["x-1"]}, None),  # replayed an hour later
        ({"cards": ["x-1"]}, None),  # no time
    ],
)
def test_an_announcement_not_signed_or_not_fresh_is_refused_and_nothing_is_sent(client, payload, signature):
    session = SessionFactory(number=1)
    payload = {**payload, "cards": [session.pk]}
    board = listen(realtime.BOARD_GROUP)

    response = post(client, payload, signature=signature)

    assert response.status_code == 401
    with pytest.raises(TimeoutError):
        received(board, timeout=0.3)


def test_a_command_with_no_running_server_keeps_its_updates_to_itself(monkeypatch) -> None:
    """No `ao start` of this AO_HOME runs: nothing is handed over (and nothing tried)."""
    from ao_site import served

    monkeypatch.setattr(served, "running_start_url", lambda: "")
    assert realtime._relay(cards=["x-1"]) is False


def test_ao_start_does_not_hand_its_own_updates_to_itself(settings, tmp_path) -> None:
    """While `ao start` starts up (config apply, orchestrators) its pid file names itself and its
    server loop is not bound yet: its changes are not posted to the port it is not serving yet."""
    import json as _json
    import os

    from ao_site import served

    settings.AO_HOME = tmp_path
    (tmp_path / "ao.pid").write_text(_json.dumps({"pid": os.getpid(), "host": "127.0.0.1", "port": 9}))

    assert served.running_start_url() == ""
    assert realtime._relay(cards=["x-1"]) is False
