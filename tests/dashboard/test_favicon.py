"""Every page has an icon: the browser's /favicon.ico (asked by pages that name none, the admin's)
is not a 404 in the log and the console of each page."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_favicon_ico_leads_to_the_icon_pages_name(client, admin_user):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("favicon.svg")
    assert finders.find("ao/favicon.svg")

    client.force_login(admin_user)
    page = client.get("/")
    assert b'rel="icon"' in page.content and b"favicon.svg" in page.content
