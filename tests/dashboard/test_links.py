"""Outside URLs never become links unless they are http(s): on the way in and in every template.

A check run's ``detailsUrl``, a PR's, an issue's or a review thread's URL is chosen by whoever
posts it; ``javascript:`` there ran in ao's origin when clicked. The plugin interface's records
keep only http(s) URLs, the API refuses others, and every template renders an outside ``href``
through ``safe_url`` (with ``rel="noopener noreferrer"`` on links that open elsewhere).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.urls import reverse

from ao_site import served
from ao_site.links import http_url
from integrations.records import CheckInfo, Issue, Notification, PullRequestInfo, ThreadInfo
from sessions.models import CheckRun, PullRequest, ReviewThread
from sessions.prs.prsync import pull_request_record
from tests.factories import ProjectFactory, SessionFactory

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# hrefs built from ao's own data (reverse(), the admin's URLs): not from outside.
INTERNAL = {"configure_link", "needs_you_url", "ws_url"}
# the usage page's own query links (sessions/dashboard/views_usage.py builds them from its parameters)
INTERNAL |= {"window_link", "bucket_link", "project_link", "all_projects", "api_url"}
HOSTILE = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    "/relative/path",
    "https:\\\\evil.example",
    "http:evil.example",
    "https://",
    "ftp://files.example/x",
    "file:///etc/passwd",
    "https://[::1",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_only_http_urls_are_kept(value: str) -> None:
    assert http_url(value) == ""


@pytest.mark.parametrize(
    "value",
    [
        "https://github.com/acme/shop/pull/7",
        "http://ci.local:8080/job/12?x=1#frag",
        "HTTPS://GitHub.com/acme/shop/runs/1",
        "https://[::1]:8443/x",
    ],
)
def test_http_urls_are_kept(value: str) -> None:
    assert http_url(value) == value


def test_every_outside_href_in_the_templates_goes_through_safe_url() -> None:
    unsafe, unprotected = [], []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for expr in re.findall(
            r"""(?:href|src|action|formaction|ws-connect|hx-get|hx-post)=["']\{\{\s*([^}]+?)\s*\}\}""", text
        ):
            name = expr.split("|")[0].strip()
            if name not in INTERNAL and "|safe_url" not in expr.replace(" ", ""):
                unsafe.append(f"{path.relative_to(TEMPLATES)}: {expr}")
        for tag in re.findall(r"<a\s[^>]*target=[\"']_blank[\"'][^>]*>", text):
            if 'rel="noopener noreferrer"' not in tag:
                unprotected.append(f"{path.relative_to(TEMPLATES)}: {tag}")
    assert unsafe == []
    assert unprotected == []


def test_the_filter_renders_no_link_for_a_javascript_url() -> None:
    template = Template('{% load ao_links %}<a href="{{ url|safe_url|default:"#" }}">x</a>')
    assert template.render(Context({"url": "javascript:alert(1)"})) == '<a href="#">x</a>'
    assert (
        template.render(Context({"url": 'https://ci.example/"x'}))
        == '<a href="https://ci.example/&quot;x">x</a>'
    )


def test_the_plugin_interface_keeps_only_http_urls() -> None:
    evil, good = "javascript:alert(1)", "https://github.com/acme/shop/pull/7"
    records = [
        Issue(ref="1", title="t", url=evil),
        CheckInfo(name="build", url=evil),
        ThreadInfo(external_id="t1", url=evil),
        PullRequestInfo(number=7, branch="b", url=evil),
        Notification(title="t", body="b", url=evil),
    ]
    assert [r.url for r in records] == [""] * 5
    assert PullRequestInfo(number=7, branch="b", url=good).url == good


@pytest.mark.django_db
def test_a_synced_pr_stores_no_javascript_url() -> None:
    project = ProjectFactory()
    session = SessionFactory(project=project)
    evil = "javascript:fetch('/api/v1/tokens/')"
    info = PullRequestInfo(
        number=7,
        branch="feat/x",
        url=evil,
        head_sha="a" * 40,
        checks=(CheckInfo(name="build", status="completed", conclusion="failure", url=evil),),
        threads=(ThreadInfo(external_id="t1", body="fix", author_association="OWNER", url=evil),),
    )
    pull_request_record(project=project, session=session, info=info)
    assert list(PullRequest.objects.values_list("url", flat=True)) == [""]
    assert list(CheckRun.objects.values_list("url", flat=True)) == [""]
    assert list(ReviewThread.objects.values_list("url", flat=True)) == [""]


@pytest.mark.parametrize(("name", "kwargs"), [("detail", {"session_id": "web-7"}), ("usage", {})])
def test_links_made_outside_a_request_are_the_dashboards_pages(name: str, kwargs: dict) -> None:
    """Notifications and `ao status` link to a page by reversing through sessions.urls alone (the
    root URLconf would import the API and the admin first): the same path as through the root."""
    assert served.dashboard_path(name, **kwargs) == reverse(f"sessions:{name}", kwargs=kwargs or None)
