"""What exists does not leak: a project (or session) a person has no role in is answered exactly
like one that does not exist, on every URL that names one: pages, the API, the event stream and
the websockets. The webhook URL is covered in tests/sessions/test_webhooks.py."""

from __future__ import annotations

import asyncio
import re

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import URLPattern, URLResolver, get_resolver

from ao_site.routing import websocket_urlpatterns
from sessions.models import Membership
from tests.factories import ProjectFactory, SessionFactory, UserFactory

# Named by the URL: a project (its key) or a session (its id). Other ids in the same URL (a thread, a
# lesson) are given a value that exists in neither case.
PROJECT_KWARGS = {"key", "project_key"}
SESSION_KWARGS = {"session_id"}
NOT_WALKED = {"github-webhook"}  # authenticated by its signature: tests/sessions/test_webhooks.py
# Filters naming a project, on URLs without one in the path.
FILTERS = [
    "/api/v1/sessions/?project={key}",
    "/api/v1/events/?project={key}",
    "/api/v1/events/stream?project={key}",
    "/api/v1/reactions/attempts/?project={key}",
    "/api/v1/notifications/?project={key}",
]


def _patterns(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield entry, prefix + str(entry.pattern)


def _fill(route: str, *, key: str, session_id: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(2)
        if name in PROJECT_KWARGS:
            return key
        if name in SESSION_KWARGS:
            return session_id
        return "987654"  # a thread, lesson, notification or token number nobody has

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", value, route)


def walked_urls() -> list[tuple[str, str]]:
    """(name, route) of every URL pattern naming a project or a session."""
    found = []
    for pattern, route in _patterns(get_resolver()):
        names = set(re.findall(r"<(?:\w+:)?(\w+)>", route))
        if names & (PROJECT_KWARGS | SESSION_KWARGS) and pattern.name not in NOT_WALKED:
            found.append((pattern.name or route, route))
    return found


@pytest.fixture
def outsider(db):
    """A signed-in person with a role in another project only; "web" and "web-1" exist."""
    web = ProjectFactory(key="web", session_prefix="web")
    SessionFactory(project=web, id="web-1", number=1)
    theirs = ProjectFactory(key="theirs", session_prefix="thr")
    user = UserFactory(username="outsider")
    Membership.objects.create(user=user, project=theirs, role="admin")
    return user


def _normalized(response, *names: str) -> tuple[int, str]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode("utf-8", "replace")
    for name in names:
        text = text.replace(name, "<id>")
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
    return response.status_code, re.sub(r'"x-csrftoken": "[^"]+"', "", text)


def test_the_walk_covers_pages_and_the_api() -> None:
    names = {name for name, _ in walked_urls()}
    assert {"project", "detail", "spawn", "retro", "api-project", "api-session", "api-send"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_url_naming_a_project_or_session_answers_not_yours_like_not_there(client, outsider, method):
    client.force_login(outsider)
    differences = []
    for name, route in walked_urls():
        mine = _fill(route, key="web", session_id="web-1")
        none = _fill(route, key="nope", session_id="nope-1")
        existing = _normalized(getattr(client, method)(mine), "web-1", "web")
        missing = _normalized(getattr(client, method)(none), "nope-1", "nope")
        if existing != missing:
            differences.append(f"{method.upper()} {name}: {existing[0]} vs {missing[0]}")
    for url in FILTERS:
        existing = _normalized(client.get(url.format(key="web")), "web")
        missing = _normalized(client.get(url.format(key="nope")), "nope")
        if existing != missing:
            differences.append(f"GET {url}: {existing[0]} vs {missing[0]}")
    assert "\n".join(differences) == ""
    assert client.get("/p/web/").status_code == client.get("/s/web-1/").status_code == 404
    assert client.get("/api/v1/projects/web/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_every_websocket_closes_not_yours_like_not_there(outsider) -> None:
    app = URLRouter(websocket_urlpatterns)
    paths = [
        ("/ws/board/?project=web", "/ws/board/?project=nope"),
        ("/ws/board/?session=web-1", "/ws/board/?session=nope-1"),
        ("/ws/terminal/web-1/", "/ws/terminal/nope-1/"),
    ]
    assert len(websocket_urlpatterns) == 3  # a new websocket route: add it above

    async def close_code(path: str):
        communicator = WebsocketCommunicator(app, path)
        communicator.scope["user"] = outsider
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected, code

    async def scenario():
        return [(await close_code(mine), await close_code(none)) for mine, none in paths]

    for existing, missing in asyncio.run(scenario()):
        assert existing == missing == (False, 4403)


def test_an_unknown_person_is_not_walked_past_login(client, db) -> None:
    ProjectFactory(key="web", session_prefix="web")
    signed_out = client.get("/p/web/")
    assert signed_out.status_code == 302 and "/accounts/login/" in signed_out["Location"]
    assert client.get("/p/nope/")["Location"].replace("nope", "web") == signed_out["Location"]
