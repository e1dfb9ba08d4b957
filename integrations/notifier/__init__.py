"""Notifier plugins: desktop, slack, discord, webhook, email and in-app.

Shared here: the settings every notifier has (timeout and retry policy), the errors a send
raises (``NotifyFailed``: do not retry; ``NotifyUnavailable``: retry, honouring
``retry_after``), a JSON POST helper that maps HTTP answers onto them, and reading secrets (from
an environment variable, ``*_env``, or a secret stored in ao, ``*_secret``, through
``integrations.credentials``). Error messages never contain a webhook URL or a secret: only the
host, or the variable's or secret's name.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic.alias_generators import to_snake

from ao_site.links import host_of
from integrations import httpopen
from integrations.base import PermanentIntegrationError, PluginConfig, TransientIntegrationError
from integrations.credentials import (
    ENV_NAME_RE,
    EnvName,
    SecretName,
    credential,
    credential_source,
    one_source,
    secret_name,
)
from integrations.records import Notification

PRIORITIES = ("urgent", "action", "warning", "info")
USER_AGENT = "ao-notifier/1"


class NotifyFailed(PermanentIntegrationError):
    """The notifier refused or cannot work as configured: record it, tell a human, never retry."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


class NotifyUnavailable(TransientIntegrationError):
    """Worth another try later (network, timeout, 5xx, 429); ``retry_after`` is the server's wish."""

    def __init__(self, message: str, *, retry_after: float | None = None, fix: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.fix = fix


@dataclass(frozen=True)
class OutboundNotification(Notification):
    """What ao sends: the plugin-facing Notification plus the stored row's id, rule and time, and
    the person it concerns (``recipient``, a username, and their e-mail address; empty: the
    project as a whole)."""

    id: int | None = None
    rule: str = ""
    project_name: str = ""
    created_at: datetime | None = None
    recipient: str = ""
    recipient_email: str = ""


class NotifierConfig(PluginConfig):
    """Settings every notifier takes; keys may be written snake_case or camelCase."""

    @model_validator(mode="before")
    @classmethod
    def _accept_camel_case(cls, data: Any) -> Any:
        """ao.config.yaml writes keys camelCase (webhookUrlEnv); the settings are snake_case."""
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            snake = to_snake(key) if isinstance(key, str) else key
            out[snake if snake in cls.model_fields and snake not in data else key] = value
        return out

    timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds per send (HTTP request, command)."
    )
    retries: int = Field(default=4, ge=0, le=10, description="Further tries after a transient failure.")
    backoff: float = Field(
        default=2.0, ge=0, le=600, description="Seconds before the first retry; doubled for each further one."
    )
    max_delay: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="Longest wait between tries, also for a server's Retry-After.",
    )

    def retry_delay(self, *, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(self.max_delay, retry_after)
        return min(self.max_delay, self.backoff * (2 ** max(0, attempt - 1)))


def env_name(value: str | None) -> str | None:
    if value is not None and not ENV_NAME_RE.fullmatch(value):
        raise ValueError("must be an environment variable name, e.g. SLACK_WEBHOOK_URL")
    return value


def http_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


class WebhookURLConfig(NotifierConfig):
    """A webhook URL given by environment variable (``webhook_url_env``), by the name of a secret
    stored in ao (``webhook_url_secret``) or directly (``webhook_url``)."""

    webhook_url: str | None = Field(
        default=None, description="The webhook URL (prefer webhook_url_env or webhook_url_secret)."
    )
    webhook_url_env: str | None = EnvName("Environment variable holding the URL.")
    webhook_url_secret: str | None = SecretName("Name of the secret stored in ao holding the URL.")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("webhook_url_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return env_name(value)

    @field_validator("webhook_url_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return secret_name(value)

    @model_validator(mode="after")
    def _one_url(self) -> WebhookURLConfig:
        one_source(self, "webhook_url_env", "webhook_url_secret")
        given = [self.webhook_url, self.webhook_url_env, self.webhook_url_secret]
        if sum(value is not None for value in given) != 1:
            raise ValueError(
                "set exactly one of webhook_url_env (recommended), webhook_url_secret or webhook_url"
            )
        return self


def secret_from(*, env: str | None, secret: str | None, what: str, who: str, stored_as: str = "") -> str:
    """A notifier's secret, read now from ``$env`` or the stored secret ``secret``; NotifyFailed if
    it is missing (never retried: a person must add it)."""
    return credential(env=env, secret=secret, what=what, who=who, stored_as=stored_as, error=NotifyFailed)


def secret_from_env(name: str, *, what: str, who: str) -> str:
    """``secret_from`` for an environment variable only (kept for third-party notifiers)."""
    return secret_from(env=name, secret=None, what=what, who=who)


def url_from(*, env: str | None, secret: str | None, who: str, stored_as: str = "") -> str:
    """A webhook URL kept as a secret (``$env`` or a stored secret), checked to be http(s)."""
    url = secret_from(env=env, secret=secret, what="webhook URL", who=who, stored_as=stored_as)
    if http_url_or_none(url) is None:
        source = credential_source(env=env, secret=secret)
        raise NotifyFailed(f"{who}: {source} is not an http(s) URL", fix=f"set {source} to the webhook URL")
    return url


def webhook_url_of(config: WebhookURLConfig, *, who: str) -> str:
    if config.webhook_url_env or config.webhook_url_secret:
        return url_from(
            env=config.webhook_url_env,
            secret=config.webhook_url_secret,
            who=who,
            stored_as="webhook_url_secret",
        )
    return config.webhook_url or ""


def http_url_or_none(value: str) -> str | None:
    try:
        return http_url(value)
    except ValueError:
        return None


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class HTTPAnswer:
    status: int
    headers: Mapping[str, str]
    text: str


# a 3xx becomes an HTTPError: webhooks are configured with their final URL (integrations/httpopen.py)
_opener = httpopen.opener


def _detail(text: str) -> str:
    text = text.strip().replace("\n", " ")
    return f": {text[:200]}" if text else ""


def post_json(
    url: str,
    payload: Any,
    *,
    timeout: float,
    who: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> HTTPAnswer:
    """POST JSON; 2xx returns, 429/5xx/network raise NotifyUnavailable, other answers NotifyFailed.

    ``body`` (already-encoded ``payload``) lets a caller sign exactly the bytes sent.
    """
    host = host_of(url)
    data = body if body is not None else json.dumps(payload, ensure_ascii=False).encode()
    if not url.lower().startswith(("http://", "https://")):
        raise NotifyFailed(f"{who}: the webhook URL must be http:// or https://")
    request = urllib.request.Request(  # noqa: S310 -- the scheme is checked just above
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            return HTTPAnswer(response.status, response.headers, _read(response))
    except urllib.error.HTTPError as exc:
        answer = HTTPAnswer(exc.code, exc.headers, _read(exc))
    except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            raise NotifyUnavailable(
                f"{who}: {host} did not answer within {timeout:g} s",
                fix=f"check that {host} is reachable from this machine; ao retries by itself",
            ) from None
        raise NotifyUnavailable(
            f"{who}: could not reach {host} ({type(reason).__name__})",
            fix=f"check network access and DNS for {host}; ao retries by itself",
        ) from None
    status, detail = answer.status, _detail(answer.text)
    if status == 429:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if retry_after is None:
            try:  # Discord puts it in the body too
                retry_after = float(json.loads(answer.text).get("retry_after"))
            except (ValueError, TypeError, AttributeError):
                retry_after = None
        raise NotifyUnavailable(
            f"{who}: {host} is rate limiting (HTTP 429){detail}",
            retry_after=retry_after,
            fix="send fewer notifications to this notifier (route low priorities elsewhere)",
        )
    if status >= 500:
        raise NotifyUnavailable(
            f"{who}: {host} failed (HTTP {status}){detail}",
            retry_after=parse_retry_after(answer.headers.get("Retry-After")) if status == 503 else None,
            fix=f"{host} is having trouble; ao retries by itself",
        )
    if status in (401, 403, 404, 410):
        fix = "the webhook URL or credentials were refused or revoked: create a new one and update the config"
    elif 300 <= status < 400:
        fix = "the URL redirects: configure the final URL"
    else:
        fix = "the notifier refused the message; check its settings (this is not retried)"
    raise NotifyFailed(f"{who}: {host} refused the message (HTTP {status}){detail}", fix=fix)


def _read(response: Any, limit: int = 64 * 1024) -> str:
    try:
        return response.read(limit).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""


def priority_of(notification: Notification) -> str:
    return notification.priority if notification.priority in PRIORITIES else "info"


def links_of(notification: Notification) -> list[tuple[str, str]]:
    """The links every notifier offers, labelled, in order: ao's page for the session, the
    session's PR, then what the notification is about when it is neither (a check, a thread).
    A notification without session or PR offers its ``url`` alone, as "Open"."""
    links: list[tuple[str, str]] = []
    if notification.session_url:
        links.append(("Open session", notification.session_url))
    if notification.pr_url:
        number = getattr(notification, "pr_number", None)
        links.append((f"Open PR #{number}" if number else "Open PR", notification.pr_url))
    url = notification.url
    if url and url not in (notification.session_url, notification.pr_url):
        links.append(("Details" if links else "Open", url))
    return links
