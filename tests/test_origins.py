"""Only ao's own origin (scheme, host and port) and those the operator lists may use a signed-in
browser's cookies: for websockets (ao_site/origins.py) and for posts (Django's CSRF check).

Cookies are shared by every port of a host; a page on 127.0.0.1:5173 is not ao on 127.0.0.1:8000.
The browser-level proof (a real hostile page on another port) is tests/dashboard/test_hostile_page.py.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from ao_site.origins import origin_allowed
from sessions.api.serializers import ReportSerializer
from sessions.models import Membership, Message
from tests.factories import SessionFactory, UserFactory
from tests.helpers.procs import manage


@pytest.fixture
def hosts(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "ao.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = []
    return settings


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "allowed"),
    [
        ("http://127.0.0.1:8000", "http", "127.0.0.1:8000", True),
        ("http://127.0.0.1:5173", "http", "127.0.0.1:8000", False),  # another port of the same host
        ("http://127.0.0.1", "http", "127.0.0.1:8000", False),
        ("https://127.0.0.1:8000", "http", "127.0.0.1:8000", False),  # another scheme
        ("http://localhost:8000", "http", "127.0.0.1:8000", False),  # another host, same port
        ("https://ao.example.com", "https", "ao.example.com", True),
        ("https://ao.example.com:443", "https", "ao.example.com", True),  # default ports are the same
        ("http://evil.example:8000", "http", "evil.example:8000", False),  # DNS rebinding: not our host
        ("null", "http", "127.0.0.1:8000", False),  # sandboxed frames, file: pages
        ("", "http", "127.0.0.1:8000", False),  # no Origin: browsers always send one
    ],
)
def test_the_port_is_part_of_the_origin(hosts, origin, scheme, host, allowed) -> None:
    assert origin_allowed(origin, scheme=scheme, host=host) is allowed


def test_the_operator_lists_more_origins(hosts) -> None:
    hosts.CSRF_TRUSTED_ORIGINS = ["https://ao.example.com", "https://*.corp.example"]
    assert origin_allowed("https://ao.example.com", scheme="http", host="127.0.0.1:8000")
    assert origin_allowed("https://dash.corp.example", scheme="http", host="127.0.0.1:8000")
    assert not origin_allowed("https://dash.corp.example:8443", scheme="http", host="127.0.0.1:8000")
    assert not origin_allowed("http://dash.corp.example", scheme="http", host="127.0.0.1:8000")


@pytest.mark.django_db
def test_a_post_from_another_port_is_refused_and_sends_nothing(hosts) -> None:
    session = SessionFactory()
    user = UserFactory(username="op")
    Membership.objects.create(user=user, project=session.project, role="operator")
    client = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1:8000")
    client.force_login(user)
    client.get(reverse("sessions:detail", args=[session.pk]))
    token = client.cookies["csrftoken"].value  # readable by a page on any port of the host
    url = reverse("sessions:send", args=[session.pk])
    body = {"csrfmiddlewaretoken": token, "text": "from a page on another port"}

    refused = client.post(url, body, HTTP_ORIGIN="http://127.0.0.1:5173")
    assert refused.status_code == 403
    assert not Message.objects.exists()

    body["text"] = "from ao's own page"
    client.post(url, body, HTTP_ORIGIN="http://127.0.0.1:8000")
    assert list(Message.objects.values_list("text", flat=True)) == ["from ao's own page"]


def test_the_default_address_is_not_trusted_unless_ao_url_says_so(tmp_path) -> None:
    code = "import json; from django.conf import settings as s; print(json.dumps(s.CSRF_TRUSTED_ORIGINS))"
    base = {"AO_HOME": str(tmp_path), "AO_SECRET_KEY": "", "DATABASE_URL": "", "REDIS_URL": ""}
    unset = manage("shell", "-c", code, env={**base, "AO_URL": "", "AO_CSRF_TRUSTED_ORIGINS": ""}).stdout
    given = manage("shell", "-c", code, env={**base, "AO_URL": "https://ao.example.com"}).stdout
    assert json.loads(unset.strip().splitlines()[-1]) == []
    assert json.loads(given.strip().splitlines()[-1]) == ["https://ao.example.com"]


def test_an_agent_reports_only_an_http_pr_url() -> None:
    for url, ok in [("https://github.com/acme/shop/pull/7", True), ("ftp://files.example/pull/7", False)]:
        assert ReportSerializer(data={"state": "working", "pr": url}).is_valid() is ok
