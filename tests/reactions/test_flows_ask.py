"""Reactions run because a flow asks for them, never as a side effect of recording a fact (issue 16).

Recording a PR's facts (``prsync.pull_request_record``, ``prsync.pull_requests_sync``) stores them
and reacts to nothing; the flows that record them (a webhook refresh, the sweep) ask the reactions
to look at what they recorded. Transactions commit here (``django_capture_on_commit_callbacks``):
reactions are asked after commit."""

from __future__ import annotations

import pytest

from integrations.base import CheckInfo, PullRequestInfo
from integrations.registry import scms
from reactions.models import ReactionAttempt
from sessions.flows import sweep, webhooks
from sessions.models import Message, PullRequest, Session
from sessions.prs import prsync
from tests.factories import ProjectFactory, SessionFactory
from tests.sessions.test_prsync import ScriptedSCM

pytestmark = pytest.mark.django_db


@pytest.fixture
def scm():
    saved = dict(scms._plugins)
    scms.add("scripted", ScriptedSCM)
    ScriptedSCM.prs, ScriptedSCM.calls, ScriptedSCM.fail = {}, [], None
    yield ScriptedSCM
    scms._plugins.clear()
    scms._plugins.update(saved)


@pytest.fixture
def session(scm):
    project = ProjectFactory(key="web", session_prefix="web", scm="scripted")
    session = SessionFactory(
        project=project, id="web-1", number=1, branch="feat/1", status="working", zone="working"
    )
    # reachable: a reaction can queue a message for it
    Session.objects.filter(pk=session.pk).update(runtime_handle={"runtime": "tmux", "name": session.pk})
    session.refresh_from_db()
    return session


def failing(session) -> PullRequestInfo:
    return PullRequestInfo(
        number=7,
        branch=session.branch,
        head_sha="a" * 40,
        state="open",
        base_branch="main",
        checks=(CheckInfo(name="tests", status="completed", conclusion="failure"),),
    )


def reacted(session) -> list[str]:
    return sorted(ReactionAttempt.objects.filter(session=session).values_list("rule", flat=True))


def told(session) -> list[str]:
    return list(
        Message.objects.filter(session=session, sender="reaction").values_list("sender_name", flat=True)
    )


def test_recording_a_prs_facts_reacts_to_nothing(session, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        prsync.pull_request_record(project=session.project, session=session, info=failing(session))

    assert PullRequest.objects.get(session=session).ci_state == "failing"  # the facts are stored
    assert reacted(session) == [] and told(session) == []


def test_a_pr_sync_alone_reacts_to_nothing_and_says_what_it_recorded(
    session, scm, django_capture_on_commit_callbacks
):
    scm.prs = {7: failing(session)}
    with django_capture_on_commit_callbacks(execute=True):
        result = prsync.pull_requests_sync(project=session.project)

    assert result.opened == [7] and result.recorded == [session.pk]
    assert reacted(session) == [] and told(session) == []


def test_a_webhook_refresh_asks_the_reactions_about_what_it_recorded(
    session, scm, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.AO_INLINE_DELIVERY_WAIT = 0.5  # no agent takes the message here: do not watch for 30 s
    scm.prs = {7: failing(session)}
    monkeypatch.setattr(webhooks, "sessions_observe", lambda **kw: 0)  # the PR's facts only
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.webhook_refresh(project=session.project, extra={"branches": [session.branch]})

    assert "ci-failed" in reacted(session) and told(session) == ["ci-failed"]


def test_the_sweeps_pr_sync_asks_the_reactions_once_for_all_it_recorded(
    session, scm, django_capture_on_commit_callbacks, monkeypatch
):
    from reactions import services as reactions

    other = SessionFactory(project=session.project, id="web-2", number=2, branch="feat/2")
    scm.prs = {7: failing(session), 8: PullRequestInfo(number=8, branch=other.branch, head_sha="b" * 40)}
    asked: list[list[str]] = []
    monkeypatch.setattr(reactions, "sessions_react", lambda *, session_ids, **kw: asked.append(session_ids))
    with django_capture_on_commit_callbacks(execute=True):
        sweep.pull_requests_sweep(project=session.project)

    assert asked == [[session.pk, other.pk]]
