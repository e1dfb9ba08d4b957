"""The one-time login link: opening it asks; only its button (a same-origin POST) signs in.

A GET signs nobody in: any page the operator's browser shows (an ``<img>`` on an agent's dev
server) can make it GET a URL, which must not switch the browser into someone else's account
(login CSRF)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from sessions.dashboard.views_auth import one_time_login_url
from tests.factories import UserFactory
from tests.helpers.one_time import sign_in_form

ORIGIN = "http://testserver"


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def link_path(user) -> str:
    return one_time_login_url(user, base_url="http://testserver").removeprefix("http://testserver")


def signed_in(client: Client) -> str | None:
    pk = client.session.get("_auth_user_id")
    return None if pk is None else get_user_model().objects.get(pk=pk).get_username()


def confirm(browser: Client, path: str):
    """Open the link and press its button, as a browser does (the page's form, same origin)."""
    page = browser.get(path)
    assert page.status_code == 200
    action, fields, _ = sign_in_form(page.content.decode())
    return browser.post(action, fields, headers={"Origin": ORIGIN})


def test_opening_the_link_asks_and_signs_nobody_in(alice) -> None:
    browser = Client(enforce_csrf_checks=True)

    page = browser.get(link_path(alice))

    assert page.status_code == 200
    text = page.content.decode()
    assert "<h1>Sign in as alice?</h1>" in text
    action, fields, button = sign_in_form(text)
    assert (action, button) == ("/accounts/one-time/", "Sign in as alice")
    assert set(fields) == {"csrfmiddlewaretoken", "uidb64", "token"}
    assert signed_in(browser) is None
    assert page.headers["Cache-Control"].startswith("max-age=0")


def test_the_button_signs_in_and_uses_the_link_up(alice) -> None:
    browser = Client(enforce_csrf_checks=True)
    path = link_path(alice)

    answer = confirm(browser, path)

    assert (answer.status_code, answer.headers["Location"]) == (302, "/")
    assert signed_in(browser) == "alice"
    again = Client(enforce_csrf_checks=True).get(path)
    assert again.status_code == 302 and again.headers["Location"].startswith("/accounts/login/")


def test_opening_the_link_does_not_use_it_up(alice) -> None:
    path = link_path(alice)
    for _ in range(3):
        assert Client().get(path).status_code == 200  # e.g. a link preview, or the page reloaded

    browser = Client(enforce_csrf_checks=True)
    assert confirm(browser, path).status_code == 302
    assert signed_in(browser) == "alice"


def test_a_post_without_the_csrf_token_signs_nobody_in(alice) -> None:
    """What a page elsewhere can send: the link's id and token, without ao's CSRF token."""
    browser = Client(enforce_csrf_checks=True)
    path = link_path(alice)
    _, fields, _ = sign_in_form(Client().get(path).content.decode())
    del fields["csrfmiddlewaretoken"]

    answer = browser.post("/accounts/one-time/", fields, headers={"Origin": ORIGIN})

    assert answer.status_code == 403
    assert signed_in(browser) is None
    assert confirm(Client(enforce_csrf_checks=True), path).status_code == 302  # the link still works


def test_a_post_from_another_origin_signs_nobody_in_even_with_the_token(alice) -> None:
    """A page on another port of the host can read the CSRF cookie; its Origin gives it away."""
    browser = Client(enforce_csrf_checks=True)
    path = link_path(alice)
    action, fields, _ = sign_in_form(browser.get(path).content.decode())

    answer = browser.post(action, fields, headers={"Origin": "http://testserver:5173"})

    assert answer.status_code == 403
    assert signed_in(browser) is None


def test_a_refused_post_does_not_log_the_token(alice, caplog) -> None:
    """Django logs a refused post with its path: the token is in the form, not the path."""
    browser = Client(enforce_csrf_checks=True)
    action, fields, _ = sign_in_form(browser.get(link_path(alice)).content.decode())

    browser.post(action, fields, headers={"Origin": "http://testserver:5173"})

    assert "Origin checking failed" in caplog.text
    assert fields["token"] not in caplog.text


def test_a_link_opened_in_someone_elses_browser_says_so_and_switches_only_on_the_button(alice) -> None:
    """The attacker's own link, loaded by the operator's browser (an <img>, a redirect): the
    operator stays signed in; opened on purpose, the page says plainly whose login it replaces."""
    operator = UserFactory(username="operator")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    path = link_path(alice)

    page = browser.get(path)

    assert signed_in(browser) == "operator"
    text = re.sub(r"\s+", " ", page.content.decode())
    assert "This browser is signed in as <b>operator</b>." in text
    assert "signs <b>operator</b> out and you in as <b>alice</b>" in text
    assert sign_in_form(page.content.decode())[2] == "Sign in as alice"
    assert confirm(browser, path).status_code == 302
    assert signed_in(browser) == "alice"


def test_a_forged_link_goes_to_the_login_page_and_signs_nobody_in(alice) -> None:
    forged = link_path(alice).rsplit("-", 1)[0] + "-0000000000000000000000000000000/"
    browser = Client(enforce_csrf_checks=True)
    _, fields, _ = sign_in_form(browser.get(link_path(alice)).content.decode())
    fields["token"] = forged.rstrip("/").rsplit("/", 1)[1]

    opened = browser.get(forged)
    pressed = browser.post("/accounts/one-time/", fields, headers={"Origin": ORIGIN})

    assert opened.status_code == pressed.status_code == 302
    assert opened.headers["Location"].startswith("/accounts/login/")
    assert pressed.headers["Location"].startswith("/accounts/login/")
    assert signed_in(browser) is None
