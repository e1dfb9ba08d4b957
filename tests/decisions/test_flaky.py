"""Flaky checks are judged per commit: only a check that both passed and failed on the same commit is
flaky there, and its agent is still told about the failure, with the flakiness noted.

Through the services: PR facts recorded by ``prsync.pull_request_record`` (as a sync or webhook
does), reactions by ``reactions.services.session_react``.
"""

from __future__ import annotations

import pytest

from integrations.records import CheckInfo, PullRequestInfo
from reactions import services as reactions
from reactions.models import ReactionAttempt
from sessions.core import selectors
from sessions.models import Event, FlakyCheck, Message, Session
from sessions.prs import prsync
from tests.factories import ProjectFactory, SessionFactory
from tests.helpers.fixtures import git

pytestmark = pytest.mark.django_db

FLAKY_NOTE = "this check has flipped on this commit before; a re-run may pass"


@pytest.fixture
def project():
    return ProjectFactory(key="web", session_prefix="web")


def _session(project, n: int, **fields) -> Session:
    session = SessionFactory(
        project=project,
        id=f"web-{n}",
        number=n,
        branch=f"feat/{n}",
        status="working",
        zone="working",
        **fields,
    )
    # reachable: the reaction can type into its runtime
    Session.objects.filter(pk=session.pk).update(runtime_handle={"runtime": "tmux", "name": session.pk})
    session.refresh_from_db()
    return session


def _record(project, session, sha: str, *checks: tuple[str, str]) -> None:
    info = PullRequestInfo(
        number=session.number,
        branch=session.branch,
        head_sha=sha,
        state="open",
        checks=tuple(CheckInfo(name=n, status="completed", conclusion=c) for n, c in checks),
    )
    prsync.pull_request_record(project=project, session=session, info=info)
    session.refresh_from_db()


def _told(session) -> list[str]:
    return list(Message.objects.filter(session=session).values_list("text", flat=True))


def test_a_flip_on_one_pr_does_not_silence_a_genuine_failure_on_another(project):
    flipping, other = _session(project, 1), _session(project, 2)
    _record(project, flipping, "a" * 40, ("tests", "success"))
    _record(project, flipping, "a" * 40, ("tests", "failure"))  # a re-run flipped it on the same commit
    assert FlakyCheck.objects.filter(name="tests", head_sha="a" * 40).count() == 1

    _record(project, other, "b" * 40, ("tests", "failure"))
    outcomes = reactions.session_react(session=other)

    assert [(o.rule, o.did) for o in outcomes] == [("ci-failed", "sent")]
    [text] = _told(other)
    assert "tests" in text and "bbbbbbb" in text
    assert FLAKY_NOTE not in text  # no evidence on *this* commit
    assert not selectors.is_flaky(project, "tests", head_sha="b" * 40)


def test_a_same_commit_flip_is_flaky_and_the_agent_is_still_told_with_a_note(project):
    session = _session(project, 1)
    _record(project, session, "a" * 40, ("tests", "success"), ("lint", "success"))
    _record(project, session, "a" * 40, ("tests", "failure"), ("lint", "success"))

    flag = FlakyCheck.objects.get()
    assert (flag.name, flag.reason, flag.head_sha) == ("tests", "flip", "a" * 40)
    assert selectors.is_flaky(project, "tests", head_sha="a" * 40)
    event = Event.objects.get(kind="ci.flaky")
    assert "tests passed, then failed on the same commit aaaaaaa" in event.summary
    assert "will not be sent" not in event.summary

    outcomes = reactions.session_react(session=session)

    assert [(o.rule, o.did) for o in outcomes] == [("ci-failed", "sent")]
    [text] = _told(session)
    assert "- tests: failure" in text
    assert FLAKY_NOTE in text
    assert ReactionAttempt.objects.filter(session=session, rule="ci-failed").count() == 1


def test_a_flag_on_an_older_commit_does_not_carry_to_the_next(project):
    session = _session(project, 1)
    _record(project, session, "a" * 40, ("tests", "failure"))
    _record(project, session, "a" * 40, ("tests", "success"))  # flipped: flaky on a
    _record(project, session, "c" * 40, ("tests", "failure"))  # the agent's new commit breaks it

    reactions.session_react(session=session)

    [text] = _told(session)
    assert "ccccccc" in text and FLAKY_NOTE not in text


def test_a_check_failing_on_three_unrelated_prs_is_not_flaky_and_every_agent_is_told(repo, settings, project):
    settings.AO_WORKSPACES_ROOT = repo.root.parent
    project.path = str(repo.path)
    project.save()
    sessions = []
    for n, name in enumerate(["alpha.py", "beta.py", "gamma.py"], start=1):
        ws = repo.root / f"web-{n}"
        git("worktree", "add", "-q", "-b", f"feat/{n}", str(ws), "main", cwd=repo.path)
        repo.commit_file(ws, name, "print(1)\n")
        sessions.append(_session(project, n, workspace_path=str(ws)))
    for session in sessions:
        _record(project, session, f"{session.number}" * 40, ("lint", "failure"))

    assert not FlakyCheck.objects.exists()
    assert not Event.objects.filter(kind="ci.flaky").exists()
    for session in sessions:
        assert [(o.rule, o.did) for o in reactions.session_react(session=session)] == [("ci-failed", "sent")]
        [text] = _told(session)
        assert "lint" in text and FLAKY_NOTE not in text


def test_a_flag_without_a_commit_silences_nothing(project):
    """A ``spread`` row written by an older ao (no commit) is no evidence about any failure."""
    session = _session(project, 1)
    FlakyCheck.objects.create(project=project, name="tests", reason="spread", head_sha="")
    _record(project, session, "a" * 40, ("tests", "failure"))

    assert [(o.rule, o.did) for o in reactions.session_react(session=session)] == [("ci-failed", "sent")]
    [text] = _told(session)
    assert FLAKY_NOTE not in text
    assert selectors.flaky_checks(project) == set()
