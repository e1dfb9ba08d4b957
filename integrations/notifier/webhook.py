"""A generic webhook: the notification as JSON, POSTed and signed.

Headers: ``X-AO-Timestamp`` (unix seconds, also in the body as ``timestamp``) and
``X-AO-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``. A receiver recomputes the
HMAC over the exact bytes it got, compares in constant time, and rejects stale timestamps.
The secret comes from the environment variable named by ``secret_env``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from pydantic import Field, field_validator, model_validator

from integrations.base import Notification, Notifier
from integrations.notifier import (
    NotifierConfig,
    NotifyFailed,
    env_name,
    http_url,
    http_url_or_none,
    post_json,
    priority_of,
    secret_from_env,
)
from integrations.registry import notifiers

SIGNATURE_HEADER = "X-AO-Signature-256"
TIMESTAMP_HEADER = "X-AO-Timestamp"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and ao's tests): constant-time comparison of the signature."""
    return hmac.compare_digest(sign(secret, body), signature or "")


def webhook_payload(notification: Notification, *, timestamp: int) -> dict[str, Any]:
    created = getattr(notification, "created_at", None)
    return {
        "event": "notification",
        "id": getattr(notification, "id", None),
        "timestamp": timestamp,
        "priority": priority_of(notification),
        "title": notification.title,
        "body": notification.body,
        "url": notification.url,
        "project": notification.project_key,
        "session": notification.session_id,
        "rule": getattr(notification, "rule", ""),
        "created_at": created.isoformat() if created else None,
    }


@notifiers.register("webhook")
class WebhookNotifier(Notifier):
    class Config(NotifierConfig):
        url: str | None = Field(default=None, description="Where to POST (or url_env).")
        url_env: str | None = Field(default=None, description="Environment variable holding the URL.")
        secret_env: str = Field(description="Environment variable holding the HMAC signing secret.")

        @field_validator("url")
        @classmethod
        def _url(cls, value: str | None) -> str | None:
            return http_url(value)

        @field_validator("url_env", "secret_env")
        @classmethod
        def _env(cls, value: str | None) -> str | None:
            return env_name(value)

        @model_validator(mode="after")
        def _one_url(self) -> WebhookNotifier.Config:
            if (self.url is None) == (self.url_env is None):
                raise ValueError("set exactly one of url or url_env")
            return self

    def target(self) -> str:
        if self.config.url_env:
            url = secret_from_env(self.config.url_env, what="webhook URL", who="webhook")
            if http_url_or_none(url) is None:
                raise NotifyFailed(f"webhook: ${self.config.url_env} is not an http(s) URL")
            return url
        return self.config.url or ""

    def send(self, notification: Notification) -> None:
        url = self.target()
        secret = secret_from_env(self.config.secret_env, what="signing secret", who="webhook")
        timestamp = int(time.time())
        body = json.dumps(webhook_payload(notification, timestamp=timestamp), ensure_ascii=False).encode()
        headers = {
            SIGNATURE_HEADER: sign(secret, body),
            TIMESTAMP_HEADER: str(timestamp),
            "X-AO-Event": "notification",
        }
        if getattr(notification, "id", None) is not None:
            headers["X-AO-Notification"] = str(notification.id)
        post_json(url, None, body=body, headers=headers, timeout=self.config.timeout, who="webhook")
