"""The notifier plugins, each the real code talking to a local fake (HTTP, notify-send, locmem mail)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from integrations.notifier import NotifyFailed, NotifyUnavailable, OutboundNotification
from integrations.notifier.webhook import verify
from integrations.records import Notification
from integrations.registry import ConfigurationError, notifiers
from tests.fakes.hooks import FakeHooks

URGENT = Notification(
    title="CI failed on web-3",
    body="2 checks failed: <lint> & *tests*",
    priority="urgent",
    url="https://github.test/acme/web/pull/12",
    session_id="web-3",
    project_key="web",
    session_url="http://ao.test/s/web-3/",
    pr_url="https://github.test/acme/web/pull/12",
    pr_number=12,
)
SECRET_PATH = "/services/T000/B000/s3cr3tT0k3n"


@pytest.fixture
def hooks():
    with FakeHooks() as server:
        yield server


def test_every_builtin_notifier_is_registered():
    assert {"desktop", "slack", "discord", "webhook", "email", "in-app"} <= set(notifiers.keys())


# --- slack ---------------------------------------------------------------------------------------
def test_slack_posts_block_kit_with_the_url_from_the_environment(hooks, monkeypatch):
    monkeypatch.setenv("AO_TEST_SLACK_URL", hooks.url(SECRET_PATH))
    slack = notifiers.create("slack", {"webhook_url_env": "AO_TEST_SLACK_URL"})

    slack.send(URGENT)

    assert len(hooks.requests) == 1
    request = hooks.requests[0]
    assert (request.method, request.path) == ("POST", SECRET_PATH)
    assert request.header("Content-Type") == "application/json; charset=utf-8"
    assert request.json() == {
        "text": "[urgent] CI failed on web-3",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": ":rotating_light: CI failed on web-3", "emoji": True},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "2 checks failed: &lt;lint&gt; &amp; *tests*"},
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "*Project:* web · *Session:* web-3 · *Priority:* urgent"}
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open session"},
                        "url": "http://ao.test/s/web-3/",
                        "style": "danger",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open PR #12"},
                        "url": "https://github.test/acme/web/pull/12",
                    },
                ],
            },
        ],
    }


def test_slack_without_body_url_or_session_sends_header_and_context_only(hooks):
    slack = notifiers.create("slack", {"webhookUrl": hooks.url("/s")})  # camelCase, as YAML writes it

    slack.send(Notification(title="All quiet", body="", priority="info", project_key="web"))

    assert hooks.requests[0].json() == {
        "text": "[info] All quiet",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": ":information_source: All quiet", "emoji": True},
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "*Project:* web · *Priority:* info"}],
            },
        ],
    }


def test_slack_text_cannot_mention_or_link(hooks):
    """The top-level ``text`` is what Slack shows in push notifications and previews, and it is
    mrkdwn: a title from outside (an agent's question, a check's name) must not become
    ``@channel``, a mention or a link there, as in the section block."""
    slack = notifiers.create("slack", {"webhook_url": hooks.url("/s")})
    title = "web-3 asks: <!channel> <@U012AB3CD> see <https://evil.test|docs> & more"

    slack.send(Notification(title=title, body=title, priority="action", project_key="web"))

    sent = hooks.requests[0].json()
    escaped = "web-3 asks: &lt;!channel&gt; &lt;@U012AB3CD&gt; see &lt;https://evil.test|docs&gt; &amp; more"
    assert sent["text"] == f"[action] {escaped}"
    assert sent["blocks"][1]["text"]["text"] == escaped
    assert "<" not in json.dumps(sent["text"]) and "<" not in json.dumps(sent["blocks"][1])


@pytest.mark.parametrize("settings", [{}, {"webhook_url": "http://a.test/x", "webhook_url_env": "X"}])
def test_slack_needs_exactly_one_webhook_url_setting(settings):
    with pytest.raises(ConfigurationError, match="exactly one of webhook_url_env"):
        notifiers.create("slack", settings, where="notifiers.team")


def test_slack_with_unset_env_var_fails_saying_which_variable(monkeypatch, hooks):
    monkeypatch.delenv("AO_TEST_UNSET", raising=False)
    slack = notifiers.create("slack", {"webhook_url_env": "AO_TEST_UNSET"})

    with pytest.raises(NotifyFailed, match="AO_TEST_UNSET holding the webhook URL is not set") as caught:
        slack.send(URGENT)

    assert "export AO_TEST_UNSET" in caught.value.fix
    assert hooks.requests == []


def test_a_refused_webhook_is_permanent_and_the_error_never_shows_the_url(hooks):
    hooks.fail_next(404, body="no_service")
    slack = notifiers.create("slack", {"webhook_url": hooks.url(SECRET_PATH)})

    with pytest.raises(NotifyFailed) as caught:
        slack.send(URGENT)

    assert (
        str(caught.value)
        == f"slack: 127.0.0.1:{hooks.url().split(':')[2].split('/')[0]} refused the message (HTTP 404): no_service"
    )
    assert "s3cr3t" not in str(caught.value) and "services" not in str(caught.value)
    assert "revoked" in caught.value.fix


def test_server_errors_and_rate_limits_are_transient_with_retry_after(hooks):
    slack = notifiers.create("slack", {"webhook_url": hooks.url(SECRET_PATH)})
    hooks.fail_next(503)
    with pytest.raises(NotifyUnavailable, match=r"failed \(HTTP 503\)") as five_oh_three:
        slack.send(URGENT)
    hooks.fail_next(429, retry_after="7", body="rate_limited")
    with pytest.raises(NotifyUnavailable, match=r"rate limiting \(HTTP 429\)") as rate_limited:
        slack.send(URGENT)

    assert five_oh_three.value.retry_after is None
    assert rate_limited.value.retry_after == 7.0


def test_a_slow_server_is_a_transient_timeout(hooks):
    hooks.delay_next(1.0)
    slack = notifiers.create("slack", {"webhook_url": hooks.url(SECRET_PATH), "timeout": 0.2})

    with pytest.raises(NotifyUnavailable, match=r"did not answer within 0.2 s") as caught:
        slack.send(URGENT)

    assert "s3cr3t" not in str(caught.value)


def test_an_unreachable_server_is_transient_and_names_only_the_host():
    with FakeHooks() as closed:
        url = closed.url(SECRET_PATH)
    slack = notifiers.create("slack", {"webhook_url": url, "timeout": 1})

    with pytest.raises(
        NotifyUnavailable, match=r"could not reach 127\.0\.0\.1:\d+ \(ConnectionRefusedError\)"
    ) as caught:
        slack.send(URGENT)

    assert "s3cr3t" not in str(caught.value)


# --- discord -------------------------------------------------------------------------------------
def test_discord_posts_one_embed_coloured_by_priority_with_mentions_off():
    with FakeHooks(status=204, body="") as hooks:
        discord = notifiers.create("discord", {"webhook_url": hooks.url("/api/webhooks/1/tok")})
        discord.send(URGENT)
        discord.send(Notification(title="FYI", body="", priority="info"))

    assert [r.json() for r in hooks.requests] == [
        {
            "username": "ao",
            "embeds": [
                {
                    "title": "CI failed on web-3",
                    "color": 0xE01E5A,
                    "description": "2 checks failed: <lint> & *tests*",
                    "url": "http://ao.test/s/web-3/",
                    "fields": [
                        {"name": "Project", "value": "web", "inline": True},
                        {"name": "Session", "value": "web-3", "inline": True},
                        {"name": "Priority", "value": "urgent", "inline": True},
                        {
                            "name": "Links",
                            "value": "[Open session](http://ao.test/s/web-3/) · "
                            "[Open PR #12](https://github.test/acme/web/pull/12)",
                            "inline": False,
                        },
                    ],
                }
            ],
            "allowed_mentions": {"parse": []},
        },
        {
            "username": "ao",
            "embeds": [
                {
                    "title": "FYI",
                    "color": 0x2D9CDB,
                    "fields": [{"name": "Priority", "value": "info", "inline": True}],
                }
            ],
            "allowed_mentions": {"parse": []},
        },
    ]


def test_discord_rate_limit_reads_retry_after_from_the_body_when_no_header(hooks):
    hooks.fail_next(
        429, body='{"message": "You are being rate limited.", "retry_after": 0.25, "global": false}'
    )
    discord = notifiers.create("discord", {"webhook_url": hooks.url("/api/webhooks/1/tok")})

    with pytest.raises(NotifyUnavailable) as caught:
        discord.send(URGENT)

    assert caught.value.retry_after == 0.25


# --- webhook -------------------------------------------------------------------------------------
def test_webhook_posts_the_notification_signed_with_hmac_sha256(hooks, monkeypatch):
    monkeypatch.setenv("AO_TEST_HOOK_SECRET", "shh-its-a-secret")
    webhook = notifiers.create("webhook", {"url": hooks.url("/ao"), "secret_env": "AO_TEST_HOOK_SECRET"})
    message = OutboundNotification(
        title="Ready to merge", body="All green.", priority="action", url="http://ao.test/s/web-4/",
        session_id="web-4", project_key="web", id=42, rule="approved-and-green",
    )  # fmt: skip

    webhook.send(message)

    request = hooks.requests[0]
    signature = request.header("X-AO-Signature-256")
    assert signature.startswith("sha256=")
    assert verify("shh-its-a-secret", request.body, signature)
    assert not verify("wrong-secret", request.body, signature)
    assert not verify("shh-its-a-secret", request.body + b" ", signature)
    timestamp = int(request.header("X-AO-Timestamp"))
    assert request.header("X-AO-Event") == "notification"
    assert request.header("X-AO-Notification") == "42"
    assert request.json() == {
        "event": "notification",
        "id": 42,
        "timestamp": timestamp,
        "priority": "action",
        "title": "Ready to merge",
        "body": "All green.",
        "url": "http://ao.test/s/web-4/",
        "session_url": "",
        "pr_url": "",
        "pr_number": None,
        "project": "web",
        "session": "web-4",
        "rule": "approved-and-green",
        "recipient": None,
        "created_at": None,
    }


def test_webhook_without_its_secret_sends_nothing(hooks, monkeypatch):
    monkeypatch.delenv("AO_TEST_NO_SECRET", raising=False)
    webhook = notifiers.create("webhook", {"url": hooks.url("/ao"), "secret_env": "AO_TEST_NO_SECRET"})

    with pytest.raises(NotifyFailed, match="AO_TEST_NO_SECRET holding the signing secret is not set"):
        webhook.send(URGENT)

    assert hooks.requests == []


def test_webhook_settings_are_validated():
    with pytest.raises(ConfigurationError, match="secret_env"):
        notifiers.create("webhook", {"url": "http://a.test/"})
    with pytest.raises(ConfigurationError, match="exactly one of url, url_env or url_secret"):
        notifiers.create("webhook", {"secret_env": "S"})
    with pytest.raises(ConfigurationError, match="environment variable name"):
        notifiers.create("webhook", {"url": "http://a.test/", "secret_env": "not a name"})


# --- desktop -------------------------------------------------------------------------------------
def test_desktop_without_notify_send_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    desktop = notifiers.create("desktop")

    with pytest.raises(NotifyFailed, match=r"^desktop: notify-send not found; install libnotify-bin$"):
        desktop.send(URGENT)


def _standin_notify_send(bin_dir: Path, *, exit_code: int = 0) -> Path:
    """A notify-send stand-in that records its argv as JSON (and can fail)."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "notify-send"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "open(os.environ['AO_TEST_NOTIFY_LOG'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.stderr.write('no D-Bus session\\n') if {exit_code} else None\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return script


def test_desktop_runs_notify_send_as_an_argv_list(tmp_path, monkeypatch):
    _standin_notify_send(tmp_path / "bin")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("AO_TEST_NOTIFY_LOG", str(log))

    notifiers.create("desktop").send(URGENT)
    notifiers.create("desktop", {"app_name": "ao-dev"}).send(
        Notification(title="-rf $(id)", body="", priority="info")
    )

    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        [
            "--urgency=critical",
            "--app-name=ao",
            "--",
            "CI failed on web-3",
            "2 checks failed: <lint> & *tests*\nOpen session: http://ao.test/s/web-3/\n"
            "Open PR #12: https://github.test/acme/web/pull/12",
        ],
        ["--urgency=low", "--app-name=ao-dev", "--", "-rf $(id)", ""],
    ]


def test_desktop_reports_notify_send_failing(tmp_path, monkeypatch):
    script = _standin_notify_send(tmp_path / "bin", exit_code=1)
    monkeypatch.setenv("AO_TEST_NOTIFY_LOG", str(tmp_path / "calls.jsonl"))

    with pytest.raises(NotifyFailed, match="notify-send exited with 1: no D-Bus session"):
        notifiers.create("desktop", {"binary": str(script)}).send(URGENT)


# --- email and in-app ----------------------------------------------------------------------------
def test_email_goes_through_djangos_backend(mailoutbox, settings):
    settings.DEFAULT_FROM_EMAIL = "ao@example.test"
    email = notifiers.create("email", {"to": ["ops@example.test", "lead@example.test"]})

    email.send(URGENT)

    assert len(mailoutbox) == 1
    sent = mailoutbox[0]
    assert sent.subject == "[ao] [URGENT] CI failed on web-3"
    assert sent.from_email == "ao@example.test"
    assert sent.to == ["ops@example.test", "lead@example.test"]
    assert sent.body == (
        "2 checks failed: <lint> & *tests*\n\n"
        "Project: web\nSession: web-3\nPriority: urgent\nOpen session: http://ao.test/s/web-3/\n"
        "Open PR #12: https://github.test/acme/web/pull/12\n\n-- \nSent by ao\n"
    )


def test_email_subject_never_carries_a_newline(mailoutbox):
    notifiers.create("email", {"to": ["ops@example.test"], "subject_prefix": "[ao:web]"}).send(
        Notification(title="line one\nBcc: evil@example.test", body="", priority="info")
    )

    assert mailoutbox[0].subject == "[ao:web] line one Bcc: evil@example.test"
    assert mailoutbox[0].bcc == []


def test_email_recipients_are_validated():
    with pytest.raises(ConfigurationError, match="is not an email address"):
        notifiers.create("email", {"to": ["not-an-address"]})
    with pytest.raises(ConfigurationError, match=r"set to .*, to_recipient: true, or both"):
        notifiers.create("email", {"to": []})


def test_in_app_sends_nothing():
    assert notifiers.create("in-app").send(URGENT) is None
