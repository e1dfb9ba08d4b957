"""The spawn form shows the agent hosts a person may use and spawns on the one picked; the
embedded default has one shared host, this machine (the scale-out rules are tested with real
workers in tests/faults/test_agent_hosts.py)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from sessions.models import Host, Session
from tests.factories import UserFactory


def test_embedded_spawn_form_offers_this_machine_and_spawns_there(client, team, settings) -> None:
    settings.AO_HOST_NAME = "laptop"
    client.force_login(team.operator)

    body = client.get("/p/webapp/spawn/").content.decode()
    assert '<option value="laptop">laptop (shared, 0/10 sessions)</option>' in body

    response = client.post("/p/webapp/spawn/", {"prompt": "Write the README", "host": "laptop"})
    assert response.status_code == 302
    assert Session.objects.exclude(pk__in=["web-1", "sec-1"]).get().host == "laptop"


def test_scale_out_spawn_form_lists_usable_hosts_and_refuses_anothers(client, team, settings) -> None:
    settings.AO_EMBEDDED = False
    now = timezone.now()
    Host.objects.create(name="ops-box", owner=team.operator, shared=False, max_sessions=2, last_seen=now)
    Host.objects.create(name="shared-1", shared=True, last_seen=now)
    Host.objects.create(name="stale", shared=True, last_seen=now - timedelta(hours=1))
    Host.objects.create(name="carol-box", owner=UserFactory(username="carol"), shared=False, last_seen=now)
    client.force_login(team.operator)

    body = client.get("/p/webapp/spawn/").content.decode()
    assert "ops-box (your host, 0/2 sessions)" in body and "shared-1 (shared, 0/10 sessions)" in body
    assert body.index("ops-box (your host") < body.index("shared-1 (shared")  # theirs first
    assert "stale" not in body and "carol-box" not in body  # down, or someone else's

    response = client.post("/p/webapp/spawn/", {"prompt": "anywhere"})
    assert response.status_code == 302
    assert Session.objects.get(prompt="anywhere").host == "ops-box"

    # carol's host, posted by hand: the form does not offer it, nothing is spawned
    response = client.post("/p/webapp/spawn/", {"prompt": "on carol's", "host": "carol-box"})
    assert response.status_code == 422 and not Session.objects.filter(prompt="on carol's").exists()
