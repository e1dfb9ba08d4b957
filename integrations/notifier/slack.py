"""Slack through an incoming webhook, as Block Kit.

The webhook URL is a secret: read it from the environment variable named by ``webhook_url_env``
or from the secret stored in ao named by ``webhook_url_secret`` (or, written into the config,
``webhook_url``); it never appears in errors or logs.
"""

from __future__ import annotations

from typing import Any

from integrations.base import Notifier
from integrations.notifier import WebhookURLConfig, links_of, post_json, priority_of, webhook_url_of
from integrations.records import Notification
from integrations.registry import notifiers

EMOJI = {
    "urgent": ":rotating_light:",
    "action": ":point_right:",
    "warning": ":warning:",
    "info": ":information_source:",
}
HEADER_MAX = 150  # Block Kit limits
SECTION_MAX = 3000


def escape(text: str) -> str:
    """Slack mrkdwn control characters: &, < and > (so text cannot form links or mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(notification: Notification) -> dict[str, Any]:
    priority = priority_of(notification)
    headline = _clip(f"{EMOJI[priority]} {notification.title}", HEADER_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline, "emoji": True}},
    ]
    if notification.body:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(escape(notification.body), SECTION_MAX)},
            }
        )
    where = []
    if notification.project_key:
        where.append(f"*Project:* {escape(notification.project_key)}")
    if notification.session_id:
        where.append(f"*Session:* {escape(notification.session_id)}")
    where.append(f"*Priority:* {priority}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(where)}]})
    links = links_of(notification)
    if links:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": label},
                        "url": url,
                        **({"style": "danger"} if priority == "urgent" and i == 0 else {}),
                    }
                    for i, (label, url) in enumerate(links)
                ],
            }
        )
    # the fallback Slack shows in push notifications and previews: mrkdwn, escaped as the blocks are
    text = _clip(escape(f"[{priority}] {notification.title}"), SECTION_MAX)
    return {"text": text, "blocks": blocks}


@notifiers.register("slack")
class SlackNotifier(Notifier):
    Config = WebhookURLConfig

    def send(self, notification: Notification) -> None:
        url = webhook_url_of(self.config, who="slack")
        post_json(url, slack_payload(notification), timeout=self.config.timeout, who="slack")
