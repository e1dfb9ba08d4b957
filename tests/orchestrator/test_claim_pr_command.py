"""`ao session claim-pr SESSION PR` (issue 18.7): the orchestrator links a PR opened outside ao
to its session from the CLI, as the API's claim-pr does, with the same refusals."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from integrations.records import PullRequestInfo
from sessions.models import AuditEntry, Event, PullRequest
from tests.factories import ProjectFactory, SessionFactory
from tests.helpers.scm import in_memory_scm

pytestmark = pytest.mark.django_db

ClaimSCM = in_memory_scm("claimtest")


def test_claim_pr_links_the_pr_and_refuses_what_the_api_refuses(capsys) -> None:
    ClaimSCM.prs.clear()
    ClaimSCM.prs[7] = PullRequestInfo(number=7, branch="fix/by-hand", url="https://example.test/acme/web/pull/7",
                                      head_sha="abc")  # fmt: skip
    ClaimSCM.prs[9] = PullRequestInfo(number=9, branch="old", url="https://example.test/acme/web/pull/9",
                                      head_sha="def", state="merged")  # fmt: skip
    project = ProjectFactory(key="web", session_prefix="web", scm="claimtest")
    session, other = SessionFactory(project=project, branch=""), SessionFactory(project=project)

    call_command("session", "claim-pr", session.id, "https://example.test/acme/web/pull/7")

    assert f"{session.id} now has PR #7" in capsys.readouterr().out
    pr = PullRequest.objects.get(project=project, number=7)
    assert (pr.session_id, pr.branch) == (session.id, "fix/by-hand")
    assert Event.objects.filter(session=session, kind="pr.claimed").exists()
    assert AuditEntry.objects.filter(action="pr.claim", source="cli").exists()

    with pytest.raises(CommandError, match=f"PR #7 belongs to {session.id}"):
        call_command("session", "claim-pr", other.id, "7")
    with pytest.raises(CommandError, match="only an open PR can be claimed"):
        call_command("session", "claim-pr", other.id, "#9")
    with pytest.raises(CommandError, match="has no PR #8"):
        call_command("session", "claim-pr", other.id, "8")
    with pytest.raises(CommandError, match="not a PR number or URL"):
        call_command("session", "claim-pr", other.id, "main")
