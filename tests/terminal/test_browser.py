"""The terminal in a real browser (Debian's Chromium, headless) on the session detail page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.dashboard.browser import chromium, require_browser
from tests.helpers.fixtures import wait_for
from tests.terminal.conftest import Server, pane_text, start_shell, tmux

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    require_browser()
    with chromium() as launched:
        yield launched


def page_as(browser, server: Server, who: str, *, init_script: str = "", session: str = ""):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    if init_script:
        context.add_init_script(init_script)
    context.add_cookies(
        [{"name": "sessionid", "value": server.cookies[who].split("=", 1)[1], "url": server.base}]
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.base}/s/{session or server.session}/")
    return page, errors


def test_operator_types_in_the_browser_terminal_and_sees_the_echo(
    browser, server: Server, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page, errors = page_as(browser, server, "operator")
    terminal = page.locator(f"#terminal-{server.session}")
    expect(terminal.locator("[data-role=status]")).to_have_text("live", timeout=10_000)
    expect(terminal.locator(".xterm-rows")).to_contain_text("ao-prompt$", timeout=10_000)

    terminal.locator(".xterm").click()
    page.keyboard.type("echo browser-$((7*6)) é✓")
    page.keyboard.press("Enter")

    expect(terminal.locator(".xterm-rows")).to_contain_text("browser-42 é✓", timeout=10_000)
    shot = Path(os.environ.get("AO_TEST_ARTIFACTS") or tmp_path) / "terminal-operator.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert "browser-42 é✓" in pane_text(server.socket_name, server.session)
    assert errors == []
    page.context.close()


def test_an_errored_sessions_terminal_panel_says_plainly_that_it_ended(browser, server: Server) -> None:
    from playwright.sync_api import expect

    page, errors = page_as(browser, server, "viewer", session="term-8")
    status = page.locator("#terminal-term-8 [data-role=status]")
    expect(status).to_have_text(
        "this session has ended: its agent did not start: claude-code agent: 'claude' was not found on PATH",
        timeout=10_000,
    )
    expect(status).to_have_attribute("data-state", "ended")  # grey, not the red of an error
    assert errors == []
    page.context.close()


def test_a_starting_sessions_panel_waits_then_shows_the_terminal_once_it_is_there(
    browser, server: Server
) -> None:
    """The page opened while its agent starts (or waits for a slot): the panel says so, not a red
    "no running terminal", and shows the terminal once there is one, without a reload."""
    from playwright.sync_api import expect

    from tests.test_embedded import django_shell

    page, errors = page_as(browser, server, "viewer", session="term-7")
    status = page.locator("#terminal-term-7 [data-role=status]")
    expect(status).to_have_text("its agent is starting: its terminal opens in a moment", timeout=10_000)
    expect(status).to_have_attribute("data-state", "waiting")

    start_shell(server.socket_name, "term-7")  # its agent started: now there is a terminal
    try:
        django_shell(
            server.env,
            "from sessions.models import Session; Session.objects.filter(pk='term-7').update("
            "phase='running', runtime_state='alive', status='working', runtime_handle={'runtime': 'tmux', "
            f"'name': 'term-7', 'data': {{'socket_name': {server.socket_name!r}}}}})",
        )
        expect(status).to_have_attribute("data-state", "read-only", timeout=20_000)
    finally:
        tmux(server.socket_name, "kill-session", "-t", "=term-7", check=False)
    assert errors == []
    page.context.close()


def test_viewer_sees_the_terminal_read_only(browser, server: Server) -> None:
    from playwright.sync_api import expect

    page, errors = page_as(browser, server, "viewer")
    terminal = page.locator(f"#terminal-{server.session}")
    expect(terminal.locator("[data-role=status]")).to_have_text("read-only", timeout=10_000)
    expect(terminal.locator(".xterm-rows")).to_contain_text("ao-prompt$", timeout=10_000)

    terminal.locator(".xterm").click()
    page.keyboard.type("echo from-viewer-$((1+1))")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)

    assert "from-viewer" not in pane_text(server.socket_name, server.session)
    assert errors == []
    page.context.close()


# Records what the page's terminal sends as input (before it leaves for the server).
RECORD_INPUT = """
window.aoSentInput = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  try { const m = JSON.parse(data); if (m.type === "input") { window.aoSentInput.push(m.data); } } catch (e) {}
  return send.call(this, data);
};
"""


def test_opening_the_terminal_types_nothing_into_the_agent(browser, server: Server) -> None:
    """tmux asks each client for its device attributes on attach; every viewer's xterm.js gets
    that question in the replay. Its answer (``ESC[>0;276;0c``) must not reach the agent, whose
    stand-in here (``cat -v``) shows every byte it receives; neither may any other reply."""
    from playwright.sync_api import expect

    name, sock = server.session, server.socket_name
    tmux(sock, "send-keys", "-t", f"={name}:", "C-c", "stty sane; clear; echo ready-$((6*7))", "Enter")
    assert wait_for(lambda: "ready-42" in pane_text(sock, name))
    tmux(sock, "send-keys", "-t", f"={name}:", "stty -echo; cat -v; stty echo", "Enter")
    assert wait_for(lambda: "cat -v; stty echo" in pane_text(sock, name))
    pages = []
    try:
        for _ in range(2):  # two viewers: the second one gets the question from the replay
            page, errors = page_as(browser, server, "operator", init_script=RECORD_INPUT)
            terminal = page.locator(f"#terminal-{name}")
            expect(terminal.locator("[data-role=status]")).to_have_text("live", timeout=10_000)
            expect(terminal.locator(".xterm-rows")).to_contain_text("cat -v; stty echo", timeout=10_000)
            pages.append((page, errors, terminal))
        page, errors, terminal = pages[-1]
        terminal.locator(".xterm").click()
        page.keyboard.type("typed")
        page.keyboard.press("Enter")
        assert wait_for(lambda: "typed" in pane_text(sock, name))
        pane = pane_text(sock, name)
        sent = [p.evaluate("window.aoSentInput") for p, _, _ in pages]
    finally:
        tmux(sock, "send-keys", "-t", f"={name}:", "C-c", check=False)
        tmux(sock, "send-keys", "-t", f"={name}:", "stty sane; clear", "Enter", check=False)
        for page, _, _ in pages:
            page.context.close()

    after_cat = pane.split("cat -v; stty echo", 1)[1]
    assert [line for line in after_cat.splitlines() if line.strip()] == ["typed"], pane
    assert sent == [[], ["t", "y", "p", "e", "d", "\r"]]
    assert all(errors == [] for _, errors, _ in pages)
