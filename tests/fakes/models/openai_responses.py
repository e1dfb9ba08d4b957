"""A fake of OpenAI's Responses API (``POST /v1/responses``), as the Codex CLI calls it.

Codex streams (``"stream": true``) and reads server-sent events: ``response.created``,
``response.in_progress``, then per output item ``response.output_item.added`` … deltas …
``response.output_item.done``, and ``response.completed`` carrying the usage Codex records in
its rollout (``input_tokens``, ``input_tokens_details.cached_tokens``, ``output_tokens``,
``output_tokens_details.reasoning_tokens``, ``total_tokens``). A :class:`ToolCall` becomes a
``function_call`` item (arguments streamed as ``response.function_call_arguments.delta`` /
``.done``), or a ``custom_tool_call`` (``response.custom_tool_call_input.delta`` / ``.done``)
when the request declared that tool as ``"type": "custom"`` (Codex's freeform ``apply_patch``);
its ``arguments`` are then ``{"input": "<the raw text>"}``.

Errors use the API's own shapes: 401 ``invalid_api_key``, 429 ``rate_limit_exceeded`` with
``retry-after``, 5xx ``server_error`` (``{"error": {"message", "type", "param", "code"}}``).
``GET /v1/models`` lists ``models`` (Codex 0.169 never asked for it: it sends only
``POST /v1/responses``, plus one tool-less thread-title request per new conversation, which
:func:`is_agent_turn` tells apart). Other paths answer 404 in the API's shape, and are logged
like every request, so a test can see what else a CLI asked for.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.models import FakeModelAPI, Recorded, ToolCall, Turn

_seq = itertools.count(1)


@dataclass
class ResponsesTurn(Turn):
    """A :class:`Turn` whose usage says part of the input was read from the prompt cache
    (``input_tokens_details.cached_tokens``; ``input_tokens`` includes them, as OpenAI counts)."""

    cached_tokens: int = 0


ERRORS = {
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-****. You can find your API key at https://platform.openai.com/account/api-keys."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}  # fmt: skip


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kind, code, text = ERRORS.get(status, ("server_error", None, f"HTTP {status}"))
    return {"error": {"message": message or text, "type": kind, "param": None, "code": code}}


class FakeResponsesAPI(FakeModelAPI):
    """Scripted Responses API. ``base_url + "/v1"`` is what goes in a provider's ``base_url``."""

    def __init__(self, *, api_key: str = "sk-ao-test-key", models: tuple[str, ...] = ("fake-model",)) -> None:
        super().__init__(api_key=api_key)
        self.models = list(models)

    # --- what the CLI sent -------------------------------------------------------------------
    def responses(self) -> list[Recorded]:
        """The ``POST /v1/responses`` requests, oldest first."""
        return [
            r for r in self.requests if r.method == "POST" and r.path.split("?")[0].endswith("/responses")
        ]

    @staticmethod
    def user_texts(request: Recorded) -> list[str]:
        """The text of each ``user`` message in a request's ``input``, in order."""
        texts = []
        for item in (request.body or {}).get("input") or []:
            if item.get("type", "message") == "message" and item.get("role") == "user":
                content = item.get("content")
                if isinstance(content, str):
                    texts.append(content)
                else:
                    texts.append("".join(p.get("text", "") for p in content or [] if isinstance(p, dict)))
        return texts

    @staticmethod
    def tool_names(request: Recorded) -> list[str]:
        return [t.get("name") or t.get("type") for t in (request.body or {}).get("tools") or []]

    # --- serving -----------------------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        path = request.path.split("?")[0]
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            self.send_json(handler, 401, error_body(401))
            return
        if request.method == "GET" and path.endswith("/models"):
            self.send_json(
                handler,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 1700000000, "owned_by": "ao-fake"}
                        for m in self.models
                    ],
                },
            )
            return
        if request.method == "POST" and path.endswith("/responses"):
            status = self.take_failure()
            if status is not None:
                headers = {"retry-after": "1", "x-request-id": f"req_{next(_seq)}"} if status == 429 else {}
                self.send_json(handler, status, error_body(status), headers)
                return
            try:
                self._respond(handler, request, self.next_turn(request))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the CLI went away mid-answer (killed, or it gave up): as a real server sees it
            return
        self.send_json(
            handler,
            404,
            {
                "error": {
                    "message": f"Unknown path {path}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
        )

    def _respond(self, handler: BaseHTTPRequestHandler, request: Recorded, turn: Turn) -> None:
        body = request.body if isinstance(request.body, dict) else {}
        model = str(body.get("model") or (self.models[0] if self.models else "fake-model"))
        custom = {t.get("name") for t in body.get("tools") or [] if t.get("type") == "custom"}
        response_id = f"resp_{next(_seq):08d}"
        response = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "model": model,
            "output": [],
            "usage": None,
        }
        seq = itertools.count(0)

        def emit(kind: str, **data: Any) -> None:
            self.sse(handler, {"type": kind, "sequence_number": next(seq), **data}, event=kind)

        if body.get("stream") is False:  # not what Codex does, but answer it in the same words
            self.send_json(handler, 200, self._final(response, self._items(turn, custom), turn))
            return
        self.start_sse(handler, {"x-request-id": f"req_{next(_seq)}"})
        emit("response.created", response=response)
        emit("response.in_progress", response=response)
        items = self._items(turn, custom)
        for index, item in enumerate(items):
            started = {**item, "status": "in_progress"}
            if item["type"] == "message":
                started["content"] = []
                emit("response.output_item.added", output_index=index, item=started)
                part = {"type": "output_text", "annotations": [], "text": ""}
                emit(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
                text = item["content"][0]["text"]
                for chunk in _chunks(text):
                    emit(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        delta=chunk,
                    )
                emit(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                )
                emit(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part={**part, "text": text},
                )
            elif item["type"] == "function_call":
                started["arguments"] = ""
                emit("response.output_item.added", output_index=index, item=started)
                for chunk in _chunks(item["arguments"]):
                    emit(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=chunk,
                    )
                emit(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            else:  # custom_tool_call
                started["input"] = ""
                emit("response.output_item.added", output_index=index, item=started)
                for chunk in _chunks(item["input"]):
                    emit(
                        "response.custom_tool_call_input.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=chunk,
                    )
                emit(
                    "response.custom_tool_call_input.done",
                    item_id=item["id"],
                    output_index=index,
                    input=item["input"],
                )
            emit("response.output_item.done", output_index=index, item=item)
        emit("response.completed", response=self._final(response, items, turn))

    @staticmethod
    def _items(turn: Turn, custom: set[Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if turn.text:
            items.append(
                {
                    "id": f"msg_{next(_seq):08d}",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "annotations": [], "text": turn.text}],
                }
            )
        for call in turn.tool_calls:
            items.append(_call_item(call, custom))
        return items

    @staticmethod
    def _final(response: dict[str, Any], items: list[dict[str, Any]], turn: Turn) -> dict[str, Any]:
        cached = min(turn.input_tokens, turn.cached_tokens if isinstance(turn, ResponsesTurn) else 0)
        return {
            **response,
            "status": "completed",
            "output": items,
            "usage": {
                "input_tokens": turn.input_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": turn.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": turn.input_tokens + turn.output_tokens,
            },
        }


def _call_item(call: ToolCall, custom: set[Any]) -> dict[str, Any]:
    if call.name in custom:
        raw = call.arguments.get("input", "")
        return {
            "id": f"ctc_{next(_seq):08d}",
            "type": "custom_tool_call",
            "status": "completed",
            "call_id": call.id,
            "name": call.name,
            "input": raw,
        }
    return {
        "id": f"fc_{next(_seq):08d}",
        "type": "function_call",
        "status": "completed",
        "call_id": call.id,
        "name": call.name,
        "arguments": json.dumps(call.arguments),
    }


def _chunks(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def is_agent_turn(request: Recorded) -> bool:
    """A request of the agent's conversation (it offers tools), not a side request such as
    Codex's thread-title request (which offers none)."""
    return isinstance(request.body, dict) and bool(request.body.get("tools"))
