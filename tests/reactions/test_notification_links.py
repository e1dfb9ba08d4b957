"""Every notification links to ao's page for the session and to the session's PR beside it
(issue 18.5): the escalation a reaction sends names the PR as its ``url``, and each notifier
must still offer the session page in ao, at the one address ao gives out (``ao_site/served.py``).

Slack, Discord and the webhook post to a local capture server over real HTTP; e-mail goes to a
real SMTP server process (tests/fakes/smtp.py); desktop runs a notify-send stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email import message_from_string
from pathlib import Path

import pytest

from reactions import notify
from reactions.models import NotificationDelivery
from sessions.core.config.schema import AoConfig
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory
from tests.fakes.hooks import FakeHooks
from tests.helpers.procs import REPO

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

AO = "https://ao.example.test"


@pytest.fixture
def smtp(tmp_path):
    out = tmp_path / "mail.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.smtp", "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield int(proc.stdout.readline().split()[-1]), out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def notify_send(tmp_path, monkeypatch) -> Path:
    """A notify-send stand-in on PATH that records its argv as JSON lines."""
    bin_dir, log = tmp_path / "bin", tmp_path / "notify-send.jsonl"
    bin_dir.mkdir()
    script = bin_dir / "notify-send"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "open(os.environ['AO_TEST_NOTIFY_LOG'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AO_TEST_NOTIFY_LOG", str(log))
    return log


def test_each_notifier_links_to_the_session_page_in_ao_and_to_the_pr(
    smtp, notify_send, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("AO_URL", AO)  # the address ao gives agents and links
    settings.AO_URL = AO
    monkeypatch.setenv("AO_TEST_HOOK_SECRET", "shh")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    smtp_port, mail_out = smtp
    with FakeHooks() as hooks:
        notify.notifiers_apply(
            AoConfig.model_validate(
                {
                    "projects": {},
                    "notifiers": {
                        "slack": {"plugin": "slack", "webhook_url": hooks.url("/slack"), "retries": 0},
                        "discord": {"plugin": "discord", "webhook_url": hooks.url("/discord"), "retries": 0},
                        "hook": {"plugin": "webhook", "url": hooks.url("/hook"), "secret_env": "AO_TEST_HOOK_SECRET",
                                 "retries": 0},
                        "mail": {"plugin": "email", "to": ["ops@example.com"], "from_email": "ao@example.com",
                                 "host": "127.0.0.1", "port": smtp_port, "retries": 0},
                        "desk": {"plugin": "desktop", "retries": 0},
                    },
                }
            )
        )  # fmt: skip
        project = ProjectFactory(key="web", repo="acme/web")
        session = SessionFactory(project=project, id="web-3")
        pr = PullRequestFactory(session=session, number=7, url="https://github.com/acme/web/pull/7")

        # what reactions/services.py sends for an escalation: the PR as the notification's url
        with django_capture_on_commit_callbacks(execute=True):
            notification = notify.notify(
                project=project, session=session, title="web-3 needs you", body="Stuck for 10 minutes.",
                priority="urgent", rule="agent-stuck", url=pr.url,
            )  # fmt: skip
        # and one about a CI check: its own link stays, beside the session page and the PR
        check = "https://github.com/acme/web/actions/runs/99"
        with django_capture_on_commit_callbacks(execute=True):
            notify.notify(project=project, session=session, title="CI failed", priority="urgent", url=check)

        states = dict(notification.deliveries.values_list("notifier", "state"))
        assert states == {n: NotificationDelivery.State.SENT for n in ("in-app", "slack", "discord", "hook", "mail",
                                                                        "desk")}  # fmt: skip
        by_path: dict[str, list] = {}
        for request in hooks.requests:
            by_path.setdefault(request.path, []).append(request.json())

    page = f"{AO}/s/web-3/"
    slack, slack_ci = by_path["/slack"]
    buttons = [
        (e["text"]["text"], e["url"])
        for b in slack["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert buttons == [("Open session", page), ("Open PR #7", pr.url)]
    buttons = [(e["text"]["text"], e["url"]) for b in slack_ci["blocks"] if b["type"] == "actions"
               for e in b["elements"]]  # fmt: skip
    assert buttons == [("Open session", page), ("Open PR #7", pr.url), ("Details", check)]

    (embed,) = by_path["/discord"][0]["embeds"]
    assert embed["url"] == page  # the title opens the session in ao
    assert {
        "name": "Links",
        "value": f"[Open session]({page}) · [Open PR #7]({pr.url})",
        "inline": False,
    } in embed["fields"]

    hook = by_path["/hook"][0]
    assert (hook["session_url"], hook["pr_url"], hook["url"]) == (page, pr.url, pr.url)

    first = message_from_string(json.loads(mail_out.read_text().splitlines()[0])["data"])
    text = first.get_payload(decode=True).decode()
    assert f"Open session: {page}" in text and f"Open PR #7: {pr.url}" in text

    desktop_body = json.loads(notify_send.read_text().splitlines()[0])[-1]
    assert desktop_body.splitlines()[1:] == [f"Open session: {page}", f"Open PR #7: {pr.url}"]
