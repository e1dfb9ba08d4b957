"""Discord through a channel webhook: one embed, coloured by priority, mentions disabled.

The webhook URL holds its token: read it from ``webhook_url_env``, from the secret stored in ao
named by ``webhook_url_secret`` (or ``webhook_url``); it never appears in errors or logs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from integrations.base import Notifier
from integrations.notifier import WebhookURLConfig, links_of, post_json, priority_of, webhook_url_of
from integrations.records import Notification
from integrations.registry import notifiers

COLOURS = {"urgent": 0xE01E5A, "action": 0xF2994A, "warning": 0xF2C94C, "info": 0x2D9CDB}
TITLE_MAX, DESCRIPTION_MAX, FIELD_MAX = 256, 4096, 1024  # Discord's embed limits


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _markdown_url(url: str) -> str:
    """A URL inside a masked link: parentheses would end the link early."""
    return url.replace("(", "%28").replace(")", "%29")


def discord_payload(notification: Notification, *, username: str = "ao") -> dict[str, Any]:
    priority = priority_of(notification)
    embed: dict[str, Any] = {"title": _clip(notification.title, TITLE_MAX), "color": COLOURS[priority]}
    if notification.body:
        embed["description"] = _clip(notification.body, DESCRIPTION_MAX)
    links = links_of(notification)
    if links:
        embed["url"] = links[0][1]  # the title opens the first: the session in ao when there is one
    fields = []
    if notification.project_key:
        fields.append(
            {"name": "Project", "value": _clip(notification.project_key, FIELD_MAX), "inline": True}
        )
    if notification.session_id:
        fields.append({"name": "Session", "value": _clip(notification.session_id, FIELD_MAX), "inline": True})
    fields.append({"name": "Priority", "value": priority, "inline": True})
    if len(links) > 1:
        shown = " · ".join(f"[{label}]({_markdown_url(url)})" for label, url in links)
        fields.append({"name": "Links", "value": _clip(shown, FIELD_MAX), "inline": False})
    embed["fields"] = fields
    return {"username": username, "embeds": [embed], "allowed_mentions": {"parse": []}}


@notifiers.register("discord")
class DiscordNotifier(Notifier):
    class Config(WebhookURLConfig):
        username: str = Field(
            default="ao", min_length=1, max_length=80, description="Name the messages appear from."
        )

    def send(self, notification: Notification) -> None:
        url = webhook_url_of(self.config, who="discord")
        post_json(
            url,
            discord_payload(notification, username=self.config.username),
            timeout=self.config.timeout,
            who="discord",
        )
