"""The github SCM plugin, through its real code, against the fake GitHub."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from integrations.base import PermanentIntegrationError, TransientIntegrationError
from integrations.github.pool import forget_clients
from integrations.registry import ConfigurationError, plugin_for, scms
from integrations.scm.github import GitHubSCM, log_excerpt
from tests.fakes.github import FakeGitHub
from tests.integrations.conftest import FAST, TOKEN_ENV, plugin_settings

FAILING_LOG = "\n".join(
    [
        "2024-05-01T10:00:00.0000000Z ##[group]Run actions/checkout@v4",
        "2024-05-01T10:00:01.0000000Z checked out",
        "2024-05-01T10:00:02.0000000Z ##[endgroup]",
        "2024-05-01T10:00:03.0000000Z ##[group]Run pytest -q",
        "2024-05-01T10:00:04.0000000Z \x1b[31mF\x1b[0m....",
        "2024-05-01T10:00:05.0000000Z FAILED tests/test_login.py::test_redirect - AssertionError: 302 != 200",
        "2024-05-01T10:00:06.0000000Z 1 failed, 4 passed",
        "2024-05-01T10:00:07.0000000Z ##[error]Process completed with exit code 1.",
        "2024-05-01T10:00:08.0000000Z Post job cleanup.",
    ]
)


def make_scm(gh: FakeGitHub, **settings) -> GitHubSCM:
    config = scms.validate_settings("github", plugin_settings(gh, **settings))
    return GitHubSCM(config)


def test_n_pull_requests_cost_one_graphql_request(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    pulls = [repo.add_pull(f"feat/{i}") for i in range(12)]
    scm = make_scm(gh)

    infos = scm.fetch_pull_requests(numbers=[p.number for p in pulls] + [999])

    assert sorted(infos) == [p.number for p in pulls]  # 999 does not exist: absent
    assert (gh.counts["graphql"], gh.counts["rest"]) == (1, 0)
    assert "rateLimit" in gh.queries[0]
    assert scm.client().stats.graphql_points == gh.graphql_points >= 1
    assert infos[pulls[3].number].branch == "feat/3"


def test_batches_split_by_batch_size(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    numbers = [repo.add_pull(f"feat/{i}").number for i in range(7)]
    assert len(make_scm(gh, batch_size=3).fetch_pull_requests(numbers=numbers)) == 7
    assert gh.counts["graphql"] == 3


def test_states_checks_and_threads_are_mapped(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    dirty = repo.add_pull("feat/dirty", mergeable_state="dirty")
    behind = repo.add_pull("feat/behind", mergeable_state="behind", draft=True)
    unknown = repo.add_pull("feat/unknown", mergeable_state="unknown")
    repo.add_check_run(dirty.head_sha, "lint", status="in_progress")
    repo.add_check_run(dirty.head_sha, "build", conclusion="success", app_slug="circleci")
    repo.add_status(
        dirty.head_sha, "ci/jenkins", "error", description="3 tests failed: test_a, test_b, test_c"
    )
    repo.add_status(dirty.head_sha, "deploy/preview", "pending")
    gh.add_review(behind, state="CHANGES_REQUESTED")
    gh.add_thread(dirty, body="Please rename", path="src/a.py", line=12, author="alice", association="MEMBER")
    gh.add_thread(dirty, body="Nit", author="coderabbitai[bot]", bot=True, association="NONE", resolved=True)

    infos = make_scm(gh).fetch_pull_requests(numbers=[dirty.number, behind.number, unknown.number])

    d, b, u = infos[dirty.number], infos[behind.number], infos[unknown.number]
    assert (d.mergeable, d.conflicts, d.behind, d.draft, d.state) == (False, True, False, False, "open")
    assert (b.mergeable, b.conflicts, b.behind, b.draft) == (True, False, True, True)
    assert (u.mergeable, u.conflicts) == (None, False)
    assert (d.review_decision, b.review_decision) == ("none", "changes_requested")
    assert d.head_sha == dirty.head_sha and d.base_branch == "main"
    assert d.url == f"https://github.com/acme/widgets/pull/{dirty.number}"
    checks = {c.name: c for c in d.checks}
    assert (checks["lint"].status, checks["lint"].conclusion) == ("in_progress", "")
    assert (checks["build"].source, checks["build"].conclusion) == ("check_run", "success")
    assert (checks["ci/jenkins"].source, checks["ci/jenkins"].status, checks["ci/jenkins"].conclusion) == (
        "status",
        "completed",
        "error",
    )
    assert (
        checks["ci/jenkins"].log_excerpt == "3 tests failed: test_a, test_b, test_c"
    )  # all GitHub says of it
    assert (checks["deploy/preview"].status, checks["deploy/preview"].conclusion) == ("in_progress", "")
    human, bot = d.threads
    assert (human.path, human.line, human.author, human.author_association, human.body) == (
        "src/a.py",
        12,
        "alice",
        "MEMBER",
        "Please rename",
    )
    assert (human.resolved, human.is_bot) == (False, False)
    assert (bot.author, bot.resolved, bot.is_bot) == ("coderabbitai[bot]", True, True)
    assert human.url.endswith(f"/pull/{dirty.number}#discussion_r{dirty.threads[0].comments[0].id}")


def test_merged_and_closed_states(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    merged = repo.add_pull("feat/m")
    merged.merged, merged.state = True, "closed"
    closed = repo.add_pull("feat/c", state="closed")
    infos = make_scm(gh).fetch_pull_requests(numbers=[merged.number, closed.number])
    assert (infos[merged.number].state, infos[closed.number].state) == ("merged", "closed")


def test_failed_actions_log_is_fetched_once_not_twice(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    pull = repo.add_pull("feat/login")
    failed = repo.add_check_run(pull.head_sha, "tests", conclusion="failure", log=FAILING_LOG)
    repo.add_check_run(pull.head_sha, "external", conclusion="failure", app_slug="buildkite")
    scm = make_scm(gh)

    first = scm.fetch_pull_requests(numbers=[pull.number])
    check = next(c for c in first[pull.number].checks if c.name == "tests")
    assert check.external_id == str(failed.id)
    assert check.log_excerpt.splitlines() == [
        "##[group]Run pytest -q",
        "F....",
        "FAILED tests/test_login.py::test_redirect - AssertionError: 302 != 200",
        "1 failed, 4 passed",
        "##[error]Process completed with exit code 1.",
    ]
    assert next(c for c in first[pull.number].checks if c.name == "external").log_excerpt == ""
    assert (gh.counts["rest"], gh.counts["blob"]) == (1, 1)

    second = scm.fetch_pull_requests(numbers=[pull.number], previous=first, complete=True)
    assert second[pull.number].checks == first[pull.number].checks
    assert (gh.counts["rest"], gh.counts["blob"], gh.counts["graphql"]) == (1, 1, 2)
    # ... nor by REST's read of the same PR (its checks' reads are charged, the log is not)
    again = scm.fetch_pull_requests(numbers=[pull.number], previous=second)
    assert again[pull.number].checks == first[pull.number].checks
    assert (gh.counts["blob"], gh.counts["graphql"]) == (1, 2)

    # A re-run on a new commit is a new check: its log is fetched.
    sha = gh.push(pull)
    repo.add_check_run(sha, "tests", conclusion="failure", log="boom\n##[error]again\n")
    third = scm.fetch_pull_requests(numbers=[pull.number], previous=second)
    assert (
        next(c for c in third[pull.number].checks if c.name == "tests").log_excerpt == "boom\n##[error]again"
    )
    assert gh.counts["blob"] == 2


def test_expired_log_is_noted_and_not_refetched(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    pull = repo.add_pull("feat/x")
    check = repo.add_check_run(pull.head_sha, "tests", conclusion="timed_out", log="x")
    gh.fail(404, path=f"/actions/jobs/{check.id}/logs", message="Not Found")
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[pull.number])
    assert first[pull.number].checks[0].log_excerpt == "(GitHub no longer has this job's log)"
    gh.reset_counts()
    scm.fetch_pull_requests(numbers=[pull.number], previous=first, complete=True)
    scm.fetch_pull_requests(numbers=[pull.number], previous=first)  # REST's read too
    assert gh.count("fault") == 0 and not [r for r in gh.requests if r.path.endswith("/logs")]


def test_log_excerpt_is_bounded() -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    assert log_excerpt(text, max_lines=5).splitlines() == [f"line {i}" for i in range(995, 1000)]
    bounded = log_excerpt(text + "\n##[error]x" * 3, max_lines=500, max_bytes=300)
    assert len(bounded.encode()) <= 300 and bounded.endswith("##[error]x")


def test_find_pull_requests_by_branch_in_one_query(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    old = repo.add_pull("feat/a", state="closed")
    current = repo.add_pull("feat/a")
    done = repo.add_pull("feat/b", state="closed")
    repo.add_pull("feat/c", cross_repository=True)  # a fork's branch with our name: not ours

    found = make_scm(gh).find_pull_requests(branches=["feat/a", "feat/b", "feat/c", "feat/none"])

    assert {b: p.number for b, p in found.items()} == {"feat/a": current.number, "feat/b": done.number}
    assert old.number != current.number
    assert gh.counts["graphql"] == 1


def test_a_newer_fork_pr_with_the_same_branch_name_does_not_hide_ours(gh: FakeGitHub) -> None:
    """Anyone can open a PR from a fork whose branch has the name of a session's branch (ao's
    names are easy to guess): GitHub lists it first (newest), and ao's own PR must still be found,
    open or closed, at the cost of one more query for such branches only."""
    repo = gh.repo("acme/widgets")
    ours = repo.add_pull("ao/web-1")
    repo.add_pull("ao/web-1", cross_repository=True)  # newer, from a fork
    closed = repo.add_pull("ao/web-2", state="closed")
    repo.add_pull("ao/web-2", cross_repository=True)
    plain = repo.add_pull("ao/web-3")

    found = make_scm(gh).find_pull_requests(branches=["ao/web-1", "ao/web-2", "ao/web-3"])

    assert {b: p.number for b, p in found.items()} == {
        "ao/web-1": ours.number,
        "ao/web-2": closed.number,
        "ao/web-3": plain.number,
    }
    assert gh.counts["graphql"] == 2  # the second only for the branches a fork's PR stood in front of


def test_an_open_pr_of_ours_behind_a_fork_beats_a_newer_closed_one(gh: FakeGitHub) -> None:
    """The newest open PR of ours is the session's, even when a fork's open PR stands before it and
    a newer PR of ours was closed (e.g. one to another base)."""
    repo = gh.repo("acme/widgets")
    ours = repo.add_pull("ao/web-1")
    repo.add_pull("ao/web-1", cross_repository=True)  # newer, open, from a fork
    repo.add_pull("ao/web-1", state="closed")  # newest: ours, closed

    found = make_scm(gh).find_pull_requests(branches=["ao/web-1"])

    assert found["ao/web-1"].number == ours.number


def test_merge_with_sha_guard_and_method(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    pull = repo.add_pull("feat/a")
    scm = make_scm(gh, merge_method="rebase")

    with pytest.raises(PermanentIntegrationError, match="Head branch was modified"):
        scm.merge(number=pull.number, expected_head_sha="f" * 40)
    assert not pull.merged

    scm.merge(number=pull.number, expected_head_sha=pull.head_sha)
    assert (pull.merged, pull.state) == (True, "closed")
    assert gh.requests[-1].method == "PUT"


def test_merge_refused_when_conflicting(gh: FakeGitHub) -> None:
    pull = gh.repo("acme/widgets").add_pull("feat/a", mergeable_state="dirty")
    with pytest.raises(PermanentIntegrationError, match="not mergeable"):
        make_scm(gh).merge(number=pull.number)


def test_comment(gh: FakeGitHub) -> None:
    pull = gh.repo("acme/widgets").add_pull("feat/a")
    make_scm(gh).comment(number=pull.number, body="ao: CI is green")
    assert [c.body for c in pull.comments] == ["ao: CI is green"]
    with pytest.raises(PermanentIntegrationError):
        make_scm(gh).comment(number=999, body="x")


def test_rate_status_and_exhaustion(gh: FakeGitHub) -> None:
    pull = gh.repo("acme/widgets").add_pull("feat/a")
    scm = make_scm(gh)
    assert scm.rate_status() is None  # nothing known before the first call
    scm.fetch_pull_requests(numbers=[pull.number])
    status = scm.rate_status()
    assert status.limit == 5000 and status.remaining < 5000 and not status.exhausted

    gh.set_remaining("graphql", 0, reset_in=900)
    with pytest.raises(TransientIntegrationError, match="rate limited until"):
        scm.fetch_pull_requests(numbers=[pull.number])
    with pytest.raises(TransientIntegrationError, match="rate limited until"):
        scm.fetch_pull_requests(numbers=[pull.number])
    assert gh.counts["graphql"] == 2  # the second sweep never left the process
    assert scm.rate_status().exhausted is True


def test_5xx_and_bad_token(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    pull = gh.repo("acme/widgets").add_pull("feat/a")
    gh.fail(502, times=5)
    with pytest.raises(TransientIntegrationError):
        make_scm(gh, max_retries=1).fetch_pull_requests(numbers=[pull.number])

    monkeypatch.setenv(TOKEN_ENV, "ghp_wrong")
    with pytest.raises(PermanentIntegrationError, match="GitHub refused the token") as info:
        make_scm(gh).fetch_pull_requests(numbers=[pull.number])
    assert "ghp_wrong" not in str(info.value)

    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(PermanentIntegrationError, match=TOKEN_ENV):
        make_scm(gh).fetch_pull_requests(numbers=[pull.number])


def test_unknown_repository_is_permanent(gh: FakeGitHub) -> None:
    with pytest.raises(PermanentIntegrationError, match="acme/nope not found"):
        make_scm(gh, repo="acme/nope").fetch_pull_requests(numbers=[1])


def test_enterprise_host() -> None:
    with FakeGitHub(enterprise=True) as ghe, pytest.MonkeyPatch.context() as mp:
        mp.setenv(TOKEN_ENV, ghe.token)
        repo = ghe.add_repo("acme/widgets")
        pull = repo.add_pull("feat/a")
        repo.add_check_run(pull.head_sha, "tests", conclusion="failure", log="x\n##[error]bad\n")
        scm = make_scm(ghe)
        infos = scm.fetch_pull_requests(numbers=[pull.number])
        assert infos[pull.number].checks[0].log_excerpt == "x\n##[error]bad"
        scm.comment(number=pull.number, body="hi")
        assert (ghe.counts["graphql"], ghe.counts["rest"]) == (1, 2)
    forget_clients()


def test_config_never_takes_a_token() -> None:
    with pytest.raises(ConfigurationError, match="tokens never go in ao's config"):
        scms.validate_settings("github", {"token": "ghp_x"})
    with pytest.raises(ValidationError):
        GitHubSCM.Config(repo="not a repo")
    with pytest.raises(ValidationError):
        GitHubSCM.Config(merge_method="octopus")
    assert GitHubSCM.Config().base_url == "https://api.github.com"


@pytest.mark.django_db
def test_through_the_registry_with_the_projects_repo(gh: FakeGitHub) -> None:
    from tests.factories import ProjectFactory

    pull = gh.repo("acme/widgets").add_pull("feat/a")
    project = ProjectFactory(
        repo="acme/widgets",
        scm="github",
        plugin_settings={"scm": {"base_url": gh.base_url, "token_env": TOKEN_ENV, **FAST}},
    )
    scm = plugin_for(project, "scm")
    assert isinstance(scm, GitHubSCM)
    assert scm.fetch_pull_requests(numbers=[pull.number])[pull.number].branch == "feat/a"


# --- two-phase reads: thread bodies only when a PR has a thread ao has not seen ----------------
def _threaded_pulls(gh: FakeGitHub, count: int) -> list:
    repo = gh.repo("acme/widgets")
    pulls = []
    for i in range(count):
        pull = repo.add_pull(f"feat/{i}")
        repo.add_check_run(pull.head_sha, "test", status="in_progress")
        repo.add_check_run(pull.head_sha, "lint", conclusion="success")
        gh.add_thread(pull, body=f"rename thing {i}", path="app.py", line=i + 1, author="alice")
        pulls.append(pull)
    return pulls


def test_unchanged_prs_cost_no_thread_query(gh: FakeGitHub) -> None:
    pulls = _threaded_pulls(gh, 5)
    repo = gh.repo("acme/widgets")
    bare = repo.add_pull("feat/no-threads")
    numbers = [p.number for p in pulls] + [bare.number]
    scm = make_scm(gh)

    first = scm.fetch_pull_requests(numbers=numbers)
    # state of all six, then the bodies of the five PRs with threads ao had not seen
    assert gh.counts["graphql"] == 2
    assert "comments(" not in gh.queries[0] and "comments(" in gh.queries[1]
    assert gh.queries[1].count("pullRequest(number:") == 5
    assert [t.body for t in first[pulls[2].number].threads] == ["rename thing 2"]
    assert first[bare.number].threads == ()

    gh.reset_counts()
    second = scm.fetch_pull_requests(numbers=numbers, previous=first, complete=True)
    assert (gh.counts["graphql"], gh.graphql_points) == (1, 1)  # the state query only
    assert "comments(" not in gh.queries[0]
    assert second == first


def test_new_review_thread_reads_bodies_of_that_pr_only(gh: FakeGitHub) -> None:
    pulls = _threaded_pulls(gh, 5)
    numbers = [p.number for p in pulls]
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=numbers)

    gh.add_thread(pulls[3], body="and add a test", path="tests/test_app.py", line=7, author="bob")
    pulls[0].threads[0].resolved = True  # resolution is in the state query: no bodies needed
    gh.reset_counts()
    second = scm.fetch_pull_requests(numbers=numbers, previous=first, complete=True)

    assert gh.counts["graphql"] == 2
    assert "comments(" not in gh.queries[0]
    assert "comments(" in gh.queries[1] and gh.queries[1].count("pullRequest(number:") == 1
    assert [(t.body, t.author, t.path, t.line) for t in second[pulls[3].number].threads] == [
        ("rename thing 3", "alice", "app.py", 4),
        ("and add a test", "bob", "tests/test_app.py", 7),
    ]
    assert second[pulls[0].number].threads[0].resolved is True
    assert second[pulls[0].number].threads[0].body == "rename thing 0"  # kept from previous
    for pull in (pulls[1], pulls[2], pulls[4]):
        assert second[pull.number] == first[pull.number]


def test_steady_state_of_100_prs_costs_a_quarter_of_a_full_read(gh: FakeGitHub) -> None:
    pulls = _threaded_pulls(gh, 100)
    numbers = [p.number for p in pulls]
    scm = make_scm(gh)

    first = scm.fetch_pull_requests(numbers=numbers)  # no previous: every thread body is read
    first_points = gh.graphql_points
    assert gh.counts["graphql"] == 4  # 2 state + 2 thread queries of 50 PRs
    # what one query of everything (the former single-phase read) costs per 50 PRs
    full_read = 2 * (50 * (3 + scm.config.max_threads) // 100)
    assert full_read == 52
    # the bodies are asked for the threads there are (one per PR, the newest), not max_threads
    assert all("reviewThreads(last: 1)" in q for q in gh.queries[2:])
    assert first_points <= 6

    gh.reset_counts()
    steady = scm.fetch_pull_requests(numbers=numbers, previous=first)
    assert steady == first
    assert gh.counts["graphql"] == 2
    assert gh.graphql_points == scm.client().stats.graphql_points - first_points == 4
    assert gh.graphql_points * 4 <= full_read


def test_one_pr_is_read_in_one_query_when_that_costs_no_more(gh: FakeGitHub) -> None:
    (pull,) = _threaded_pulls(gh, 1)
    scm = make_scm(gh)
    first = scm.fetch_pull_requests(numbers=[pull.number])
    assert (gh.counts["graphql"], gh.graphql_points) == (1, 1)
    assert "comments(" in gh.queries[0]
    assert first[pull.number].threads[0].body == "rename thing 0"

    found = scm.find_pull_requests(branches=["feat/0"])
    assert found["feat/0"].threads == first[pull.number].threads
    assert (gh.counts["graphql"], gh.graphql_points) == (2, 2)


def test_found_by_branch_reads_thread_bodies_only_where_there_are_threads(gh: FakeGitHub) -> None:
    _threaded_pulls(gh, 2)
    gh.repo("acme/widgets").add_pull("feat/quiet")
    found = make_scm(gh).find_pull_requests(branches=["feat/0", "feat/1", "feat/quiet", "feat/none"])
    assert sorted(found) == ["feat/0", "feat/1", "feat/quiet"]
    assert [t.body for t in found["feat/1"].threads] == ["rename thing 1"]
    assert found["feat/quiet"].threads == ()
    assert gh.counts["graphql"] == 2
    assert gh.queries[1].count("pullRequest(number:") == 2


def test_branch_on_remote_asks_github_for_the_ref(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    repo.branches["feat/1-login"] = "a" * 40
    repo.add_pull("feat/2-open")
    scm = make_scm(gh)

    assert scm.branch_on_remote("feat/1-login") is True
    assert scm.branch_on_remote("feat/2-open") is True  # an open PR's head branch exists
    assert scm.branch_on_remote("feat/3-new") is False


def test_reviewers_asked_for_without_branch_protection_mean_a_review_is_required(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    asked = repo.add_pull("feat/asked")  # no branch protection: GitHub gives no reviewDecision
    untouched = repo.add_pull("feat/untouched")
    gh.request_review(asked, reviewer="alice")
    scm = make_scm(gh)

    infos = scm.fetch_pull_requests(numbers=[asked.number, untouched.number])

    assert (infos[asked.number].review_decision, infos[untouched.number].review_decision) == (
        "review_required",
        "none",
    )
    # alice reviews: her request is answered, the PR is no longer waiting for one
    gh.add_review(asked, state="COMMENTED", author="alice")
    assert scm.fetch_pull_requests(numbers=[asked.number])[asked.number].review_decision == "none"
