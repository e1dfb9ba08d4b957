"""Storing PR facts from the SCM and deriving status from them (through a scripted SCM plugin)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.base import SCM, PluginConfig, TransientIntegrationError
from integrations.records import CheckInfo, PullRequestInfo, ThreadInfo
from integrations.registry import scms
from sessions.models import CheckRun, Event, PullRequest, ReviewThread, WebhookDelivery
from sessions.prs import prsync
from tests.factories import ProjectFactory, SessionFactory

pytestmark = pytest.mark.django_db


class ScriptedSCM(SCM):
    """An SCM whose answers the test sets; it records every call it gets."""

    class Config(PluginConfig):
        pass

    prs: dict[int, PullRequestInfo] = {}
    calls: list[tuple] = []
    fail: Exception | None = None

    def find_pull_requests(self, *, branches, since=None):
        self.calls.append(("find", tuple(branches)))
        if self.fail:
            raise self.fail
        return {pr.branch: pr for pr in self.prs.values() if pr.branch in branches}

    def fetch_pull_requests(self, *, numbers, previous=None, complete=False):
        self.calls.append(("fetch", tuple(numbers), tuple(sorted(previous or {}))))
        if self.fail:
            raise self.fail
        return {n: self.prs[n] for n in numbers if n in self.prs}

    def merge(self, *, number, method="squash", expected_head_sha=""):
        raise NotImplementedError

    def comment(self, *, number, body):
        raise NotImplementedError


@pytest.fixture
def scm():
    saved = dict(scms._plugins)
    scms.add("scripted", ScriptedSCM)
    ScriptedSCM.prs, ScriptedSCM.calls, ScriptedSCM.fail = {}, [], None
    yield ScriptedSCM
    scms._plugins.clear()
    scms._plugins.update(saved)


def pr(number=5, branch="feat/login", sha="a" * 40, checks=(), **kw) -> PullRequestInfo:
    return PullRequestInfo(number=number, branch=branch, head_sha=sha, base_branch="main", title="Fix login",
                           url=f"https://example.test/pull/{number}", checks=tuple(checks), **kw)  # fmt: skip


FAIL = CheckInfo(name="lint", status="completed", conclusion="failure", log_excerpt="E501 line too long")
PASS = CheckInfo(name="test", status="completed", conclusion="success")
RUNNING = CheckInfo(name="test", status="in_progress")


@pytest.fixture
def session(scm):
    project = ProjectFactory(scm="scripted")
    return SessionFactory(project=project, branch="feat/login")


def kinds(session) -> list[str]:
    return list(Event.objects.filter(session=session).order_by("pk").values_list("kind", flat=True))


def test_pr_found_by_branch_is_linked_and_status_follows(scm, session):
    scm.prs = {5: pr(checks=[RUNNING])}

    result = prsync.pull_requests_sync(project=session.project)

    assert result.opened == [5]
    stored = PullRequest.objects.get(session=session)
    assert (stored.number, stored.ci_state, stored.head_sha) == (5, "pending", "a" * 40)
    session.refresh_from_db()
    assert (session.status, session.zone) == ("ci_pending", "pending")
    assert kinds(session) == ["pr.opened", "ci.changed", "status.changed"]
    # one batched find, which brings the PR's state with it: no second read
    assert [c[0] for c in scm.calls] == ["find"]


def test_ci_failure_is_recorded_once_and_again_for_a_new_commit(scm, session):
    scm.prs = {5: pr(checks=[FAIL, PASS])}
    prsync.pull_requests_sync(project=session.project)
    prsync.pull_requests_sync(project=session.project)  # same facts observed twice

    session.refresh_from_db()
    assert (session.status, session.zone) == (
        "ci_failed",
        "working",
    )  # handed to the agent by the ci-failed rule
    ci_events = Event.objects.filter(session=session, kind="ci.changed")
    assert ci_events.count() == 1
    assert ci_events.get().data == {"ci": "failing", "failed": ["lint"], "sha": "a" * 40}
    assert CheckRun.objects.get(name="lint").log_excerpt == "E501 line too long"

    # the second sync passed the stored facts as `previous` and skipped `find`
    assert scm.calls[-1] == ("fetch", (5,), (5,))

    scm.prs = {5: pr(sha="b" * 40, checks=[FAIL])}  # new push, same failing check
    prsync.pull_requests_sync(project=session.project)
    assert Event.objects.filter(session=session, kind="ci.changed").count() == 2
    assert Event.objects.filter(session=session, kind="pr.pushed").count() == 1
    # both commits' checks are kept
    assert set(CheckRun.objects.values_list("head_sha", flat=True)) == {"a" * 40, "b" * 40}


def test_reviews_threads_and_merge(scm, session):
    thread = ThreadInfo(
        external_id="T1", path="app.py", line=3, author="ana", author_association="MEMBER", body="rename"
    )
    scm.prs = {5: pr(checks=[PASS], review_decision="changes_requested", threads=(thread,))}
    prsync.pull_requests_sync(project=session.project)
    session.refresh_from_db()
    assert session.status == "changes_requested"
    assert ReviewThread.objects.get().body == "rename"

    scm.prs = {5: pr(checks=[PASS], review_decision="approved", mergeable=True)}
    prsync.pull_requests_sync(project=session.project)
    session.refresh_from_db()
    assert (session.status, session.zone) == ("mergeable", "merge")

    scm.prs = {5: pr(checks=[PASS], review_decision="approved", state="merged")}
    prsync.pull_requests_sync(project=session.project)
    session.refresh_from_db()
    assert (session.status, session.zone) == ("merged", "done")
    assert "pr.merged" in kinds(session)


def test_transient_failure_keeps_facts_and_marks_them_stale(scm, session):
    scm.prs = {5: pr(checks=[FAIL])}
    prsync.pull_requests_sync(project=session.project)
    events_before = Event.objects.count()

    scm.fail = TransientIntegrationError("GitHub 502")
    result = prsync.pull_requests_sync(project=session.project)

    assert result.stale and "502" in result.error
    stored = PullRequest.objects.get()
    assert stored.stale_since is not None
    assert stored.ci_state == "failing"
    session.refresh_from_db()
    assert session.status == "ci_failed"
    assert Event.objects.count() == events_before

    # polling backs off (doubling) and resumes
    project = session.project
    project.refresh_from_db()
    assert project.pr_sync_failures == 1 and "502" in project.pr_sync_error
    PullRequest.objects.update(ci_state="pending")  # would be read every sweep, but for the back-off
    assert prsync.pr_sync_plan(project=project) == []
    later = timezone.now() + prsync.BACKOFF_BASE + timedelta(seconds=1)
    assert prsync.pr_sync_plan(project=project, now=later) == [session.pk]
    prsync.pull_requests_sync(project=project)
    project.refresh_from_db()
    assert project.pr_sync_failures == 2
    assert project.pr_sync_backoff_until - timezone.now() > prsync.BACKOFF_BASE

    scm.fail = None
    prsync.pull_requests_sync(project=project)
    assert PullRequest.objects.get().stale_since is None
    project.refresh_from_db()
    assert (project.pr_sync_failures, project.pr_sync_backoff_until, project.pr_sync_error) == (0, None, "")


def test_sync_plan_reads_only_what_can_have_changed(scm, session, settings):
    settings.AO_PR_SYNC_IDLE_INTERVAL = 150
    settings.AO_PR_SYNC_WEBHOOK_INTERVAL = 600
    project = session.project
    waiting = SessionFactory(project=project, branch="feat/waiting", phase="running")
    assert prsync.pr_sync_plan(project=project) is prsync.ALL  # never synced

    scm.prs = {5: pr(checks=[PASS], review_decision="review_required", mergeable=True)}
    prsync.pull_requests_sync(project=project)
    project.refresh_from_db()
    # PR known and settled: only the session still without a PR is read until the safety interval
    assert prsync.pr_sync_plan(project=project) == [waiting.pk]
    PullRequest.objects.update(ci_state="pending")
    assert sorted(prsync.pr_sync_plan(project=project)) == sorted([session.pk, waiting.pk])
    assert prsync.pr_sync_plan(project=project, now=timezone.now() + timedelta(seconds=151)) is prsync.ALL

    # a partial sync does not restart the safety interval
    last = project.last_pr_sync_at
    prsync.pull_requests_sync(project=project, session_ids=[session.pk])
    project.refresh_from_db()
    assert project.last_pr_sync_at == last

    # while webhooks arrive, they bring the changes: only the longer safety sync remains
    WebhookDelivery.objects.create(project=project, delivery_id="d1", event="check_run")
    assert prsync.pr_sync_plan(project=project) == []
    assert prsync.pr_sync_plan(project=project, now=timezone.now() + timedelta(seconds=151)) == []
    assert prsync.pr_sync_plan(project=project, now=timezone.now() + timedelta(seconds=601)) is prsync.ALL
    # mergeability not computed yet (GitHub, after a push to the head or the base): read again
    PullRequest.objects.update(mergeable=None)
    assert prsync.pr_sync_plan(project=project) == [session.pk]


def test_unknown_scm_plugin_is_a_configuration_error(session):
    from integrations.registry import ConfigurationError

    session.project.scm = "nope"
    session.project.save()
    with pytest.raises(ConfigurationError, match="unknown scm plugin 'nope'"):
        prsync.pull_requests_sync(project=session.project)


def _statements_to_store(session, info: PullRequestInfo) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        prsync.pull_request_record(project=session.project, session=session, info=info)
    return len(queries)


def test_storing_a_changed_pr_costs_the_same_statements_whatever_its_checks_and_threads(scm):
    """A changed PR's checks and threads are read, inserted and updated in a statement each (for
    all of them), and its timeline entries inserted together: the statements to store it do not
    grow with its number of checks or threads. Counted, not timed."""
    project = ProjectFactory(scm="scripted")
    counts = {}
    for k in (1, 8):
        session = SessionFactory(project=project, branch=f"feat/{k}")
        running = [CheckInfo(name=f"c{i}", status="in_progress") for i in range(k)]
        done = [CheckInfo(name=f"c{i}", status="completed", conclusion="success") for i in range(k)]
        threads = [ThreadInfo(external_id=f"T{k}-{i}", path="a.py", line=i, body="rename") for i in range(k)]
        first = pr(number=k, branch=f"feat/{k}", checks=done, threads=tuple(threads))
        prsync.pull_request_record(project=project, session=session, info=first)
        # a new commit: new checks, every thread edited, CI and head change (two timeline entries)
        edited = tuple(replace(t, body="rename it") for t in threads)
        pushed = replace(first, head_sha="b" * 40, checks=tuple(running), threads=edited)
        # the same commit's checks finish, threads resolved
        finished = replace(
            pushed, checks=tuple(done), threads=tuple(replace(t, resolved=True) for t in edited)
        )
        counts[k] = [_statements_to_store(session, info) for info in (pushed, finished)]
        assert list(CheckRun.objects.filter(pull_request__number=k, head_sha="b" * 40).values_list(
            "name", "status", "conclusion")) == [(c.name, c.status, c.conclusion) for c in done]  # fmt: skip
        assert (
            list(ReviewThread.objects.filter(pull_request__number=k).values_list("body", "resolved"))
            == [("rename it", True)] * k
        )
        assert kinds(session) == ["pr.opened", "ci.changed", "status.changed", "pr.pushed", "ci.changed",
                                  "status.changed", "ci.changed", "status.changed"]  # fmt: skip
    assert counts[8] == counts[1], counts
