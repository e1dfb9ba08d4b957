"""The terminal in a real browser (Debian's Chromium, headless) on the session detail page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.dashboard.browser import chromium, require_browser
from tests.terminal.conftest import Server, pane_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    require_browser()
    with chromium() as launched:
        yield launched


def page_as(browser, server: Server, who: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_cookies(
        [{"name": "sessionid", "value": server.cookies[who].split("=", 1)[1], "url": server.base}]
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.base}/s/{server.session}/")
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
