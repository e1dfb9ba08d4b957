"""Tracker "blocked by" links in the ``blocking`` decision: a live session whose issue is blocked by
the issue of a worker with an open PR makes that PR a blocker; lookups are few and cached."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.utils import timezone

from integrations.base import TransientIntegrationError
from integrations.registry import plugin_for
from integrations.tracker.local import LocalTracker
from sessions.models import Session
from sessions.watchers import decisions
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin():
    return UserFactory(username="root", is_superuser=True, is_staff=True)


@pytest.fixture
def world():
    """Local issues #1 (schema) and #2 (uses it, blocked by #1); web-1 works on #1, web-2 on #2."""
    project = ProjectFactory(key="web", session_prefix="web", tracker="local")
    tracker = plugin_for(project, "tracker")
    tracker.create_issue(title="Add the schema")
    tracker.create_issue(title="Use the schema")
    tracker.set_blocked_by("2", ["1"])
    s1 = SessionFactory(project=project, id="web-1", number=1, issue_ref="1")
    s2 = SessionFactory(project=project, id="web-2", number=2, issue_ref="#2")
    return project, tracker, s1, s2


@pytest.fixture
def calls(monkeypatch):
    asked: list[str] = []
    original = LocalTracker.blocked_by

    def counting(self, ref):
        asked.append(ref)
        return original(self, ref)

    monkeypatch.setattr(LocalTracker, "blocked_by", counting)
    return asked


def test_a_pr_whose_issue_blocks_another_sessions_issue_is_a_blocking_decision(world, admin, calls):
    project, _tracker, s1, _s2 = world
    PullRequestFactory(session=s1, number=7)
    # it waits for a person's review (a blocking PR is ranked first among what needs a person)
    Session.objects.filter(pk=s1.pk).update(status="review_pending", zone="review")

    found = decisions.decisions_for(admin, project=project, now=NOW)

    assert [(d.kind, d.session.pk) for d in found] == [("blocking", "web-1")]
    assert found[0].reason == (
        "PR #7 blocks web-2 (the tracker has web-2 blocked by its issue #1): review and merge it first"
    )
    assert found[0].score >= decisions.BASE_SCORE["blocking"] + 2
    assert sorted(calls) == ["#2", "1"]

    decisions.decisions_for(admin, project=project, now=NOW)
    assert len(calls) == 2  # answers are cached: the dashboard re-ranking costs no request


def test_no_open_pr_no_lookups(world, admin, calls):
    project, _tracker, s1, _s2 = world
    PullRequestFactory(session=s1, number=7, state="merged")

    assert decisions.decisions_for(admin, project=project, now=NOW) == []
    assert calls == []  # nothing can block: the tracker is not asked


def test_a_closed_blocker_or_a_blocker_without_a_session_blocks_nothing(world, admin, calls):
    project, tracker, s1, _s2 = world
    PullRequestFactory(session=s1, number=7)
    tracker.close("1")

    assert decisions.decisions_for(admin, project=project, now=NOW) == []
    assert len(calls) == 2


def test_lookups_are_capped(world, admin, calls, monkeypatch):
    project, _tracker, s1, _s2 = world
    PullRequestFactory(session=s1, number=7)
    for n in range(3, 8):
        SessionFactory(project=project, id=f"web-{n}", number=n, issue_ref=str(n))
    monkeypatch.setattr(decisions, "BLOCKED_BY_LOOKUPS", 3)

    decisions.decisions_for(admin, project=project, now=NOW)

    assert len(calls) == 3


def test_a_failing_tracker_leaves_the_other_decisions(world, admin, monkeypatch):
    project, _tracker, s1, _s2 = world
    PullRequestFactory(session=s1, number=7)
    SessionFactory(
        project=project, id="web-3", number=3, status="stuck", zone="respond", status_changed_at=NOW
    )

    def down(self, ref):
        raise TransientIntegrationError("tracker down")

    monkeypatch.setattr(LocalTracker, "blocked_by", down)

    assert [(d.kind, d.session.pk) for d in decisions.decisions_for(admin, project=project, now=NOW)] == [
        ("stuck", "web-3")
    ]


def test_trackers_without_links_answer_nothing_by_default():
    from integrations.base import Tracker

    class Bare(Tracker):
        def get_issue(self, ref):
            raise NotImplementedError

        def list_issues(self, *, label=None, limit=50):
            return []

        def comment(self, ref, body):
            pass

    assert Bare().blocked_by("1") == []


@pytest.mark.parametrize(
    ("a", "b"),
    [("#12", "12"), ("https://github.com/acme/w/issues/12", "12"), ("eng-7", "ENG-7"), (" 3 ", "3")],
)
def test_refs_compare_loosely(a, b):
    assert decisions._issue_key(a) == decisions._issue_key(b)
