"""A session's branch is compared with the base its worktree was made from: the default branch as
the project's remote has it (last fetched), not the person's local branch, which lags behind
the remote as PRs merge there and nobody pulls the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from integrations import gitutil
from integrations.records import PullRequestInfo
from reactions.models import Notification
from sessions.models import Event, Membership, Message
from sessions.prs import prsync
from sessions.watchers import drift
from tests.factories import ProjectFactory, SessionFactory, UserFactory
from tests.helpers.fixtures import Repo, git

pytestmark = pytest.mark.django_db

MERGED = [f"billing/module_{i}.py" for i in range(10)]


@pytest.fixture
def behind(repo: Repo, tmp_path: Path):
    return _behind(repo, tmp_path, own_commit=True)


def _behind(repo: Repo, tmp_path: Path, *, own_commit: bool):
    """The checkout's local ``main`` is behind ``origin/main`` by other sessions' merged work
    (fetched, never pulled); a session's worktree starts from ``origin/main`` (and makes one commit)."""
    other = tmp_path / "elsewhere"
    git("clone", "-q", str(repo.origin), str(other), cwd=tmp_path)
    for name in MERGED:
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        (other / name).write_text("x = 1\n")
    git("add", "--", *MERGED, cwd=other)
    git("commit", "-q", "-m", "Merged billing work of web-7", cwd=other)
    git("push", "-q", "origin", "main", cwd=other)
    git("fetch", "-q", "origin", cwd=repo.path)  # what ao's start_point does; main is not pulled
    assert git("rev-parse", "main", cwd=repo.path) != git("rev-parse", "origin/main", cwd=repo.path)

    ws = repo.root / "web-1"
    start = gitutil.start_point(repo.path, remote="origin", branch="main")
    git("worktree", "add", "-q", "-b", "feat/1", str(ws), start, cwd=repo.path)
    if own_commit:
        _own_commit(ws)
    project = ProjectFactory(key="web", session_prefix="web", path=str(repo.path), tracker="local")
    session = SessionFactory(
        project=project, id="web-1", number=1, branch="feat/1", workspace_path=str(ws), issue_ref="",
        issue_title="Fix the tokenizer in src/parser/lex.py", activity="active", activity_at=timezone.now(),
    )  # fmt: skip
    return project, session, ws


def _own_commit(ws: Path) -> None:
    (ws / "src" / "parser").mkdir(parents=True)
    (ws / "src" / "parser" / "lex.py").write_text("".join(f"tok {i}\n" for i in range(3)))
    git("add", "--", "src/parser/lex.py", cwd=ws)
    git("commit", "-q", "-m", "Fix the tokenizer", cwd=ws)


def test_the_session_page_lists_only_the_branchs_own_commits_and_files(behind, client: Client) -> None:
    project, _session, _ws = behind
    viewer = UserFactory(username="viewer")
    Membership.objects.create(user=viewer, project=project, role="viewer")
    client.force_login(viewer)

    body = client.get("/s/web-1/").content.decode()

    panel = body[body.index('id="git-panel"') : body.index("</section>", body.index('id="git-panel"'))]
    assert "Fix the tokenizer" in panel
    assert "src/parser/lex.py | 3 +" in panel
    assert "1 file changed, 3 insertions(+)" in panel
    assert "Merged billing work" not in panel  # another session's commit, merged on the remote
    assert "billing/" not in panel


def test_the_drift_watch_counts_only_the_branchs_own_files(behind, settings) -> None:
    settings.AO_DRIFT_INTERVAL = 0
    settings.AO_DRIFT_MAX_LINES = 10_000
    settings.AO_DRIFT_MAX_FILES = 5
    settings.AO_DRIFT_OUTSIDE_FILES = 2
    project, _session, _ws = behind

    assert drift.drift_check(project) == []  # neither "lie outside what the issue names" nor "grown"

    assert not Event.objects.filter(kind__startswith="drift.").exists()
    assert not Notification.objects.exists() and not Message.objects.exists()


def test_a_pr_on_a_branch_without_commits_of_its_own_is_the_sessions(repo: Repo, tmp_path: Path) -> None:
    """A session that made no commit has nothing to tell its PR from another's: the PR opened on
    its branch (pushed from elsewhere, its head unknown here) is taken as its own. The merged
    work of others that its worktree started from is not a commit of its own."""
    _project, session, _ws = _behind(repo, tmp_path, own_commit=False)
    info = PullRequestInfo(number=5, branch="feat/1", state="open", head_sha="f" * 40)

    assert prsync._head_is_the_sessions(session, info) is True
