"""Hostile pages and hostile links against a real `ao start`, in headless Chromium.

The operator is signed in to ao; in the same browser they open a page served by something else
on the same machine (an agent's dev server, a local preview) on another port. Cookies are shared
across ports, so that page's websockets and form posts to ao carry the operator's login: ao must
refuse them by origin (scheme, host and port). Stored facts that came from outside (a PR's,
a check's or a review thread's URL) hold `javascript:` URLs: no page may turn them into links,
and every page runs under a Content-Security-Policy without a single violation.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dashboard.browser import Live, browser, live_server, output_dir, require_browser  # noqa: F401
from tests.test_embedded import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SOCKETS = ["/ws/terminal/e2e-1/", "/ws/board/", "/ws/board/?session=e2e-1", "/ws/inbox/"]

# Opens each websocket; types `marker` into the terminal once it says hello. Resolves to
# {path: "open" | "refused"} (refused: closed before it ever opened).
PROBE = """(base, paths, marker) => Promise.all(paths.map((path) => new Promise((resolve) => {
  let opened = false, typed = false, seen = "";
  const ws = new WebSocket(base + path);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { opened = true; if (!path.startsWith("/ws/terminal/")) ws.close(); };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") return;  // control messages (hello, size, resync)
    ws.send(JSON.stringify({type: "ack", bytes: 0}));
    if (!typed) {  // the first screen: the terminal is attached to the agent's pane; type
      typed = true;
      ws.send(JSON.stringify({type: "input", data: marker + "\\r"}));
      return;
    }
    seen += new TextDecoder().decode(e.data);
    if (seen.includes(marker)) ws.close();  // the agent's pane echoed what was typed
  };
  ws.onclose = () => resolve([path, opened ? "open" : "refused"]);
}))).then(Object.fromEntries)"""

# Reads the CSRF cookie (readable from any port of the host) and posts a message to the agent.
POST = """([url, text]) => {
  const token = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
  const body = new URLSearchParams({csrfmiddlewaretoken: token, text: text});
  return fetch(url, {method: "POST", body, credentials: "include", mode: "no-cors"}).then(
    () => "sent", () => "network error");
}"""

HOSTILE = """<!doctype html><title>localhost:{port} dev server</title>
<h1>A page on another port of the same host</h1>
<script>window.outcome = ({probe})({base!r}, {paths}, {marker!r});</script>"""

EVIL = "javascript:document.title='PWNED'"


@dataclass
class Hostile:
    base: str

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@contextlib.contextmanager
def hostile_server(root: Path) -> Iterator[Hostile]:
    """A plain HTTP server on another port of 127.0.0.1, serving files from ``root``."""
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a, **kw: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Hostile(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    require_browser()
    with live_server(tmp_path_factory.mktemp("hostile")) as server:
        server.shell(
            "from django.utils import timezone\n"
            "from sessions.models import CheckRun, PullRequest, ReviewThread, Session\n"
            "s = Session.objects.get(pk='e2e-1')\n"
            f"pr = PullRequest.objects.create(project=s.project, session=s, number=7, branch='feat/x', state='open',"
            f" ci_state='failing', head_sha='a'*40, title='Hostile links', url={EVIL!r})\n"
            f"CheckRun.objects.create(pull_request=pr, head_sha='a'*40, name='build', status='completed',"
            f" conclusion='failure', url={EVIL!r})\n"
            f"ReviewThread.objects.create(pull_request=pr, external_id='t1', path='app.py', line=3, author='boss',"
            f" author_association='OWNER', body='Please fix', url={EVIL!r}, created_at=timezone.now())\n"
            f"Session.objects.filter(pk='e2e-1').update(issue_url={EVIL!r})\n"
            "print('ok')"
        )
        yield server


@pytest.fixture(scope="module")
def operator(live: Live, browser):  # noqa: F811
    """The operator's browser, signed in to ao (the one-time link works once: one context)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    live.sign_in(page)
    page.close()
    yield context
    context.close()


@pytest.fixture(scope="module")
def hostile(live: Live, tmp_path_factory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile-site")
    (root / "ws.html").write_text(
        HOSTILE.format(
            port=live.port,
            probe=PROBE,
            base=f"ws://127.0.0.1:{live.port}",
            paths=json.dumps(SOCKETS),
            marker="HIJACKED-BY-PAGE",
        )
    )
    (root / "blank.html").write_text("<!doctype html><title>another local app</title><p>hello</p>")
    with hostile_server(root) as server:
        yield server


def pane(live: Live) -> str:
    return subprocess.run(
        ["tmux", "-L", live.socket, "capture-pane", "-p", "-J", "-t", "=e2e-1:"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip


def messages(live: Live) -> list[str]:
    out = live.shell(
        "import json\nfrom sessions.models import Message\n"
        "print(json.dumps(list(Message.objects.order_by('pk').values_list('text', flat=True))))"
    )
    return json.loads(out.strip().splitlines()[-1])


def test_a_page_on_another_port_cannot_open_ao_websockets(live: Live, operator, hostile: Hostile) -> None:
    page = operator.new_page()
    page.goto(hostile.url("ws.html"))
    refused = page.evaluate("window.outcome")
    page.close()

    # The same probe from ao's own page: every socket opens and the terminal takes the keys.
    page = operator.new_page()
    page.goto(f"{live.base}/p/e2e/")
    own = page.evaluate(
        f"([b, p, m]) => ({PROBE})(b, p, m)", [f"ws://127.0.0.1:{live.port}", SOCKETS, "TYPED-BY-OPERATOR"]
    )
    page.close()

    # The operator's keys arrive (the pane echoes them) before anything is asserted, so that a
    # failure shows how far the hostile page got.
    # The operator's keys arrived; the hostile page's, sent first, never did.
    for _ in range(200):
        if "TYPED-BY-OPERATOR" in pane(live):
            break
        time.sleep(0.05)
    text = pane(live)
    assert "TYPED-BY-OPERATOR" in text
    assert own == dict.fromkeys(SOCKETS, "open")
    assert (refused, "HIJACKED-BY-PAGE" in text) == (dict.fromkeys(SOCKETS, "refused"), False)


def test_a_page_on_another_port_cannot_post_with_the_operators_login(
    live: Live, operator, hostile: Hostile
) -> None:
    send = f"{live.base}/s/e2e-1/send/"
    page = operator.new_page()
    page.goto(hostile.url("blank.html"))
    assert page.evaluate(POST, [send, "posted by a hostile page"]) == "sent"  # the browser did send it
    page.goto(f"{live.base}/s/e2e-1/")
    assert page.evaluate(POST, [send, "posted by the operator"]) == "sent"
    page.close()

    # Django's CSRF check compares the Origin (scheme, host and port) with ao's own: only
    # the operator's own post made a message.
    assert [text for text in messages(live) if text.startswith("posted by")] == ["posted by the operator"]


# Loads a URL as an <img> (what any page may do), then posts the one-time link's form fields
# with the CSRF cookie it can read, as the confirmation page's button would.
SWITCH_LOGIN = """([link, confirm, uidb64, token]) => new Promise((resolve) => {
  const img = new Image();
  img.onload = img.onerror = () => {
    const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
    const body = new URLSearchParams({csrfmiddlewaretoken: csrf, uidb64, token});
    fetch(confirm, {method: "POST", body, credentials: "include", mode: "no-cors"}).then(
      () => resolve("sent"), () => resolve("network error"));
  };
  img.src = link;
})"""


def test_a_page_on_another_port_cannot_switch_the_operators_login(
    live: Live, operator, hostile: Hostile
) -> None:
    """Login CSRF: the sender's own one-time link, loaded by the operator's browser, must not
    sign it into the sender's account (what the operator then does would be the sender's to see)."""
    link = (
        live.shell(
            "from django.contrib.auth import get_user_model\n"
            "from sessions.dashboard.views_auth import one_time_login_url\n"
            f"print(one_time_login_url(get_user_model().objects.get(username='viewer'), base_url={live.base!r}))"
        )
        .strip()
        .splitlines()[-1]
    )
    uidb64, token = link.rstrip("/").split("/")[-2:]
    page = operator.new_page()
    page.goto(f"{live.base}/")
    me = page.text_content("header .who")

    page.goto(hostile.url("blank.html"))
    sent = page.evaluate(SWITCH_LOGIN, [link, f"{live.base}/accounts/one-time/", uidb64, token])
    page.goto(f"{live.base}/")
    after = page.text_content("header .who")
    page.goto(link)  # opened on purpose: the page says whose login it would replace, and waits
    warning = page.text_content("main")
    page.close()

    assert sent == "sent"  # the browser did load the link and send the post
    assert (me, after) == ("admin", "admin")
    assert "This browser is signed in as admin" in " ".join(warning.split())


PAGES = {
    "board": "/",
    "project": "/p/e2e/",
    "needs-you": "/needs-you/",
    "project-needs-you": "/p/e2e/needs-you/",
    "session": "/s/e2e-1/",
    "spawn": "/p/e2e/spawn/",
    "inbox": "/inbox/",
    "tokens": "/tokens/",
    "admin": "/admin/",
    "admin-project": "/admin/agent_sessions/project/",
    "api-docs": "/api/v1/docs/",
}

# Every policy violation and every page error, recorded from the first byte of each page.
WATCH = """window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline")));"""


def _visit(page, url: str, errors: list[str]) -> list[str]:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page.evaluate("window.__violations") + errors


def test_no_page_links_to_a_javascript_url_nor_runs_it(live: Live, operator) -> None:
    shots = output_dir("hostile")
    page = operator.new_page()
    found = {}
    for name, path in PAGES.items():
        page.goto(f"{live.base}{path}")
        page.wait_for_load_state("networkidle")
        found[name] = page.eval_on_selector_all(
            "a[href]",
            "as => as.map(a => a.getAttribute('href')).filter(h => /^\\s*[a-z][a-z0-9+.-]*:/i.test(h))",
        )
        found[name] = [h for h in found[name] if not h.startswith(("http://", "https://"))]
    assert found == {name: [] for name in PAGES}

    page.goto(f"{live.base}/p/e2e/")
    page.wait_for_selector("#card-e2e-1")
    page.screenshot(path=str(shots / "board.png"), full_page=True)
    page.click("#card-e2e-1 .prn")  # the PR link whose stored URL was javascript:
    page.goto(f"{live.base}/s/e2e-1/")
    page.wait_for_selector("#pr-facts")
    for link in page.query_selector_all("#pr-facts a[target=_blank]"):
        assert link.get_attribute("rel") == "noopener noreferrer"
    assert "PWNED" not in page.title()
    page.close()


def test_every_page_runs_under_a_csp_without_violations(live: Live, operator) -> None:
    page = operator.new_page()
    page.add_init_script(WATCH)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    seen = {}
    for name, path in PAGES.items():
        response = page.goto(f"{live.base}{path}")
        policy = response.headers.get("content-security-policy", "")
        page.wait_for_load_state("networkidle")
        seen[name] = (
            policy.startswith("default-src 'self'"),
            page.evaluate("window.__violations"),
            list(errors),
        )
        errors.clear()
    assert seen == {name: (True, [], []) for name in PAGES}

    # The terminal still draws and the board is still live under the policy.
    page.goto(f"{live.base}/s/e2e-1/")
    page.wait_for_selector("#terminal-e2e-1 .xterm-screen")
    page.goto(f"{live.base}/p/e2e/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    assert page.evaluate("window.__violations") == [] and errors == []
    page.close()


def test_the_login_page_runs_under_the_csp(live: Live, browser) -> None:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.add_init_script(WATCH)
    response = page.goto(f"{live.base}/accounts/login/")
    page.wait_for_load_state("networkidle")
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")
    page.goto(f"{live.base}/admin/login/")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__violations") == []
    context.close()
