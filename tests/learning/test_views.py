"""The retro page: viewers read it (charts, tables, lessons); project admins decide lessons."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions.dashboard.views_learning import bars
from sessions.models import Lesson, Membership
from tests.factories import ProjectFactory, UserFactory
from tests.learning.helpers import outcome

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    project = ProjectFactory(key="webapp", session_prefix="web")
    other = ProjectFactory(key="secret", session_prefix="sec")
    recent = timezone.now() - timedelta(days=2)
    for _ in range(3):
        outcome(project, started_at=recent, ended_at=recent, ci_ran=True, ci_failure_cycles=1,
                failed_checks={"lint": 1}, first_failed_checks=["lint"], first_pr_seconds=900,
                cost_usd=Decimal("2.5"))  # fmt: skip
    outcome(project, agent="codex", model="", started_at=recent, ended_at=recent, result="abandoned",
            end_status="errored", needed_human=True,
            human_reasons=[{"why": "errored", "detail": "<script>alert(1)</script>"}])  # fmt: skip
    lesson = Lesson.objects.create(
        project=project, kind="worker_rule", pattern="first-failing-check:lint",
        text="`lint` failed first in 3 of 3 sessions", prompt_text="Run lint before pushing.",
        evidence={"hits": 3, "sessions": 3, "session_ids": ["web-1"]},
    )  # fmt: skip
    users = {}
    for role in ("viewer", "admin"):
        users[role] = UserFactory(username=role)
        Membership.objects.create(user=users[role], project=project, role=role)
    users["outsider"] = UserFactory(username="outsider")
    Membership.objects.create(user=users["outsider"], project=other, role="admin")
    return project, lesson, users


def test_the_page_needs_login_and_a_role(client, setup) -> None:
    project, lesson, users = setup
    url = reverse("learning:retro", args=[project.key])
    assert client.get(url).status_code == 302
    client.force_login(users["outsider"])
    assert client.get(url).status_code == 404  # not theirs: as if it did not exist
    assert client.post(reverse("learning:lesson-decide", args=[project.key, lesson.pk]),
                       {"decision": "accept"}).status_code == 404  # fmt: skip


def test_viewers_see_charts_tables_and_lessons_but_no_buttons(client, setup) -> None:
    project, lesson, users = setup
    client.force_login(users["viewer"])

    response = client.get(reverse("learning:retro", args=[project.key]), {"since": "7d"})

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<svg class="bars"') == 4
    assert "<b>75%</b><span>merged</span>" in html  # 3 of 4
    assert 'data-pct="100.0"' in html and "100% of 3" in html  # claude-code/opus
    assert "0% of 1" in html  # codex
    assert "claude-code/opus" in html and "codex" in html
    assert "`lint` failed first in 3 of 3 sessions" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert 'value="accept"' not in html
    # a viewer cannot decide
    response = client.post(
        reverse("learning:lesson-decide", args=[project.key, lesson.pk]), {"decision": "accept"}
    )
    assert response.status_code == 403
    lesson.refresh_from_db()
    assert lesson.status == "proposed"


def test_admins_accept_from_the_page_and_see_before_and_after(client, setup) -> None:
    project, lesson, users = setup
    client.force_login(users["admin"])
    page = client.get(reverse("learning:retro", args=[project.key]))
    assert 'value="accept"' in page.content.decode()

    response = client.post(
        reverse("learning:lesson-decide", args=[project.key, lesson.pk]),
        {"decision": "accept", "since": "7d"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("learning:retro", args=[project.key]) + "?since=7d"
    lesson.refresh_from_db()
    assert (lesson.status, lesson.decided_by) == ("accepted", users["admin"])
    assert (lesson.baseline["hits"], lesson.baseline["sessions"]) == (3, 3)
    html = client.get(response["Location"]).content.decode()
    assert "Accepted, and what changed" in html and "too early: 0 session(s) since" in html


def test_bad_decisions_change_nothing(client, setup) -> None:
    project, lesson, users = setup
    client.force_login(users["admin"])
    client.post(reverse("learning:lesson-decide", args=[project.key, lesson.pk]), {"decision": "delete"})
    lesson.refresh_from_db()
    assert lesson.status == "proposed"
    other_lesson_url = reverse("learning:lesson-decide", args=["secret", lesson.pk])
    assert client.post(other_lesson_url, {"decision": "accept"}).status_code == 404


def test_bars_scale() -> None:
    chart = bars([("a", 2, "2"), ("b", 1, "1"), ("c", 0, "0")])
    assert [r["pct"] for r in chart["rows"]] == [100.0, 50.0, 0]
    assert chart["height"] == 72
    assert bars([("x", 0.25, "25%")], scale=1.0)["rows"][0]["pct"] == 25.0
    assert bars([])["rows"] == []
