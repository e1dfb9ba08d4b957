"""The e-mail notifier talks to a real SMTP server process (tests/fakes/smtp.py) with AUTH
(issue 18.4): the server comes from the EMAIL_* environment variables ao reads at start, or from
the notifier's own settings with the password in a secret stored in ao."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from integrations.notifier import NotifyFailed
from integrations.records import Notification
from integrations.registry import notifiers
from sessions.core import secrets
from tests.helpers.procs import REPO

pytestmark = pytest.mark.slow

SEND = """
import django, sys
django.setup()
from integrations.base import Notification
from integrations.registry import notifiers
from integrations.notifier import NotifyFailed
notifier = notifiers.create("email", {"to": ["ops@example.com"], "retries": 0})
try:
    notifier.send(Notification(title="web-3 needs input", body="Which database?", priority="action",
                               url="http://ao.example/s/web-3/", session_id="web-3", project_key="web"))
except NotifyFailed as exc:
    print("refused:", exc)
    sys.exit(3)
"""


@pytest.fixture
def smtp(tmp_path):
    """A real SMTP server process requiring AUTH as ao-mailer / s3cret; its received mail."""
    out = tmp_path / "mail.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.smtp", "--user", "ao-mailer", "--password", "s3cret", "--out", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = int(proc.stdout.readline().split()[-1])
        yield port, out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def received(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def send_from_a_process(tmp_path, port: int, password: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ao_site.settings",
        "AO_HOME": str(tmp_path / "ao-home"),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_HOST_USER": "ao-mailer",
        "EMAIL_HOST_PASSWORD": password,
        "DEFAULT_FROM_EMAIL": "ao@example.com",
    }
    return subprocess.run(
        [sys.executable, "-c", SEND], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_mail_server_comes_from_the_environment(tmp_path, smtp):
    port, out = smtp

    sent = send_from_a_process(tmp_path, port, "s3cret")

    assert sent.returncode == 0, sent.stderr[-2000:]
    (mail,) = received(out)
    assert (mail["user"], mail["from"], mail["to"]) == ("ao-mailer", "ao@example.com", ["ops@example.com"])
    assert "Subject: [ao] [ACTION] web-3 needs input" in mail["data"]
    assert "Which database?" in mail["data"]

    # a wrong password is refused by the server, and ao says what to check (not the password)
    refused = send_from_a_process(tmp_path, port, "wrong")
    assert refused.returncode == 3, refused.stderr[-2000:]
    assert "refused" in refused.stdout and "wrong" not in refused.stdout
    assert len(received(out)) == 1


@pytest.mark.django_db
def test_the_notifiers_own_server_with_a_stored_password(settings, smtp):
    port, out = smtp
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "192.0.2.1", 1  # not used: the notifier names its own
    secrets.secret_set(name="smtp-password", value="s3cret")
    notifier = notifiers.create(
        "email",
        {"to": ["ops@example.com"], "from_email": "ao@example.com", "host": "127.0.0.1", "port": port,
         "username": "ao-mailer", "password_secret": "smtp-password", "retries": 0},
    )  # fmt: skip

    notifier.send(Notification(title="web-4: CI failing", body="lint", session_id="web-4", project_key="web"))

    (mail,) = received(out)
    assert (mail["user"], mail["to"]) == ("ao-mailer", ["ops@example.com"])
    assert "Subject: [ao] web-4: CI failing" in mail["data"]

    secrets.secret_set(name="smtp-password", value="not-it")
    with pytest.raises(NotifyFailed, match="refused"):
        notifier.send(Notification(title="again", body=""))
    assert len(received(out)) == 1
