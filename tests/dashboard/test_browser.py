"""The dashboard as a person uses it: headless Chromium against a real `ao start`.

Log in with the one-time link, watch a card move between columns when the session's stored
facts change (no reload), send a message from the detail page and see it on the timeline, and
check that a viewer sees no buttons and is refused on POST. Screenshots land in test-output/.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import expect

from tests.dashboard.browser import VIEWER_PASSWORD, Live, browser, live, output_dir  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
PUSH_TIMEOUT = 10_000  # ms: a sweep every 0.5 s, then a 250 ms coalescing window


@pytest.fixture(scope="module")
def shots():
    return output_dir("dashboard")


@pytest.fixture(scope="module")
def admin_page(live: Live, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    live.sign_in(page)
    yield page
    context.close()


def _column_of(page, session_id: str) -> str:
    return page.eval_on_selector(f"#card-{session_id}", "el => el.closest('.col-body, .done-list').id")


def test_the_board_shows_the_card_in_its_column(live: Live, admin_page, shots) -> None:  # noqa: F811
    page = admin_page
    page.goto(f"{live.base}/p/e2e/")
    page.wait_for_selector("#card-e2e-1")
    page.wait_for_selector("#live-indicator[data-state=live]")

    assert _column_of(page, "e2e-1") == "col-working"
    card = page.inner_text("#card-e2e-1")
    assert "e2e-1" in card and "Task number 1" in card and "claude-code" in card
    page.screenshot(path=str(shots / "board-working.png"), full_page=True)


def test_a_fact_change_moves_the_card_without_a_reload(live: Live, admin_page, shots) -> None:  # noqa: F811
    page = admin_page
    page.goto(f"{live.base}/p/e2e/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.evaluate("window.__noReload = true")

    # The agent stops at a question: it needs a person.
    live.set_facts("e2e-1", activity="waiting_input")
    page.wait_for_selector("#col-action #card-e2e-1", timeout=PUSH_TIMEOUT)
    assert "Needs input" in page.inner_text("#card-e2e-1")
    page.wait_for_function("document.title.startsWith('(1) ')", timeout=PUSH_TIMEOUT)
    assert page.inner_text("#count-attention") == "1"
    page.screenshot(path=str(shots / "board-needs-input.png"), full_page=True)

    # It carries on, opens a PR that is green and mergeable: the card goes to Merge.
    live.shell(
        "from sessions.models import PullRequest, Session\n"
        "s = Session.objects.get(pk='e2e-1')\n"
        "PullRequest.objects.create(project=s.project, session=s, number=7, branch='feat/live', state='open',"
        " ci_state='passing', review_decision='approved', mergeable=True, head_sha='a'*40, title='Live board')\n"
        "print('ok')"
    )
    live.set_facts("e2e-1", activity="ready")
    page.wait_for_selector("#col-merge #card-e2e-1", timeout=PUSH_TIMEOUT)
    card = page.inner_text("#card-e2e-1")
    assert "Ready to merge" in card and "#7" in card and "CI passing" in card and "approved" in card
    assert page.evaluate("window.__noReload") is True  # same page: it was pushed, not reloaded
    assert page.locator("#card-e2e-1").count() == 1  # moved, not duplicated
    page.screenshot(path=str(shots / "board-mergeable.png"), full_page=True)

    # Detailed mode splits Action into Review and Respond; the choice is remembered.
    page.click("text=Detailed")
    page.wait_for_selector("#col-respond")
    page.goto(f"{live.base}/p/e2e/")
    assert page.locator("#col-review").count() == 1


def test_send_a_message_from_the_detail_page(live: Live, admin_page, shots) -> None:  # noqa: F811
    page = admin_page
    live.shell(
        "from sessions.models import PullRequest\n"
        "PullRequest.objects.filter(session_id='e2e-1').delete()\nprint('ok')"
    )
    live.set_facts("e2e-1", activity="ready")  # at its prompt: messages are delivered now
    page.goto(f"{live.base}/s/e2e-1/")
    page.wait_for_selector("#send-form")
    page.fill("#send-form textarea", "please run the linters before you push")
    page.click("#send-form button[type=submit]:has-text('Send')")

    page.wait_for_selector("text=Queued for e2e-1: please run the linters", timeout=5_000)
    page.wait_for_selector("#timeline >> text=message from admin", timeout=PUSH_TIMEOUT)
    # The worker types it into the agent's pane and confirms it there.
    page.wait_for_selector("#messages .mstate-delivered, #messages .mstate-confirmed", timeout=20_000)
    pane = subprocess.run(
        ["tmux", "-L", live.socket, "capture-pane", "-p", "-J", "-t", "=e2e-1:"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    assert "please run the linters before you push" in pane  # in the agent's own terminal
    # and the page's own terminal shows it too, live (scrolled to, as a person does: xterm.js
    # draws nothing while it is out of view)
    page.locator("[data-ao-terminal]").scroll_into_view_if_needed()
    expect(page.locator(".xterm-rows")).to_contain_text(
        "please run the linters before you push", timeout=PUSH_TIMEOUT
    )
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar back at the top of the picture
    page.screenshot(path=str(shots / "detail.png"), full_page=True)


def test_a_viewer_sees_no_buttons_and_is_refused_on_post(live: Live, browser, shots) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live.base}/accounts/login/")
    page.screenshot(path=str(shots / "login.png"))
    page.fill("#id_username", "viewer")
    page.fill("#id_password", VIEWER_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.base}/")
    page.wait_for_selector("#card-e2e-1")

    page.goto(f"{live.base}/s/e2e-1/")
    assert page.locator("#send-form").count() == 0
    assert page.locator("text=Ask agent to fix").count() == 0
    assert "viewer role" in page.inner_text("#actions")
    page.screenshot(path=str(shots / "detail-viewer.png"), full_page=True)

    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live.base}/s/e2e-1/send/",
        form={"text": "sneaky"},
        headers={"X-CSRFToken": token, "Referer": f"{live.base}/s/e2e-1/"},
    )
    assert response.status == 403
    assert (
        "0"
        == live.shell(
            "from sessions.models import Message\nprint(Message.objects.filter(text='sneaky').count())"
        ).strip()
    )
    context.close()


def test_on_a_phone_the_columns_stack(live: Live, browser, shots) -> None:  # noqa: F811
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = context.new_page()
    page.goto(f"{live.base}/accounts/login/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", VIEWER_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.base}/")
    page.goto(f"{live.base}/p/e2e/?mode=simple")
    page.wait_for_selector("#card-e2e-1")

    boxes = [page.locator(f".col-{key}").bounding_box() for key in ("working", "pending", "action", "merge")]
    assert len({round(b["x"]) for b in boxes}) == 1  # one column: stacked
    assert all(b["width"] <= 390 for b in boxes)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "board-phone.png"), full_page=True)
    context.close()


def test_after_a_reconnect_the_board_body_is_fetched_again(live: Live, admin_page) -> None:  # noqa: F811
    page = admin_page
    page.goto(f"{live.base}/p/e2e/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    # While "offline" the page drops every pushed message (other sessions' work goes on and keeps
    # pushing); a title edited behind ao's back stands for what it misses. The resync that ao.js
    # fires on a reconnect picks it up.
    page.evaluate(
        "window.aoDropPushes = function (e) { e.preventDefault(); };"
        "document.addEventListener('htmx:wsBeforeMessage', window.aoDropPushes);"
    )
    live.shell(
        "from sessions.models import Session\n"
        "print(Session.objects.filter(pk='e2e-1').update(issue_title='Renamed while offline'))"
    )
    assert "Renamed while offline" not in page.inner_text("#card-e2e-1")
    page.evaluate(
        "document.removeEventListener('htmx:wsBeforeMessage', window.aoDropPushes);"
        "htmx.trigger(document.body, 'ao:resync')"
    )
    page.wait_for_selector("#card-e2e-1 >> text=Renamed while offline", timeout=5_000)
    assert page.locator("#board-body").count() == 1


def test_spawn_page_with_the_backlog(live: Live, admin_page, shots) -> None:  # noqa: F811
    page = admin_page
    live.shell(
        "from integrations.models import LocalIssue\nfrom sessions.models import Project\n"
        "p = Project.objects.get(key='e2e')\n"
        "LocalIssue.objects.create(project=p, number=1, title='Add a dark mode toggle', labels=['ui'])\n"
        "LocalIssue.objects.create(project=p, number=2, title='Flaky checkout test')\nprint('ok')"
    )
    page.goto(f"{live.base}/p/e2e/spawn/")
    page.wait_for_selector("#batch-form >> text=Add a dark mode toggle")
    page.fill("#id_prompt", "")
    page.click("#spawn-form button[type=submit]")
    page.wait_for_selector("text=Pick an issue or write a prompt.")
    page.screenshot(path=str(shots / "spawn.png"), full_page=True)


def test_screenshots_were_written(shots) -> None:
    names = {p.name for p in shots.glob("*.png")}
    assert {"board-working.png", "board-needs-input.png", "board-mergeable.png", "detail.png"} <= names
    assert all(re.match(r"[a-z-]+\.png", n) for n in names)
