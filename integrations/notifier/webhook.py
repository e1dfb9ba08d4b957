"""A generic webhook: the notification as JSON, POSTed and signed.

Headers: ``X-AO-Timestamp`` (unix seconds, also in the body as ``timestamp``) and
``X-AO-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``. A receiver recomputes the
HMAC over the exact bytes it got, compares in constant time, and rejects stale timestamps.
The URL is given directly (``url``), by environment variable (``url_env``) or by the name of a
secret stored in ao (``url_secret``); the signing secret comes from the environment variable
named by ``secret_env`` or from the stored secret named by ``signing_secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from pydantic import Field, field_validator, model_validator

from integrations.base import Notifier
from integrations.credentials import EnvName, SecretName, one_source, secret_name
from integrations.notifier import (
    NotifierConfig,
    env_name,
    http_url,
    post_json,
    priority_of,
    secret_from,
    url_from,
)
from integrations.records import Notification
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
        "session_url": notification.session_url,
        "pr_url": notification.pr_url,
        "pr_number": notification.pr_number,
        "project": notification.project_key,
        "session": notification.session_id,
        "rule": getattr(notification, "rule", ""),
        "recipient": getattr(notification, "recipient", "") or None,
        "created_at": created.isoformat() if created else None,
    }


@notifiers.register("webhook")
class WebhookNotifier(Notifier):
    class Config(NotifierConfig):
        url: str | None = Field(default=None, description="Where to POST (or url_env / url_secret).")
        url_env: str | None = EnvName("Environment variable holding the URL.")
        url_secret: str | None = SecretName("Name of the secret stored in ao holding the URL.")
        secret_env: str | None = EnvName("Environment variable holding the HMAC signing secret.")
        signing_secret: str | None = SecretName(
            "Name of the secret stored in ao holding the HMAC signing secret (instead of secret_env)."
        )

        @field_validator("url")
        @classmethod
        def _url(cls, value: str | None) -> str | None:
            return http_url(value)

        @field_validator("url_env", "secret_env")
        @classmethod
        def _env(cls, value: str | None) -> str | None:
            return env_name(value)

        @field_validator("url_secret", "signing_secret")
        @classmethod
        def _secret(cls, value: str | None) -> str | None:
            return secret_name(value)

        @model_validator(mode="after")
        def _sources(self) -> WebhookNotifier.Config:
            one_source(self, "url_env", "url_secret")
            one_source(self, "secret_env", "signing_secret")
            if sum(value is not None for value in (self.url, self.url_env, self.url_secret)) != 1:
                raise ValueError("set exactly one of url, url_env or url_secret")
            if self.secret_env is None and self.signing_secret is None:
                raise ValueError("set secret_env or signing_secret: where the HMAC signing secret is")
            return self

    def target(self) -> str:
        if self.config.url_env or self.config.url_secret:
            return url_from(
                env=self.config.url_env, secret=self.config.url_secret, who="webhook", stored_as="url_secret"
            )
        return self.config.url or ""

    def send(self, notification: Notification) -> None:
        url = self.target()
        secret = secret_from(
            env=self.config.secret_env,
            secret=self.config.signing_secret,
            what="signing secret",
            who="webhook",
            stored_as="signing_secret",
        )
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
