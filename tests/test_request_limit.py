"""A request body over ao's limit is refused while it arrives (ao_site/bodylimit.py), by a real
`ao start`: daphne reads a whole request before the application sees it, so without the limit one
unauthenticated request of a gigabyte made the process hold a gigabyte."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.test_embedded import LINK_RE, ao_env, ao_process, free_port, git_repo

LIMIT = 256 * 1024  # AO_MAX_REQUEST_BYTES for this server


@pytest.fixture(scope="module")
def port(tmp_path_factory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("ao-home")
    workdir = git_repo(tmp_path_factory.mktemp("repo"))
    port = free_port()
    env = ao_env(home, AO_MAX_REQUEST_BYTES=str(LIMIT))
    with ao_process(["start", "--port", str(port)], env, cwd=workdir) as process:
        process.wait_for(LINK_RE)
        yield port


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            b"POST /webhooks/github/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        answer = _answer(sock)  # no body sent at all: the answer comes from the headers alone
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_a_chunked_body_is_cut_off_at_the_limit(port: int) -> None:
    """Sent in chunks (no length said), the body is read up to the limit, then the server
    answers 413 and closes: the client cannot send the 64 MB it meant to."""
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    sent = 0
    refused = False
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            b"POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(chunk)
                sent += 64 * 1024
        except OSError:  # the server closed the connection: refused
            refused = True
        answer = _answer(sock) if refused else b""
    assert refused, f"the server read all {sent:,} bytes"
    assert sent < 32 * LIMIT + 8 * 1024 * 1024  # the limit, plus what the sockets' buffers held
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_a_body_under_the_limit_still_reaches_ao(port: int) -> None:
    body = b"{}" + b" " * (LIMIT // 2)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            b"POST /webhooks/github/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        answer = _answer(sock)
    assert not answer.startswith(b"HTTP/1.1 413 "), answer[:200]  # ao's own answer (no such project)
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]


# --- the request class itself, fed by Twisted's real HTTP parser ---------------------------------
class _Factory:
    class server:
        connections: dict = {}

        @staticmethod
        def protocol_connected(protocol) -> None:
            pass

        @staticmethod
        def protocol_disconnected(protocol) -> None:
            pass

    @staticmethod
    def log(*args, **kwargs) -> None:
        pass


def _channel(processed: list[bytes]):
    from twisted.internet.testing import StringTransport
    from twisted.web import http

    from ao_site import bodylimit

    class Request(bodylimit.LimitedRequest):
        limit = 1000

        def process(self) -> None:  # daphne's process() hands the body to the application
            self.content.seek(0)
            processed.append(self.content.read())

    channel = http.HTTPChannel()
    channel.requestFactory = Request
    channel.factory = _Factory()
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def test_a_refused_chunked_body_never_reaches_the_application_cut_short() -> None:
    """Its last chunk came in the same read as the one over the limit: Twisted completes the
    request anyway unless the request class stops it."""
    processed: list[bytes] = []
    channel, transport = _channel(processed)
    body = b"".join(b"%x\r\n%s\r\n" % (500, b"x" * 500) for _ in range(4)) + b"0\r\n\r\n"
    channel.dataReceived(
        b"POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert processed == []


def test_no_100_continue_follows_the_413() -> None:
    processed: list[bytes] = []
    channel, transport = _channel(processed)
    channel.dataReceived(
        b"POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in transport.value()
