"""`ao session claim-pr` against a live ao (AO_URL + AO_TOKEN): the claim and its refusals are the
one service's (claiming.session_pr_claim), over the API, each as one line."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.records import PullRequestInfo
from sessions.models import AuditEntry, Event, Project, PullRequest
from tests.api.conftest import ApiTestSCM
from tests.factories import SessionFactory

pytestmark = pytest.mark.timeout(60)


def _ao(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def remote(transactional_db, live_server, world, monkeypatch):
    Project.objects.filter(pk=world.project.pk).update(tracker="local")
    monkeypatch.setenv("AO_URL", live_server.url)
    monkeypatch.setenv("AO_TOKEN", world.tokens["operator"])
    monkeypatch.delenv("AO_SESSION", raising=False)
    return world


def _pr(number: int, *, state: str = "open") -> None:
    ApiTestSCM.prs[number] = PullRequestInfo(
        number=number,
        branch=f"fix/{number}",
        url=f"https://example.test/acme/web/pull/{number}",
        head_sha=f"{number:040d}",
        state=state,
    )


def test_claim_pr_over_the_api_links_the_pr_and_refuses_with_the_services_reasons(remote) -> None:
    for number in (7, 8):
        _pr(number)
    _pr(9, state="merged")
    session = remote.session
    other = SessionFactory(project=remote.project)

    assert _ao("session", "claim-pr", session.id, "https://example.test/acme/web/pull/7").strip() == (
        f"{session.id} now has PR #7"
    )
    pr = PullRequest.objects.get(project=remote.project, number=7)
    assert (pr.session_id, pr.branch) == (session.id, "fix/7")
    assert Event.objects.filter(session=session, kind="pr.claimed").exists()
    (entry,) = AuditEntry.objects.filter(action="pr.claim")
    assert (entry.actor_user, entry.target_id) == (remote.users["operator"], session.id)

    # claiming it again is no change; each refusal is the service's reason, in one line
    assert "now has PR #7" in _ao("session", "claim-pr", session.id, "#7")
    with pytest.raises(CommandError, match=f"PR #7 belongs to {session.id}"):
        _ao("session", "claim-pr", other.id, "7")
    with pytest.raises(CommandError, match=f"{session.id} already has PR #7"):
        _ao("session", "claim-pr", session.id, "8")
    with pytest.raises(CommandError, match="only an open PR can be claimed"):
        _ao("session", "claim-pr", other.id, "9")
    with pytest.raises(CommandError, match="has no PR #10"):
        _ao("session", "claim-pr", other.id, "10")
    assert not PullRequest.objects.filter(session=other).exists()
    assert AuditEntry.objects.filter(action="pr.claim").count() == 2
