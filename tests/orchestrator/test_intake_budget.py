"""Backlog intake over the project's monthly budget: nothing is claimed and the tracker is not
written to (no labels moved and put back every sweep); people are told once."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.models import LocalIssue
from integrations.registry import plugin_for
from reactions.models import Notification
from sessions.agents import spawning
from sessions.models import IntakeClaim, Session
from sessions.watchers import intake
from tests.factories import ProjectFactory, SessionFactory

pytestmark = pytest.mark.django_db


def test_intake_over_budget_claims_nothing_and_leaves_the_tracker_alone(monkeypatch) -> None:
    monkeypatch.setattr(spawning, "_enqueue_start", lambda session: None)
    project = ProjectFactory(
        key="web", session_prefix="web", tracker="local", intake_enabled=True, monthly_budget_usd=Decimal("1")
    )
    plugin_for(project, "tracker").create_issue(title="First", labels=["agent:backlog"])
    spent = SessionFactory(project=project, number=90)
    Session.objects.filter(pk=spent.pk).update(cost_usd=Decimal("1.5"), created_at=timezone.now())
    written = LocalIssue.objects.get(project=project, number=1).updated_at

    for _ in range(2):
        notes = intake.intake_sweep(project=project)
        assert notes == [
            "stopped: project web is over its monthly budget: $1.50 spent in "
            f"{timezone.now():%B %Y} (UTC) of $1.00 (monthlyBudgetUsd); spawns resume on "
            f"{(timezone.now().replace(day=1) + timezone.timedelta(days=32)).replace(day=1):%Y-%m-%d} "
            "or when the budget is raised"
        ]
    issue = LocalIssue.objects.get(project=project, number=1)
    assert issue.labels == ["agent:backlog"] and issue.updated_at == written  # never written
    assert not IntakeClaim.objects.exists() and Session.objects.count() == 1
    assert Notification.objects.filter(rule="budget").count() == 1
