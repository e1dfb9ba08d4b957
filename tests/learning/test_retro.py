"""Retrospective aggregates and `ao retro` (text and JSON)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from sessions.watchers import outcomes
from tests.factories import ProjectFactory
from tests.learning.helpers import T0, outcome

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    web = ProjectFactory(key="webapp", session_prefix="web")
    api = ProjectFactory(key="api", session_prefix="api")
    outcome(web, first_pr_seconds=600, merge_seconds=3600, ci_ran=True, cost_usd=Decimal("2.00"))
    outcome(web, first_pr_seconds=1200, merge_seconds=7200, ci_ran=True, ci_failure_cycles=2,
            failed_checks={"lint": 2}, first_failed_checks=["lint"], cost_usd=Decimal("3.00"))  # fmt: skip
    outcome(web, result="abandoned", end_status="killed", ci_ran=True, ci_failure_cycles=1,
            failed_checks={"lint": 1, "test": 1}, first_failed_checks=["lint", "test"],
            first_pr_seconds=1800, cost_usd=Decimal("5.50"), needed_human=True, human_messages=2,
            human_reasons=[{"why": "needs_input", "detail": "Running npm install"}])  # fmt: skip
    outcome(web, agent="codex", model="", result="abandoned", end_status="errored", cost_usd=Decimal("0.25"),
            needed_human=True, human_reasons=[{"why": "errored", "detail": "codex not installed"}])  # fmt: skip
    outcome(api, model="sonnet", first_pr_seconds=300, merge_seconds=900, cost_usd=Decimal("1.00"))
    # a later one (the others ended in January 2025)
    outcome(web, started_at=timezone.now() - timedelta(days=30), ended_at=timezone.now() - timedelta(days=29))
    return web, api


def test_retro_aggregates_per_project_agent_and_model(seeded) -> None:
    web, _ = seeded
    summary = outcomes.retro_summary(projects=[web], since=None)

    overall = summary["overall"]
    assert (overall["sessions"], overall["merged"], overall["abandoned"]) == (5, 3, 2)
    assert overall["success_rate"] == 0.6
    assert overall["median_first_pr_seconds"] == 1200.0  # of 600, 1200, 1800
    assert overall["median_merge_seconds"] == 5400.0  # of 3600, 7200
    assert overall["cost_usd"] == 11.75
    assert overall["cost_per_merge_usd"] == round(11.75 / 3, 4)
    assert overall["needed_human"] == 2
    assert set(summary["by_model"]) == {"claude-code/opus", "codex"}
    assert summary["by_model"]["codex"]["success_rate"] == 0.0
    assert summary["by_agent"]["claude-code"]["sessions"] == 4
    assert summary["failing_checks"] == [
        {"name": "lint", "cycles": 3, "sessions": 2, "failed_first": 2},
        {"name": "test", "cycles": 1, "sessions": 1, "failed_first": 1},
    ]
    assert summary["ci_sessions"] == 3
    assert [(p["pattern"], p["sessions"], p["cost_usd"]) for p in summary["failure_patterns"]] == [
        ("abandoned after CI failures (lint, test)", 1, 5.5),
        ("merged after CI failures (lint)", 1, 3.0),
        ("errored", 1, 0.25),
    ]
    assert [h["reasons"] for h in summary["needed_humans"]] == [
        ["needs_input: Running npm install"],
        ["errored: codex not installed"],
    ]


def test_retro_window_and_project_filter(seeded) -> None:
    web, api = seeded
    assert outcomes.retro_summary(projects=[web], since=T0 - timedelta(days=1))["overall"]["sessions"] == 5
    assert outcomes.retro_summary(projects=[web], since=T0 + timedelta(hours=4))["overall"]["sessions"] == 1
    assert outcomes.retro_summary(projects=None, since=None)["overall"]["sessions"] == 6
    assert outcomes.retro_summary(projects=[api])["by_project"] == {
        "api": outcomes.retro_summary(projects=[api])["overall"]
    }


def test_parse_since() -> None:
    now = timezone.now()
    assert outcomes.parse_since("7d", now=now) == now - timedelta(days=7)
    assert outcomes.parse_since("12h", now=now) == now - timedelta(hours=12)
    assert outcomes.parse_since("all") is None
    assert outcomes.parse_since("2025-01-01").isoformat().startswith("2025-01-01T00:00:00")
    with pytest.raises(ValueError, match=r"expected e\.g\. 7d"):
        outcomes.parse_since("last week")


def test_ao_retro_json(seeded) -> None:
    out = StringIO()
    call_command("retro", "--project", "webapp", "--since", "all", "--json", stdout=out)

    data = json.loads(out.getvalue())
    assert data["since"] is None
    assert data["overall"]["sessions"] == 5
    assert data["overall"]["success_rate"] == 0.6
    assert data["failing_checks"][0] == {"name": "lint", "cycles": 3, "sessions": 2, "failed_first": 2}


def test_ao_retro_text(seeded) -> None:
    out = StringIO()
    call_command("retro", "--since", "all", stdout=out)

    text = out.getvalue()
    assert text.startswith("Retrospective since the beginning: 6 finished session(s)")
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("claude-code/opus "))
    assert row.split() == ["claude-code/opus", "4", "3", "75%", "20m", "1h30m", "3", "1", "11.50"]
    assert any(line.split() == ["lint", "2", "2", "3"] for line in lines)
    humans = [line for line in lines if "message(s) from people" in line]
    assert len(humans) == 2
    assert humans[0].endswith(
        "(claude-code/opus, abandoned): 2 message(s) from people, 0 escalation(s); needs_input: Running npm install"
    )


def test_ao_retro_errors() -> None:
    with pytest.raises(CommandError, match="no project 'nope'"):
        call_command("retro", "--project", "nope", stdout=StringIO())
    with pytest.raises(CommandError, match=r"expected e\.g\. 7d"):
        call_command("retro", "--since", "yesterday", stdout=StringIO())
    out = StringIO()
    call_command("retro", stdout=out)
    assert "Nothing finished in this window yet." in out.getvalue()
