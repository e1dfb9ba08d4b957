"""Decisions: ranking with seeded facts, who sees what, flaky checks (a flip on one commit; more in
test_flaky.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.records import CheckInfo, PullRequestInfo
from sessions.core import selectors
from sessions.models import Event, FlakyCheck, Membership
from sessions.prs import prsync
from sessions.watchers import decisions
from tests.factories import (
    CheckRunFactory,
    ProjectFactory,
    PullRequestFactory,
    ReviewThreadFactory,
    SessionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def ago(**kw):
    return NOW - timedelta(**kw)


@pytest.fixture
def project():
    return ProjectFactory(key="web", session_prefix="web")


@pytest.fixture
def admin():
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def seed(project):
    """Stuck 3 h, needs input 1 h, a flaky failing check, review threads, a mergeable PR."""
    s1 = SessionFactory(project=project, id="web-1", number=1, status="stuck", zone="respond",
                        status_changed_at=ago(hours=1), status_reason="no output for 1 h")  # fmt: skip
    s2 = SessionFactory(project=project, id="web-2", number=2, status="needs_input", zone="respond",
                        status_changed_at=ago(hours=3))  # fmt: skip
    s3 = SessionFactory(project=project, id="web-3", number=3, status="ci_failed", zone="review")
    pr3 = PullRequestFactory(session=s3, number=3, ci_state="failing", head_sha="f" * 40)
    CheckRunFactory(pull_request=pr3, name="e2e", conclusion="failure", url="https://ci.example/e2e/3")
    FlakyCheck.objects.create(
        project=project, name="e2e", reason="flip", head_sha="f" * 40, detail="e2e flipped"
    )
    s4 = SessionFactory(project=project, id="web-4", number=4, status="changes_requested", zone="review")
    pr4 = PullRequestFactory(session=s4, number=4)
    ReviewThreadFactory(pull_request=pr4, author="drive-by", author_association="NONE", created_at=ago(hours=9),
                        body="untrusted and older")  # fmt: skip
    ReviewThreadFactory(pull_request=pr4, author="maya", author_association="MEMBER", created_at=ago(hours=5),
                        body="This leaks the token", path="app/auth.py", line=12, url="https://gh/t/1")  # fmt: skip
    ReviewThreadFactory(pull_request=pr4, author="maya", author_association="MEMBER", created_at=ago(hours=1),
                        body="newer nit")  # fmt: skip
    ReviewThreadFactory(pull_request=pr4, author="lee", author_association="OWNER", created_at=ago(hours=20),
                        body="resolved already", resolved=True)  # fmt: skip
    s5 = SessionFactory(project=project, id="web-5", number=5, status="mergeable", zone="merge",
                        status_changed_at=ago(minutes=30))  # fmt: skip
    PullRequestFactory(session=s5, number=5, ci_state="passing", mergeable=True)
    SessionFactory(project=project, id="web-6", number=6)  # working: nothing to decide
    return s1, s2, s3, s4, s5


def test_decisions_are_ranked_with_their_reasons(project, admin):
    seed(project)

    found = decisions.decisions_for(admin, now=NOW)

    assert [(d.kind, d.session.pk) for d in found] == [
        ("stuck", "web-2"),  # respond zone, longest first
        ("stuck", "web-1"),
        ("flaky-check", "web-3"),
        ("review-comment", "web-4"),
        ("merge-ready", "web-5"),
    ]
    assert found[0].reason.startswith("needs input for 3 h 00 min")
    assert found[1].reason == "stuck for 1 h 00 min: no output for 1 h"
    assert "check e2e fails on PR #3 but flipped on this commit (e2e flipped)" in found[2].reason
    assert "its agent was told a re-run may pass" in found[2].reason
    assert found[2].url == "https://ci.example/e2e/3"
    assert found[3].reason.startswith("@maya on app/auth.py:12 (5 h 00 min open): “This leaks the token”")
    assert found[3].url == "https://gh/t/1"
    assert "merge web-5" in found[4].reason
    assert found[0].url.endswith("/s/web-2/")
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


def test_limit_and_project_filter_and_roles(project, admin):
    seed(project)
    other = ProjectFactory(key="api", session_prefix="api")
    SessionFactory(
        project=other, id="api-1", number=1, status="stuck", zone="respond", status_changed_at=ago(hours=10)
    )
    viewer = UserFactory(username="v")
    Membership.objects.create(user=viewer, project=project, role="viewer")
    stranger = UserFactory(username="s")

    assert [d.session.pk for d in decisions.decisions_for(admin, limit=2, now=NOW)] == ["api-1", "web-2"]
    assert "api-1" not in {d.session.pk for d in decisions.decisions_for(viewer, now=NOW)}
    assert decisions.decisions_for(viewer, project=other, now=NOW) == []
    assert decisions.decisions_for(stranger, now=NOW) == []
    assert decisions.decisions_for(None, now=NOW) == []


def test_a_pr_that_blocks_other_sessions_ranks_first(project, admin):
    pytest.importorskip("sessions.watchers.conflicts", reason="the conflict watch provides overlaps_for")
    from sessions.models import FileOverlap

    seed(project)
    s7 = SessionFactory(project=project, id="web-7", number=7, status="review_pending", zone="review")
    PullRequestFactory(session=s7, number=7)
    s8 = SessionFactory(project=project, id="web-8", number=8)
    FileOverlap.objects.create(
        project=project, session_a=s7, session_b=s8, files=["app/models.py"], first_seen=NOW, last_seen=NOW
    )

    found = decisions.decisions_for(admin, now=NOW)

    assert (found[0].kind, found[0].session.pk) == ("blocking", "web-7")
    assert found[0].reason == "PR #7 blocks web-8: review and merge it first"
    assert "web-8" not in {d.session.pk for d in found}


def test_digest_is_the_ranked_list_as_text(project):
    seed(project)
    text = decisions.decisions_digest(project, limit=2, now=NOW)
    lines = text.splitlines()
    assert lines[0] == "web: 2 things need a person:"
    assert lines[1].startswith("1. [stuck] web-2: needs input for 3 h 00 min — http")
    assert lines[2].startswith("2. [stuck] web-1: stuck for 1 h 00 min")
    empty = ProjectFactory(key="quiet", session_prefix="quiet")
    assert decisions.decisions_digest(empty) == "quiet: nothing needs a person right now."


# --- flaky checks --------------------------------------------------------------------------------------
def _info(number, sha, *checks, branch="feat/x"):
    return PullRequestInfo(
        number=number,
        branch=branch,
        head_sha=sha,
        state="open",
        checks=tuple(CheckInfo(name=n, status="completed", conclusion=c) for n, c in checks),
    )


def test_a_check_that_fails_then_passes_on_the_same_commit_is_flagged_once(project):
    session = SessionFactory(project=project, id="web-1", number=1, branch="feat/x")
    sha = "c" * 40

    prsync.pull_request_record(project=project, session=session, info=_info(1, sha, ("unit", "failure")))
    assert not selectors.is_flaky(project, "unit", head_sha=sha)

    prsync.pull_request_record(project=project, session=session, info=_info(1, sha, ("unit", "success")))
    prsync.pull_request_record(project=project, session=session, info=_info(1, sha, ("unit", "failure")))

    flag = FlakyCheck.objects.get()
    assert (flag.name, flag.reason, flag.head_sha, flag.sessions) == ("unit", "flip", sha, ["web-1"])
    assert selectors.is_flaky(project, "unit", head_sha=sha)
    assert not selectors.is_flaky(project, "lint", head_sha=sha)
    assert not selectors.is_flaky(project, "unit", head_sha="d" * 40)
    event = Event.objects.get(kind="ci.flaky")
    assert event.session_id == "web-1"
    assert "unit failed, then passed on the same commit ccccccc" in event.summary


def test_a_failure_on_a_new_commit_is_not_a_flip(project):
    session = SessionFactory(project=project, id="web-1", number=1, branch="feat/x")
    prsync.pull_request_record(project=project, session=session, info=_info(1, "a" * 40, ("unit", "success")))
    prsync.pull_request_record(project=project, session=session, info=_info(1, "b" * 40, ("unit", "failure")))
    assert not FlakyCheck.objects.exists()


def test_a_flag_expires(project, settings):
    FlakyCheck.objects.create(project=project, name="unit", reason="flip", head_sha="a" * 40)
    FlakyCheck.objects.filter(name="unit").update(detected_at=ago(hours=80))
    settings.AO_FLAKY_CHECK_HOURS = 72
    assert not selectors.is_flaky(project, "unit", head_sha="a" * 40)
