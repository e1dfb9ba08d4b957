"""A fake of OpenAI's Chat Completions API (``POST /v1/chat/completions``), as OpenCode (through
``@ai-sdk/openai-compatible``) and Aider (through litellm) call it.

Streaming (``"stream": true``) answers server-sent ``chat.completion.chunk`` objects: a first
chunk with ``delta.role``, the text in several ``delta.content`` pieces, then each
:class:`ToolCall` as ``delta.tool_calls`` entries (the first with ``index``, ``id``, ``type`` and
``function.name``, the following ones with ``function.arguments`` pieces), a chunk with an empty
delta and ``finish_reason`` (``"tool_calls"`` or ``"stop"``), and, when the request asked for
``stream_options.include_usage``, a last chunk with ``"choices": []`` and the ``usage`` (every
chunk before it then carries ``"usage": null``, as the API does); then ``data: [DONE]``.
Non-streaming requests get one ``chat.completion`` object with ``message`` and ``usage``.

Errors use the API's own shapes: 401 ``invalid_api_key``, 429 ``rate_limit_exceeded`` with
``retry-after``, 5xx ``server_error`` (``{"error": {"message", "type", "param", "code"}}``).
``GET /v1/models`` lists ``models``. Other paths answer 404 in the API's shape and are logged
like every request.
"""

from __future__ import annotations

import itertools
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.models import FakeModelAPI, Recorded, ToolCall, Turn

_seq = itertools.count(1)

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


def _pieces(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or []


class FakeChatCompletionsAPI(FakeModelAPI):
    """Scripted Chat Completions. ``base_url + "/v1"`` is what goes in a client's base URL."""

    def __init__(self, *, api_key: str = "sk-ao-test-key", models: tuple[str, ...] = ("fake-model",)) -> None:
        super().__init__(api_key=api_key)
        self.models = list(models)

    # --- what the CLI sent -------------------------------------------------------------------
    def completions(self) -> list[Recorded]:
        """The ``POST …/chat/completions`` requests, oldest first."""
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.path.split("?")[0].endswith("/chat/completions")
        ]

    @staticmethod
    def content_text(content: Any) -> str:
        """A message's ``content`` as text (a string, or a list of ``{"type": "text"}`` parts)."""
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
        return ""

    @classmethod
    def user_texts(cls, request: Recorded) -> list[str]:
        """The text of each ``user`` message of a request, in order."""
        messages = (request.body or {}).get("messages") if isinstance(request.body, dict) else None
        return [cls.content_text(m.get("content")) for m in messages or [] if m.get("role") == "user"]

    @staticmethod
    def tool_names(request: Recorded) -> list[str]:
        body = request.body if isinstance(request.body, dict) else {}
        return [(t.get("function") or {}).get("name", "") for t in body.get("tools") or []]

    # --- serving -----------------------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        path = request.path.split("?")[0]
        if request.headers.get("authorization", "") != f"Bearer {self.api_key}":
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
        if request.method == "POST" and path.endswith("/chat/completions"):
            status = self.take_failure()
            if status is not None:
                headers = {"retry-after": "1", "x-request-id": f"req_{next(_seq)}"} if status == 429 else {}
                self.send_json(handler, status, error_body(status), headers)
                return
            body = request.body if isinstance(request.body, dict) else {}
            turn = self.next_turn(request)
            if body.get("stream"):
                self._stream(handler, body, turn)
            else:
                self._complete(handler, body, turn)
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

    def _model(self, body: dict[str, Any]) -> str:
        return str(body.get("model") or (self.models[0] if self.models else "fake-model"))

    @staticmethod
    def _usage(turn: Turn) -> dict[str, Any]:
        return {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    @staticmethod
    def _tool_call(call: ToolCall) -> dict[str, Any]:
        return {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }

    def _complete(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], turn: Turn) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None, "refusal": None}
        if turn.tool_calls:
            message["tool_calls"] = [self._tool_call(call) for call in turn.tool_calls]
        self.send_json(
            handler,
            200,
            {
                "id": f"chatcmpl-{next(_seq):08d}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self._model(body),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if turn.tool_calls else "stop",
                    }
                ],
                "usage": self._usage(turn),
                "system_fingerprint": "fp_ao_fake",
            },
        )

    def _stream(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], turn: Turn) -> None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-{next(_seq):08d}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self._model(body),
            "system_fingerprint": "fp_ao_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            data = {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = None
            return data

        self.start_sse(handler)
        try:
            self.sse(handler, chunk({"role": "assistant", "content": "", "refusal": None}))
            for piece in _pieces(turn.text):
                self.sse(handler, chunk({"content": piece}))
            for index, call in enumerate(turn.tool_calls):
                self.sse(
                    handler,
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": call.id,
                                    "type": "function",
                                    "function": {"name": call.name, "arguments": ""},
                                }
                            ]
                        }
                    ),
                )
                for piece in _pieces(json.dumps(call.arguments), 40):
                    self.sse(
                        handler, chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                    )
            self.sse(handler, chunk({}, "tool_calls" if turn.tool_calls else "stop"))
            if include_usage:
                self.sse(handler, {**base, "choices": [], "usage": self._usage(turn)})
            handler.wfile.write(b"data: [DONE]\n\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the CLI hung up (interrupted, killed): nothing more to say
