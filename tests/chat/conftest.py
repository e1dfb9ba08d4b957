"""A project with a local tracker and an in-memory SCM, people per role, their chat accounts,
and helpers that sign requests the way Slack and Telegram do."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from sessions.models import ChatIdentity, Membership, Project
from tests.factories import ProjectFactory, SessionFactory, UserFactory
from tests.helpers.scm import in_memory_scm

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TELEGRAM_SECRET = "tg-secret_Token-123"


ChatTestSCM = in_memory_scm("chattest")


@pytest.fixture(autouse=True)
def _chat_settings(settings):
    settings.AO_SLACK_SIGNING_SECRET = SLACK_SECRET
    settings.AO_TELEGRAM_SECRET_TOKEN = TELEGRAM_SECRET
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ChatTestSCM.prs.clear()
    ChatTestSCM.merged.clear()


@dataclass
class Team:
    project: object
    session: object
    operator: object
    viewer: object
    outsider: object


@pytest.fixture
def team(db) -> Team:
    project = ProjectFactory(key="web", session_prefix="web", tracker="local", scm="chattest")
    operator = UserFactory(username="olivia")
    viewer = UserFactory(username="victor")
    outsider = UserFactory(username="oscar")
    Membership.objects.create(user=operator, project=project, role="operator")
    Membership.objects.create(user=viewer, project=project, role="viewer")
    ChatIdentity.objects.create(platform="slack", external_id="UOPERATOR", user=operator)
    ChatIdentity.objects.create(platform="slack", external_id="UVIEWER", user=viewer)
    ChatIdentity.objects.create(platform="slack", external_id="UOUTSIDER", user=outsider)
    ChatIdentity.objects.create(platform="telegram", external_id="1001", user=operator)
    ChatIdentity.objects.create(platform="telegram", external_id="1002", user=viewer)
    session = SessionFactory(project=project, number=1, id="web-1", branch="feat/one")
    Project.objects.filter(pk=project.pk).update(next_session_number=2)
    return Team(project, session, operator, viewer, outsider)


def slack_sign(body: bytes, timestamp: str, secret: str = SLACK_SECRET) -> str:
    return (
        "v0="
        + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    )


_trigger = iter(range(1, 10**6))


def slack_command(client, text: str, *, user="UOPERATOR", trigger=None, timestamp=None, signature=None,
                  secret=SLACK_SECRET, headers=None):  # fmt: skip
    """POST a slash command as Slack does (form-encoded, signed)."""
    form = {
        "token": "deprecated-verification-token",
        "team_id": "T0001",
        "team_domain": "acme",
        "channel_id": "C2147483705",
        "channel_name": "ops",
        "user_id": user,
        "user_name": "someone",
        "command": "/ao",
        "text": text,
        "api_app_id": "A123",
        "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.com/commands/T0001/1/abc",
        "trigger_id": trigger or f"13345224609.738474920.{next(_trigger):08x}",
    }
    body = urlencode(form).encode()
    ts = timestamp or str(int(time.time()))
    return client.post(
        "/chat/slack/commands",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=ts,
        HTTP_X_SLACK_SIGNATURE=signature if signature is not None else slack_sign(body, ts, secret),
        **(headers or {}),
    )


def slack_click(client, *, token: str, action_id="ao_merge_confirm", user="UOPERATOR", trigger=None):
    """POST a block_actions interaction payload as Slack does."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": "T0001"},
        "api_app_id": "A123",
        "team": {"id": "T0001", "domain": "acme"},
        "container": {"type": "message", "message_ts": "1548261231.000200", "channel_id": "C2147483705"},
        "trigger_id": trigger or f"12466734323.1395872398.{next(_trigger):08x}",
        "channel": {"id": "C2147483705", "name": "ops"},
        "response_url": "https://hooks.slack.com/actions/T0001/2/xyz",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "ao_merge",
                "value": token,
                "action_ts": "1548426417.840180",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
    return client.post(
        "/chat/slack/interactive",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=ts,
        HTTP_X_SLACK_SIGNATURE=slack_sign(body, ts),
    )


_update = iter(range(500000, 10**7))


def telegram_update(client, text: str, *, user_id=1001, update_id=None, token=TELEGRAM_SECRET):
    """POST a Telegram Update with a text message, as the Bot API does for a webhook."""
    update = {
        "update_id": update_id if update_id is not None else next(_update),
        "message": {
            "message_id": 77,
            "from": {"id": user_id, "is_bot": False, "first_name": "Olivia", "username": "olivia"},
            "chat": {"id": 424242, "type": "private", "first_name": "Olivia"},
            "date": int(time.time()),
            "text": text,
        },
    }
    headers = {} if token is None else {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": token}
    return client.post(
        "/chat/telegram/webhook", data=json.dumps(update), content_type="application/json", **headers
    )
