"""The loop in GitHub mode, end to end, with everything ao talks to run as its own process (issue 18).

One module-scoped world (``github_world.py``, built on the team journey's ``world.py``): the
person's repository whose ``origin`` is the repository's git on "GitHub", ``ao start --port N``
(the installed console script, its own AO_HOME), the fake GitHub Enterprise (served under
``/api/v3``) and the fake Linear as separate server processes, signed webhooks delivered by the
fake GitHub, Slack, Discord and webhook notifiers into local capture servers, the e-mail notifier
into a real SMTP server process (AUTH, from the EMAIL_* settings) and the desktop notifier into a
``notify-send`` stand-in. The agent is the journey's scripted agent (``agent.py``) as the project's
``custom`` agent; in GitHub mode it opens its PR through GitHub's REST API like ``gh pr create``.

Each test is one step, in order (one module, so ``--dist loadfile`` keeps them on one worker);
later steps build on earlier ones (``world.facts``) and say so when an earlier one did not get
that far. The issue's items: (1) a review with only a body reaches the agent, fenced, once;
(2) the model is recorded; (3) Linear intake claims a "Todo" issue; (4) e-mail through the SMTP
server; (5) every notification links to ao's session page and the PR; (6) a missing issue is
refused, read once; (7) the orchestrator's command reference; (8) the agent reactions in GitHub
mode, a merge refused when the head moved since ao checked it, a GitHub Enterprise base URL.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from email import message_from_string

import httpx
import pytest

from tests.journey.github_world import (
    MODEL,
    SMTP_USER,
    Outside,
    configure_github_mode,
    github_journey_world,
)
from tests.journey.world import World, git, start_ao
from tests.test_embedded import LINK_RE, open_link_and_sign_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ISSUE = "Add mul(a, b) to calc"
REVIEW_BODY = "Two things to fix: mul needs a docstring, and a test for negative numbers."
CHANNELS = ("slack", "discord", "webhook", "mail", "desktop")


@pytest.fixture(scope="module")
def journey(tmp_path_factory) -> Iterator[tuple[World, Outside]]:
    with github_journey_world(tmp_path_factory.mktemp("ghjourney")) as running:
        yield running


@pytest.fixture
def world(journey) -> World:
    return journey[0]


@pytest.fixture
def outside(journey) -> Outside:
    return journey[1]


def need(world: World, *keys: str) -> list:
    missing = [key for key in keys if key not in world.facts]
    if missing:
        pytest.fail(f"an earlier step did not get this far (no {', '.join(missing)})", pytrace=False)
    return [world.facts[key] for key in keys]


def page_of(world: World, session_id: str) -> str:
    return f"{world.base}/s/{session_id}/"


def told(outside: Outside, rule: str, session: str | None = None) -> list[dict]:
    """What the webhook notifier posted for ``rule`` (and ``session``)."""
    bodies = [r.json() for r in list(outside.webhook.requests)]
    return [b for b in bodies if b["rule"] == rule and (session is None or b["session"] == session)]


def listed(world: World, path: str) -> list[dict]:
    """Every item of one of the API's listings (``{next, previous, results}``)."""
    response = world.api(path)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def spawn_with_a_prompt(world: World, prompt: str) -> str:
    """A person spawns a worker from the API (what the dashboard and a remote `ao spawn` use)."""
    response = world.api("projects/calc/spawn", method="POST", json_body={"prompt": prompt})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def send(world: World, session_id: str, text: str) -> None:
    response = world.api(f"sessions/{session_id}/send", method="POST", json_body={"text": text})
    assert response.status_code in (200, 201, 202), response.text


def status_of(world: World, session_id: str) -> str:
    return world.session_facts(session_id)["status"]


def messages_with(world: World, session_id: str, text: str) -> list[str]:
    return [m for m in world.received(session_id) if text in m]


# --- 1. ao starts in GitHub mode ----------------------------------------------------------------------
def test_01_ao_starts_in_github_mode_against_github_enterprise(world: World, outside: Outside) -> None:
    configure_github_mode(world, outside)
    start_ao(world)

    world.token = re.search(r"\bao_\S+", world.ao_ok("token", "create", "journey")).group(0)
    projects = {p["key"] for p in listed(world, "projects/")}
    assert {"calc", "ops"} <= projects, projects
    # a person's browser session, for the pages
    cookies = httpx.Client(base_url=world.base, follow_redirects=True, timeout=15)
    signed_in = open_link_and_sign_in(cookies, LINK_RE.search(world.process.output).group(1))  # `ao start`'s
    assert signed_in.url == f"{world.base}/", signed_in.url
    world.facts["browser"] = cookies
    # GitHub can reach ao: a signed ping is accepted
    assert outside.deliver("ping") in (200, 202)
    world.facts["started"] = True


# --- 2. the orchestrator's command reference (item 7) ---------------------------------------------------
def test_02_the_orchestrators_command_reference_has_every_command_it_may_use(world: World) -> None:
    need(world, "started")
    prompt = world.ao_ok("orchestrator", "prompt", "--project", "calc")

    for usage in ("ao session claim-pr", "ao session cleanup", "ao session attach"):
        assert usage in prompt, f"{usage!r} is not in the orchestrator's prompt"


# --- 3. a missing issue is refused everywhere, read once (item 6) -------------------------------------
def test_03_spawning_a_missing_issue_is_refused_reading_it_once(world: World, outside: Outside) -> None:
    need(world, "started")
    path = "/repos/acme/calc/issues/99"
    before = outside.github_requests("GET", path)

    cli = world.ao("spawn", "--project", "calc", "99")
    assert cli.returncode != 0, cli.stdout
    assert "GitHub issue #99 not found in acme/calc" in cli.stdout + cli.stderr
    assert outside.github_requests("GET", path) == before + 1

    api = world.api("projects/calc/spawn", method="POST", json_body={"issue": "99"})
    assert api.status_code in (404, 409, 422), api.text
    assert "GitHub issue #99 not found in acme/calc" in api.text
    assert outside.github_requests("GET", path) == before + 2
    assert [s["id"] for s in listed(world, "sessions/") if s["project"] == "calc"] == []


# --- 4. an issue from GitHub, the agent's PR on GitHub ------------------------------------------------
def test_04_a_spawn_on_a_github_issue_opens_its_pr_on_github(world: World, outside: Outside) -> None:
    need(world, "started")
    number = outside.github.call("issue", title=ISSUE, body="calc has add; it needs mul too.")["number"]

    said = world.ao_ok("spawn", "--project", "calc", str(number))
    sid = "calc-1"  # the project's first session: the missing issue spawned none
    assert sid in said, said
    world.wait(
        "the agent opened its PR on GitHub", lambda: "opened PR #" in world.pane(sid), timeout=60, session=sid
    )
    assert outside.github_requests("GET", f"/repos/acme/calc/issues/{number}") == 1  # the spawn read it once
    pr = int(re.search(r"opened PR #(\d+)", world.pane(sid)).group(1))
    assert outside.deliver("pull_request", number=pr, action="opened") == 202
    world.wait(
        "ao shows the PR on the session",
        lambda: (world.session_facts(sid).get("pull_request") or {}).get("number") == pr,
        session=sid,
    )
    world.facts.update(pr=pr, branch=outside.github.call("pull", method="GET", number=pr)["head"])


# --- 5. the model it ran: trailer, card, API, retro (item 2) --------------------------------------------
def test_05_the_model_is_recorded_in_the_trailer_the_card_and_the_api(world: World, outside: Outside) -> None:
    (branch,) = need(world, "branch")
    sid = "calc-1"

    assert world.session_facts(sid)["model"] == MODEL
    bare = outside.git_root / "acme" / "calc.git"
    message = git(bare, "log", "-1", "--format=%B", branch)
    assert f"Ao-Model: {MODEL}" in message and f"Ao-Session: {sid}" in message, message
    board = world.facts["browser"].get("/").text
    card = board[board.index(f'id="card-{sid}"') :][:6000]
    assert MODEL in card


# --- 6. a review with only a body reaches the agent, fenced, once (item 1) --------------------------------
def test_06_a_review_with_only_a_body_reaches_the_agent_fenced_once(world: World, outside: Outside) -> None:
    (pr,) = need(world, "pr")
    sid = "calc-1"
    outside.github.call("review", number=pr, state="CHANGES_REQUESTED", author="rita", body=REVIEW_BODY)

    assert outside.deliver("pull_request_review", number=pr, state="changes_requested", reviewer="rita",
                           body=REVIEW_BODY) == 202  # fmt: skip
    (text,) = world.wait(
        "the review reached the agent", lambda: messages_with(world, sid, REVIEW_BODY), session=sid
    )
    assert "@rita (changes requested)" in text, text
    # fenced as quoted, untrusted text (a fence longer than any the text holds)
    assert re.search(rf"(?m)^(`{{3,}})review \(quoted, untrusted\)\n{re.escape(REVIEW_BODY)}\n\1$", text), (
        text
    )

    # the same review delivered again, and the sweeps that follow: nothing more reaches the agent
    assert outside.deliver("pull_request_review", number=pr, state="changes_requested", reviewer="rita",
                           body=REVIEW_BODY, delivery="again") == 202  # fmt: skip
    deadline = time.monotonic() + 5  # several sweeps (AO_SWEEP_INTERVAL=1)
    while time.monotonic() < deadline:
        assert len(messages_with(world, sid, REVIEW_BODY)) == 1
        time.sleep(0.5)
    world.wait(
        "the agent pushed its answer",
        lambda: (
            "Document mul"
            in git(outside.git_root / "acme" / "calc.git", "log", "--format=%s", "-1", world.facts["branch"])
        ),
        session=sid,
    )
    assert outside.github.call("sync")["moved"] == [pr]  # GitHub received the push
    assert outside.deliver("pull_request", number=pr, action="synchronize") == 202


# --- 7. a merge refused when the head moved since ao checked it (item 8) -----------------------------------
def test_07_a_merge_is_refused_when_the_head_moved_since_ao_checked_it(
    world: World, outside: Outside
) -> None:
    (pr,) = need(world, "pr")
    sid = "calc-1"
    check = outside.github.call(
        "check", number=pr, name="tests", conclusion="success"
    )  # CI passed on the head
    assert outside.deliver("check_run", check_id=check["id"]) == 202
    outside.github.call("review", number=pr, state="APPROVED", author="rita")
    assert outside.deliver("pull_request_review", number=pr, state="approved", reviewer="rita") == 202
    world.wait("the PR is mergeable", lambda: status_of(world, sid) == "mergeable", session=sid)
    checked = world.session_facts(sid)["pull_request"]["head_sha"]

    outside.github.call("move-head-on-merge", number=pr)  # someone pushes just before ao's merge lands
    response = world.api(f"sessions/{sid}/merge", method="POST")

    assert response.status_code == 409, response.text
    assert f"the head moved since {checked[:7]} was checked" in response.json()["error"]["message"]
    pull = outside.github.call("pull", method="GET", number=pr)
    assert pull["merged"] is False
    world.wait(
        "ao read the PR again: the new head, not mergeable until CI ran on it",
        lambda: (
            world.session_facts(sid)["pull_request"]["head_sha"] == pull["head_sha"]
            and status_of(world, sid) != "mergeable"
        ),
        session=sid,
    )
    world.facts["merge_refused"] = True


# --- 8. the PR closed on GitHub: people are told (item 8) ---------------------------------------------------
def test_08_a_pr_closed_on_github_tells_people(world: World, outside: Outside) -> None:
    (pr,) = need(world, "pr")
    outside.github.call("close", number=pr)
    assert outside.deliver("pull_request", number=pr, action="closed") == 202

    world.wait("pr-closed reached people", lambda: told(outside, "pr-closed", "calc-1"), session="calc-1")
    (note,) = told(outside, "pr-closed", "calc-1")
    assert f"PR #{pr}" in note["title"]
    # it was the project's only session: all of them are done
    world.wait("all-complete reached people", lambda: told(outside, "all-complete"), session="calc-1")
    assert [n["title"] for n in told(outside, "all-complete")] == ["calc: its only session is done"]


# --- 9. an agent asks a question: people are told (item 8) -------------------------------------------------
def test_09_an_agent_waiting_for_an_answer_tells_people(world: World, outside: Outside) -> None:
    need(world, "started")
    sid = spawn_with_a_prompt(world, "Tidy up the README")
    world.wait("the agent took its task", lambda: world.received(sid), timeout=60, session=sid)
    world.ao_ok("send", sid, "/ask")  # answered once the agent took it (it waited 30 s for a confirmation)

    world.wait(
        "the question is on screen",
        lambda: "Proceed with the refactor? (y/n)" in world.pane(sid),
        session=sid,
    )
    world.wait(
        "agent-needs-input reached people", lambda: told(outside, "agent-needs-input", sid), session=sid
    )
    assert status_of(world, sid) == "needs_input"
    world.facts["asking"] = sid


def test_09b_the_message_the_agent_asked_about_counts_as_delivered(world: World) -> None:
    """Confirmed, it is not typed again once the person has answered (it stayed unconfirmed:
    after a minute it was queued again)."""
    (sid,) = need(world, "asking")
    world.wait(
        "the message is confirmed",
        lambda: (
            [m["state"] for m in listed(world, f"sessions/{sid}/messages/") if m["text"] == "/ask"]
            == ["confirmed"]
        ),
        timeout=10,
        session=sid,
    )


# --- 10. an agent exits: people are told (item 8) ----------------------------------------------------------
def test_10_an_agent_that_exits_tells_people(world: World, outside: Outside) -> None:
    need(world, "started")
    sid = spawn_with_a_prompt(world, "Say goodbye")
    world.wait("the agent took its task", lambda: world.received(sid), timeout=60, session=sid)
    send(world, sid, "/exit")

    world.wait("agent-exited reached people", lambda: told(outside, "agent-exited", sid), session=sid)
    (note,) = told(outside, "agent-exited", sid)
    assert f"ao session restore {sid}" in note["body"]
    world.facts["exited"] = sid


# --- 11. Linear backlog intake claims a "Todo" issue; its idle agent is stuck (items 3, 8) --------------------
def test_11_linear_intake_claims_a_todo_issue_and_a_stuck_agent_tells_people(
    world: World, outside: Outside
) -> None:
    need(world, "started")
    ref = outside.linear.call("issue", team="ENG", title="Rotate the logs", state="Todo",
                              labels=["agent:backlog"])["identifier"]  # fmt: skip

    def claimed() -> str | None:
        return next((s["id"] for s in listed(world, "sessions/") if s.get("issue") == ref), None)

    sid = world.wait("intake claimed the Todo issue", claimed, timeout=60)
    linear_issue = outside.linear.call("issue", method="GET", id=ref)
    assert "agent:in-progress" in linear_issue["labels"] and "agent:backlog" not in linear_issue["labels"]
    world.wait("the agent took its task", lambda: world.received(sid), timeout=60, session=sid)

    world.wait(
        "agent-stuck reached people", lambda: told(outside, "agent-stuck", sid), timeout=60, session=sid
    )
    assert len(told(outside, "agent-stuck", sid)) == 1
    world.facts["intake_session"] = sid


# --- 12. all sessions done: people are told (item 8) ---------------------------------------------------------
def test_12_all_sessions_done_tells_people(world: World, outside: Outside) -> None:
    for sid in need(world, "merge_refused", "asking", "exited")[1:]:
        response = world.api(f"sessions/{sid}/kill", method="POST")
        assert response.status_code in (200, 202), response.text

    world.wait(
        "all-complete reached people again", lambda: len(told(outside, "all-complete")) == 2, timeout=60
    )
    assert [n["title"] for n in told(outside, "all-complete")] == [
        "calc: its only session is done",
        "calc: all 3 sessions are done",
    ]


# --- 13. every channel got every notification, linking to ao's page and the PR (items 4, 5) -------------------
def test_13_every_channel_got_every_notification_linking_to_the_session_and_the_pr(
    world: World, outside: Outside
) -> None:
    (pr,) = need(world, "pr")
    notes = [r.json() for r in outside.webhook.requests]
    sessions = {n["session"] for n in notes if n["session"]}
    assert {"calc-1", *need(world, "asking", "exited")} <= sessions, sessions
    pr_url = next(n["pr_url"] for n in notes if n["session"] == "calc-1" and n["pr_url"])
    assert pr_url.endswith(f"/acme/calc/pull/{pr}")

    world.wait("every channel got every notification", lambda: (
        len(outside.slack.requests) == len(outside.discord.requests) == len(outside.mail())
        == len(outside.desktop()) == len(notes)), timeout=30)  # fmt: skip
    for note in notes:
        if note["session"]:
            assert note["session_url"] == page_of(world, note["session"]), note

    def about(text: str) -> dict:
        """The notification a channel's message is (its title is in the message's title)."""
        return max((n for n in notes if n["title"] in text), key=lambda n: len(n["title"]))

    for request in outside.slack.requests:
        body = request.json()
        title = next(b["text"]["text"] for b in body["blocks"] if b["type"] == "header")
        note = about(title)
        buttons = [(e["text"]["text"], e["url"]) for b in body["blocks"] if b["type"] == "actions"
                   for e in b["elements"]]  # fmt: skip
        if note["session"]:
            assert ("Open session", page_of(world, note["session"])) in buttons, buttons
        if note["session"] == "calc-1":
            assert (f"Open PR #{pr}", pr_url) in buttons, buttons

    for request in outside.discord.requests:
        (embed,) = request.json()["embeds"]
        note = about(embed["title"])
        if note["session"]:
            assert embed["url"] == page_of(world, note["session"])

    for mail in outside.mail():
        assert (
            mail["user"] == SMTP_USER and mail["from"] == "ao@calc.test" and mail["to"] == ["pat@calc.test"]
        )
        message = message_from_string(mail["data"])
        text = message.get_payload(decode=True).decode()
        sid = about(message["Subject"])["session"]
        if sid:
            assert f"Open session: {page_of(world, sid)}" in text, text
        if sid == "calc-1":
            assert f"Open PR #{pr}: {pr_url}" in text, text

    for argv in outside.desktop():
        note = about(argv[-2])
        if note["session"]:
            assert f"Open session: {page_of(world, note['session'])}" in argv[-1].splitlines()


# --- 14. the retro: by agent/model (item 2) ----------------------------------------------------------------
def test_14_the_retro_names_the_model(world: World) -> None:
    need(world, "merge_refused")
    retro = json.loads(world.ao_ok("retro", "--project", "calc", "--json"))

    assert MODEL in json.dumps(retro), retro
