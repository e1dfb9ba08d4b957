"""Commit trailers: commits in an ao worktree name the session, the agent and the model, through a
static hook in the worktree's own hooks dir; hostile values cannot reach a shell."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sessions.agents.trailers import PREPARE_COMMIT_MSG, workspace_commit_trailers, workspace_model_record
from tests.factories import SessionFactory
from tests.helpers.fixtures import GIT_IDENTITY, git

pytestmark = pytest.mark.django_db


def commit(cwd: Path, name: str, *extra: str) -> dict[str, list[str]]:
    (cwd / name).write_text(name)
    git("add", "--", name, cwd=cwd)
    git("commit", "-q", "-m", f"add {name}", *extra, cwd=cwd)
    trailers: dict[str, list[str]] = {}
    for line in git("log", "-1", "--format=%(trailers:only,unfold)", cwd=cwd).splitlines():
        key, _, value = line.partition(": ")
        trailers.setdefault(key, []).append(value)
    return trailers


@pytest.fixture
def worktree(repo) -> Path:
    path = repo.root / "p1-1"
    git("worktree", "add", "-q", "-b", "feat/one", str(path), "main", cwd=repo.path)
    return path


def test_commits_carry_the_session_and_agent_trailers(repo, worktree) -> None:
    session = SessionFactory(agent="claude-code", model="claude-opus-4")

    assert workspace_commit_trailers(worktree, session) is True

    trailers = commit(worktree, "a.txt")
    assert trailers == {
        "Ao-Session": [session.id],
        "Ao-Agent": ["claude-code"],
        "Ao-Model": ["claude-opus-4"],
    }
    # --no-verify skips pre-commit and commit-msg, not prepare-commit-msg
    assert commit(worktree, "b.txt", "--no-verify")["Ao-Session"] == [session.id]
    # amending keeps one trailer per key
    git("commit", "-q", "--amend", "--no-edit", cwd=worktree)
    assert git("log", "-1", "--format=%(trailers:key=Ao-Session,valueonly)", cwd=worktree) == session.id
    # the project's own checkout and its other worktrees are untouched
    assert commit(repo.path, "main.txt") == {}
    assert not (repo.path / ".git" / "hooks" / "prepare-commit-msg").exists()
    # the hooks live outside the working tree: nothing to commit by accident
    assert git("status", "--porcelain", cwd=worktree) == ""


def test_the_repositorys_own_hooks_still_run(repo, worktree) -> None:
    marker = repo.path.parent / "pre-commit-ran"
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    hook.chmod(0o755)
    session = SessionFactory(agent="codex", model="")

    workspace_commit_trailers(worktree, session)
    trailers = commit(worktree, "c.txt")

    assert marker.exists()
    assert trailers == {"Ao-Session": [session.id], "Ao-Agent": ["codex"]}


def test_set_up_twice_is_harmless(repo, worktree) -> None:
    session = SessionFactory(agent="aider", model="gpt-5")
    workspace_commit_trailers(worktree, session)
    workspace_commit_trailers(worktree, session)

    assert git("config", "--get", "ao.hooksdir", cwd=worktree) == str(
        (repo.path / ".git" / "hooks").resolve()
    )
    assert commit(worktree, "d.txt") == {
        "Ao-Session": [session.id],
        "Ao-Agent": ["aider"],
        "Ao-Model": ["gpt-5"],
    }


def test_hostile_values_cannot_inject_into_the_hook(repo, worktree, tmp_path) -> None:
    pwned = tmp_path / "PWNED"
    session = SessionFactory(
        agent=f'x"; touch {pwned}; echo "',
        model=f"$(touch {pwned})`touch {pwned}`\nAo-Session: evil-1",
    )

    workspace_commit_trailers(worktree, session)
    hook = Path(git("config", "--get", "core.hooksPath", cwd=worktree)) / "prepare-commit-msg"
    assert hook.read_text() == PREPARE_COMMIT_MSG  # static: no data in the script
    trailers = commit(worktree, "e.txt")

    assert not pwned.exists()
    assert trailers["Ao-Session"] == [session.id]
    assert len(trailers["Ao-Agent"]) == 1 and len(trailers["Ao-Model"]) == 1
    assert all(c.isalnum() or c in "._:/@+-" for c in trailers["Ao-Agent"][0] + trailers["Ao-Model"][0])

    # even a value written to git config directly (bypassing ao's filter) stays data
    env = {**os.environ, **GIT_IDENTITY}
    subprocess.run(
        ["git", "config", "--worktree", "ao.agent", f"$(touch {pwned})\nAo-Session: evil-2"],
        cwd=worktree, env=env, check=True, timeout=30,
    )  # fmt: skip
    trailers = commit(worktree, "f.txt")
    assert not pwned.exists()
    assert trailers["Ao-Session"] == [session.id]
    assert git("log", "-1", "--format=%(trailers:key=Ao-Session,valueonly)", cwd=worktree) == session.id
    assert all("\n" not in v and "$" not in v and "(" not in v for v in trailers["Ao-Agent"])


def test_not_a_git_worktree_is_logged_not_raised(tmp_path, caplog) -> None:
    session = SessionFactory()
    assert workspace_commit_trailers(tmp_path, session) is False
    assert "commit trailers" in caplog.text


def test_session_start_sets_up_the_trailers(repo, tmp_path, settings) -> None:
    """The real start path (worktree workspace, process runtime, a stand-in `claude`)."""
    from sessions.agents import operating, starting
    from tests.factories import ProjectFactory

    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    shim = tmp_path / "claude"
    shim.write_text("#!/bin/sh\nexit 0\n")
    shim.chmod(0o755)
    project = ProjectFactory(
        key="webapp", session_prefix="web", path=str(repo.path), agent="claude-code", runtime="process",
        workspace="worktree", tracker="local", plugin_settings={"agent": {"binary": str(shim)}},
    )  # fmt: skip
    session = SessionFactory(project=project, id="web-1", number=1, phase="spawning", status="spawning",
                             branch="", issue_ref="", prompt="Say hi", agent="claude-code", model="opus")  # fmt: skip

    assert starting.session_start(session_id=session.id) is True

    session.refresh_from_db()
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    assert commit(workspace, "g.txt") == {
        "Ao-Session": ["web-1"],
        "Ao-Agent": ["claude-code"],
        "Ao-Model": ["opus"],
    }
    operating.session_kill(session=session)


def test_sessions_spawned_at_once_all_get_their_trailers(repo) -> None:
    """Each set-up writes ``extensions.worktreeConfig`` into the checkout's one .git/config; git
    refuses a writer while another holds config.lock, which left sessions spawned at once without
    trailers (logged, and their commits never named them). They now take turns."""
    from concurrent.futures import ThreadPoolExecutor

    trees = []
    for n in range(12):
        path = repo.root / f"p1-{n}"
        git("worktree", "add", "-q", "-b", f"feat/{n}", str(path), "main", cwd=repo.path)
        trees.append((path, SessionFactory(agent="claude-code", model="")))

    with ThreadPoolExecutor(max_workers=12) as pool:
        done = list(pool.map(lambda tree: workspace_commit_trailers(*tree), trees))

    assert done == [True] * 12
    for path, session in trees:
        assert commit(path, "x.txt")["Ao-Session"] == [session.id]


def test_a_new_model_is_recorded_where_trailers_are_set_up_and_skipped_quietly_where_none_are(
    repo, worktree, caplog
) -> None:
    """The orchestrator's worktree gets no trailers (it makes no commits): the model its agent
    reports is not written there, and that is no warning at every reading (it was one, from git:
    `--worktree` needs per-worktree config, which only a worker's trailers turn on)."""
    assert workspace_model_record(worktree, "claude-sonnet-4") is False
    assert "not updated" not in caplog.text

    session = SessionFactory(agent="claude-code", model="claude-opus-4")
    assert workspace_commit_trailers(worktree, session) is True
    assert workspace_model_record(worktree, "claude-sonnet-4") is True
    assert commit(worktree, "m.txt")["Ao-Model"] == ["claude-sonnet-4"]
