"""Chat from Slack and Telegram: verification, refusals, dedupe, and status/spawn/send/merge
through the real services."""

from __future__ import annotations

import json
import time

import pytest

from integrations.records import PullRequestInfo
from integrations.tracker.local import LocalTracker
from sessions.dashboard import views_chat
from sessions.models import AuditEntry, ChatConfirmation, ChatDelivery, Event, Message, Session
from tests.chat.conftest import (
    SLACK_SECRET,
    ChatTestSCM,
    slack_click,
    slack_command,
    slack_sign,
    telegram_update,
)
from tests.factories import PullRequestFactory, SessionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.chat.urls")]


def nothing_happened(sessions_before: int = 1) -> None:
    assert not ChatDelivery.objects.exists()
    assert not Message.objects.exists()
    assert Session.objects.count() == sessions_before
    assert not ChatConfirmation.objects.exists()
    assert ChatTestSCM.merged == []


# --- verification -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    ["missing", "wrong-secret", "stale", "future", "malformed-ts", "tampered", "v1"],
)
def test_slack_requests_that_fail_verification_are_401_and_nothing_runs(client, team, case):
    now = str(int(time.time()))
    kwargs = {
        "missing": {"signature": ""},
        "wrong-secret": {"secret": "not-the-secret"},
        "stale": {"timestamp": str(int(time.time()) - 301)},
        "future": {"timestamp": str(int(time.time()) + 400)},
        "malformed-ts": {"timestamp": "12ab", "signature": slack_sign(b"", "12ab")},
        "tampered": {"timestamp": now, "signature": slack_sign(b"text=status", now)},
        "v1": {"timestamp": now, "signature": "v1=" + "0" * 64},
    }[case]

    response = slack_command(client, "send web-1 delete everything", **kwargs)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401
    nothing_happened()


def test_slack_without_a_configured_secret_refuses_everything(client, team, settings):
    settings.AO_SLACK_SIGNING_SECRET = ""
    response = slack_command(client, "send web-1 hi", secret="")
    assert response.status_code == 401
    nothing_happened()


def test_slack_interactive_with_a_bad_signature_is_401(client, team):
    body = b"payload=%7B%7D"
    ts = str(int(time.time()))
    response = client.post(
        "/chat/slack/interactive",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=ts,
        HTTP_X_SLACK_SIGNATURE=slack_sign(body, ts, secret="wrong"),
    )
    assert response.status_code == 401
    nothing_happened()


@pytest.mark.parametrize(
    "token",
    [None, "", "tg-secret_Token-12", "TG-SECRET_TOKEN-123"],
    ids=["missing", "empty", "short", "case"],
)
def test_telegram_with_a_wrong_secret_token_is_401_and_nothing_runs(client, team, token):
    response = telegram_update(client, "send web-1 hi", token=token)
    assert response.status_code == 401
    nothing_happened()


def test_telegram_without_a_configured_secret_refuses_everything(client, team, settings):
    settings.AO_TELEGRAM_SECRET_TOKEN = ""
    response = telegram_update(client, "send web-1 hi", token="")
    assert response.status_code == 401
    nothing_happened()


def test_get_is_not_allowed(client, team):
    assert client.get("/chat/telegram/webhook").status_code == 405
    assert client.get("/chat/slack/commands").status_code == 405


def test_slack_verify_accepts_slacks_documented_example():
    # The example in Slack's "Verifying requests from Slack" guide.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    views_chat.slack_verify(
        secret=SLACK_SECRET,
        timestamp="1531420618",
        signature="v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        body=body,
        now=1531420618 + 10,
    )


# --- unknown people ----------------------------------------------------------------------------------
def test_unknown_slack_user_is_refused_politely_and_nothing_runs(client, team):
    response = slack_command(client, "spawn web 1", user="USTRANGER")
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert "not linked to an ao user" in body["text"]
    assert "USTRANGER" in body["text"]
    nothing_happened()


def test_unknown_telegram_user_is_refused_politely_and_nothing_runs(client, team):
    response = telegram_update(client, "send web-1 hi", user_id=999)
    assert response.status_code == 200
    body = response.json()
    assert (body["method"], body["chat_id"]) == ("sendMessage", 424242)
    assert "not linked to an ao user" in body["text"]
    nothing_happened()


def test_a_user_without_a_role_in_the_project_sees_nothing_and_does_nothing(client, team):
    body = slack_command(client, "send web-1 hello", user="UOUTSIDER").json()
    assert "No session web-1 that you can see" in body["text"]
    assert not Message.objects.exists()
    body = slack_command(client, "status web", user="UOUTSIDER").json()
    assert "No project “web” that you can see" in body["text"]


# --- status ------------------------------------------------------------------------------------------
def test_status_lists_zones_and_what_needs_a_person(client, team):
    SessionFactory(
        project=team.project,
        number=2,
        id="web-2",
        status="stuck",
        zone="respond",
        status_reason="idle for 40 min",
    )
    body = slack_command(client, "status web", user="UVIEWER").json()
    assert body["response_type"] == "ephemeral"
    assert "web: 2 live sessions (agent working 1, needs a decision 1)" in body["text"]
    assert "Needs a person:" in body["text"]
    assert "[stuck] web-2: stuck" in body["text"]
    assert body["blocks"][0]["type"] == "section"


def test_status_text_is_escaped_for_slack(client, team):
    SessionFactory(
        project=team.project,
        number=2,
        id="web-2",
        status="stuck",
        zone="respond",
        status_reason="<!channel> hi",
    )
    text = slack_command(client, "status").json()["text"]
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text


# --- spawn -------------------------------------------------------------------------------------------
def test_spawn_from_telegram_creates_the_session_for_the_issue(client, team):
    LocalTracker(project=team.project).create_issue(title="Fix the login form")

    response = telegram_update(client, "/spawn@ao_bot web #1")

    body = response.json()
    assert body["method"] == "sendMessage"
    assert body["reply_parameters"]["message_id"] == 77
    session = Session.objects.exclude(pk="web-1").get()
    assert (session.issue_ref, session.issue_title, session.created_by) == (
        "1",
        "Fix the login form",
        team.operator,
    )
    assert f"Spawned {session.pk} on issue #1 “Fix the login form”" in body["text"]
    audit = AuditEntry.objects.get(action="session.spawn")
    assert (audit.source, audit.actor_user, audit.actor_name) == ("webhook", team.operator, "telegram:1001")


def test_spawn_needs_the_operator_role(client, team):
    LocalTracker(project=team.project).create_issue(title="Fix the login form")
    body = telegram_update(client, "spawn web 1", user_id=1002).json()
    assert "You need the operator role in web" in body["text"]
    assert Session.objects.count() == 1


def test_spawn_refuses_an_issue_already_being_worked_on(client, team):
    body = slack_command(client, f"spawn web {team.session.issue_ref}").json()
    assert "web-1 is already working on issue" in body["text"]
    assert Session.objects.count() == 1


# --- send --------------------------------------------------------------------------------------------
def test_send_from_slack_queues_a_message_from_the_person(client, team):
    body = slack_command(client, "send web-1 please rebase on main").json()
    message = Message.objects.get()
    assert (message.session_id, message.text, message.sender, message.sender_user) == (
        "web-1",
        "please rebase on main",
        "user",
        team.operator,
    )
    assert message.sender_name == "slack:UOPERATOR"
    assert f"Queued for web-1 (message {message.pk})" in body["text"]
    assert Event.objects.filter(kind="message.queued", session_id="web-1").exists()


def test_send_to_a_project_reaches_its_orchestrator(client, team):
    SessionFactory(project=team.project, id="web-orchestrator", number=None, kind="orchestrator")
    telegram_update(client, "send web what is blocking the release?")
    message = Message.objects.get()
    assert (message.session_id, message.text) == ("web-orchestrator", "what is blocking the release?")


def test_send_needs_the_operator_role(client, team):
    body = slack_command(client, "send web-1 hi", user="UVIEWER").json()
    assert "You need the operator role in web" in body["text"]
    assert not Message.objects.exists()


# --- merge -------------------------------------------------------------------------------------------
def _mergeable(team, sha="a" * 40):
    pr = PullRequestFactory(
        session=team.session, number=9, title="Fix login", branch="feat/one", head_sha=sha, ci_state="passing",
        mergeable=True, review_decision="approved",
    )  # fmt: skip
    Session.objects.filter(pk="web-1").update(status="mergeable", zone="merge")
    ChatTestSCM.prs[9] = PullRequestInfo(
        number=9, branch="feat/one", head_sha=sha, state="open", mergeable=True
    )
    return pr


def test_merge_on_slack_asks_for_a_button_then_merges_the_head_that_was_shown(client, team, monkeypatch):
    posted = []
    monkeypatch.setattr(views_chat, "_post_later", lambda url, message: posted.append((url, message)))
    _mergeable(team)

    body = slack_command(client, "merge web-1").json()

    assert ChatTestSCM.merged == []
    assert "Merge PR #9 “Fix login” of web-1 at aaaaaaa?" in body["text"]
    buttons = body["blocks"][1]["elements"]
    assert [b["action_id"] for b in buttons] == ["ao_merge_confirm", "ao_merge_cancel"]
    token = buttons[0]["value"]

    with_callbacks = slack_click(client, token=token)

    answer = with_callbacks.json()
    assert answer["replace_original"] is True
    assert answer["response_type"] == "in_channel"
    assert "Merged PR #9 of web-1 at aaaaaaa" in answer["text"]
    assert ChatTestSCM.merged == [(9, "a" * 40)]
    assert Event.objects.get(kind="pr.merge_requested").actor_user == team.operator
    assert AuditEntry.objects.get(action="pr.merge").actor_name == "slack:UOPERATOR"

    again = slack_click(client, token=token).json()
    assert "No pending merge with that code" in again["text"]
    assert ChatTestSCM.merged == [(9, "a" * 40)]


def test_slack_click_is_answered_on_the_response_url_after_commit(
    client, team, monkeypatch, django_capture_on_commit_callbacks
):
    posted = []
    monkeypatch.setattr(views_chat, "slack_post", lambda url, message: posted.append((url, message)))
    _mergeable(team)
    token = slack_command(client, "merge web-1").json()["blocks"][1]["elements"][0]["value"]
    with django_capture_on_commit_callbacks(execute=True):
        slack_click(client, token=token, action_id="ao_merge_cancel")
    deadline = time.monotonic() + 5
    while not posted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert posted[0][0] == "https://hooks.slack.com/actions/T0001/2/xyz"
    assert "Cancelled: PR #9 of web-1 was not merged" in posted[0][1]["text"]
    assert ChatTestSCM.merged == []


def test_someone_elses_merge_button_does_nothing(client, team):
    _mergeable(team)
    token = slack_command(client, "merge web-1").json()["blocks"][1]["elements"][0]["value"]
    body = slack_click(client, token=token, user="UVIEWER").json()
    assert "No pending merge with that code for you" in body["text"]
    assert ChatTestSCM.merged == []


def test_merge_on_telegram_is_confirmed_by_a_reply(client, team):
    _mergeable(team)
    body = telegram_update(client, "merge web-1").json()
    code = ChatConfirmation.objects.get().token
    assert f"Reply “confirm {code}” within 10 minutes" in body["text"]
    assert ChatTestSCM.merged == []

    body = telegram_update(client, f"confirm {code}").json()

    assert "Merged PR #9 of web-1" in body["text"]
    assert ChatTestSCM.merged == [(9, "a" * 40)]


def test_a_head_that_moved_since_the_question_is_not_merged(client, team):
    pr = _mergeable(team)
    telegram_update(client, "merge web-1")
    code = ChatConfirmation.objects.get().token
    pr.head_sha = "b" * 40
    pr.save()

    body = telegram_update(client, f"confirm {code}").json()

    assert "moved to bbbbbbb since you asked (you saw aaaaaaa)" in body["text"]
    assert ChatTestSCM.merged == []


def test_merge_of_an_unmergeable_pr_says_why_and_asks_nothing(client, team):
    PullRequestFactory(session=team.session, number=9, ci_state="failing", review_decision="approved")
    body = slack_command(client, "merge web-1").json()
    assert "web-1 cannot be merged now: CI is failing" in body["text"]
    assert len(body["blocks"]) == 1
    assert not ChatConfirmation.objects.exists()


def test_merge_needs_the_operator_role(client, team):
    _mergeable(team)
    body = telegram_update(client, "merge web-1", user_id=1002).json()
    assert "You need the operator role in web to merge" in body["text"]
    assert not ChatConfirmation.objects.exists()


# --- dedupe -----------------------------------------------------------------------------------------
def test_a_telegram_update_delivered_twice_runs_once(client, team):
    first = telegram_update(client, "send web-1 run the tests", update_id=31337)
    second = telegram_update(client, "send web-1 run the tests", update_id=31337)
    assert "Queued for web-1" in first.json()["text"]
    assert second.status_code == 200
    assert second.json() == {}
    assert Message.objects.count() == 1


def test_a_slack_retry_runs_once(client, team):
    first = slack_command(client, "send web-1 run the tests", trigger="111.222.abc")
    retry = slack_command(
        client,
        "send web-1 run the tests",
        trigger="111.222.abc",
        headers={"HTTP_X_SLACK_RETRY_NUM": "1", "HTTP_X_SLACK_RETRY_REASON": "http_timeout"},
    )
    assert "Queued for web-1" in first.json()["text"]
    assert retry.json()["text"] == "(already handled)"
    assert Message.objects.count() == 1


def test_telegram_updates_that_are_not_text_messages_are_acknowledged(client, team, settings):
    update = {"update_id": 5, "edited_message": {"message_id": 1, "text": "send web-1 hi"}}
    response = client.post(
        "/chat/telegram/webhook",
        data=json.dumps(update),
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=settings.AO_TELEGRAM_SECRET_TOKEN,
    )
    assert (response.status_code, response.json()) == (200, {})
    nothing_happened()


def test_help_for_an_unknown_command(client, team):
    body = telegram_update(client, "dance").json()
    assert "I don't know “dance”" in body["text"]
    assert "status [project]" in body["text"]
