"""Open websockets follow the person's access: deactivated, demoted or signed out, they stop.

Each socket is opened as a browser opens it: through Channels' session login
(``AuthMiddlewareStack``) with the ``sessionid`` cookie of a real login, then the person's
account or login changes in the database while the socket stays open. Re-checks are made on
every push here (``AO_ACCESS_RECHECK_SECONDS = 0``, set once the socket is open).
"""

from __future__ import annotations

import asyncio

import pytest
from channels.auth import AuthMiddlewareStack
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from ao_site.routing import websocket_urlpatterns
from sessions.core import realtime
from sessions.models import Membership
from tests.factories import UserFactory

FORBIDDEN = {"type": "websocket.close", "code": 4403}


def browser_login(user) -> Client:
    """A browser signed in as ``user`` (a real login session in the database)."""
    client = Client()
    client.force_login(user)
    return client


async def open_socket(browser: Client, path: str) -> WebsocketCommunicator:
    cookie = (
        f"{django_settings.SESSION_COOKIE_NAME}={browser.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    )
    app = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    communicator = WebsocketCommunicator(app, path, headers=[(b"cookie", cookie.encode())])
    connected, code = await communicator.connect(timeout=5)
    assert connected, code
    return communicator


def card(project, session_id: str, text: str) -> dict:
    """A card as ``realtime`` pushes it to the boards."""
    return {
        "type": "card.html",
        "html": text,
        "session": session_id,
        "project": project.pk,
        "zone": "working",
    }


def first_output_after(
    browser: Client, path: str, change, group: str, *messages: dict
) -> tuple[dict, set[str]]:
    """Open ``path`` in ``browser``; make ``change``; push ``messages`` to ``group``; return what
    the socket gets first, and the groups it is in then."""
    layer = get_channel_layer()

    async def scenario():
        socket = await open_socket(browser, path)
        if path.startswith("/ws/inbox/"):
            await socket.receive_from(timeout=5)  # the badge sent on connect
        await asyncio.to_thread(change)
        django_settings.AO_ACCESS_RECHECK_SECONDS = 0.0
        for message in messages:
            await layer.group_send(group, message)
        output = await socket.receive_output(timeout=5)
        groups = {name for name, channels in layer.groups.items() if channels}  # this socket alone is open
        await socket.disconnect()
        return output, groups

    return asyncio.run(scenario())


def deactivate(user):
    return lambda: get_user_model().objects.filter(pk=user.pk).update(is_active=False)


def _change_password(user):
    def change() -> None:
        viewer = get_user_model().objects.get(pk=user.pk)
        viewer.set_password("a-new-password-nobody-had")
        viewer.save()

    return change


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("change", "path"),
    [
        ("deactivated", "/ws/board/?project=webapp"),
        ("signed out", "/ws/board/"),
        # as on every page (Django's session hash): a changed password signs the other browsers out
        ("password changed", "/ws/board/?session=web-1"),
    ],
)
def test_a_board_gets_no_more_cards_and_is_closed_once_its_login_is_gone(
    team, settings, change, path
) -> None:
    browser = browser_login(team.viewer)
    do = {
        "deactivated": deactivate(team.viewer),
        "signed out": browser.logout,
        "password changed": _change_password(team.viewer),
    }[change]
    group = realtime.session_group("web-1") if "session=" in path else realtime.project_group(team.project.pk)

    output, groups = first_output_after(
        browser, path, do, group, card(team.project, "web-1", f"<i>{change}</i>")
    )

    assert (output, groups) == (FORBIDDEN, set())


@pytest.mark.django_db(transaction=True)
def test_a_demoted_superuser_board_leaves_the_projects_they_no_longer_see(team, settings) -> None:
    """A superuser's board follows every project; demoted, they keep their viewer role in webapp
    and see its cards, and no longer those of a project they have no role in."""
    root = UserFactory(username="root", is_superuser=True)
    Membership.objects.create(user=root, project=team.project, role="viewer")
    browser = browser_login(root)

    output, groups = first_output_after(
        browser,
        "/ws/board/",
        lambda: get_user_model().objects.filter(pk=root.pk).update(is_superuser=False),
        realtime.BOARD_GROUP,
        card(team.other, "sec-1", "<i>a project they no longer see</i>"),
        card(team.project, "web-1", "<i>their own project</i>"),
    )

    assert output == {"type": "websocket.send", "text": "<i>their own project</i>"}
    assert groups == {realtime.project_group(team.project.pk)}  # it left the all-projects group


@pytest.mark.django_db(transaction=True)
def test_a_viewer_whose_role_was_removed_leaves_that_project(team, settings) -> None:
    """The board of every project they see: a project taken away is left, the socket stays."""
    Membership.objects.create(user=team.viewer, project=team.other, role="viewer")
    browser = browser_login(team.viewer)
    layer = get_channel_layer()

    async def scenario():
        socket = await open_socket(browser, "/ws/board/")
        await Membership.objects.filter(user=team.viewer, project=team.other).adelete()
        django_settings.AO_ACCESS_RECHECK_SECONDS = 0.0
        await layer.group_send(
            realtime.project_group(team.other.pk), card(team.other, "sec-1", "<i>lost</i>")
        )
        await layer.group_send(
            realtime.project_group(team.project.pk), card(team.project, "web-1", "<i>kept</i>")
        )
        output = await socket.receive_output(timeout=5)
        groups = {name for name, channels in layer.groups.items() if channels}  # this socket alone is open
        await socket.disconnect()
        return output, groups

    output, groups = asyncio.run(scenario())

    assert output == {"type": "websocket.send", "text": "<i>kept</i>"}
    assert groups == {realtime.project_group(team.project.pk)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["deactivated", "signed out"])
def test_the_inbox_badge_stops_for_a_deactivated_person_or_a_browser_signed_out(
    team, settings, change
) -> None:
    browser = browser_login(team.viewer)

    output, groups = first_output_after(
        browser,
        "/ws/inbox/",
        deactivate(team.viewer) if change == "deactivated" else browser.logout,
        realtime.user_group(team.viewer.pk),
        {"type": "inbox.html", "html": "<b>3</b>"},
    )

    assert (output, groups) == (FORBIDDEN, set())


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_person_keeps_receiving(team, settings) -> None:
    """The re-check lets the person through while nothing changed."""
    browser = browser_login(team.viewer)

    board, _ = first_output_after(
        browser,
        "/ws/board/?project=webapp",
        lambda: None,
        realtime.project_group(team.project.pk),
        card(team.project, "web-1", "<i>still here</i>"),
    )
    inbox, _ = first_output_after(
        browser,
        "/ws/inbox/",
        lambda: None,
        realtime.user_group(team.viewer.pk),
        {"type": "inbox.html", "html": "<b>1</b>"},
    )

    assert board == {"type": "websocket.send", "text": "<i>still here</i>"}
    assert inbox == {"type": "websocket.send", "text": "<b>1</b>"}
