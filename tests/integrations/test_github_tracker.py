"""The github tracker plugin, through its real code, against the fake GitHub."""

from __future__ import annotations

import pytest

from integrations.base import IssueNotFound, PermanentIntegrationError
from integrations.registry import trackers
from integrations.tracker.github import GitHubTracker
from tests.fakes.github import FakeGitHub
from tests.integrations.conftest import TOKEN_ENV, plugin_settings


def make_tracker(gh: FakeGitHub, **settings) -> GitHubTracker:
    config = trackers.validate_settings("github", plugin_settings(gh, **settings))
    return GitHubTracker(config)


def test_get_issue(gh: FakeGitHub) -> None:
    issue = gh.repo("acme/widgets").add_issue(
        "Fix the login redirect!", body="It 500s", labels=["bug", "agent"]
    )
    tracker = make_tracker(gh)

    got = tracker.get_issue(f"#{issue.number}")

    assert got.ref == str(issue.number)
    assert (got.title, got.body, got.labels, got.state) == (
        "Fix the login redirect!",
        "It 500s",
        ("bug", "agent"),
        "open",
    )
    assert got.url == f"https://github.com/acme/widgets/issues/{issue.number}"
    assert got.branch_name == f"feat/{issue.number}-fix-the-login-redirect"
    assert tracker.get_issue(got.url) == got
    assert tracker.get_issue(f"acme/widgets#{issue.number}") == got
    assert (gh.counts["rest"], gh.counts["304"]) == (1, 2)  # re-reads are conditional and free


def test_branch_prefix_and_title_without_slug(gh: FakeGitHub) -> None:
    issue = gh.repo("acme/widgets").add_issue("🚀🚀")
    assert (
        make_tracker(gh, branch_prefix="ao").get_issue(str(issue.number)).branch_name
        == f"ao/issue-{issue.number}"
    )


@pytest.mark.parametrize(
    "ref", ["999", "abc", "1;rm -rf /", "", "other/repo#1", "https://github.com/other/repo/issues/1"]
)
def test_not_found(gh: FakeGitHub, ref: str) -> None:
    gh.repo("acme/widgets").add_issue("exists")
    with pytest.raises(IssueNotFound):
        make_tracker(gh).get_issue(ref)


def test_a_pull_request_is_not_an_issue(gh: FakeGitHub) -> None:
    pull = gh.repo("acme/widgets").add_pull("feat/a")
    with pytest.raises(IssueNotFound, match="pull request"):
        make_tracker(gh).get_issue(str(pull.number))


def test_list_issues_by_label_skips_pull_requests_and_closed(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    a = repo.add_issue("A", labels=["agent:backlog"])
    repo.add_issue("B")
    repo.add_pull("feat/x", labels=["agent:backlog"])
    repo.add_issue("C", labels=["agent:backlog"], state="closed")
    d = repo.add_issue("D", labels=["agent:backlog", "bug"])
    tracker = make_tracker(gh)

    assert [i.ref for i in tracker.list_issues(label="agent:backlog")] == [str(d.number), str(a.number)]
    assert [i.title for i in tracker.list_issues()] == ["D", "B", "A"]
    assert [i.title for i in tracker.list_issues(limit=1)] == ["D"]


def test_list_issues_pages(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    for i in range(120):
        repo.add_issue(f"issue {i}")
    issues = make_tracker(gh).list_issues(limit=110)
    assert len(issues) == 110
    assert gh.counts["rest"] == 2


def test_comment_labels_close(gh: FakeGitHub) -> None:
    issue = gh.repo("acme/widgets").add_issue("Fix login", labels=["agent:backlog", "bug"])
    tracker = make_tracker(gh)

    tracker.comment(str(issue.number), "Working on it in ao-3")
    tracker.set_labels(str(issue.number), add=["agent:in-progress"], remove=["agent:backlog", "not-there"])
    tracker.close(str(issue.number))

    assert [c.body for c in issue.comments] == ["Working on it in ao-3"]
    assert issue.labels == ["bug", "agent:in-progress"]
    assert (issue.state, issue.state_reason) == ("closed", "completed")
    assert tracker.get_issue(str(issue.number)).state == "done"  # closed on GitHub
    assert tracker.list_issues() == []


def test_writes_to_a_missing_issue(gh: FakeGitHub) -> None:
    tracker = make_tracker(gh)
    with pytest.raises(IssueNotFound):
        tracker.comment("404", "x")
    with pytest.raises(IssueNotFound):
        tracker.close("404")


def test_create_issue(gh: FakeGitHub) -> None:
    created = make_tracker(gh).create_issue(title="New thing", body="details", labels=["agent"])
    stored = gh.repo("acme/widgets").issues[int(created.ref)]
    assert (stored.title, stored.body, stored.labels) == ("New thing", "details", ["agent"])


def test_refused_token(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    issue = gh.repo("acme/widgets").add_issue("x")
    monkeypatch.setenv(TOKEN_ENV, "ghp_revoked_token_value")
    with pytest.raises(PermanentIntegrationError, match="GitHub refused the token") as info:
        make_tracker(gh).get_issue(str(issue.number))
    assert "ghp_revoked_token_value" not in str(info.value)

    monkeypatch.setenv(TOKEN_ENV, gh.token)
    gh.fail(403, message="Resource not accessible by personal access token")
    with pytest.raises(PermanentIntegrationError, match="GitHub refused the token"):
        make_tracker(gh).get_issue(str(issue.number))


def test_needs_a_repo(gh: FakeGitHub) -> None:
    with pytest.raises(PermanentIntegrationError, match="no GitHub repository"):
        make_tracker(gh, repo="").get_issue("1")


# --- "blocked by" (GitHub issue dependencies) ----------------------------------------------------
def test_blocked_by_lists_open_blockers_here_and_in_other_repos(gh: FakeGitHub) -> None:
    repo, other = gh.repo("acme/widgets"), gh.add_repo("acme/infra")
    blocker = repo.add_issue("Add the schema")
    done = repo.add_issue("Old prerequisite", state="closed")
    elsewhere = other.add_issue("Provision the bucket")
    target = repo.add_issue("Use the schema")
    free = repo.add_issue("Unrelated")
    repo.block(target, by=blocker)
    repo.block(target, by=done)
    repo.block(target, by=elsewhere, by_repo=other)
    tracker = make_tracker(gh)

    assert tracker.blocked_by(f"#{target.number}") == [str(blocker.number), f"acme/infra#{elsewhere.number}"]
    assert tracker.blocked_by(str(free.number)) == []
    assert [r.path for r in gh.requests] == [
        f"/repos/acme/widgets/issues/{target.number}/dependencies/blocked_by",
        f"/repos/acme/widgets/issues/{free.number}/dependencies/blocked_by",
    ]
    assert tracker.blocked_by(str(target.number)) == [str(blocker.number), f"acme/infra#{elsewhere.number}"]
    assert (gh.counts["rest"], gh.counts["304"]) == (2, 1)  # the re-read is conditional and free


def test_blocked_by_pages_and_a_missing_endpoint_is_no_links(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    target = repo.add_issue("Big one")
    for i in range(105):
        repo.block(target, by=repo.add_issue(f"step {i}"))
    tracker = make_tracker(gh)

    assert len(tracker.blocked_by(str(target.number))) == 105
    assert gh.counts["rest"] == 2
    assert tracker.blocked_by("9999") == []  # 404: no dependencies API here, or no such issue
    with pytest.raises(IssueNotFound):
        tracker.blocked_by("other/repo#1")


def test_fake_dependencies_endpoint_speaks_the_issue_shape(gh: FakeGitHub) -> None:
    repo = gh.repo("acme/widgets")
    blocker, target = repo.add_issue("first"), repo.add_issue("second")
    repo.block(target, by=blocker)
    client = make_tracker(gh).client()

    rows = client.request("GET", f"/repos/acme/widgets/issues/{target.number}/dependencies/blocked_by").data

    assert [(r["number"], r["title"], r["state"]) for r in rows] == [(blocker.number, "first", "open")]
    assert rows[0]["repository_url"] == f"{gh.base_url}/repos/acme/widgets"
    assert {"id", "node_id", "html_url", "labels", "user"} <= set(rows[0])
