"""A local fake of the Gemini API (``generativelanguage.googleapis.com``), as the Gemini CLI calls it.

- ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``: Server-Sent Events, each
  ``data:`` a ``GenerateContentResponse`` chunk: ``candidates[0].content`` (``role: "model"``,
  ``parts`` with ``text`` or ``functionCall {name, args}``), the last chunk adding
  ``finishReason: "STOP"``, ``usageMetadata`` and ``modelVersion``.
- ``POST /v1beta/models/{model}:generateContent``: the same response as one JSON object (the CLI's
  side requests: next-speaker checks, titles, summaries).
- ``POST /v1beta/models/{model}:countTokens``: ``{"totalTokens": n}`` from the request's size.
- Auth: the ``x-goog-api-key`` header (or ``?key=``). A wrong key gets the API's own
  ``400 INVALID_ARGUMENT / API_KEY_INVALID``, a missing one ``403 PERMISSION_DENIED``.

Point the CLI at it with ``GOOGLE_GEMINI_BASE_URL=fake.base_url`` and ``GEMINI_API_KEY=fake.api_key``
(see ``gemini_env``).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.models import FakeModelAPI, Recorded, ToolCall, Turn

__all__ = ["FakeGemini", "ToolCall", "Turn", "user_texts"]

_PATH_RE = re.compile(r"^/(v1beta|v1|v1alpha)/models/(?P<model>[^/:]+):(?P<method>\w+)$")


def _error(code: int, status: str, message: str, reason: str = "") -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
    return {"error": error}


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def user_texts(request: Recorded) -> list[str]:
    """The text of each user turn the request carries (tool results are not user turns)."""
    body = request.body if isinstance(request.body, dict) else {}
    texts = []
    for content in body.get("contents") or []:
        if content.get("role") != "user":
            continue
        parts = content.get("parts") or []
        if any("functionResponse" in part for part in parts):
            continue
        texts.append("".join(str(part.get("text", "")) for part in parts))
    return texts


class FakeGemini(FakeModelAPI):
    """Gemini generateContent / streamGenerateContent, scripted with :class:`Turn`."""

    def __init__(self, *, api_key: str = "AIza-ao-test-key", model_version: str = "") -> None:
        super().__init__(api_key=api_key)
        # What the answers say ran ("modelVersion"); by default the model the request asked for.
        self.model_version = model_version
        self._conversation_released = threading.Event()
        self._conversation_released.set()

    def hold(self) -> None:
        """Hold the main conversation's answers until ``release()``; side requests (the model
        router that runs before each turn, next-speaker checks) are still answered, as the CLI
        waits for them before it sends the turn."""
        self._conversation_released.clear()

    def release(self) -> None:
        self._conversation_released.set()

    def stop(self) -> None:
        self.release()
        super().stop()

    @staticmethod
    def is_conversation(request: Recorded) -> bool:
        """A request of the main conversation: it offers the CLI's tools (side requests do not)."""
        return isinstance(request.body, dict) and bool(request.body.get("tools"))

    def env(self) -> dict[str, str]:
        """The variables that point the Gemini CLI at this fake with API-key auth."""
        return {"GOOGLE_GEMINI_BASE_URL": self.base_url, "GEMINI_API_KEY": self.api_key}

    def conversation_requests(self) -> list[Recorded]:
        """The requests of the main conversation (those offering the CLI's tools)."""
        with self._lock:
            return [r for r in self.requests if self.is_conversation(r)]

    # --- wire format -------------------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        url = urlsplit(request.path)
        match = _PATH_RE.match(url.path)
        if request.method != "POST" or match is None:
            self.send_json(handler, 404, _error(404, "NOT_FOUND", f"Method not found: {url.path}"))
            return
        key = request.headers.get("x-goog-api-key") or (parse_qs(url.query).get("key") or [""])[0]
        if not key:
            self.send_json(
                handler,
                403,
                _error(
                    403,
                    "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers (callers without established identity)."
                    " Please use API Key or other form of API consumer identity to call this API.",
                ),
            )
            return
        if key != self.api_key:
            self.send_json(
                handler,
                400,
                _error(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    "API_KEY_INVALID",
                ),
            )
            return
        method, model = match["method"], match["model"]
        if self.is_conversation(request):
            self._conversation_released.wait(timeout=600)
        if method == "countTokens":
            self.send_json(handler, 200, {"totalTokens": max(1, len(request.text()) // 4)})
            return
        if method not in ("generateContent", "streamGenerateContent"):
            self.send_json(handler, 404, _error(404, "NOT_FOUND", f"Method not found: {method}"))
            return
        failure = self.take_failure()
        if failure is not None:
            status = _STATUS_NAMES.get(failure, "UNKNOWN")
            self.send_json(handler, failure, _error(failure, status, f"fake failure {failure}"))
            return
        turn = self.next_turn(request)
        schema = self._wanted_schema(request)
        if turn is self.default and schema is not None:
            # a side request asking for JSON (the model router, the next-speaker check) gets a
            # minimal object of the requested shape, as a model keeping to the schema would send
            turn = Turn(
                text=json.dumps(_sample(schema)),
                input_tokens=turn.input_tokens,
                output_tokens=turn.output_tokens,
            )
        if method == "generateContent":
            self.send_json(handler, 200, self._response(turn, self._parts(turn), model, final=True))
            return
        self.start_sse(handler)
        parts = self._parts(turn)
        if turn.text and len(parts) == 1:
            # stream a text answer in two chunks, as the API does
            half = max(1, len(turn.text) // 2)
            self.sse(handler, self._response(turn, [{"text": turn.text[:half]}], model, final=False))
            self.sse(handler, self._response(turn, [{"text": turn.text[half:]}], model, final=True))
        else:
            self.sse(handler, self._response(turn, parts, model, final=True))

    @staticmethod
    def _wanted_schema(request: Recorded) -> dict[str, Any] | None:
        body = request.body if isinstance(request.body, dict) else {}
        config = body.get("generationConfig") or {}
        if config.get("responseMimeType") != "application/json":
            return None
        schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
        return schema if isinstance(schema, dict) else {}

    @staticmethod
    def _parts(turn: Turn) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"text": turn.text}] if turn.text else []
        parts += [{"functionCall": {"name": call.name, "args": call.arguments}} for call in turn.tool_calls]
        return parts or [{"text": ""}]

    def _response(
        self, turn: Turn, parts: list[dict[str, Any]], model: str, *, final: bool
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        response: dict[str, Any] = {"candidates": [candidate], "modelVersion": self.model_version or model}
        if final:
            candidate["finishReason"] = "STOP"
            response["usageMetadata"] = {
                "promptTokenCount": turn.input_tokens,
                "candidatesTokenCount": turn.output_tokens,
                "totalTokenCount": turn.input_tokens + turn.output_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": turn.input_tokens}],
            }
        response["responseId"] = f"fake-{id(turn):x}"
        return response


def _sample(schema: dict[str, Any]) -> Any:
    """The smallest value of a (Gemini / JSON Schema) schema: required properties filled in."""
    kind = str(schema.get("type") or "object").lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        properties = schema.get("properties") or {}
        names = schema.get("required") or list(properties)
        return {name: _sample(properties.get(name) or {}) for name in names}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum") or 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    return "ok"
