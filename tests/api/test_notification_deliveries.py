"""Each notification's delivery per notifier (sent, retrying, failed with its error) is visible to
the project's members, in the API and the dashboard inbox, without the webhook URLs."""

from __future__ import annotations

import json

from reactions.models import Notification, NotificationDelivery
from reactions.notify import delivery_error_shown

SECRET_URL = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"


def _notification(project) -> Notification:
    note = Notification.objects.create(project=project, title="web-1 needs input", priority="urgent")
    rows = [
        ("in-app", "sent", 1, ""),
        ("team-slack", "pending", 1, f"try 1 of 4 failed: {SECRET_URL} answered 503; retrying in 2 s"),
        ("ops-webhook", "failed", 3, "https://ops.example:8443/hook?token=abc: 404 Not Found (gave up)"),
        ("desktop", "sent", 1, ""),
        ("pager", "pending", 0, ""),
    ]
    for notifier, state, attempts, error in rows:
        NotificationDelivery.objects.create(
            notification=note, notifier=notifier, state=state, attempts=attempts, last_error=error
        )
    return note


def test_error_shown_keeps_the_host_only() -> None:
    shown = delivery_error_shown(f"POST {SECRET_URL} failed; see http://[::1]:9/x?y=z")
    assert shown == "POST hooks.slack.com failed; see ::1:9"
    assert len(delivery_error_shown("x" * 5000)) == 300


def test_api_lists_each_delivery_state(world) -> None:
    _notification(world.project)
    response = world.client("viewer").get("/api/v1/notifications/")
    assert response.status_code == 200
    [row] = response.json()["results"]
    states = {d["notifier"]: (d["state"], d["attempts"], d["error"]) for d in row["deliveries"]}
    assert states == {
        "desktop": ("sent", 1, ""),
        "in-app": ("sent", 1, ""),
        "ops-webhook": ("failed", 3, "ops.example:8443: 404 Not Found (gave up)"),
        "pager": ("pending", 0, ""),
        "team-slack": ("retrying", 1, "try 1 of 4 failed: hooks.slack.com answered 503; retrying in 2 s"),
    }
    assert "XXXXsecret" not in json.dumps(response.json()) and "token=abc" not in response.content.decode()


def test_inbox_shows_each_delivery_state(client, world) -> None:
    _notification(world.project)
    client.force_login(world.users["viewer"])
    body = client.get("/inbox/").content.decode()
    assert "team-slack: retrying — try 1 of 4 failed: hooks.slack.com answered 503" in body
    assert "ops-webhook: failed — ops.example:8443: 404 Not Found (gave up)" in body
    assert "desktop: sent" in body and "pager: pending" in body
    assert "in-app:" not in body  # the inbox itself
    assert "XXXXsecret" not in body and "token=abc" not in body
