"""Agent hosts over the API and the CLI (issue 19): ``GET /api/v1/hosts`` lists the hosts a person
may use (a superuser: every host); a personal host's owner (or a superuser) decides who else may
use it (``PUT``/``DELETE hosts/NAME/allowed/USER``, ``ao host allow|deny``); anyone else is
refused with the reason, and nothing changes."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from sessions.api.tokens import api_token_create
from sessions.core import hosts
from sessions.models import AuditEntry, Host, Membership
from tests.factories import ProjectFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def boxes(db, settings):
    settings.AO_EMBEDDED = False
    settings.AO_MAX_SESSIONS_PER_HOST = 4
    project = ProjectFactory(key="web", session_prefix="web")
    people = {name: UserFactory(username=name) for name in ("alice", "bob", "carol", "dave")}
    people["root"] = UserFactory(username="root", is_superuser=True, is_staff=True)
    for name in ("alice", "bob", "carol", "dave"):
        Membership.objects.create(user=people[name], project=project, role="operator")
    now = timezone.now()
    Host.objects.create(name="alice-box", owner=people["alice"], max_sessions=1, last_seen=now)
    Host.objects.create(name="shared-box", shared=True, last_seen=now)
    Host.objects.create(name="dave-box", owner=people["dave"], last_seen=now - timedelta(hours=1))
    SessionFactory(project=project, created_by=people["alice"], host="alice-box")
    return people


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='t')[1]}")
    return client


def listed(user) -> dict[str, dict]:
    answer = api(user).get("/api/v1/hosts")
    assert answer.status_code == 200, answer.content
    return {row["name"]: row for row in answer.json()}


def error(answer) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["message"]


def test_each_person_sees_the_hosts_they_may_use_and_a_superuser_every_host(boxes) -> None:
    mine = listed(boxes["alice"])
    assert list(mine) == ["alice-box", "shared-box"]
    assert {k: mine["alice-box"][k] for k in ("shared", "owner", "online", "max_sessions", "running")} == {
        "shared": False,
        "owner": "alice",
        "online": True,
        "max_sessions": 1,
        "running": 1,
    }
    assert mine["alice-box"]["allowed"] == [] and mine["alice-box"]["may_use"] is True
    shared = mine["shared-box"]
    assert (shared["shared"], shared["owner"], shared["max_sessions"], shared["allowed"]) == (
        True,
        None,
        4,
        None,
    )

    assert list(listed(boxes["bob"])) == ["shared-box"]  # not alice's, not dave's
    every = listed(boxes["root"])
    assert list(every) == ["alice-box", "dave-box", "shared-box"]
    assert every["dave-box"]["online"] is False and every["dave-box"]["may_use"] is False
    assert every["dave-box"]["allowed"] == []

    assert APIClient().get("/api/v1/hosts").status_code == 401


def test_the_owner_allows_and_denies_people_on_their_host(boxes) -> None:
    alice, bob = boxes["alice"], boxes["bob"]
    with pytest.raises(hosts.HostRefused, match="alice's personal host and they have not allowed bob"):
        hosts.host_for_spawn(user=bob, requested="alice-box")

    assert api(alice).put("/api/v1/hosts/alice-box/allowed/bob").status_code == 201
    assert api(alice).put("/api/v1/hosts/alice-box/allowed/bob").status_code == 200  # already
    assert listed(alice)["alice-box"]["allowed"] == ["bob"]
    seen_by_bob = listed(bob)["alice-box"]
    assert seen_by_bob["may_use"] is True and seen_by_bob["allowed"] is None  # only the owner sees who
    assert hosts.host_for_spawn(user=bob, requested="alice-box") == "alice-box"
    entry = AuditEntry.objects.get(action="host.allow")
    assert (entry.actor_user, entry.data["user"]) == (alice, "bob")

    assert api(alice).delete("/api/v1/hosts/alice-box/allowed/bob").status_code == 204
    assert list(listed(bob)) == ["shared-box"]
    with pytest.raises(hosts.HostRefused, match="have not allowed bob"):
        hosts.host_for_spawn(user=bob, requested="alice-box")
    assert error(api(alice).delete("/api/v1/hosts/alice-box/allowed/bob")) == (
        404,
        "bob is not allowed on host alice-box",
    )
    assert AuditEntry.objects.filter(action="host.deny", actor_user=alice).count() == 1


def test_only_the_owner_or_a_superuser_changes_who_uses_a_host(boxes) -> None:
    alice, bob, root = boxes["alice"], boxes["bob"], boxes["root"]
    # bob cannot even see alice's host: it is not found, like any host he may not use
    assert error(api(bob).put("/api/v1/hosts/alice-box/allowed/bob")) == (
        404,
        "no agent host 'alice-box' you may use (see `ao host ls`)",
    )
    api(alice).put("/api/v1/hosts/alice-box/allowed/bob")
    # allowed on it, bob sees it, but may not let others in or throw people out
    assert error(api(bob).put("/api/v1/hosts/alice-box/allowed/carol")) == (
        403,
        "only alice, who owns host alice-box, or a superuser decides who may use it",
    )
    assert error(api(bob).delete("/api/v1/hosts/alice-box/allowed/bob"))[0] == 403
    assert listed(alice)["alice-box"]["allowed"] == ["bob"]  # nothing changed
    # what cannot be allowed, with the reason
    assert error(api(alice).put("/api/v1/hosts/shared-box/allowed/carol")) == (
        403,
        "host shared-box is shared: only a superuser changes it",
    )
    assert error(api(root).put("/api/v1/hosts/shared-box/allowed/carol")) == (
        409,
        "host shared-box is shared: every operator's sessions run there already; allowing people is for "
        "personal hosts",
    )
    assert error(api(alice).put("/api/v1/hosts/alice-box/allowed/nobody")) == (404, "no user 'nobody'")
    assert error(api(alice).put("/api/v1/hosts/alice-box/allowed/alice")) == (
        409,
        "alice owns host alice-box: their sessions run there already",
    )
    # a superuser manages anyone's host
    assert api(root).put("/api/v1/hosts/dave-box/allowed/carol").status_code == 201
    assert listed(boxes["dave"])["dave-box"]["allowed"] == ["carol"]
    assert set(Host.objects.get(name="alice-box").allowed.values_list("username", flat=True)) == {"bob"}


def test_the_cli_on_the_ao_host_acts_as_the_machines_operator(boxes) -> None:
    out = io.StringIO()
    call_command("host", "allow", "dave-box", "bob", stdout=out)
    assert out.getvalue().strip() == "bob is now allowed on host dave-box"
    rows = {r["name"]: r for r in json.loads(_ao("host", "ls", "--json"))}
    assert list(rows) == ["alice-box", "dave-box", "shared-box"] and rows["dave-box"]["allowed"] == ["bob"]
    table = _ao("host", "ls")
    assert "dave-box" in table and "personal: dave" in table and "offline" in table
    with pytest.raises(CommandError, match="host shared-box is shared"):
        call_command("host", "allow", "shared-box", "bob", stdout=io.StringIO())
    assert (
        _ao("host", "deny", "dave-box", "bob").strip() == "bob may no longer start sessions on host dave-box"
    )


def _ao(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_cli_with_a_token_acts_as_that_person_over_the_api(boxes, live_server, monkeypatch) -> None:
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.delenv("AO_SESSION", raising=False)
    monkeypatch.setenv("AO_TOKEN", api_token_create(user=boxes["bob"], name="cli")[1])
    with pytest.raises(CommandError, match="no agent host 'alice-box' you may use"):
        call_command("host", "allow", "alice-box", "bob", stdout=io.StringIO())
    assert [r["name"] for r in json.loads(_ao("host", "ls", "--json"))] == ["shared-box"]

    monkeypatch.setenv("AO_TOKEN", api_token_create(user=boxes["alice"], name="cli")[1])
    assert _ao("host", "allow", "alice-box", "bob").strip() == "bob is now allowed on host alice-box"
    assert _ao("host", "allow", "alice-box", "bob").strip() == "bob was already allowed on host alice-box"
    assert AuditEntry.objects.filter(action="host.allow", actor_user=boxes["alice"]).count() == 1


def test_the_hosts_page_lets_the_owner_allow_and_remove_people_and_refuses_others(boxes) -> None:
    alice, bob = boxes["alice"], boxes["bob"]
    browser = Client()
    browser.force_login(alice)
    page = browser.get("/hosts/").content.decode()
    assert 'id="host-alice-box"' in page and 'id="host-shared-box"' in page
    assert 'id="host-dave-box"' not in page  # not a host she may use
    assert "1 of 1" in page  # her host's live sessions of its cap

    answer = browser.post("/hosts/alice-box/allow/", {"user": "bob"}, follow=True)
    assert "bob may now use host alice-box." in answer.content.decode()
    assert set(Host.objects.get(name="alice-box").allowed.values_list("username", flat=True)) == {"bob"}

    # bob, allowed on it, sees it but may not change who uses it: refused with the reason
    other = Client()
    other.force_login(bob)
    seen = other.get("/hosts/").content.decode()
    assert 'id="host-alice-box"' in seen and 'action="/hosts/alice-box/allow/"' not in seen
    refused = other.post("/hosts/alice-box/allow/", {"user": "carol"}, follow=True).content.decode()
    assert "only alice, who owns host alice-box, or a superuser decides who may use it" in refused
    refused = other.post("/hosts/alice-box/deny/bob/", follow=True).content.decode()
    assert "only alice, who owns host alice-box" in refused
    assert set(Host.objects.get(name="alice-box").allowed.values_list("username", flat=True)) == {"bob"}

    answer = browser.post("/hosts/alice-box/deny/bob/", follow=True)
    assert "bob may no longer start sessions on host alice-box." in answer.content.decode()
    assert not Host.objects.get(name="alice-box").allowed.exists()
    assert Client().get("/hosts/").status_code == 302  # signed out: to the login page
