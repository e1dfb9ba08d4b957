"""Drift watch on real git branches: each signal found, told once, and put on the timeline."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from reactions.models import Notification, ReactionAttempt
from sessions.models import Event, FlakyCheck, Message, Session
from sessions.watchers import drift
from tests.factories import EventFactory, ProjectFactory, SessionFactory
from tests.helpers.fixtures import git

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _thresholds(settings):
    settings.AO_DRIFT_INTERVAL = 0
    settings.AO_DRIFT_NO_COMMIT_MINUTES = 45
    settings.AO_DRIFT_MAX_LINES = 20
    settings.AO_DRIFT_MAX_FILES = 30
    settings.AO_DRIFT_OUTSIDE_FILES = 2
    settings.AO_DRIFT_SAME_CHECK_CYCLES = 3


@pytest.fixture
def world(repo):
    project = ProjectFactory(key="web", session_prefix="web", path=str(repo.path), tracker="local")

    def worker(n: int, *, title: str = "Fix the parser", **fields):
        ws = repo.root / f"web-{n}"
        git("worktree", "add", "-q", "-b", f"feat/{n}", str(ws), "main", cwd=repo.path)
        defaults = dict(
            project=project, id=f"web-{n}", number=n, branch=f"feat/{n}", workspace_path=str(ws),
            issue_ref="", issue_title=title, activity="active", activity_at=timezone.now(),
        )  # fmt: skip
        return SessionFactory(**{**defaults, **fields}), ws

    return project, repo, worker


def commit(repo, ws, name, text, *, hours_ago: float = 0.0):
    (ws / name).parent.mkdir(parents=True, exist_ok=True)
    (ws / name).write_text(text)
    git("add", "--", name, cwd=ws)
    env = {}
    if hours_ago:
        stamp = (timezone.now() - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        env = {"GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        git("commit", "-q", "-m", f"add {name}", cwd=ws)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return git("rev-parse", "HEAD", cwd=ws)


def test_no_commit_for_long_while_active_is_told_to_a_person_once(world):
    project, repo, worker = world
    session, ws = worker(1)
    Session.objects.filter(pk=session.pk).update(created_at=timezone.now() - timedelta(hours=3))
    sha = commit(repo, ws, "parser.py", "x = 1\n", hours_ago=2)

    found = drift.drift_check(project)

    assert [(s.session.pk, s.kind, s.fingerprint) for s in found] == [("web-1", "no_commit", f"head:{sha}")]
    event = Event.objects.get(kind="drift.no_commit")
    assert event.session_id == "web-1"
    assert "working for 1" in event.summary and f"last commit {sha[:7]}" in event.summary
    assert "notified a person (no orchestrator session)" in event.summary
    notification = Notification.objects.get()
    assert (notification.priority, notification.rule, notification.session_id) == (
        "warning",
        "drift",
        "web-1",
    )
    assert ReactionAttempt.objects.get(rule="drift-no-commit").fingerprint == f"head:{sha}"

    assert drift.drift_check(project) == []  # the same episode: once
    assert Event.objects.filter(kind="drift.no_commit").count() == 1

    commit(repo, ws, "parser.py", "x = 2\n")  # a fresh commit: no drift
    assert drift.drift_check(project) == []


def test_an_idle_agent_is_not_drifting(world):
    project, repo, worker = world
    _session, ws = worker(1, activity_at=timezone.now() - timedelta(hours=1), activity="idle")
    commit(repo, ws, "parser.py", "x = 1\n", hours_ago=2)
    assert drift.drift_check(project) == []


def test_a_growing_diff_is_told_to_the_orchestrator_once_per_size_bucket(world):
    project, repo, worker = world
    orchestrator = SessionFactory(project=project, id="web-orchestrator", number=None, kind="orchestrator")
    session, ws = worker(1)
    commit(repo, ws, "parser.py", "".join(f"line {i}\n" for i in range(30)))

    found = drift.drift_check(project)

    assert [(s.kind, s.fingerprint) for s in found] == [("diff_size", "x1")]
    message = Message.objects.get()
    assert (message.session_id, message.sender, message.sender_name) == (
        orchestrator.pk,
        "system",
        "drift-watch",
    )
    assert "- web-1: diff has grown to 30 lines in 1 files (thresholds 20 lines / 30 files)" in message.text
    assert "course correction" in message.text
    event = Event.objects.get(kind="drift.diff_size", session=session)
    assert event.data["message"] == message.pk
    assert "told the orchestrator web-orchestrator" in event.summary
    assert not Notification.objects.exists()

    assert drift.drift_check(project) == []
    (ws / "more.py").write_text("".join(f"more {i}\n" for i in range(20)))  # uncommitted work counts too
    git("add", "more.py", cwd=ws)
    assert [(s.kind, s.fingerprint) for s in drift.drift_check(project)] == [("diff_size", "x2")]
    assert Message.objects.count() == 2


def test_files_outside_the_area_the_issue_names(world, settings):
    settings.AO_DRIFT_MAX_LINES = 10_000
    project, repo, worker = world
    _session, ws = worker(1, title="Fix the tokenizer in src/parser/ (see src/parser/lex.py)")
    commit(repo, ws, "src/parser/lex.py", "a\n")
    commit(repo, ws, "tests/test_lex.py", "b\n")
    commit(repo, ws, "lib/net.py", "c\n")

    assert drift.drift_check(project) == []  # one file outside: under the threshold of 2

    commit(repo, ws, "tools/deploy.py", "d\n")
    found = drift.drift_check(project)

    assert [s.kind for s in found] == ["out_of_area"]
    assert found[0].data["outside"] == ["lib/net.py", "tools/deploy.py"]
    assert "2 changed files lie outside what the issue names (src/parser/" in found[0].summary
    assert Event.objects.filter(kind="drift.out_of_area").count() == 1


def test_the_same_check_failing_cycle_after_cycle(world):
    project, _repo, worker = world
    session, _ws = worker(1)
    for sha, failed in (("a" * 40, ["lint", "unit"]), ("b" * 40, ["lint"]), ("c" * 40, ["lint", "unit"])):
        EventFactory(session=session, kind="ci.changed", data={"ci": "failing", "failed": failed, "sha": sha})

    found = drift.drift_check(project)

    assert [(s.kind, s.fingerprint) for s in found] == [("same_check", "lint:aaaaaaaaaaaa")]
    assert "check lint has failed on 3 commits in a row (aaaaaaa, bbbbbbb, ccccccc)" in found[0].summary
    assert drift.drift_check(project) == []


def test_a_failure_on_a_commit_where_the_check_flipped_does_not_count(world):
    project, _repo, worker = world
    session, _ws = worker(1)
    FlakyCheck.objects.create(project=project, name="lint", reason="flip", head_sha="b" * 40)
    for sha in ("a" * 40, "b" * 40, "c" * 40):
        EventFactory(
            session=session, kind="ci.changed", data={"ci": "failing", "failed": ["lint"], "sha": sha}
        )
    assert drift.drift_check(project) == []  # a and c: two real failures in a row, not three


def test_a_flip_elsewhere_does_not_hide_the_same_check_failing(world):
    project, _repo, worker = world
    session, _ws = worker(1)
    # lint flipped on some other commit (another PR, or earlier): no evidence about these three
    FlakyCheck.objects.create(project=project, name="lint", reason="flip", head_sha="z" * 40)
    FlakyCheck.objects.create(project=project, name="lint", reason="spread", head_sha="")
    for sha in ("a" * 40, "b" * 40, "c" * 40):
        EventFactory(
            session=session, kind="ci.changed", data={"ci": "failing", "failed": ["lint"], "sha": sha}
        )

    found = drift.drift_check(project)

    assert [(s.kind, s.fingerprint) for s in found] == [("same_check", "lint:aaaaaaaaaaaa")]


def test_the_interval_throttles_checks(world, settings):
    settings.AO_DRIFT_INTERVAL = 300
    project, repo, worker = world
    from django.core.cache import cache

    cache.delete(f"ao:drift:due:{project.pk}")
    session, ws = worker(1)
    commit(repo, ws, "parser.py", "x = 1\n", hours_ago=2)
    assert len(drift.drift_check(project)) == 1
    EventFactory(session=session, kind="note")
    assert drift.drift_check(project) == []  # not due yet, whatever changed


# --- the pure parts -------------------------------------------------------------------------------------
def test_streaks_reset_on_green_and_on_a_failure_without_the_check():
    a, b, c, d = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
    events = [
        {"ci": "failing", "failed": ["lint"], "sha": a},
        {"ci": "passing", "failed": [], "sha": b},
        {"ci": "failing", "failed": ["lint"], "sha": c},
        {"ci": "pending", "failed": [], "sha": d},
        {"ci": "failing", "failed": ["lint"], "sha": d},
        {"ci": "failing", "failed": ["unit"], "sha": a},
    ]
    assert drift.same_check_streaks(events) == {"unit": [a]}
    assert drift.same_check_streaks(events[:5]) == {"lint": [c, d]}


def test_issue_paths_and_area():
    text = "Crash in `sessions/chat.py` and docs/; see https://example.com/a/b.html and README.md, v1.2"
    mentioned = drift.issue_paths(text)
    assert mentioned == ["sessions/chat.py", "docs/", "README.md"]
    changed = [
        "sessions/chat.py",
        "sessions/models.py",
        "docs/x.md",
        "README.md",
        "ao_site/urls.py",
        "tests/t.py",
    ]
    assert drift.outside_area(changed, mentioned) == ["ao_site/urls.py"]
    assert drift.outside_area(changed, []) == []


def test_parse_shortstat():
    assert drift.parse_shortstat(" 3 files changed, 10 insertions(+), 2 deletions(-)") == (3, 12)
    assert drift.parse_shortstat(" 1 file changed, 1 deletion(-)") == (1, 1)
    assert drift.parse_shortstat("") == (0, 0)


# --- diff_size thresholds relative to the issue -----------------------------------------------------
@pytest.mark.parametrize(
    ("labels", "size"),
    [
        (("bug", "size/S"), "s"),
        (("Size: XL",), "xl"),
        (("size-m",), "m"),
        (("size/large",), "l"),
        (("size/tiny", "size/L"), "xs"),  # the first size label wins
        (("size/huge-ish", "sizeable"), ""),
        ((), ""),
    ],
)
def test_size_label(labels, size):
    assert drift.size_label(labels) == size


def test_diff_thresholds_scale_down_from_the_settings():
    t = drift.diff_thresholds
    assert t(max_lines=800, max_files=30) == (800, 30, "")
    assert t(max_lines=800, max_files=30, labels=["size/M"]) == (400, 15, "a size/M issue")
    assert t(max_lines=800, max_files=30, labels=["size/XS"]) == (100, 5, "a size/XS issue")  # the floors
    assert t(max_lines=800, max_files=30, labels=["size/L"]) == (800, 30, "")
    assert t(max_lines=800, max_files=30, mentioned=["src/a.py"]) == (200, 7, "an issue naming 1 path")
    assert t(max_lines=800, max_files=30, mentioned=["a/", "b/", "c/", "d/", "e/"]) == (800, 30, "")
    # a label wins over named paths; the settings stay the upper bound below the floors
    labelled = t(max_lines=800, max_files=30, labels=["size/S"], mentioned=["a/", "b/", "c/", "d/"])
    assert labelled == (200, 7, "a size/S issue")
    assert t(max_lines=50, max_files=3, labels=["size/XS"]) == (50, 3, "")


def test_a_small_issue_drifts_at_a_smaller_diff(world, settings):
    from django.core.cache import cache

    from integrations.registry import plugin_for

    cache.clear()
    settings.AO_DRIFT_MAX_LINES, settings.AO_DRIFT_MAX_FILES = 800, 30
    project, repo, worker = world
    tracker = plugin_for(project, "tracker")
    tracker.create_issue(title="Fix the parser", labels=["size/S"])
    tracker.create_issue(title="Rework the parser")
    _small, ws1 = worker(1, issue_ref="1")
    _plain, ws2 = worker(2, issue_ref="2", title="Rework the parser")
    for ws in (ws1, ws2):
        commit(repo, ws, "parser.py", "".join(f"line {i}\n" for i in range(250)))

    found = drift.drift_check(project)

    assert [(s.session.pk, s.kind, s.fingerprint) for s in found] == [("web-1", "diff_size", "x1")]
    assert found[0].summary == (
        "diff has grown to 250 lines in 1 files (thresholds 200 lines / 7 files, scaled for a size/S issue)"
        " for issue #1"
    )
    assert (found[0].data["max_lines"], found[0].data["max_files"]) == (200, 7)
    cache.clear()
