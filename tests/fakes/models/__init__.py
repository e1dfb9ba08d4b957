"""Local fakes of the model APIs the real agent CLIs call, scripted per test.

Each wire format (Anthropic Messages, OpenAI Chat Completions and Responses, Gemini
generateContent) is a subclass of :class:`FakeModelAPI` in its own module. A test scripts the
model's turns in a neutral form (:class:`Turn`: text and tool calls), starts the fake, points the
real CLI at ``fake.base_url`` and asserts on ``fake.requests``: every request as the CLI sent it.

- A request that needs an answer when the script is empty gets ``fake.default`` (a short final
  answer), so side requests a CLI makes (titles, summaries, quota checks) never hang.
- ``fake.hold()`` makes answers wait until ``fake.release()``, so a test can observe the agent
  while the model is "thinking"; ``fake.fail_with(status, times)`` answers errors for a while.
- ``fake.api_key`` is what the CLI must send; a request without it gets the API's own 401.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)


@dataclass
class ToolCall:
    """The model asks the CLI to run one of its tools (named as that CLI names it)."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{next(_ids):06d}")


@dataclass
class Turn:
    """One model answer: text, then tool calls (none: the turn ends the agent's work)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 1200
    output_tokens: int = 80
    # Only answer requests this accepts (e.g. the main conversation, not a title request);
    # others get ``default``. None: any request.
    when: Callable[[Recorded], bool] | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON when it was JSON, else the raw text

    def text(self) -> str:
        """The whole request body as text, for "the model was sent X" assertions."""
        return self.body if isinstance(self.body, str) else json.dumps(self.body, ensure_ascii=False)


class FakeModelAPI:
    """Base: an HTTP server on 127.0.0.1 with a script of turns and a log of requests."""

    def __init__(self, *, api_key: str = "sk-ao-test-key") -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.default = Turn(text="Done.")
        self._script: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self._failures: deque[int] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting ---------------------------------------------------------------------------
    def script(self, *turns: Turn) -> None:
        with self._lock:
            self._script.extend(turns)

    def remaining(self) -> int:
        with self._lock:
            return len(self._script)

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def fail_with(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def next_turn(self, request: Recorded) -> Turn:
        with self._lock:
            if self._script and (self._script[0].when is None or self._script[0].when(request)):
                return self._script.popleft()
        return self.default

    def holds(self, request: Recorded) -> bool:
        """Whether ``hold()`` keeps this request waiting (subclasses: only the agent's own turns)."""
        return True

    def take_failure(self) -> int | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeModelAPI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                recorded = Recorded(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with fake._lock:
                    fake.requests.append(recorded)
                if fake.holds(recorded):
                    fake._released.wait(timeout=600)
                fake.handle(self, recorded)

            do_GET = do_POST = do_PUT = do_DELETE = _dispatch

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeModelAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- wire format (subclasses) ------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        raise NotImplementedError

    # helpers for subclasses
    @staticmethod
    def send_json(
        handler: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def start_sse(handler: BaseHTTPRequestHandler, headers: dict[str, str] | None = None) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.close_connection = True

    @staticmethod
    def sse(handler: BaseHTTPRequestHandler, data: Any, event: str | None = None) -> None:
        chunk = (f"event: {event}\n" if event else "") + f"data: {json.dumps(data)}\n\n"
        handler.wfile.write(chunk.encode())
        handler.wfile.flush()
