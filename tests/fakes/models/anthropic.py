"""A local Anthropic Messages API (``POST /v1/messages``), as Claude Code calls it.

Point Claude Code at it with ``ANTHROPIC_BASE_URL=fake.base_url`` and
``ANTHROPIC_API_KEY=fake.api_key``. It speaks the real wire format:

- ``stream: true``: the SSE events ``message_start`` (usage with the input tokens),
  ``content_block_start`` / ``content_block_delta`` (``text_delta``, ``input_json_delta`` in
  pieces) / ``content_block_stop`` per block, ``message_delta`` (``stop_reason`` ``tool_use`` or
  ``end_turn``, usage with the output tokens), ``message_stop``; between them ``ping``.
- without it: one ``message`` object.
- ``POST /v1/messages/count_tokens``: ``{"input_tokens": n}`` (about 4 characters a token).
- a wrong or missing key (``x-api-key``, or ``Authorization: Bearer``): the API's 401
  ``authentication_error``; ``fake.fail_with(529)`` and friends: the API's error bodies.
- anything else: the API's 404 ``not_found_error``, logged like every request.

The model named in the request is echoed back, so the CLI prices the answer as it would a real
one. Each answer carries a ``request-id`` header, as the real API's do.
"""

from __future__ import annotations

import itertools
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.models import FakeModelAPI, Recorded, ToolCall, Turn

_message_ids = itertools.count(1)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def is_agent_turn(request: Recorded) -> bool:
    """A request of the agent's main loop (it offers tools), not a side request (titles, topics,
    quota checks), which Claude Code sends without tools."""
    return isinstance(request.body, dict) and bool(request.body.get("tools"))


def user_texts(request: Recorded) -> list[str]:
    """The text of every user message of a Messages request, in order (one string per message:
    its text blocks joined; tool results are not user text)."""
    if not isinstance(request.body, dict):
        return []
    texts = []
    for message in request.body.get("messages") or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        parts = [
            str(block.get("text", ""))
            for block in content or []
            if isinstance(block, dict) and block.get("type") == "text"
        ]
        if parts:
            texts.append("".join(parts))
    return texts


class AnthropicFake(FakeModelAPI):
    """The Messages API; script it with :class:`Turn` s (``when=is_agent_turn`` keeps side
    requests from taking the agent's turns)."""

    def holds(self, request: Recorded) -> bool:
        """``hold()`` holds the agent's turns only: side requests (2.1.100 names the conversation
        with a tool-less request) go on, as they would against a slow model."""
        return is_agent_turn(request)

    def handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        path = request.path.split("?", 1)[0].rstrip("/")
        if request.method == "HEAD" or (request.method == "GET" and path in ("", "/")):
            self.send_json(handler, 200, {})  # connectivity checks
            return
        if not self._authorized(request):
            self._error(handler, 401, "invalid x-api-key")
            return
        if request.method == "POST" and path == "/v1/messages/count_tokens":
            self.send_json(handler, 200, {"input_tokens": max(1, len(request.text()) // 4)})
            return
        if request.method == "POST" and path == "/v1/messages":
            failure = self.take_failure()
            if failure is not None:
                self._error(handler, failure, ERROR_TYPES.get(failure, "api_error").replace("_", " "))
                return
            if not isinstance(request.body, dict) or not isinstance(request.body.get("messages"), list):
                self._error(handler, 400, "messages: Field required")
                return
            turn = self.next_turn(request)
            if request.body.get("stream"):
                self._stream(handler, request, turn)
            else:
                self.send_json(handler, 200, self._message(request, turn), self._headers())
            return
        self._error(handler, 404, "Not found")

    # --- pieces ---------------------------------------------------------------------------------
    def _authorized(self, request: Recorded) -> bool:
        key = request.headers.get("x-api-key")
        if key is None:
            bearer = request.headers.get("authorization", "")
            key = bearer[7:] if bearer.lower().startswith("bearer ") else None
        return key == self.api_key

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"request-id": f"req_fake{next(_message_ids):08d}"}

    def _error(self, handler: BaseHTTPRequestHandler, status: int, message: str) -> None:
        payload = {
            "type": "error",
            "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        }
        self.send_json(handler, status, payload, self._headers())

    @staticmethod
    def _blocks(turn: Turn) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if turn.text:
            blocks.append({"type": "text", "text": turn.text})
        for call in turn.tool_calls:
            blocks.append(
                {"type": "tool_use", "id": _tool_id(call), "name": call.name, "input": call.arguments}
            )
        return blocks

    @staticmethod
    def _model(request: Recorded) -> str:
        return str(request.body.get("model") or "claude-sonnet-4-5")

    @staticmethod
    def _usage(turn: Turn, *, output: int) -> dict[str, Any]:
        return {
            "input_tokens": turn.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output,
            "service_tier": "standard",
        }

    def _message(self, request: Recorded, turn: Turn) -> dict[str, Any]:
        return {
            "id": f"msg_fake{next(_message_ids):08d}",
            "type": "message",
            "role": "assistant",
            "model": self._model(request),
            "content": self._blocks(turn),
            "stop_reason": "tool_use" if turn.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": self._usage(turn, output=turn.output_tokens),
        }

    def _stream(self, handler: BaseHTTPRequestHandler, request: Recorded, turn: Turn) -> None:
        message = self._message(request, turn)
        self.start_sse(handler, self._headers())
        start = {**message, "content": [], "stop_reason": None, "usage": self._usage(turn, output=1)}
        self.sse(handler, {"type": "message_start", "message": start}, "message_start")
        self.sse(handler, {"type": "ping"}, "ping")
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                opened: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"], 40)]
            else:
                opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                arguments = json.dumps(block["input"])
                deltas = [{"type": "input_json_delta", "partial_json": ""}]
                deltas += [{"type": "input_json_delta", "partial_json": p} for p in _pieces(arguments, 24)]
            self.sse(
                handler,
                {"type": "content_block_start", "index": index, "content_block": opened},
                "content_block_start",
            )
            for delta in deltas:
                self.sse(
                    handler,
                    {"type": "content_block_delta", "index": index, "delta": delta},
                    "content_block_delta",
                )
            self.sse(handler, {"type": "content_block_stop", "index": index}, "content_block_stop")
        self.sse(
            handler,
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": turn.output_tokens},
            },
            "message_delta",
        )
        self.sse(handler, {"type": "message_stop"}, "message_stop")


def _tool_id(call: ToolCall) -> str:
    return call.id if call.id.startswith("toolu_") else "toolu_" + call.id


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
