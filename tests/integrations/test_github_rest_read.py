"""The github SCM's REST read of a changed PR (integrations/scm/github_rest.py), against the fake
GitHub: the same facts as GraphQL's read, no GraphQL point, and GraphQL only for what REST
cannot tell (a thread's resolution, a decision branch protection may hold back)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from integrations.github.pool import forget_clients
from integrations.registry import scms
from integrations.scm.github import GitHubSCM, _review_decision
from tests.fakes.github import FakeGitHub, FakeReviewComment

TOKEN_ENV = "AO_TEST_GITHUB_TOKEN"
FAST = {"backoff": 0.01, "secondary_wait": 0.05, "max_wait": 2.0, "write_interval": 0, "timeout": 5}


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch):
    with FakeGitHub() as fake:
        fake.add_repo("acme/widgets")
        monkeypatch.setenv(TOKEN_ENV, fake.token)
        yield fake
    forget_clients()


def make_scm(gh: FakeGitHub, **settings) -> GitHubSCM:
    config = scms.validate_settings(
        "github",
        {"repo": "acme/widgets", "base_url": gh.base_url, "token_env": TOKEN_ENV, **FAST, **settings},
    )
    return GitHubSCM(config)


def touched(pull) -> None:
    pull.updated_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)


@pytest.fixture
def busy_pull(gh: FakeGitHub):
    """A PR with everything GraphQL's read reports: check runs (one running), a commit status, a
    thread with a reply, a bot's thread, a changes-requested review with words, a comment-only
    review, a requested reviewer."""
    repo = gh.repo("acme/widgets")
    pull = repo.add_pull("feat/login")
    repo.add_check_run(pull.head_sha, "tests", conclusion="success")
    repo.add_check_run(pull.head_sha, "lint", status="in_progress", conclusion=None)
    repo.add_status(pull.head_sha, "ci/external", "pending")
    thread = gh.add_thread(pull, body="rename this", path="app.py", line=3, author="alice")
    thread.comments.append(FakeReviewComment(id=next(gh._ids), author=gh.user("bob"), body="agreed"))
    gh.add_thread(pull, body="nit: spacing", author="coderabbitai", bot=True, association="NONE")
    gh.add_review(pull, state="CHANGES_REQUESTED", author="alice", body="please add tests")
    gh.add_review(pull, state="COMMENTED", author="bob", body="looks fine otherwise")
    gh.request_review(pull, reviewer="carol")
    return pull


def test_rest_reads_what_graphql_reads_and_spends_no_point(gh: FakeGitHub, busy_pull) -> None:
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[busy_pull.number], complete=True)  # GraphQL
    assert first[busy_pull.number].review_decision == "changes_requested"
    gh.reset_counts()

    again = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first)

    assert gh.count("graphql") == 0 and gh.graphql_points == 0
    got, want = again[busy_pull.number], first[busy_pull.number]
    assert sorted(got.checks, key=lambda c: c.external_id) == sorted(want.checks, key=lambda c: c.external_id)
    assert got.threads == want.threads  # same names, authors (a bot's without [bot]), words, places
    assert replace(got, checks=()) == replace(want, checks=())  # and every other fact


def test_a_thread_first_seen_by_rest_keeps_its_name_through_graphqls_reads(gh: FakeGitHub, busy_pull) -> None:
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[busy_pull.number], complete=True)
    gh.add_thread(busy_pull, body="and handle None", path="app.py", line=9, author="dave")
    gh.add_review(busy_pull, state="APPROVED", author="alice")

    by_rest = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first)[busy_pull.number]
    new = [t for t in by_rest.threads if t.body == "and handle None"]
    assert gh.count("graphql") == 1  # the first read only
    assert len(new) == 1 and not new[0].resolved and new[0].author == "dave"
    assert by_rest.review_decision == "approved"  # alice's latest word; nobody else's blocks it
    assert [t for t in by_rest.threads if t.review_state] == []  # her request is no longer her word

    by_graphql = scm.fetch_pull_requests(
        numbers=[busy_pull.number], previous={busy_pull.number: by_rest}, complete=True
    )
    assert by_graphql[busy_pull.number].threads == by_rest.threads  # one thread, one name


def test_a_change_rest_cannot_explain_is_read_with_graphql(gh: FakeGitHub, busy_pull) -> None:
    """Resolving a thread shows nowhere in REST: a PR that moved while its reviews, comments and
    facts did not, with a thread ao holds unresolved, is read with GraphQL, in the same read."""
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[busy_pull.number], complete=True)
    second = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first)  # ETags known
    gh.reset_counts()
    busy_pull.threads[0].resolved = True
    touched(busy_pull)

    third = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=second)

    assert gh.count("graphql") == 1
    assert [t.resolved for t in third[busy_pull.number].threads if not t.review_state] == [True, False]


def test_an_approval_branch_protection_may_hold_back_is_decided_by_graphql(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    pull = repo.add_pull("feat/protected")
    pull.review_decision = "REVIEW_REQUIRED"  # protection wants two approvals
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[pull.number], complete=True)
    gh.add_review(pull, state="APPROVED", author="alice")
    gh.reset_counts()

    second = scm.fetch_pull_requests(numbers=[pull.number], previous=first)

    assert gh.count("graphql") == 1  # REST saw "blocked": the approval is not the decision
    assert second[pull.number].review_decision == "review_required"


def test_many_changed_prs_are_one_graphql_query_not_many_rest_reads(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    pulls = [repo.add_pull(f"feat/{i}") for i in range(4)]
    numbers = [p.number for p in pulls]
    scm = make_scm(gh, rest_reads=3)
    first = scm.fetch_pull_requests(numbers=numbers, complete=True)
    gh.reset_counts()

    scm.fetch_pull_requests(numbers=numbers, previous=first)

    assert gh.count("graphql") == 1 and gh.count("rest") == 0


def test_without_githubs_decision_the_reviewers_latest_words_decide() -> None:
    """GitHub gives reviewDecision only under protection that requires reviews; REST's read and
    GraphQL's then decide alike, from each reviewer's latest approve / request-changes."""

    def node(*opinions: str, requested: int = 0, decision=None) -> dict:
        return {
            "reviewDecision": decision,
            "reviewRequests": {"totalCount": requested},
            "latestOpinionatedReviews": {"nodes": [{"state": s} for s in opinions]},
        }

    assert _review_decision(node("APPROVED"), "open") == "approved"
    assert _review_decision(node("APPROVED", "CHANGES_REQUESTED"), "open") == "changes_requested"
    assert _review_decision(node(requested=1), "open") == "review_required"
    assert _review_decision(node(), "open") == "none"
    assert _review_decision(node("APPROVED", decision="REVIEW_REQUIRED"), "open") == "review_required"
