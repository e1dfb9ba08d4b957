"""The session page and the nav badge stay live: headless Chromium against a real `ao start`.

Facts change behind the page (a plain UPDATE, a killed tmux session, a notification read on
another page); the embedded sweep or the service notices and pushes; every panel that shows the
fact follows without a reload. Screenshots land in test-output/live-detail/.
"""

from __future__ import annotations

import pytest

from tests.dashboard.browser import Live, browser, live_server, output_dir, require_browser, tmux  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
PUSH_TIMEOUT = 10_000  # ms: a sweep every 0.5 s, then a 250 ms coalescing window


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    require_browser()
    with live_server(tmp_path_factory.mktemp("live-detail"), sessions=2) as server:
        yield server


@pytest.fixture(scope="module")
def shots():
    return output_dir("live-detail")


@pytest.fixture(scope="module")
def admin_context(live: Live, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    live.sign_in(page)  # the one-time link works once: one signed-in context for the module
    page.close()
    yield context
    context.close()


@pytest.fixture
def admin(admin_context):
    page = admin_context.new_page()
    yield admin_context, page
    page.close()


def set_pr(live: Live, session_id: str, **fields) -> None:
    """Create or update the session's PR with a plain UPDATE (no service, no push)."""
    out = live.shell(
        "from sessions.models import PullRequest, Session\n"
        f"s = Session.objects.get(pk={session_id!r})\n"
        "pr, _ = PullRequest.objects.get_or_create(project=s.project, session=s, number=41,"
        " defaults={'branch': 'feat/live', 'state': 'open', 'head_sha': 'b'*40, 'title': 'Live panels'})\n"
        f"print(PullRequest.objects.filter(pk=pr.pk).update(**{fields!r}))"
    )
    assert out.strip() == "1", out


def test_now_and_pull_request_panels_follow_the_card(live: Live, admin, shots) -> None:
    _, page = admin
    set_pr(live, "e2e-1", ci_state="failing", conflicts=True, mergeable=False, review_decision="approved")
    live.set_facts("e2e-1", activity="ready")
    page.goto(f"{live.base}/s/e2e-1/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.wait_for_selector("#card-e2e-1 .badge.ci-failing", timeout=PUSH_TIMEOUT)
    assert "Failing" in page.inner_text("#pr-panel .badge.ci-failing")
    assert "conflicts with" in page.inner_text("#pr-panel")
    page.evaluate("window.__noReload = true")

    # CI goes green and the conflict is gone: the sweep re-derives and pushes once.
    set_pr(live, "e2e-1", ci_state="passing", conflicts=False, mergeable=True)
    page.wait_for_selector("#card-e2e-1 .badge.ci-passing", timeout=PUSH_TIMEOUT)
    page.wait_for_selector("#pr-panel .badge.ci-passing", timeout=PUSH_TIMEOUT)
    assert "none; mergeable" in page.inner_text("#pr-panel")
    assert "conflicts with" not in page.inner_text("#pr-panel")
    # The badge can arrive one push before the status: set_pr's UPDATE bypasses the services, so
    # a card pushed for another fact (the agent's activity) between it and the next sweep's
    # derivation shows the new PR with the status derived from the old one. The next sweep's
    # push must bring the status and the Now panel along.
    page.wait_for_function(
        """() => {
            const card = document.querySelector('#card-e2e-1 .pill');
            const now = document.querySelector('#now-panel .pill');
            return card && now && !['CI failed', 'Merge conflicts'].includes(card.innerText.trim())
                && now.innerText.trim() === card.innerText.trim();
        }""",
        timeout=PUSH_TIMEOUT,
    )
    card_status = page.inner_text("#card-e2e-1 .pill")
    assert page.inner_text("#now-panel .pill") == card_status
    assert "CI is failing" not in page.inner_text("#session-controls")
    assert page.evaluate("window.__noReload") is True  # pushed, not reloaded
    page.screenshot(path=str(shots / "detail-green.png"), full_page=True)


def test_a_dead_agent_offers_restore_instead_of_send(live: Live, admin, shots) -> None:
    _, page = admin
    out = live.shell(  # a worktree of its own, which a restore continues in
        "import subprocess\nfrom sessions.models import Session\n"
        "s = Session.objects.get(pk='e2e-2')\nworktree = s.project.path + '-e2e-2'\n"
        "subprocess.run(['git', '-C', s.project.path, 'worktree', 'add', '-q', '-b', 'feat/e2e-2', worktree],"
        " check=True)\n"
        "print(Session.objects.filter(pk='e2e-2').update(workspace_path=worktree, branch='feat/e2e-2'))"
    )
    assert out.strip() == "1", out
    page.goto(f"{live.base}/s/e2e-2/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    assert page.locator("#send-form").is_visible()
    assert page.locator("#restore-form").count() == 0
    page.evaluate("window.__noReload = true")

    tmux(live.socket, "kill-session", "-t", "=e2e-2")  # the agent's terminal goes away

    page.wait_for_selector("#agent-down", timeout=PUSH_TIMEOUT)
    assert page.locator("#send-form").is_hidden()
    assert page.locator("#send-form button[name=quick]").first.is_hidden()
    assert page.locator("#restore-form button").is_visible()
    assert "messages cannot reach it" in page.inner_text("#agent-down")
    assert page.inner_text("#now-panel .pill") == page.inner_text("#card-e2e-2 .pill")
    assert page.evaluate("window.__noReload") is True
    page.screenshot(path=str(shots / "detail-dead-agent.png"), full_page=True)


def test_the_inbox_badge_is_live_on_every_page(live: Live, admin, shots) -> None:
    context, board = admin
    live.shell(
        "from reactions.notify import notify\nfrom sessions.models import Project\n"
        "p = Project.objects.get(key='e2e')\n"
        "notify(project=p, title='A deliberately long notification title that goes on ' * 6, priority='action')\n"
        "notify(project=p, title='Second', body='x' * 400)\nprint('ok')"
    )
    board.goto(f"{live.base}/p/e2e/")
    board.wait_for_selector("#live-indicator[data-state=live]")
    unread = int(board.inner_text("#unread-count b"))
    assert unread >= 2
    board.evaluate("window.__noReload = true")

    inbox = context.new_page()
    inbox.goto(f"{live.base}/inbox/")
    row = inbox.locator(".inbox-list li", has_text="deliberately long")
    box, text = row.bounding_box(), row.locator(".title").bounding_box()
    assert text["x"] + text["width"] <= box["x"] + box["width"] + 1  # a long title wraps inside its row
    badge = row.locator(".badge").bounding_box()
    assert badge["x"] + badge["width"] <= text["x"]  # the priority first, the title next to it
    assert abs(badge["y"] - text["y"]) < 20
    inbox.screenshot(path=str(shots / "inbox.png"), full_page=True)
    inbox.click("text=Mark all read")
    inbox.wait_for_selector("#unread-count b:text-is('0')")

    board.wait_for_selector("#unread-count b:text-is('0')", timeout=PUSH_TIMEOUT)  # the other page, live
    assert board.evaluate("window.__noReload") is True
