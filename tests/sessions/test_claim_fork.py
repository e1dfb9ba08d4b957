"""A PR from a fork cannot become a session's (`ao session claim-pr`): its head is another
repository's branch, so the session's workspace would check out this repository's branch of the
same name (another commit, or none) and the agent's pushes would never reach the PR. Against the
fake GitHub, which says so the way GitHub does (isCrossRepository; a REST head in another repo)."""

from __future__ import annotations

import pytest

from sessions.agents import claiming
from sessions.models import PullRequest
from tests.factories import ProjectFactory, SessionFactory
from tests.integrations.conftest import FAST, TOKEN_ENV
from tests.integrations.conftest import gh as gh  # the fake GitHub (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(gh):
    gh.add_repo("acme/web")
    return ProjectFactory(
        key="web",
        repo="acme/web",
        scm="github",
        plugin_settings={"scm": {"base_url": gh.base_url, "token_env": TOKEN_ENV, **FAST}},
    )


def test_a_pr_from_a_fork_is_refused_and_one_from_here_is_claimed(gh, project) -> None:
    session = SessionFactory(project=project, branch="ao/web-1")
    fork = gh.repo("acme/web").add_pull("fix/typo", cross_repository=True)
    ours = gh.repo("acme/web").add_pull("fix/typo-here")

    with pytest.raises(claiming.ClaimRefused, match="comes from a fork"):
        claiming.session_pr_claim(session=session, number=fork.number)
    assert not PullRequest.objects.filter(session=session).exists()

    claiming.session_pr_claim(session=session, number=ours.number)
    assert PullRequest.objects.get(session=session).number == ours.number


def test_the_rest_read_says_a_pr_comes_from_a_fork_as_graphql_does(gh, project) -> None:
    from integrations.registry import plugin_for

    fork = gh.repo("acme/web").add_pull("fix/typo", cross_repository=True)
    ours = gh.repo("acme/web").add_pull("fix/here")
    scm = plugin_for(project, "scm")
    first = scm.fetch_pull_requests(numbers=[fork.number, ours.number], previous={})
    assert (first[fork.number].from_fork, first[ours.number].from_fork) == (True, False)
    gh.push(fork)
    gh.push(ours)
    gh.reset_counts()
    again = scm.fetch_pull_requests(numbers=[fork.number, ours.number], previous=first)
    assert gh.count("graphql") == 0  # read with REST
    assert (again[fork.number].from_fork, again[ours.number].from_fork) == (True, False)
