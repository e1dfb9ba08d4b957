"""``/api/v1/events/stream`` delivers a timeline event as it happens, through the real ASGI app."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, transaction

from sessions.api.tokens import api_token_create
from sessions.core import realtime, services
from sessions.models import Membership
from tests.factories import ProjectFactory, SessionFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def _unbind_server_loop():
    yield
    realtime._server_loop = None  # the test's loop is closed after it


def _setup():
    user = UserFactory(username="bot-owner")
    project = ProjectFactory(key="web", session_prefix="web")
    other = ProjectFactory(key="secret-project", session_prefix="sec")
    Membership.objects.create(user=user, project=project, role="viewer")
    return (
        api_token_create(user=user, name="sse")[1],
        SessionFactory(project=project),
        SessionFactory(project=other),
    )


def _record(session, kind: str) -> int:
    # The test database is SQLite in memory with a shared cache, where a table another thread's
    # connection is reading is locked to writers at once (SQLITE_LOCKED; no busy timeout applies).
    # ao's own SQLite is a WAL file, where readers never block a writer: a refused write here says
    # nothing about the stream, so it is tried again (seen once in three runs of the whole suite).
    for attempt in range(50):
        try:
            with transaction.atomic():
                return services.event_record(
                    project=session.project, session=session, kind=kind, summary=f"{kind}!"
                ).pk
        except OperationalError as exc:
            if "is locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.02)
    raise AssertionError("unreachable")


async def _open_stream(app, headers: list[tuple[bytes, bytes]], query: bytes = b""):
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/events/stream",
        "raw_path": b"/api/v1/events/stream",
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8000),
    }
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    await inbox.put({"type": "http.request", "body": b"", "more_body": False})
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    return task, inbox, outbox


async def _read_until(outbox: asyncio.Queue, needle: str, timeout: float = 10.0) -> str:
    seen = ""
    async with asyncio.timeout(timeout):
        while needle not in seen:
            message = await outbox.get()
            if message["type"] == "http.response.body":
                seen += message.get("body", b"").decode()
    return seen


def test_stream_delivers_events_of_visible_projects_only() -> None:
    asyncio.run(_stream_delivers())


async def _stream_delivers() -> None:
    from ao_site.asgi import application

    raw, session, foreign = await sync_to_async(_setup)()
    missed = await sync_to_async(_record)(session, "before.connect")
    task, inbox, outbox = await _open_stream(
        application,
        [(b"authorization", f"Bearer {raw}".encode()), (b"last-event-id", str(missed - 1).encode())],
    )
    start = await outbox.get()
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert dict(start["headers"])[b"Content-Type"] == b"text/event-stream"
    replayed = await _read_until(outbox, "before.connect")  # what it missed comes first
    assert f"id: {missed}" in replayed

    await sync_to_async(_record, thread_sensitive=False)(foreign, "foreign.kind")
    event_id = await sync_to_async(_record, thread_sensitive=False)(session, "ci.failed")
    text = await _read_until(outbox, "event: ci.failed")
    assert "foreign.kind" not in text
    block = text[text.index(f"id: {event_id}") :].split("\n\n")[0]
    data = json.loads(block.split("data: ", 1)[1])
    assert (data["kind"], data["session"], data["project"], data["summary"]) == (
        "ci.failed",
        session.id,
        "web",
        "ci.failed!",
    )

    await inbox.put({"type": "http.disconnect"})
    await asyncio.wait_for(task, timeout=10)


def test_stream_needs_a_token() -> None:
    asyncio.run(_needs_token())


async def _needs_token() -> None:
    from ao_site.asgi import application

    task, _inbox, outbox = await _open_stream(application, [(b"authorization", b"Bearer ao_wrong")])
    start = await outbox.get()
    assert start["status"] == 401
    body = await outbox.get()
    assert json.loads(body["body"])["error"]["code"] == "not_authenticated"
    await asyncio.wait_for(task, timeout=10)


def test_stream_ends_when_its_token_is_revoked(settings) -> None:
    settings.AO_ACCESS_RECHECK_SECONDS = 0.2
    asyncio.run(_ends_when_revoked())


async def _ends_when_revoked() -> None:
    from ao_site.asgi import application
    from sessions.api.tokens import api_token_revoke
    from sessions.models import ApiToken

    raw, _session, _foreign = await sync_to_async(_setup)()
    task, _inbox, outbox = await _open_stream(application, [(b"authorization", f"Bearer {raw}".encode())])
    assert (await outbox.get())["status"] == 200
    await _read_until(outbox, ": connected")
    await asyncio.sleep(0.5)  # a re-check or two with the token still good: the stream stays open
    assert not task.done()

    token = await sync_to_async(ApiToken.objects.get)(name="sse")
    await sync_to_async(api_token_revoke)(token=token)
    await _read_until(outbox, ": access revoked", timeout=5)
    await asyncio.wait_for(task, timeout=5)  # the response ended
    rest = [outbox.get_nowait() for _ in range(outbox.qsize())]
    assert rest and rest[-1]["type"] == "http.response.body" and not rest[-1].get("more_body")


def test_stream_drops_a_project_whose_role_was_removed(settings) -> None:
    settings.AO_ACCESS_RECHECK_SECONDS = 0.2
    asyncio.run(_drops_project())


async def _drops_project() -> None:
    from ao_site.asgi import application

    raw, session, _foreign = await sync_to_async(_setup)()
    task, _inbox, outbox = await _open_stream(application, [(b"authorization", f"Bearer {raw}".encode())])
    assert (await outbox.get())["status"] == 200
    await sync_to_async(Membership.objects.filter(project=session.project).delete)()
    text = await _read_until(outbox, ": access revoked", timeout=5)
    assert "event:" not in text
    await asyncio.wait_for(task, timeout=5)


def test_a_browser_stream_ends_when_its_password_is_changed(settings) -> None:
    """As every page after a password change (Django's session hash): the other logins end,
    and so do their streams."""
    settings.AO_ACCESS_RECHECK_SECONDS = 0.2
    asyncio.run(_ends_on_password_change())


async def _ends_on_password_change() -> None:
    from django.test import Client

    from ao_site.asgi import application

    def login():
        _raw, session, _foreign = _setup()
        user = session.project.memberships.get().user
        browser = Client()
        browser.force_login(user)
        return user, browser.cookies["sessionid"].value

    user, cookie = await sync_to_async(login)()
    task, _inbox, outbox = await _open_stream(application, [(b"cookie", f"sessionid={cookie}".encode())])
    assert (await outbox.get())["status"] == 200
    await _read_until(outbox, ": connected")

    def change_password() -> None:
        user.set_password("a-new-password-nobody-had")
        user.save()

    await sync_to_async(change_password)()
    await _read_until(outbox, ": access revoked", timeout=5)
    await asyncio.wait_for(task, timeout=5)
