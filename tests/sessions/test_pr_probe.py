"""The sweep's PR read detects change before paying for it (issue 17): against the fake GitHub,
whose ETags change whenever what a read returns changes, and which counts every request.

- an unchanged repository costs one conditional request per sweep, answered 304 (no quota), and
  no GraphQL query follows a 304;
- an unchanged PR is not read again; a changed one (new commit, check finished, review, comment,
  merge) is read at the next sweep, alone;
- the probe's ETags are kept where another worker finds them (the cache), and kept only once
  what the probe reported was read: a failed read is reported again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from integrations.github.pool import forget_clients
from sessions.models import Event, Project, PullRequest
from sessions.prs import prsync
from tests.factories import ProjectFactory, SessionFactory
from tests.fakes.github import FakeComment, FakeGitHub

pytestmark = pytest.mark.django_db


@pytest.fixture
def gh(monkeypatch):
    with FakeGitHub() as fake:
        fake.add_repo("acme/web")
        monkeypatch.setenv("GITHUB_TOKEN", fake.token)
        yield fake
    forget_clients()


@pytest.fixture
def project(gh):
    cache.clear()
    return ProjectFactory(
        key="web",
        repo="acme/web",
        scm="github",
        plugin_settings={"scm": {"base_url": gh.base_url, "write_interval": 0, "backoff": 0.01}},
    )


def settle(*pulls):
    """The PRs' last change was a few seconds before the sweep (as between sweeps 30 s apart):
    GitHub's times have whole seconds, and a PR changed in the very second of a look is read
    once more at the next sweep, which these steps do not want to count."""
    for pull in pulls:
        when = (datetime.now(UTC) - timedelta(seconds=10)).replace(microsecond=0)
        # each change moves a PR's time forward, as on GitHub: two settles of one PR in the same
        # second must not give it the same (whole-second) time again, hiding the second change
        previous = getattr(pull, "settled_at", None)
        if previous is not None and when <= previous:
            when = previous + timedelta(seconds=1)
        pull.updated_at = pull.settled_at = when


def sweep(gh, project):
    """One sweep's PR read; what it cost: (GraphQL queries, REST requests charged, 304s)."""
    gh.reset_counts()
    prsync.pull_requests_sweep(project=Project.objects.get(pk=project.pk))
    return gh.counts["graphql"], gh.counts["rest"], gh.counts["304"]


def synced(number):
    return PullRequest.objects.get(number=number).synced_at


def test_only_changed_prs_are_read_and_a_304_costs_nothing(gh, project):
    repo = gh.repo("acme/web")
    pulls = []
    for i in range(3):
        SessionFactory(project=project, branch=f"feat/{i}")
        pull = repo.add_pull(f"feat/{i}")
        repo.add_check_run(pull.head_sha, "test", conclusion="success")
        pulls.append(pull)
    a, b, c = pulls
    settle(*pulls)

    # first sweep: nothing to compare with, so everything is read (and found by branch)
    graphql, _rest, _ = sweep(gh, project)
    assert graphql >= 1
    assert PullRequest.objects.count() == 3

    # the next sweep also records the PRs' base branch (one request, once: a push to it can
    # make them conflict); then, nothing changed: one conditional request, a 304, and no
    # GraphQL query after it
    assert sweep(gh, project) == (0, 1, 1)
    assert sweep(gh, project) == (0, 0, 1)
    before = {p.number: synced(p.number) for p in pulls}

    # a new commit on A (with its CI starting): A alone is read, with REST (its PR, checks,
    # statuses, reviews, review comments): no GraphQL point
    gh.push(a)
    run = repo.add_check_run(a.head_sha, "test", status="in_progress")
    settle(a)
    graphql, rest, _ = sweep(gh, project)
    assert graphql == 0 and rest >= 2
    assert PullRequest.objects.get(number=a.number).head_sha == a.head_sha
    assert PullRequest.objects.get(number=a.number).ci_state == "pending"
    assert synced(b.number) == before[b.number] and synced(c.number) == before[c.number]

    # CI running: the first look at the Actions runs is a 200 (one request, no GraphQL: the
    # runs agree with what was stored); then conditional reads of the PR list and the runs, 304s
    assert sweep(gh, project) == (0, 1, 1)
    assert sweep(gh, project) == (0, 0, 2)

    # A's check finishes: it does not move the PR (GitHub's PR list is unchanged), the runs do
    with gh.lock:
        run.status, run.conclusion, run.completed_at = "completed", "failure", datetime.now(UTC)
    graphql, _rest, _ = sweep(gh, project)
    assert graphql == 0
    assert PullRequest.objects.get(number=a.number).ci_state == "failing"
    assert synced(b.number) == before[b.number] and synced(c.number) == before[c.number]
    assert sweep(gh, project) == (0, 0, 1)  # CI done: back to the one look at the PR list

    # a review on B, a review thread on C: both read at the next sweep, with REST
    gh.add_review(b, state="APPROVED")
    gh.add_thread(c, body="please rename this")
    settle(b, c)
    graphql, _rest, _ = sweep(gh, project)
    assert graphql == 0
    assert PullRequest.objects.get(number=b.number).review_decision == "approved"
    assert PullRequest.objects.get(number=c.number).threads.filter(body="please rename this").exists()
    assert synced(a.number) < synced(b.number)
    assert sweep(gh, project) == (0, 0, 1)

    # a comment (nothing ao stores, but the PR changed): read; a merge: read, and stored
    with gh.lock:
        b.comments.append(FakeComment(id=next(gh._ids), author=gh.user("someone"), body="looks good"))
        b.updated_at = datetime.now(UTC) - timedelta(seconds=5)
    graphql, _rest, _ = sweep(gh, project)
    assert graphql == 0 and synced(b.number) > synced(a.number)
    with gh.lock:
        c.merged, c.state = True, "closed"
        c.merged_at = c.closed_at = c.updated_at = datetime.now(UTC) - timedelta(seconds=4)
    sweep(gh, project)
    assert PullRequest.objects.get(number=c.number).state == "merged"


def test_new_prs_moved_bases_failed_reads_webhooks_and_lost_state(gh, project, settings):
    repo = gh.repo("acme/web")
    SessionFactory(project=project, branch="feat/a")
    waiting = SessionFactory(project=project, branch="feat/b")  # no PR yet
    sweep(gh, project)  # a repository without any PR yet: after the first look, 304s
    assert sweep(gh, project) == (0, 0, 1)
    a = repo.add_pull("feat/a")
    repo.add_check_run(a.head_sha, "test", conclusion="success")
    settle(a)
    sweep(gh, project)
    sweep(gh, project)
    assert sweep(gh, project) == (0, 0, 1)  # a session waiting for its PR costs nothing either

    # its PR is opened: found at the next sweep
    b = repo.add_pull("feat/b")
    repo.add_check_run(b.head_sha, "test", conclusion="success")
    settle(b)
    graphql, _rest, _ = sweep(gh, project)
    assert graphql == 1 and PullRequest.objects.get(number=b.number).session_id == waiting.pk
    assert sweep(gh, project) == (0, 0, 1)

    # the base branch moves (a push straight to it): at the base look (every
    # AO_PR_SYNC_BASE_INTERVAL) the open PRs on it are read, as they may now conflict
    settings.AO_PR_SYNC_BASE_INTERVAL = 0
    with gh.lock:
        a.mergeable, a.mergeable_state = False, "dirty"
        repo.branches["main"] = "f" * 40
    graphql, _rest, _ = sweep(gh, project)
    assert graphql == 0 and PullRequest.objects.get(number=a.number).conflicts
    assert sweep(gh, project)[0] == 0  # the base as it was: 304s
    settings.AO_PR_SYNC_BASE_INTERVAL = 3600

    # a failed read keeps the probe's old state: the change is reported (and read) again
    gh.push(b)
    settle(b)
    gh.fail(502, path=f"/pulls/{b.number}", times=3)  # REST's read fails, and GraphQL's after it
    gh.fail(502, kind="graphql", times=3)
    sweep(gh, project)
    assert PullRequest.objects.get(number=b.number).head_sha != b.head_sha
    Project.objects.filter(pk=project.pk).update(pr_sync_backoff_until=None)
    graphql, _rest, _ = sweep(gh, project)
    assert graphql == 0 and PullRequest.objects.get(number=b.number).head_sha == b.head_sha

    # webhooks arriving: they bring the changes, so a sweep sends not a single request; the
    # probe runs every AO_PR_SYNC_WEBHOOK_INTERVAL, and sees what a missed delivery did not bring
    from sessions.models import WebhookDelivery

    WebhookDelivery.objects.create(project=project, delivery_id="d1", event="ping")
    gh.add_review(a, state="APPROVED")
    settle(a)
    assert sweep(gh, project) == (0, 0, 0)
    settings.AO_PR_SYNC_WEBHOOK_INTERVAL = 0
    # (A conflicts: its mergeable_state, dirty, hides whether branch protection wants more
    # reviews, so the approval's decision is GraphQL's)
    graphql, _rest, _ = sweep(gh, project)
    assert graphql == 1 and PullRequest.objects.get(number=a.number).review_decision == "approved"

    # the kept state is lost (a cache flush): everything is read once, then 304s again; a PR
    # read with the facts ao has stored only gets its sync time moved (nothing recorded)
    cache.clear()
    events, was = Event.objects.count(), synced(a.number)
    graphql, _rest, _ = sweep(gh, project)
    assert graphql >= 1
    assert synced(a.number) > was and Event.objects.count() == events
    # then 304s: the PR list, and the Actions runs (B's new commit has no checks yet)
    assert sweep(gh, project) == (0, 0, 2)


def test_reading_prs_whose_facts_are_stored_costs_a_few_statements_whatever_their_number(gh, project):
    """A full read of unchanged PRs (the hourly safety read, a lost probe state) stores nothing
    per PR: its statements do not grow with the PRs (they were about 30 per PR)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    repo = gh.repo("acme/web")
    for i in range(6):
        SessionFactory(project=project, branch=f"feat/{i}")
        pull = repo.add_pull(f"feat/{i}")
        repo.add_check_run(pull.head_sha, "test", conclusion="success")
        gh.add_thread(pull, body="please rename this")
    prsync.pull_requests_sync(project=project)  # found and stored
    with CaptureQueriesContext(connection) as queries:
        result = prsync.pull_requests_sync(project=project)
    assert len(result.synced) == 6
    assert len(queries) <= 10, [q["sql"][:80] for q in queries]


def test_the_fake_githubs_etags_change_with_what_each_read_returns(gh):
    """What the probe relies on, as GitHub does it: the PR list's ETag moves with a PR's commit,
    review, thread, comment and merge, not with its checks; the Actions runs' and a commit's
    check runs' and status's ETags move with the checks."""
    import requests

    repo = gh.repo("acme/web")
    pull = repo.add_pull("feat/x")
    check = repo.add_check_run(pull.head_sha, "test", status="in_progress")
    session = requests.Session()
    session.headers["Authorization"] = f"token {gh.token}"
    etags: dict[str, str] = {}

    def moved(path: str) -> bool:
        """A conditional GET of ``path``: True when it is a 200 (it changed since the last look)."""
        answer = session.get(gh.base_url + path, headers={"If-None-Match": etags.get(path, "")})
        etags[path] = answer.headers["ETag"]
        return answer.status_code == 200

    pulls = "/repos/acme/web/pulls?state=all&sort=updated&direction=desc&per_page=100"
    runs = "/repos/acme/web/actions/runs?per_page=100"
    paths = [pulls, runs, f"/repos/acme/web/commits/{pull.head_sha}/check-runs"]
    paths.append(f"/repos/acme/web/commits/{pull.head_sha}/status")
    assert all(moved(p) for p in paths)
    assert not any(moved(p) for p in paths)  # nothing changed: all 304

    with gh.lock:
        check.status, check.conclusion = "completed", "success"
    assert [moved(p) for p in paths] == [False, True, True, False]
    repo.add_status(pull.head_sha, "ci/external", "pending")
    assert [moved(p) for p in paths] == [False, False, False, True]
    changes = (
        lambda: gh.push(pull),
        lambda: gh.add_review(pull, state="APPROVED"),
        lambda: gh.add_thread(pull, body="a thread"),
    )
    for i, change in enumerate(changes):
        change()
        # each change a second later than the one before (GitHub's times have whole seconds)
        pull.updated_at = datetime.now(UTC) - timedelta(minutes=10) + timedelta(seconds=i)
        assert moved(pulls)
        assert not moved(pulls)


def test_a_rerun_of_finished_ci_is_seen_at_the_next_look_at_the_runs(gh, project, settings):
    """A person re-runs a failed Actions job: GitHub moves neither the PR nor its head (the run's
    attempt goes up, a new job queues). ao looks at the runs of PRs whose CI has finished when it
    looks at their base branches (AO_PR_SYNC_BASE_INTERVAL, or any sweep that reads the runs for
    CI still running) and reads a PR whose run came back or has a new attempt: its CI state does
    not stay "failing" until the hourly complete read."""
    repo = gh.repo("acme/web")
    SessionFactory(project=project, branch="feat/a")
    pull = repo.add_pull("feat/a")
    job = repo.add_check_run(pull.head_sha, "test", conclusion="failure")
    settle(pull)
    sweep(gh, project)
    sweep(gh, project)
    assert PullRequest.objects.get(number=pull.number).ci_state == "failing"

    settings.AO_PR_SYNC_BASE_INTERVAL = 0  # the bases (and finished CI's runs) are looked at every sweep
    sweep(gh, project)  # the first look at the runs: nothing to compare with yet, nothing read
    assert sweep(gh, project)[0:2] == (0, 0)  # then conditional reads only: 304s

    # "Re-run failed jobs": a new job queues in the same run
    (again,) = repo.rerun(job.run_id)
    sweep(gh, project)
    assert PullRequest.objects.get(number=pull.number).ci_state == "pending"

    # it passes (CI running is looked at every sweep)
    with gh.lock:
        again.status, again.conclusion, again.completed_at = "completed", "success", datetime.now(UTC)
    sweep(gh, project)
    assert PullRequest.objects.get(number=pull.number).ci_state == "passing"
    sweep(gh, project)

    # a re-run that starts and fails between two looks: the run's attempt tells
    (third,) = repo.rerun(job.run_id, failed_only=False)
    with gh.lock:
        third.status, third.conclusion, third.completed_at = "completed", "failure", datetime.now(UTC)
    sweep(gh, project)
    assert PullRequest.objects.get(number=pull.number).ci_state == "failing"
