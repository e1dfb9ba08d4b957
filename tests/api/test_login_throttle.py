"""Password guessing on /accounts/login/ and /admin/login/ is stopped (docs/SECURITY.md, "Password guessing").

Defaults: 10 failures for one account from one address, or 50 for any accounts from one address,
pause logins there for 15 minutes; a success clears that account's failures from that address.
A superuser sees the lockouts in the admin and lifts them there or with ``ao login-unlock``.
"""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from sessions.api.tokens import api_token_create
from sessions.dashboard.views_auth import one_time_login_url
from sessions.models import AuditEntry
from tests.helpers.one_time import sign_in_form

LOGIN_URLS = ["/accounts/login/", "/admin/login/"]
PASSWORD = "correct-horse-battery-staple"
HOME, AWAY = "198.51.100.7", "203.0.113.9"
LOCKED_OUT = "Too many failed logins"


@pytest.fixture
def people(db) -> dict:
    users = get_user_model().objects
    return {
        "alice": users.create_user("alice", password=PASSWORD, is_staff=True),
        "bob": users.create_user("bob", password=PASSWORD, is_staff=True),
        "root": users.create_superuser("root", password=PASSWORD),
    }


def login(client, url: str, username: str, password: str, *, address: str = HOME):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client) -> str | None:
    """The username the client's session is logged in as, or None."""
    pk = client.session.get("_auth_user_id")
    return None if pk is None else get_user_model().objects.get(pk=pk).get_username()


def lock(client, url: str, username: str = "alice", *, address: str = HOME) -> None:
    answers = [login(client, url, username, "not-the-password", address=address) for _ in range(10)]
    assert_lockout_page(answers[-1])


def assert_lockout_page(response) -> None:
    assert response.status_code == 429
    assert "registration/locked_out.html" in [t.name for t in response.templates]
    text = response.content.decode()
    assert LOCKED_OUT in text and "15 minutes" in text


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_ten_wrong_passwords_then_the_right_one_is_refused_with_the_lockout_page(client, people, url) -> None:
    answers = [login(client, url, "alice", f"guess-{n}").status_code for n in range(10)]
    assert answers == [200] * 9 + [429]  # the form again nine times, then the lockout page

    right = login(client, url, "alice", PASSWORD)

    assert_lockout_page(right)
    assert signed_in(client) is None


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_a_lockout_holds_for_that_account_at_that_address_only(client, people, url) -> None:
    lock(client, url, "alice")

    assert login(client, url, "bob", PASSWORD).status_code == 302
    assert signed_in(client) == "bob"
    client.logout()
    assert login(client, url, "alice", PASSWORD, address=AWAY).status_code == 302
    assert signed_in(client) == "alice"


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_fifty_failures_from_one_address_pause_every_account_there(client, people, url) -> None:
    for n in range(50):  # spraying: a few guesses each at many names
        login(client, url, f"name-{n % 17}", "password1")

    assert_lockout_page(login(client, url, "bob", PASSWORD))
    assert signed_in(client) is None
    assert login(client, url, "bob", PASSWORD, address=AWAY).status_code == 302


def test_a_success_clears_the_failures_so_typos_never_add_up(client, people) -> None:
    for _ in range(2):
        for _ in range(9):
            login(client, "/accounts/login/", "alice", "typo")
        assert login(client, "/accounts/login/", "alice", PASSWORD).status_code == 302
        client.logout()

    assert signed_in(client) is None
    lock(client, "/accounts/login/", "alice")  # the tenth in a row still locks
    assert_lockout_page(login(client, "/accounts/login/", "alice", PASSWORD))


def test_a_superuser_sees_the_lockout_in_the_admin_and_lifts_it(client, people) -> None:
    lock(client, "/accounts/login/", "alice")
    client.force_login(people["root"])

    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    [row] = page.context["cl"].result_list
    assert (row.username, row.ip_address, row.failures_since_start) == ("alice", HOME, 10)
    assert "Locked out until" in page.content.decode()

    lifted = client.post(
        "/admin/axes/accessattempt/", {"action": "lift_lockouts", "_selected_action": [row.pk]}
    )
    assert lifted.status_code == 302
    [entry] = AuditEntry.objects.filter(action="login.unlock")
    assert (entry.actor_user, entry.source, entry.data) == (
        people["root"],
        "admin",
        {"username": "alice", "ip_address": HOME, "failures": 10},
    )
    client.logout()
    assert login(client, "/accounts/login/", "alice", PASSWORD).status_code == 302
    assert signed_in(client) == "alice"


def test_only_superusers_see_lockouts(client, people) -> None:
    lock(client, "/accounts/login/", "alice")
    client.force_login(people["bob"])  # staff, not a superuser

    assert client.get("/admin/axes/accessattempt/").status_code == 403
    assert client.post("/admin/axes/accessattempt/", {"action": "lift_lockouts"}).status_code == 403
    client.logout()
    assert_lockout_page(login(client, "/accounts/login/", "alice", PASSWORD))


def test_ao_login_unlock_lifts_an_accounts_lockouts(client, people) -> None:
    lock(client, "/accounts/login/", "alice")
    lock(client, "/accounts/login/", "alice", address=AWAY)
    lock(client, "/accounts/login/", "bob")
    out = StringIO()

    call_command("login-unlock", "alice", stdout=out)

    assert out.getvalue().splitlines() == [
        f"Cleared 10 failed logins of alice from {HOME}.",
        f"Cleared 10 failed logins of alice from {AWAY}.",
    ]
    assert login(client, "/accounts/login/", "alice", PASSWORD).status_code == 302
    client.logout()
    assert_lockout_page(login(client, "/accounts/login/", "bob", PASSWORD))  # not bob's
    assert AuditEntry.objects.filter(action="login.unlock").count() == 2


def test_ao_login_unlock_lists_and_lifts_by_address(client, people) -> None:
    for n in range(50):
        login(client, "/accounts/login/", f"name-{n % 17}", "password1")
    out = StringIO()
    call_command("login-unlock", "--list", stdout=out)
    assert f"{HOME}: 50 failed logins (any account) — locked out until" in out.getvalue()

    out = StringIO()
    call_command("login-unlock", "--address", HOME, stdout=out)

    assert len(out.getvalue().splitlines()) == 17
    assert login(client, "/accounts/login/", "bob", PASSWORD).status_code == 302
    out = StringIO()
    call_command("login-unlock", "--list", stdout=out)
    assert out.getvalue().strip() == "No logins are locked out."


def test_api_tokens_work_while_the_password_login_is_locked(client, people) -> None:
    lock(client, "/accounts/login/", "alice")
    _, raw = api_token_create(user=people["alice"], name="alice-bot")

    response = client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR=HOME)

    assert response.status_code == 200


def test_a_one_time_login_link_still_lets_the_owner_in(client, people) -> None:
    """The link is minted on the host (`ao login-link`): it is the owner's way back in, not a guess."""
    lock(client, "/accounts/login/", "alice")
    link = one_time_login_url(people["alice"], base_url="http://testserver")

    page = client.get(link.removeprefix("http://testserver"), REMOTE_ADDR=HOME)
    action, fields, _ = sign_in_form(page.content.decode())
    response = client.post(action, fields, REMOTE_ADDR=HOME)  # its "Sign in" button

    assert (response.status_code, response.headers["location"]) == (302, "/")
    assert signed_in(client) == "alice"


# --- a real `ao start`: the CLI process lifts a lockout the server process holds ---------------------
@pytest.mark.slow
def test_lockout_in_a_running_ao_and_ao_login_unlock(tmp_path: Path) -> None:
    from tests.test_embedded import ao_env, ao_process, django_shell, free_port, git_repo, run_ao

    home, repo = tmp_path / "home", git_repo(tmp_path)
    home.mkdir()
    port = free_port()
    env = ao_env(home)
    base = f"http://127.0.0.1:{port}"
    with ao_process(["start", "--port", str(port)], env, cwd=repo) as process:
        process.wait_for(rf"Dashboard: {re.escape(base)}/")
        django_shell(
            env,
            "from django.contrib.auth import get_user_model\n"
            f"get_user_model().objects.create_user('alice', password={PASSWORD!r})",
        )

        def attempt(http: httpx.Client, password: str) -> httpx.Response:
            http.get(f"{base}/accounts/login/")
            token = http.cookies["csrftoken"]
            return http.post(
                f"{base}/accounts/login/",
                data={"username": "alice", "password": password, "csrfmiddlewaretoken": token},
            )

        with httpx.Client(timeout=20) as http:
            answers = [attempt(http, f"guess-{n}").status_code for n in range(10)]
            refused = attempt(http, PASSWORD)
            assert answers == [200] * 9 + [429]
            assert refused.status_code == 429 and LOCKED_OUT in refused.text

            unlocked = run_ao(["login-unlock", "alice"], env)
            assert unlocked.returncode == 0, unlocked.stderr
            assert unlocked.stdout == "Cleared 11 failed logins of alice from 127.0.0.1.\n"

            accepted = attempt(http, PASSWORD)
            assert (accepted.status_code, accepted.headers["location"]) == (302, "/")


def test_behind_a_trusted_proxy_the_forwarded_client_counts_and_a_forged_header_does_not(
    client, people, settings
) -> None:
    settings.AO_TRUSTED_PROXIES = ["10.0.0.0/8"]

    def via_proxy(username: str, password: str, forwarded_for: str):
        data = {"username": username, "password": password}
        return client.post(
            "/accounts/login/", data, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR=forwarded_for
        )

    for _ in range(10):  # the client wrote AWAY into the header; the proxy appended HOME, where it came from
        via_proxy("alice", "not-the-password", f"{AWAY}, {HOME}")

    assert_lockout_page(via_proxy("alice", PASSWORD, HOME))  # locked where the proxy saw the client
    assert via_proxy("alice", PASSWORD, AWAY).status_code == 302  # not where the client claimed to be
    client.logout()
    # without a trusted proxy in front, the header is the client's to forge: the peer address counts
    for n in range(10):
        data = {"username": "bob", "password": "not-the-password"}
        client.post("/accounts/login/", data, REMOTE_ADDR=AWAY, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert_lockout_page(login(client, "/accounts/login/", "bob", PASSWORD, address=AWAY))
