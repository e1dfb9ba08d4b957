"""The github SCM's REST read of a changed PR (integrations/scm/github_rest.py), against the fake
GitHub: the same facts as GraphQL's read, no GraphQL point, and GraphQL only for what REST
cannot tell (a thread's resolution, a decision branch protection may hold back)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from integrations.scm.github import _review_decision
from tests.fakes.github import FakeGitHub, FakeReviewComment
from tests.integrations.test_github_scm import make_scm


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
    gh.add_review(busy_pull, state="CHANGES_REQUESTED", author="alice", body="and the None case")

    by_rest = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first)[busy_pull.number]
    new = [t for t in by_rest.threads if t.body == "and handle None"]
    assert gh.count("graphql") == 1  # the first read only
    assert len(new) == 1 and not new[0].resolved and new[0].author == "dave"
    assert [t.body for t in by_rest.threads if t.review_state] == ["and the None case"]  # her latest word

    gh.reset_counts()
    by_graphql = scm.fetch_pull_requests(
        numbers=[busy_pull.number], previous={busy_pull.number: by_rest}, complete=True
    )[busy_pull.number]
    assert [t.external_id for t in by_graphql.threads] == [t.external_id for t in by_rest.threads]
    assert by_graphql.threads[-2].node_id.startswith("PRRT_")  # GraphQL's name, kept beside ao's
    # ... so the next GraphQL read of several PRs (ids first, bodies of new threads after) knows
    # every thread from the first query alone: no second one for their bodies
    others = [gh.repo("acme/widgets").add_pull(f"feat/other-{i}") for i in range(2)]
    known = scm.fetch_pull_requests(numbers=[p.number for p in others], complete=True)
    gh.reset_counts()
    again = scm.fetch_pull_requests(
        numbers=[busy_pull.number] + [p.number for p in others],
        previous={busy_pull.number: by_graphql, **known},
        complete=True,
    )
    assert gh.count("graphql") == 1 and "comments(" not in gh.queries[0]
    assert again[busy_pull.number].threads == by_graphql.threads


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


def test_an_approval_while_threads_are_open_is_read_with_graphql(gh: FakeGitHub, busy_pull) -> None:
    """A reviewer who approves often resolves their threads in the same minute, and REST cannot
    see resolution: the approval's read is GraphQL's, which sees both."""
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[busy_pull.number], complete=True)
    for thread in busy_pull.threads:
        thread.resolved = True
    gh.add_review(busy_pull, state="APPROVED", author="alice")
    gh.reset_counts()

    second = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first)[busy_pull.number]

    assert gh.count("graphql") == 1
    assert second.review_decision == "approved"
    assert all(t.resolved for t in second.threads if not t.review_state)


def test_a_dismissed_review_leaves_its_reviewer_without_an_opinion(gh: FakeGitHub, busy_pull) -> None:
    """GitHub keeps a dismissed review in the list as DISMISSED, and the reviewer's older reviews
    as they were: the dismissal is their latest word, for REST's read as for GraphQL's."""
    scm = make_scm(gh)
    for thread in busy_pull.threads:
        thread.resolved = True
    approval = gh.add_review(busy_pull, state="APPROVED", author="alice")
    first = scm.fetch_pull_requests(numbers=[busy_pull.number], complete=True)
    assert first[busy_pull.number].review_decision == "approved"
    approval.state = "DISMISSED"  # "dismiss stale approvals" on the agent's push, or by hand
    touched(busy_pull)

    by_rest = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first)[busy_pull.number]
    by_graphql = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first, complete=True)

    assert by_rest.review_decision == "review_required"  # carol is still asked; alice has no word
    assert not [t for t in by_rest.threads if t.review_state]  # her old request does not come back
    assert by_graphql[busy_pull.number] == by_rest


def test_a_drive_by_review_decides_nothing(gh: FakeGitHub) -> None:
    """Without protection, only reviewers who can write to the repository decide: an approval
    from someone without write access does not approve (it could start an auto-merge)."""
    repo = gh.repo("acme/widgets")
    pull = repo.add_pull("feat/drive-by")
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[pull.number], complete=True)
    gh.add_review(pull, state="APPROVED", author="passer-by", association="NONE")

    by_rest = scm.fetch_pull_requests(numbers=[pull.number], previous=first)[pull.number]
    by_graphql = scm.fetch_pull_requests(numbers=[pull.number], complete=True)[pull.number]

    assert by_rest.review_decision == by_graphql.review_decision == "none"


def test_a_failed_rest_read_falls_back_to_graphql(gh: FakeGitHub, busy_pull) -> None:
    scm = make_scm(gh, max_retries=0)
    first = scm.fetch_pull_requests(numbers=[busy_pull.number], complete=True)
    gh.fail(403, path="/check-runs", message="Resource not accessible by integration")
    gh.reset_counts()

    second = scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first)

    assert gh.count("graphql") == 1 and second[busy_pull.number].checks


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

    def node(*opinions: str, requested: int = 0, decision=None, association="MEMBER") -> dict:
        return {
            "reviewDecision": decision,
            "reviewRequests": {"totalCount": requested},
            "latestOpinionatedReviews": {
                "nodes": [{"state": s, "authorAssociation": association} for s in opinions]
            },
        }

    assert _review_decision(node("APPROVED"), "open") == "approved"
    assert _review_decision(node("APPROVED", "CHANGES_REQUESTED"), "open") == "changes_requested"
    assert _review_decision(node(requested=1), "open") == "review_required"
    assert _review_decision(node(), "open") == "none"
    assert _review_decision(node("APPROVED", decision="REVIEW_REQUIRED"), "open") == "review_required"
    assert _review_decision(node("APPROVED", association="NONE"), "open") == "none"  # a drive-by


def test_new_threads_bodies_cost_the_threads_read_not_every_thread(gh: FakeGitHub) -> None:
    """The second phase of a GraphQL read asks for the newest threads only (new ones come last):
    a PR with many threads and one new one costs one thread's comment, not max_threads'."""
    repo = gh.repo("acme/widgets")
    pulls = [repo.add_pull(f"feat/{i}") for i in range(3)]
    for pull in pulls:
        for k in range(8):
            gh.add_thread(pull, body=f"note {k}", path="app.py", line=k + 1)
    scm = make_scm(gh)
    numbers = [p.number for p in pulls]
    first = scm.fetch_pull_requests(numbers=numbers, complete=True)
    gh.add_thread(pulls[1], body="and this", path="app.py", line=40, author="bob")
    gh.reset_counts()

    second = scm.fetch_pull_requests(numbers=numbers, previous=first, complete=True)

    assert gh.count("graphql") == 2 and "reviewThreads(last: 1)" in gh.queries[1]
    assert [t.body for t in second[pulls[1].number].threads][-2:] == ["note 7", "and this"]
    assert second[pulls[1].number].threads[:8] == first[pulls[1].number].threads


def test_a_token_whose_requests_run_low_reads_with_graphql(gh: FakeGitHub, busy_pull) -> None:
    """REST reads spend the hourly request quota, GraphQL reads points: ao reads with the budget
    that has the larger share left (something else may spend the token's requests)."""
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[busy_pull.number], complete=True)
    gh.set_remaining("core", 1000)  # a fifth left; GraphQL's points nearly all there
    scm.client().get("/rate_limit")  # ao learns it from any answer's headers
    gh.reset_counts()

    scm.fetch_pull_requests(numbers=[busy_pull.number], previous=first)

    assert gh.count("graphql") == 1 and gh.count("rest") == 0


def test_a_pr_with_more_threads_than_read_gets_the_bodies_of_the_same_threads(gh: FakeGitHub) -> None:
    """With more threads than ``max_threads``, the first phase reads the oldest ones: the bodies
    are read for those same threads, not the newest."""
    repo = gh.repo("acme/widgets")
    pulls = [repo.add_pull(f"feat/{i}") for i in range(20)]  # enough for the two-phase read
    for pull in pulls:
        for k in range(5):
            gh.add_thread(pull, body=f"note {k}", path="app.py", line=k + 1)
    scm = make_scm(gh, max_threads=3)

    first = scm.fetch_pull_requests(numbers=[p.number for p in pulls])  # no previous: all new

    assert gh.count("graphql") == 2 and "reviewThreads(first: 3)" in gh.queries[1]
    assert [t.body for t in first[pulls[0].number].threads] == ["note 0", "note 1", "note 2"]
