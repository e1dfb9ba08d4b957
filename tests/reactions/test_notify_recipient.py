"""Notifications about a session go to the person concerned (issue 19): the session's owner (who
spawned it) for what happens to it (an escalation, its host going away), the person refused for
a budget. The inbox still lists them for the project's members; the e-mail notifier with
``toRecipient`` mails that person, at their account's address, and nobody else's sessions."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from integrations.registry import ConfigurationError, notifiers
from reactions import notify
from reactions.models import Notification, NotificationDelivery
from sessions.api.tokens import api_token_create
from sessions.core import hosts, usage
from sessions.models import Host, Membership, Session
from tests.factories import ProjectFactory, SessionFactory, UserFactory
from tests.reactions.test_notify import configure, deliveries

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    project = ProjectFactory(key="web", session_prefix="web")
    alice = UserFactory(username="alice", email="alice@example.test")
    bob = UserFactory(username="bob", email="bob@example.test")
    for user in (alice, bob):
        Membership.objects.create(user=user, project=project, role="operator")
    return project, alice, bob


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    def _send(**kwargs) -> Notification:
        with django_capture_on_commit_callbacks(execute=True):
            return notify.notify(**kwargs)

    return _send


def mailed(mailoutbox) -> list[tuple[str, list[str]]]:
    return [(m.subject, sorted(m.to)) for m in mailoutbox]


def test_a_sessions_notification_is_for_its_owner_and_mailed_to_them(team, send, mailoutbox):
    project, alice, bob = team
    configure(notifiers={"mail": {"plugin": "email", "to": ["ops@example.test"], "toRecipient": True}})
    hers = SessionFactory(project=project, created_by=alice)
    ours = SessionFactory(project=project, created_by=None)  # spawned by ao itself (intake)

    escalated = send(project=project, session=hers, title=f"{hers.pk}: escalated", priority="action")
    about_project = send(project=project, session=ours, title=f"{ours.pk}: escalated", priority="action")

    assert escalated.recipient == alice and about_project.recipient is None
    assert mailed(mailoutbox) == [
        (f"[ao] [ACTION] {hers.pk}: escalated", ["alice@example.test", "ops@example.test"]),
        (f"[ao] [ACTION] {ours.pk}: escalated", ["ops@example.test"]),
    ]
    # the API says whom it is about; ?mine=true is each person's own
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=bob, name='t')[1]}")
    rows = client.get("/api/v1/notifications/").json()["results"]
    assert [(r["title"], r["recipient"]) for r in rows] == [
        (f"{ours.pk}: escalated", None),
        (f"{hers.pk}: escalated", "alice"),
    ]  # bob, a member, still sees both in the project's inbox
    assert client.get("/api/v1/notifications/?mine=true").json()["results"] == []
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=alice, name='t')[1]}")
    mine = client.get("/api/v1/notifications/?mine=true").json()["results"]
    assert [r["id"] for r in mine] == [escalated.pk]
    # the inbox page says whom each is for
    browser = Client()
    browser.force_login(alice)
    assert _recipient_labels(browser) == ["for you"]
    browser.force_login(bob)
    assert _recipient_labels(browser) == ["for alice"]


def _recipient_labels(browser) -> list[str]:
    page = browser.get("/inbox/")
    assert page.status_code == 200
    return re.findall(r'<span class="recipient">([^<]*)</span>', page.content.decode())


def test_without_to_only_the_person_concerned_is_mailed_and_a_notification_for_nobody_fails_visibly(
    team, send, mailoutbox
):
    project, alice, bob = team
    configure(notifiers={"mine": {"plugin": "email", "toRecipient": True, "retries": 0}})
    bob.email = ""
    bob.save()

    for_alice = send(project=project, session=SessionFactory(project=project, created_by=alice), title="a")
    for_bob = send(project=project, session=SessionFactory(project=project, created_by=bob), title="b")
    for_nobody = send(project=project, title="c")

    assert mailed(mailoutbox) == [("[ao] a", ["alice@example.test"])]
    assert deliveries(for_alice)["mine"] == ("sent", 1)
    assert deliveries(for_bob)["mine"] == ("failed", 1)
    assert (
        for_bob.deliveries.get(notifier="mine").last_error
        == "email: nobody to send to (bob has no e-mail address)"
    )
    assert for_nobody.deliveries.get(notifier="mine").last_error == (
        "email: nobody to send to (a notification for the whole project, and `to` is empty)"
    )
    # a deactivated person is nobody's address any more
    alice.is_active = False
    alice.save()
    gone = send(project=project, session=SessionFactory(project=project, created_by=alice), title="d")
    assert deliveries(gone)["mine"] == ("failed", 1) and len(mailoutbox) == 1


def test_an_email_notifier_needs_someone_to_send_to():
    with pytest.raises(
        ConfigurationError,
        match=r"notifiers.mail: .*set to \(a list of addresses\), to_recipient: true, or both",
    ):
        notifiers.create("email", {}, where="notifiers.mail")
    assert notifiers.create("email", {"toRecipient": True}, where="n").config.to_recipient is True


def test_a_budget_refusal_tells_the_person_refused_and_only_them(
    team, send, mailoutbox, django_capture_on_commit_callbacks
):
    project, alice, bob = team
    configure(notifiers={"mine": {"plugin": "email", "toRecipient": True}})
    usage.user_budget_set(user=alice, amount=Decimal("0.10"))
    Session.objects.filter(pk=SessionFactory(project=project, created_by=alice).pk).update(
        cost_usd=Decimal("0.2")
    )

    with django_capture_on_commit_callbacks(execute=True):
        reason = usage.spawn_budget_refusal(project=project, by=alice)
        again = usage.spawn_budget_refusal(project=project, by=alice)
        assert usage.spawn_budget_refusal(project=project, by=bob) is None  # the cap is hers alone

    assert reason == again and reason.startswith("alice is over their monthly budget")
    told = Notification.objects.get(rule="budget")  # once per person, cap and month
    assert told.recipient == alice
    assert mailed(mailoutbox) == [
        ("[ao] Spawn refused: alice is over their $0.10 monthly budget", ["alice@example.test"])
    ]


def test_a_host_going_away_tells_the_owner_of_each_session_there(
    team, mailoutbox, django_capture_on_commit_callbacks, settings
):
    project, alice, bob = team
    configure(notifiers={"mine": {"plugin": "email", "toRecipient": True}})
    old = timezone.now() - timedelta(seconds=settings.AO_HOST_GONE_AFTER + 60)
    Host.objects.create(name="box", shared=True, last_seen=old)
    hers = SessionFactory(project=project, created_by=alice, host="box")
    his = SessionFactory(project=project, created_by=bob, host="box")

    with django_capture_on_commit_callbacks(execute=True):
        marked = hosts.hosts_gone_mark()

    assert sorted(marked) == sorted([hers.pk, his.pk])
    told = {n.session_id: n.recipient.username for n in Notification.objects.filter(rule="host.gone")}
    assert told == {hers.pk: "alice", his.pk: "bob"}
    assert sorted(mailed(mailoutbox)) == [
        (f"[ao] alice: session {hers.pk} lost its host box", ["alice@example.test"]),
        (f"[ao] bob: session {his.pk} lost its host box", ["bob@example.test"]),
    ]
    assert not NotificationDelivery.objects.filter(state="failed").exists()
