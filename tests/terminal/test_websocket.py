"""The terminal websocket against a real `ao start` (daphne, auth, origin check) and a real tmux pane."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.helpers.fixtures import wait_for
from tests.terminal.conftest import Server, at_prompt, pane_text, tmux

pytestmark = pytest.mark.slow


def open_terminal(server: Server, *, who: str | None, session: str = "term-1", origin: str | None = None):
    headers = {"Cookie": server.cookies[who]} if who else {}
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/terminal/{session}/",
        origin=origin or server.base,
        additional_headers=headers,
        open_timeout=10,
        max_size=None,
    )


def refused(server: Server, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as exc:
        open_terminal(server, **kwargs).close()
    return exc.value.response.status_code


class Reader:
    """Collects a terminal socket's output and control messages; acks like the browser does."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.output, self.controls = ws, bytearray(), []

    def until(self, predicate, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out; controls={self.controls} output tail={bytes(self.output[-400:])!r}"
                )
            try:
                message = self.ws.recv(timeout=remaining)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                self.output += message
                # as a browser does, an ack that finds the socket closing is dropped, and what the
                # server sent before closing (an error) is still read
                with contextlib.suppress(ConnectionClosed):
                    self.ws.send(json.dumps({"type": "ack", "bytes": len(self.output)}))
            else:
                self.controls.append(json.loads(message))

    def control(self, kind: str, timeout: float = 5.0) -> dict:
        self.until(lambda r: any(c["type"] == kind for c in r.controls), timeout)
        return next(c for c in self.controls if c["type"] == kind)

    def sees(self, text: bytes, timeout: float = 5.0) -> None:
        self.until(lambda r: text in r.output, timeout)


def send(ws: ClientConnection, **message) -> None:
    ws.send(json.dumps(message))


def test_anonymous_upgrade_is_refused(server: Server) -> None:
    assert refused(server, who=None) == 403


def test_cross_origin_upgrade_is_refused_even_with_a_login(server: Server) -> None:
    assert refused(server, who="admin", origin="http://evil.example") == 403


def test_user_without_a_role_in_the_project_is_refused(server: Server) -> None:
    assert refused(server, who="outsider") == 403


def test_unknown_session_is_refused_like_a_forbidden_one(server: Server) -> None:
    assert refused(server, who="admin", session="term-404") == 403


def test_operator_types_and_sees_the_echo(server: Server) -> None:
    with open_terminal(server, who="operator") as ws:
        reader = Reader(ws)
        assert reader.control("hello")["may_type"] is True
        reader.sees(b"ao-prompt$")

        send(ws, type="input", data="echo typed-$((6*7))\r")

        reader.sees(b"typed-42")
    assert "typed-42" in pane_text(server.socket_name, server.session)


def test_viewer_input_is_dropped_by_the_server(server: Server) -> None:
    with open_terminal(server, who="viewer") as viewer, open_terminal(server, who="admin") as admin:
        seen = Reader(viewer)
        assert seen.control("hello")["may_type"] is False
        Reader(admin).control("hello")

        # A viewer's client sends input anyway (a modified browser could).
        send(viewer, type="input", data="echo viewer-sneaked-$((1+1))\r")
        assert seen.control("readonly") == {"type": "readonly"}
        send(admin, type="input", data="echo admin-after-$((2+3))\r")

        seen.sees(b"admin-after-5")  # the viewer still watches live output
    pane = pane_text(server.socket_name, server.session)
    assert "admin-after-5" in pane
    assert "viewer-sneaked" not in pane
    assert b"viewer-sneaked" not in seen.output


def test_viewer_whose_role_is_removed_is_disconnected(server: Server) -> None:
    from tests.test_embedded import django_shell

    with open_terminal(server, who="leaver") as ws:
        reader = Reader(ws)
        reader.control("hello")
        reader.sees(b"ao-prompt$")
        with pytest.raises(AssertionError, match="timed out"):  # re-checked every 0.5 s: stays open
            reader.until(lambda r: False, timeout=1.5)

        django_shell(
            server.env,
            "from sessions.models import Membership\n"
            "Membership.objects.filter(user__username='leaver').delete()",
        )
        with pytest.raises(ConnectionClosed) as closed:
            reader.until(lambda r: False, timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert {"type": "error", "message": "your access to this session was removed"} in reader.controls
    assert refused(server, who="leaver") == 403


NEW_LOGIN = """
from django.contrib.auth import get_user_model
from django.test import Client
from sessions.models import Membership, Project
user = get_user_model().objects.create_user({name!r}, password=None)
Membership.objects.create(user=user, project=Project.objects.get(key="term"), role="operator")
client = Client()
client.force_login(user)
print("COOKIE=sessionid=" + client.cookies["sessionid"].value)
"""


def sign_out(server: Server, cookie: str) -> None:
    """What the nav's "Log out" button does in that browser: POST /accounts/logout/ with the CSRF token."""
    with httpx.Client(base_url=server.base, timeout=10, headers={"Origin": server.base}) as browser:
        browser.cookies.set("sessionid", cookie.removeprefix("sessionid="))
        assert browser.get("/").status_code == 200
        out = browser.post("/accounts/logout/", data={"csrfmiddlewaretoken": browser.cookies["csrftoken"]})
        assert out.status_code == 302, out.text
        assert browser.get("/").status_code == 302  # signed out: the board sends it to the login page


def test_an_operator_who_signed_out_types_no_more_and_is_disconnected(server: Server) -> None:
    from tests.test_embedded import django_shell

    output = django_shell(server.env, NEW_LOGIN.format(name="signs-out"))
    server.cookies["signs-out"] = cookie = output.split("COOKIE=", 1)[1].strip()
    with open_terminal(server, who="signs-out") as ws:
        reader = Reader(ws)
        assert reader.control("hello")["may_type"] is True
        reader.sees(b"ao-prompt$")

        sign_out(server, cookie)
        send(ws, type="input", data="echo after-sign-out-$((3*3))\r")

        with pytest.raises(ConnectionClosed) as closed:
            reader.until(lambda r: False, timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert b"after-sign-out-9" not in reader.output
    assert "after-sign-out-9" not in pane_text(server.socket_name, server.session)
    assert refused(server, who="signs-out") == 403


def test_operator_resize_is_applied_and_announced_to_every_viewer(server: Server) -> None:
    def window() -> str:
        return tmux(
            server.socket_name, "display", "-p", "-t", "=term-1:", "#{window_width}x#{window_height}"
        ).strip()

    with open_terminal(server, who="operator") as operator, open_terminal(server, who="viewer") as viewer:
        ops, views = Reader(operator), Reader(viewer)
        ops.control("hello")
        views.control("hello")
        views.controls.clear()

        send(viewer, type="resize", cols=40, rows=10)  # ignored: viewers never resize the pane
        send(operator, type="resize", cols=100, rows=30)

        views.until(lambda r: {"type": "size", "cols": 100, "rows": 30} in r.controls)
        assert {"type": "size", "cols": 40, "rows": 10} not in views.controls
        assert wait_for(lambda: window() == "100x29", timeout=3), window()  # one row: tmux's status line


def test_an_operator_demoted_to_viewer_resizes_the_pane_no_more(server: Server) -> None:
    from tests.test_embedded import django_shell

    def window() -> str:
        return tmux(
            server.socket_name, "display", "-p", "-t", "=term-1:", "#{window_width}x#{window_height}"
        ).strip()

    output = django_shell(server.env, NEW_LOGIN.format(name="demoted"))
    server.cookies["demoted"] = output.split("COOKIE=", 1)[1].strip()
    with open_terminal(server, who="demoted") as ws:
        reader = Reader(ws)
        assert reader.control("hello")["may_type"] is True
        send(ws, type="resize", cols=90, rows=25)
        assert wait_for(lambda: window() == "90x24", timeout=3), window()

        django_shell(
            server.env,
            "from sessions.models import Membership\n"
            "Membership.objects.filter(user__username='demoted').update(role='viewer')",
        )
        send(ws, type="resize", cols=50, rows=12)
        send(ws, type="input", data="echo demoted-$((6*7))\r")
        reader.control("readonly")  # the input after it was refused: the resize before it was judged too
    assert window() == "90x24"
    assert "demoted-42" not in pane_text(server.socket_name, server.session)


def said_then_closed(server: Server, *, who: str, session: str, kind: str) -> tuple[dict, list[dict], int]:
    """Open the session's terminal; what it said (the ``kind`` control), every control it sent,
    and the code it closed with."""
    with open_terminal(server, who=who, session=session) as ws:
        reader = Reader(ws)
        said = reader.control(kind)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    return said, reader.controls, closed.value.rcvd.code


def test_session_on_another_agent_host_says_where_its_terminal_is(server: Server) -> None:
    error, _controls, code = said_then_closed(server, who="admin", session="term-2", kind="error")
    assert "runs on agent host 'some-other-host'" in error["message"]
    assert "`ao web` running on that host" in error["message"]
    assert code == 4404


@pytest.mark.parametrize(
    ("session", "why"),
    [
        ("term-8", "its agent did not start: claude-code agent: 'claude' was not found on PATH"),
        ("term-9", "its agent was killed"),
    ],
)
def test_an_ended_sessions_terminal_says_the_session_ended_not_that_it_has_none_yet(
    server: Server, session: str, why: str
) -> None:
    closed, controls, code = said_then_closed(server, who="viewer", session=session, kind="closed")
    assert closed["message"] == f"this session has ended: {why}"
    assert not [c for c in controls if c["type"] == "error"]
    assert code == 4410  # ended: the browser does not reconnect


def test_a_starting_sessions_terminal_says_it_is_coming_and_the_browser_tries_again(server: Server) -> None:
    waiting, controls, code = said_then_closed(server, who="viewer", session="term-6", kind="waiting")
    assert waiting["message"] == "its agent is starting: its terminal opens in a moment"
    assert not [c for c in controls if c["type"] == "error"]
    assert code == 4425  # not yet: the browser connects again


def test_relay_stops_when_the_last_viewer_leaves(server: Server) -> None:
    def clients() -> list[str]:
        return tmux(server.socket_name, "list-clients", "-t", "=term-1", "-F", "#{client_tty}").split()

    with open_terminal(server, who="admin") as first, open_terminal(server, who="viewer") as second:
        Reader(first).control("hello")
        Reader(second).control("hello")
        assert wait_for(lambda: len(clients()) == 1, timeout=3)  # one tmux client shared by both
        time.sleep(0.2)
        assert len(clients()) == 1
    assert wait_for(lambda: clients() == [], timeout=5), clients()


def test_a_viewer_leaving_mid_flood_is_not_an_error(server: Server) -> None:
    """Output the relay had queued for a browser that just went away is dropped quietly."""
    with open_terminal(server, who="operator") as operator:
        reader = Reader(operator)
        reader.control("hello")
        send(operator, type="input", data="timeout 60 yes ao-flood; clear\r")
        reader.until(lambda r: len(r.output) > 64 * 1024)
        for n in range(10):  # viewers drawing the flood drop (with and without a close handshake)
            with open_terminal(server, who="viewer") as ws:
                Reader(ws).until(lambda r: len(r.output) > 64 * 1024)
                if n % 2:
                    ws.socket.shutdown(socket.SHUT_RDWR)
        send(operator, type="input", data="\x03")
        send(operator, type="input", data="echo flood-$((6 * 7))\r")
        reader.sees(b"flood-42", timeout=15)  # drawn after the rest of the flood
    assert "Traceback" not in server.log()


# What xterm.js (or any terminal) sends on its own, in answer to queries or on focus changes:
# device attributes (DA1, DA2, DA3), cursor position (CPR, DECXCPR), status (DSR), a mode report
# (DECRPM), a colour (OSC 11), its version (XTVERSION), a setting (DECRQSS), window size, the
# kitty keyboard flags, focus in and out.
TERMINAL_REPLIES = (
    "\x1b[>0;276;0c",
    "\x1b[?1;2c",
    "\x1bP!|00000000\x1b\\",
    "\x1b[12;40R",
    "\x1b[?12;40;1R",
    "\x1b[0n",
    "\x1b[?2004;2$y",
    "\x1b]11;rgb:0707/0909/0d0d\x1b\\",
    "\x1b]10;rgb:ffff/ffff/ffff\x07",
    "\x1bP>|xterm.js(6.0.0)\x1b\\",
    "\x1bP1$r0m\x1b\\",
    "\x1b[8;24;80t",
    "\x1b[?0u",
    "\x1b[I",
    "\x1b[O",
)


def test_terminal_replies_never_reach_the_pane_only_typed_keys_do(server: Server) -> None:
    """Each message is one data event of the browser terminal: typed keys and the terminal's own
    answers arrive interleaved; the pane (``cat -v`` shows every byte it gets) sees the keys only."""
    with open_terminal(server, who="operator") as ws:
        reader = Reader(ws)
        reader.control("hello")
        # whatever an earlier test left: Ctrl-C first, alone (typed in the same write, the command
        # after it raced the shell's handling of the interrupt, which discards what it has read)
        send(ws, type="input", data="\x03")
        assert wait_for(lambda: at_prompt(server.socket_name, server.session))
        send(ws, type="input", data="stty sane; clear; echo ready-$((6*7))\r")
        assert wait_for(lambda: "ready-42" in pane_text(server.socket_name, server.session)), repr(
            pane_text(server.socket_name, server.session)
        )
        send(ws, type="input", data="stty -echo; printf '\\e[?2004h'; cat -v; stty echo\r")
        assert wait_for(lambda: "cat -v; stty echo" in pane_text(server.socket_name, server.session)), (
            pane_text(server.socket_name, server.session)
        )
        typed = ["t", "y", "p", "e", "d", "\x1b[D", "\x1b[200~pasted\x1b[201~", "\x1bOP", "\x1b[15;5~", "!"]
        for n, key in enumerate(typed):
            send(ws, type="input", data=TERMINAL_REPLIES[n % len(TERMINAL_REPLIES)])
            send(ws, type="input", data=key)
        for reply in TERMINAL_REPLIES:  # each one at least twice: tmux takes the first DA2 for itself
            send(ws, type="input", data=reply)
        send(ws, type="input", data="\r")
        expected = "typed^[[D^[[200~pasted^[[201~^[OP^[[15;5~!"  # the pane asked for bracketed paste
        assert wait_for(lambda: expected in pane_text(server.socket_name, server.session)), pane_text(
            server.socket_name, server.session
        )
        pane = pane_text(server.socket_name, server.session)
        send(ws, type="input", data="\x03")  # Ctrl-C still gets through: cat ends
        assert wait_for(lambda: at_prompt(server.socket_name, server.session))
        send(ws, type="input", data="stty sane; clear\r")  # Ctrl-C skipped the stty echo
    assert [line for line in pane.splitlines() if "typed" in line] == [expected], pane
    assert "^[[>" not in pane and "^[[I" not in pane and "rgb:" not in pane
