"""A tiny webhook receiver on 127.0.0.1 that records requests, with fault injection.

``FakeHooks`` answers every POST with ``status``/``body`` (200 "ok" by default, as Slack does;
use 204 and "" for Discord), records each request (method, path, headers, raw body, time) and
can be told to misbehave for the next requests: ``fail_next(503, times=2)``,
``fail_next(429, retry_after="1")``, ``fail_next(400, body="invalid_payload")`` or
``delay_next(1.0)`` (answer late, for client timeouts).

    with FakeHooks() as hooks:
        url = hooks.url("/services/T000/B000/XXXX")
        ...
        assert hooks.requests[0].json()["blocks"][0]["type"] == "header"
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request arrived

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


class FakeHooks:
    def __init__(self, *, status: int = 200, body: str = "ok") -> None:
        self.status = status
        self.body = body
        self.requests: list[Recorded] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control -----------------------------------------------------------------------------
    def fail_next(
        self, status: int, *, times: int = 1, body: str = "", retry_after: str | None = None
    ) -> None:
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        with self._lock:
            self._faults.extend(Fault(status=status, body=body, headers=headers) for _ in range(times))

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        with self._lock:
            self._faults.extend(Fault(delay=seconds) for _ in range(times))

    def url(self, path: str = "/hook") -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeHooks:
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(
                    self.command, self.path, dict(self.headers.items()), body, time.monotonic()
                )
                with hooks._lock:
                    hooks.requests.append(recorded)
                    fault = hooks._faults.popleft() if hooks._faults else None
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                status = fault.status if fault is not None and fault.status is not None else hooks.status
                text = fault.body if fault is not None and fault.status is not None else hooks.body
                payload = text.encode()
                try:
                    self.send_response(status)
                    for name, value in fault.headers if fault is not None else ():
                        self.send_header(name, value)
                    if payload:
                        self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if payload:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            do_POST = _handle
            do_GET = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHooks:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
