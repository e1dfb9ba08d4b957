"""ao's command line never sends its token on to where a redirect points.

urllib follows a redirect with every header of the request, Authorization included, to any scheme,
host and port. An AO_URL that answers with a redirect (a proxy sending http to https, a wrong
address, whoever answers there) must not receive the token a second time elsewhere. Real
processes and real HTTP servers: the remote CLI (`ao session ls`, `ao status`), an agent's
`ao report`, and the relay to the ao serving this AO_HOME (`ao status` with AO_HOME/cli.json).
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions.cli.light_commands import RELAY_FILE, database_id
from tests.test_embedded import ao_env, run_ao

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


class Servers:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization) the elsewhere server got
        seen = self.seen

        class Elsewhere(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(404)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args) -> None:
                pass

        self.elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
        target = f"http://localhost:{self.elsewhere.server_address[1]}"

        class Redirects(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", target + self.path)
                self.end_headers()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(302)  # urllib follows with a GET, the Authorization header kept
                self.send_header("Location", target + self.path)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.redirects = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirects)
        self.url = f"http://127.0.0.1:{self.redirects.server_address[1]}"
        for server in (self.elsewhere, self.redirects):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self.elsewhere, self.redirects):
            server.shutdown()
            server.server_close()


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()


def refused(result, servers: Servers, token: str) -> None:
    assert result.returncode != 0, result.stdout
    assert not [auth for _, auth in servers.seen if auth and token in auth], servers.seen
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "redirect" in errors[0] and "Traceback" not in result.stderr, result.stderr


def test_the_remote_cli_does_not_follow_a_redirect_with_its_token(servers: Servers, tmp_path: Path) -> None:
    token = "ao_operatorTokenForTheRemoteCli"
    env = ao_env(tmp_path, AO_URL=servers.url, AO_TOKEN=token)
    refused(run_ao(["session", "ls"], env), servers, token)
    refused(run_ao(["send", "web-1", "hello"], env), servers, token)


def test_an_agents_report_does_not_follow_a_redirect_with_its_token(servers: Servers, tmp_path: Path) -> None:
    token = "sessionTokenOfTheAgent"
    env = ao_env(tmp_path, AO_URL=servers.url, AO_TOKEN=token, AO_SESSION="web-1", AO_PROJECT="web")
    refused(run_ao(["report", "working", "on", "it"], env), servers, token)


def test_the_relay_does_not_follow_a_redirect_with_its_token(servers: Servers, tmp_path: Path) -> None:
    token = "relayTokenOfTheServingAo"
    env = ao_env(tmp_path)
    env.pop("DATABASE_URL", None)
    (tmp_path / RELAY_FILE).write_text(
        json.dumps({"pid": os.getpid(), "url": servers.url, "token": token, "database": database_id("")})
    )
    (tmp_path / RELAY_FILE).chmod(0o600)
    refused(run_ao(["status"], env), servers, token)
