"""Chat endpoints: Slack (slash command + interactive buttons) and a Telegram bot webhook.

Each request is verified before anything else is read, with the same care as the GitHub
webhook (``sessions/flows/webhooks.py``): a bad or missing signature is answered 401 and nothing is
recorded or done.

- **Slack** (``POST /chat/slack/commands``, ``POST /chat/slack/interactive``): ``X-Slack-Signature``
  must be ``v0=`` + HMAC-SHA256(``AO_SLACK_SIGNING_SECRET``, ``v0:<X-Slack-Request-Timestamp>:<raw
  body>``), compared in constant time; a timestamp more than 5 minutes away from now is refused
  (replay). Bodies are form-encoded; the interactive one carries a JSON ``payload`` field
  (``block_actions``). Slash commands are answered in the response (``response_type`` ephemeral
  or in_channel, ``text`` + ``blocks``); a merge asks for confirmation with Confirm/Cancel
  buttons, whose click is answered in the response and, as Slack expects for ``block_actions``,
  by a POST to the payload's ``response_url`` (only ``https://hooks.slack.com/``) after commit.
  Dedupe: the request's ``trigger_id`` (unique per invocation), so a retry (``X-Slack-Retry-Num``)
  or a replay runs nothing twice.
- **Telegram** (``POST /chat/telegram/webhook``): ``X-Telegram-Bot-Api-Secret-Token`` must equal
  ``AO_TELEGRAM_SECRET_TOKEN`` (the ``secret_token`` given to ``setWebhook``), constant time. The
  update's ``message.text`` is the command; the answer rides on the webhook response
  (``{"method": "sendMessage", "chat_id": ..., "text": ...}``), so no outbound call is needed.
  Dedupe: ``update_id``.

Unknown accounts (no ``ChatIdentity``) get a polite refusal and nothing happens.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from urllib.parse import parse_qs

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.notifier import post_json
from sessions.dashboard import chat
from sessions.models import ChatIdentity

log = logging.getLogger(__name__)

SLACK, TELEGRAM = ChatIdentity.Platform.SLACK, ChatIdentity.Platform.TELEGRAM
SLACK_MAX_AGE = 300  # seconds between Slack's timestamp and now, either way
SLACK_RESPONSE_URL_PREFIX = "https://hooks.slack.com/"
SLACK_TEXT_LIMIT = 2900  # a section block's text is at most 3000 characters
TELEGRAM_TEXT_LIMIT = 4000  # a message is at most 4096 characters
CONFIRM_ACTION, CANCEL_ACTION = "ao_merge_confirm", "ao_merge_cancel"


class Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": status, "message": message}}, status=status)


def _body(request: HttpRequest) -> bytes:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.AO_WEBHOOK_MAX_BYTES:
        raise Rejected(413, "request too large")
    body = request.body
    if len(body) > settings.AO_WEBHOOK_MAX_BYTES:
        raise Rejected(413, "request too large")
    return body


# --- verification -----------------------------------------------------------------------------------
def slack_verify(
    *, secret: str, timestamp: str, signature: str, body: bytes, now: float | None = None
) -> None:
    """Slack's signing scheme (v0); raises Rejected(401) unless the request is Slack's and fresh."""
    if not secret:
        raise Rejected(401, "Slack signing secret not configured on this ao (AO_SLACK_SIGNING_SECRET)")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Rejected(401, "missing or malformed X-Slack-Request-Timestamp")
    if abs((now if now is not None else time.time()) - int(timestamp)) > SLACK_MAX_AGE:
        raise Rejected(401, "stale X-Slack-Request-Timestamp (replay?)")
    if not signature.startswith("v0="):
        raise Rejected(401, "missing or malformed X-Slack-Signature")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("latin-1", "replace")):
        raise Rejected(401, "signature does not match")


def telegram_verify(*, secret: str, header: str) -> None:
    if not secret:
        raise Rejected(401, "Telegram secret token not configured on this ao (AO_TELEGRAM_SECRET_TOKEN)")
    if not header or not hmac.compare_digest(secret.encode(), header.encode("latin-1", "replace")):
        raise Rejected(401, "X-Telegram-Bot-Api-Secret-Token does not match")


# --- Slack ------------------------------------------------------------------------------------------
def slack_escape(text: str) -> str:
    """Slack's three control characters, so chat or issue text cannot mention @channel or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_message(reply: chat.Reply) -> dict:
    """A Reply as a Slack message (the slash command's response or a response_url POST)."""
    text = _clip(slack_escape(reply.text), SLACK_TEXT_LIMIT)
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if reply.confirm is not None:
        blocks.append(
            {
                "type": "actions",
                "block_id": "ao_merge",
                "elements": [
                    {
                        "type": "button",
                        "action_id": CONFIRM_ACTION,
                        "style": "primary",
                        "text": {"type": "plain_text", "text": f"Merge #{reply.confirm.number}"},
                        "value": reply.confirm.token,
                    },
                    {
                        "type": "button",
                        "action_id": CANCEL_ACTION,
                        "text": {"type": "plain_text", "text": "Cancel"},
                        "value": reply.confirm.token,
                    },
                ],
            }
        )
    return {"response_type": "in_channel" if reply.public else "ephemeral", "text": text, "blocks": blocks}


def _form(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(400, f"body is not form-encoded: {exc}") from exc
    return {key: values[0] for key, values in parsed.items() if values}


def _slack_verified(request: HttpRequest) -> bytes:
    body = _body(request)
    slack_verify(
        secret=settings.AO_SLACK_SIGNING_SECRET,
        timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
        signature=request.headers.get("X-Slack-Signature", ""),
        body=body,
    )
    return body


def _delivery_id(key: str, body: bytes, timestamp: str) -> str:
    return key or "sha256:" + hashlib.sha256(timestamp.encode() + b":" + body).hexdigest()


@csrf_exempt
@require_POST
def slack_commands(request: HttpRequest) -> JsonResponse:
    try:
        body = _slack_verified(request)
        form = _form(body)
    except Rejected as exc:
        return _error(exc.status, str(exc))
    user_id = form.get("user_id", "")
    if not user_id:
        return _error(400, "missing user_id")
    if chat.identity_user(SLACK, user_id) is None:
        return JsonResponse(slack_message(chat.refusal_unknown(SLACK, user_id)))
    key = _delivery_id(form.get("trigger_id", ""), body, request.headers.get("X-Slack-Request-Timestamp", ""))
    text = form.get("text", "")
    if not chat.delivery_record(platform=SLACK, delivery_id=key, summary=f"{user_id}: {text[:200]}"):
        return JsonResponse({"response_type": "ephemeral", "text": "(already handled)"}, status=200)
    return JsonResponse(slack_message(chat.handle(platform=SLACK, external_id=user_id, text=text)))


@csrf_exempt
@require_POST
def slack_interactive(request: HttpRequest) -> JsonResponse:
    try:
        body = _slack_verified(request)
        form = _form(body)
        payload = json.loads(form.get("payload", ""))
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
    except Rejected as exc:
        return _error(exc.status, str(exc))
    except ValueError as exc:
        return _error(400, f"payload is not valid JSON: {exc}")
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    user_id = str(user.get("id") or "")
    actions = payload.get("actions") if isinstance(payload.get("actions"), list) else []
    action = actions[0] if actions and isinstance(actions[0], dict) else {}
    action_id, token = str(action.get("action_id") or ""), str(action.get("value") or "")
    if payload.get("type") != "block_actions" or action_id not in (CONFIRM_ACTION, CANCEL_ACTION):
        return JsonResponse({}, status=200)  # not ours: acknowledge, do nothing
    if not user_id:
        return _error(400, "missing user")
    if chat.identity_user(SLACK, user_id) is None:
        return JsonResponse(_respond(payload, chat.refusal_unknown(SLACK, user_id)))
    key = _delivery_id(
        str(payload.get("trigger_id") or ""), body, request.headers.get("X-Slack-Request-Timestamp", "")
    )
    if not chat.delivery_record(platform=SLACK, delivery_id=key, summary=f"{user_id}: {action_id}"):
        return JsonResponse({}, status=200)
    reply = chat.confirm(
        platform=SLACK, external_id=user_id, token=token, approve=action_id == CONFIRM_ACTION
    )
    return JsonResponse(_respond(payload, reply))


def _respond(payload: dict, reply: chat.Reply) -> dict:
    """The answer to a button click: replaces the confirmation message (its buttons go)."""
    message = {**slack_message(reply), "replace_original": True}
    url = payload.get("response_url")
    if isinstance(url, str) and url.startswith(SLACK_RESPONSE_URL_PREFIX):
        transaction.on_commit(lambda: _post_later(url, message))
    return message


def _post_later(url: str, message: dict) -> None:
    threading.Thread(target=slack_post, args=(url, message), daemon=True, name="ao-slack-response").start()


def slack_post(url: str, message: dict) -> None:
    try:
        post_json(url, message, timeout=5.0, who="slack response_url")
    except Exception as exc:  # the click was handled; only the message update is lost
        log.warning("posting the answer to Slack's response_url failed: %s", exc)


# --- Telegram ---------------------------------------------------------------------------------------
@csrf_exempt
@require_POST
def telegram_webhook(request: HttpRequest) -> JsonResponse:
    try:
        body = _body(request)
        telegram_verify(
            secret=settings.AO_TELEGRAM_SECRET_TOKEN,
            header=request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""),
        )
    except Rejected as exc:
        return _error(exc.status, str(exc))
    try:
        update = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"body is not valid JSON: {exc}")
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        return _error(400, "not a Telegram update (no update_id)")
    message = update.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return JsonResponse({})  # edits, joins, stickers...: nothing to do
    sender = message.get("from") if isinstance(message.get("from"), dict) else {}
    chat_obj = message.get("chat") if isinstance(message.get("chat"), dict) else {}
    user_id, chat_id = sender.get("id"), chat_obj.get("id")
    if not isinstance(user_id, int) or not isinstance(chat_id, int) or sender.get("is_bot"):
        return JsonResponse({})
    external_id = str(user_id)

    def answer(reply: chat.Reply) -> JsonResponse:
        text = reply.text
        if reply.confirm is not None:
            text += f"\nReply “confirm {reply.confirm.token}” within 10 minutes to merge, or “cancel {reply.confirm.token}”."
        out = {"method": "sendMessage", "chat_id": chat_id, "text": _clip(text, TELEGRAM_TEXT_LIMIT)}
        if isinstance(message.get("message_id"), int):
            out["reply_parameters"] = {
                "message_id": message["message_id"],
                "allow_sending_without_reply": True,
            }
        return JsonResponse(out)

    if chat.identity_user(TELEGRAM, external_id) is None:
        return answer(chat.refusal_unknown(TELEGRAM, external_id))
    if not chat.delivery_record(
        platform=TELEGRAM,
        delivery_id=str(update["update_id"]),
        summary=f"{external_id}: {message['text'][:200]}",
    ):
        return JsonResponse({})
    return answer(chat.handle(platform=TELEGRAM, external_id=external_id, text=message["text"]))
