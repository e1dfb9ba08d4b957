"""One definition of what needs a person (issue 11.7): the zone a status lands in says who acts,
and the board's pill, its "Needs you" banner, its columns and the reactions agree, through the
public services (prsync, reactions) and the pages."""

from __future__ import annotations

import re

import pytest

from integrations.records import CheckInfo, PullRequestInfo
from reactions import services as reactions
from sessions.domain.lifecycle import Zone
from sessions.models import Session
from sessions.prs import prsync
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_config(settings, tmp_path):
    config = tmp_path / "ao.config.yaml"  # no top-level reactions
    config.write_text("projects:\n  web:\n    path: .\n")
    settings.AO_CONFIG = str(config)


def _session(**reactions_config) -> Session:
    project = ProjectFactory(key="web", session_prefix="web", reactions=reactions_config)
    session = SessionFactory(project=project, number=1, branch="feat/x", runtime_handle={"name": "x"})
    PullRequestFactory(session=session, number=7, branch="feat/x", head_sha="a" * 40, mergeable=True)
    return session


def _record(session: Session, *, checks=(), review="none") -> Session:
    info = PullRequestInfo(number=7, branch="feat/x", base_branch="main", head_sha="a" * 40, mergeable=True,
                           review_decision=review, checks=tuple(checks))  # fmt: skip
    prsync.pull_request_record(project=session.project, session=session, info=info)
    return Session.objects.select_related("project", "pull_request").get(pk=session.pk)


FAILED = CheckInfo(name="tests", source="check_run", status="completed", conclusion="failure")
PASSED = CheckInfo(name="tests", source="check_run", status="completed", conclusion="success")


def _board(client, admin_user) -> tuple[int, str]:
    client.force_login(admin_user)
    page = client.get("/p/web/").content.decode()
    pill = int(re.search(r'id="count-attention">(\d+)<', page).group(1))
    banner = client.get("/p/web/needs-you/", HTTP_HX_REQUEST="true").content.decode()
    return pill, banner


def test_a_ci_failure_handed_to_the_agent_needs_nobody(client, admin_user, no_config):
    session = _record(_session(), checks=[FAILED])

    assert (session.status, session.zone) == ("ci_failed", Zone.WORKING)
    pill, banner = _board(client, admin_user)
    assert pill == 0
    assert "Nothing needs a person right now." in banner


def test_a_ci_failure_nobody_sends_to_the_agent_needs_a_person(client, admin_user, no_config):
    session = _record(_session(**{"ci-failed": {"auto": False}}), checks=[FAILED])

    assert (session.status, session.zone) == ("ci_failed", Zone.RESPOND)
    pill, banner = _board(client, admin_user)
    assert pill == 1
    assert "web-1" in banner and "ci failed" in banner


def test_an_escalated_ci_failure_moves_to_a_person(client, admin_user, no_config):
    session = _record(_session(**{"ci-failed": {"retries": 0}}), checks=[FAILED])
    assert session.zone == Zone.WORKING

    outcomes = reactions.session_react(session=session, global_overrides={})

    assert [(o.rule, o.did) for o in outcomes] == [("ci-failed", "escalated")]
    session.refresh_from_db()
    assert (session.status, session.zone) == ("ci_failed", Zone.RESPOND)
    pill, banner = _board(client, admin_user)
    assert pill == 1 and "web-1" in banner


def test_a_pr_waiting_for_a_human_review_needs_a_person(client, admin_user, no_config):
    session = _record(_session(), checks=[PASSED], review="review_required")

    assert (session.status, session.zone) == ("review_pending", Zone.REVIEW)
    pill, banner = _board(client, admin_user)
    assert pill == 1
    assert "review requested" in banner and "PR #7 waits for a review" in banner


def test_the_detailed_columns_say_what_they_hold(client, admin_user, no_config):
    _session()
    client.force_login(admin_user)
    page = client.get("/p/web/?mode=detailed").content.decode()

    assert re.search(r'id="h-review">Review requested<', page)
    assert re.search(r'id="h-respond">Needs a decision<', page)
    assert re.search(r'id="h-working">Agent working<', page)
