"""Live updates: the pushed fragment, coalescing on the server loop, and who receives what."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from sessions.core import realtime
from sessions.dashboard.consumers import BoardConsumer
from sessions.models import Membership
from tests.factories import PullRequestFactory, ReviewThreadFactory, UserFactory


@pytest.fixture
def board_open():
    """A board socket's membership in the in-memory layer (embedded mode): someone may listen."""
    layer = get_channel_layer()
    asyncio.run(layer.group_add(realtime.BOARD_GROUP, "test.board-viewer"))
    yield
    asyncio.run(layer.group_discard(realtime.BOARD_GROUP, "test.board-viewer"))


@pytest.mark.django_db
def test_the_push_deletes_the_old_card_and_inserts_it_at_the_top_of_its_zone(team, board_open) -> None:
    pr = PullRequestFactory(session=team.session, number=9, ci_state="failing")
    ReviewThreadFactory(pull_request=pr)
    team.session.status, team.session.zone = "ci_failed", "review"
    team.session.save()

    message = realtime.card_message("web-1")

    assert message is not None
    assert (message["type"], message["session"], message["project"], message["zone"]) == (
        "card.html",
        "web-1",
        team.project.pk,
        "review",
    )
    html = message["html"]
    assert html.startswith('<div id="card-web-1" hx-swap-oob="delete"></div>')
    assert '<div hx-swap-oob="afterbegin:.drop-review"><article class="card zone-review' in html
    assert "CI failing" in html and "1 thread" in html
    assert realtime.card_message("nope-1") is None


@pytest.mark.django_db
def test_a_card_nobody_can_receive_is_not_rendered(team, monkeypatch) -> None:
    """Embedded mode: with no socket on a board, the project's board or the session's page, a
    change costs no render (the push would reach nobody; a page opened later renders afresh)."""
    rendered: list[str] = []
    real = realtime._card_renderer

    def counting(session_id, **kwargs):
        rendered.append(session_id)
        return real(session_id, **kwargs)

    monkeypatch.setattr(realtime, "_card_renderer", counting)
    layer = get_channel_layer()

    assert realtime.card_message("web-1") is None
    assert rendered == []

    for group in (realtime.session_group("web-1"), realtime.project_group(team.project.pk)):
        asyncio.run(layer.group_add(group, "test.viewer"))
        try:
            message = realtime.card_message("web-1")
        finally:
            asyncio.run(layer.group_discard(group, "test.viewer"))
        assert message is not None and message["session"] == "web-1"
    assert rendered == ["web-1", "web-1"]
    assert realtime.card_message("web-1") is None  # the viewers left
    assert rendered == ["web-1", "web-1"]


class FakeLayer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.sent.append((group, message))


@pytest.fixture
def server_loop(monkeypatch):
    """A running loop in a thread, bound as the web server's loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def bind() -> None:
        realtime.bind_server_loop()

    asyncio.run_coroutine_threadsafe(bind(), loop).result(5)
    yield loop
    monkeypatch.setattr(realtime, "_server_loop", None)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_bursts_render_at_most_once_per_window_and_the_last_change_is_rendered(
    server_loop, monkeypatch
) -> None:
    layer = FakeLayer()
    renders: list[tuple[str, float]] = []
    monkeypatch.setattr(realtime, "_last_render", {})

    def fake_message(session_id: str) -> dict:
        renders.append((session_id, time.monotonic()))
        return {
            "type": "card.html",
            "html": "<b>x</b>",
            "session": session_id,
            "project": 3,
            "zone": "working",
        }

    monkeypatch.setattr(realtime, "card_message", fake_message)
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: layer)

    # A quiet session renders without waiting for a window (latency is measured in bench/) ...
    realtime.card_changed("p-2")
    deadline = time.monotonic() + 5
    while not layer.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [sid for sid, _ in renders] == ["p-2"]
    assert sorted(group for group, _ in layer.sent) == ["board", "project-3", "session-p-2"]

    # ... a burst (a sweep, a webhook and an observer touching one session) costs at most one
    # render per window, and the last change is always followed by a render.
    renders.clear()
    burst_started = time.monotonic()
    for _ in range(40):
        last_change = time.monotonic()
        realtime.card_changed("p-1")
        time.sleep(0.02)
    burst = last_change - burst_started
    deadline = time.monotonic() + 10  # the render after the last change comes (later on a busy machine)
    while not any(sid == "p-1" and t >= last_change for sid, t in renders) and time.monotonic() < deadline:
        time.sleep(0.01)

    times = [t for sid, t in renders if sid == "p-1"]
    assert times and times[-1] >= last_change
    # ~0.8 s of changes (more on a busy machine): a render per window, not one per change
    assert len(times) <= burst / realtime.COALESCE_SECONDS + 2 < 40
    assert all(b - a >= realtime.COALESCE_SECONDS - 0.02 for a, b in itertools.pairwise(times))


def test_without_a_server_loop_the_card_is_sent_at_once(monkeypatch) -> None:
    sent: list[str] = []
    monkeypatch.setattr(realtime, "_server_loop", None)
    monkeypatch.setattr(
        realtime,
        "card_message",
        lambda sid: {"type": "card.html", "html": "x", "session": sid, "project": 1, "zone": "done"},
    )
    monkeypatch.setattr(realtime, "group_send", lambda group, message: sent.append(group))

    realtime.card_changed("p-1")

    assert sent == ["board", "project-1", "session-p-1"]


# --- the consumer ----------------------------------------------------------------------------------------
async def _connect(user, path: str) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(BoardConsumer.as_asgi(), path)
    communicator.scope["user"] = user
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def _run(coro):
    return asyncio.run(coro)


@pytest.mark.django_db(transaction=True)
def test_anonymous_and_outsiders_are_closed_with_4403(team) -> None:
    from django.contrib.auth.models import AnonymousUser

    async def scenario():
        results = []
        for user, path in (
            (AnonymousUser(), "/ws/board/"),
            (team.outsider, "/ws/board/?project=webapp"),
            (team.outsider, "/ws/board/?session=web-1"),
            (team.viewer, "/ws/board/?project=nope"),
        ):
            communicator, connected, code = await _connect(user, path)
            results.append((connected, code))
            await communicator.disconnect()
        return results

    assert _run(scenario()) == [(False, 4403)] * 4


@pytest.mark.django_db(transaction=True)
def test_viewers_receive_only_the_projects_they_can_see(team) -> None:
    layer = get_channel_layer()

    async def scenario():
        viewer, ok, _ = await _connect(team.viewer, "/ws/board/")
        outsider, ok2, _ = await _connect(team.outsider, "/ws/board/")
        detail, ok3, _ = await _connect(team.viewer, "/ws/board/?session=web-1")
        assert ok and ok2 and ok3
        await layer.group_send(
            realtime.project_group(team.project.pk), {"type": "card.html", "html": "<i>web</i>"}
        )
        await layer.group_send(
            realtime.project_group(team.other.pk), {"type": "card.html", "html": "<i>secret</i>"}
        )
        await layer.group_send(realtime.session_group("web-1"), {"type": "card.html", "html": "<i>one</i>"})
        got = {
            "viewer": await viewer.receive_from(timeout=2),
            "viewer_more": await viewer.receive_nothing(timeout=0.3),
            "outsider": await outsider.receive_from(timeout=2),
            "outsider_more": await outsider.receive_nothing(timeout=0.3),
            "detail": await detail.receive_from(timeout=2),
            "detail_more": await detail.receive_nothing(timeout=0.3),
        }
        for c in (viewer, outsider, detail):
            await c.disconnect()
        return got

    assert _run(scenario()) == {
        "viewer": "<i>web</i>",
        "viewer_more": True,
        "outsider": "<i>secret</i>",
        "outsider_more": True,
        "detail": "<i>one</i>",
        "detail_more": True,
    }


@pytest.mark.django_db(transaction=True)
def test_a_superuser_board_follows_every_project(team) -> None:
    root = UserFactory(username="root", is_superuser=True)
    Membership.objects.filter(user=root).delete()
    layer = get_channel_layer()

    async def scenario():
        board, ok, _ = await _connect(root, "/ws/board/")
        assert ok
        await layer.group_send(realtime.BOARD_GROUP, {"type": "card.html", "html": "<i>any</i>"})
        text = await board.receive_from(timeout=2)
        await board.disconnect()
        return text

    assert _run(scenario()) == "<i>any</i>"


@pytest.mark.django_db(transaction=True)
def test_a_revoked_role_closes_the_open_socket(team, settings) -> None:

    layer = get_channel_layer()

    async def scenario():
        viewer, ok, _ = await _connect(team.viewer, "/ws/board/?project=webapp")
        assert ok
        await Membership.objects.filter(user=team.viewer).adelete()
        settings.AO_ACCESS_RECHECK_SECONDS = 0.0
        await layer.group_send(
            realtime.project_group(team.project.pk), {"type": "card.html", "html": "<i>web</i>"}
        )
        output = await viewer.receive_output(timeout=2)
        await viewer.disconnect()
        return output

    assert _run(scenario()) == {"type": "websocket.close", "code": 4403}
