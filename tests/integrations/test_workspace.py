from __future__ import annotations

import os
from pathlib import Path

import pytest

from integrations import gitutil
from integrations.base import CommandOutput, PermanentIntegrationError, WorkspaceRefused
from integrations.registry import workspaces
from integrations.workspace.clone import CloneWorkspace
from integrations.workspace.worktree import WorktreeWorkspace
from tests.helpers.fixtures import Repo, git


def worktrees(repo: Repo) -> list[str]:
    out = git("worktree", "list", "--porcelain", cwd=repo.path)
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def test_plugins_are_registered_with_config_models() -> None:
    assert workspaces.get("worktree") is WorktreeWorkspace
    assert workspaces.get("clone") is CloneWorkspace
    assert workspaces.create("clone", {"source": "origin"}).config.source == "origin"


# --- worktree ---------------------------------------------------------------------------------------
def test_worktree_create_and_remove(repo: Repo) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-1", branch="feat/x", base="main")
    assert path == (repo.root / "ao-1").resolve()
    assert (path / "README.md").read_text() == "hello\n"
    assert git("symbolic-ref", "--short", "HEAD", cwd=path) == "feat/x"
    assert str(path) in worktrees(repo)

    ws.remove(repo_path=repo.path, root=repo.root, path=path)

    assert not path.exists()
    assert str(path) not in worktrees(repo)
    assert gitutil.branch_exists(repo.path, "feat/x")  # the branch (and its work) is kept


def test_worktree_with_hostile_branch_never_reaches_a_shell(repo: Repo, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    branch = f"x$(touch {pwned.name})`touch {pwned.name}`;'\"".replace(" ", "")
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-2", branch=branch, base="main")
    assert git("symbolic-ref", "--short", "HEAD", cwd=path) == branch
    assert path.parent == repo.root.resolve()
    assert not pwned.exists() and not (repo.path / pwned.name).exists() and not (path / pwned.name).exists()


@pytest.mark.parametrize(
    "title",
    ["$(touch PWNED)", "`touch PWNED`", "a; touch PWNED", "'\"quotes\"'", "new\nline", "../../../etc",
     "-b evil", "Ünïcödé ☃"],
)  # fmt: skip
def test_hostile_titles_through_branch_helper_into_worktree(repo: Repo, title: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    title = title.replace("PWNED", str(pwned))
    branch = gitutil.branch_name_for(session_id="ao-3", issue_title=title, cwd=repo.path)
    path = WorktreeWorkspace().create(
        repo_path=repo.path, root=repo.root, name="ao-3", branch=branch, base="main"
    )
    assert path.parent == repo.root.resolve()
    assert git("symbolic-ref", "--short", "HEAD", cwd=path) == branch
    assert sorted(p.name for p in repo.root.iterdir()) == ["ao-3"]
    assert not pwned.exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "-x", "", "a\nb"])
def test_workspace_names_cannot_escape_root(repo: Repo, name: str) -> None:
    with pytest.raises(PermanentIntegrationError):
        WorktreeWorkspace().create(
            repo_path=repo.path, root=repo.root, name=name, branch="feat/y", base="main"
        )
    assert list(repo.root.iterdir()) == []


def test_invalid_branch_and_base_are_refused(repo: Repo) -> None:
    ws = WorktreeWorkspace()
    with pytest.raises(PermanentIntegrationError):
        ws.create(repo_path=repo.path, root=repo.root, name="ao-4", branch="-delete", base="main")
    with pytest.raises(PermanentIntegrationError):
        ws.create(repo_path=repo.path, root=repo.root, name="ao-4", branch="ok", base="--orphan")
    with pytest.raises(PermanentIntegrationError):
        ws.create(repo_path=repo.path, root=repo.root, name="ao-4", branch="ok", base="no-such-branch")
    assert list(repo.root.iterdir()) == []
    assert not gitutil.branch_exists(repo.path, "ok")


def test_existing_branch_is_checked_out_again(repo: Repo) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-5", branch="feat/again", base="main")
    sha = repo.commit_file(path, "work.txt")
    git("push", "-q", "origin", "feat/again", cwd=path)
    ws.remove(repo_path=repo.path, root=repo.root, path=path)

    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-5", branch="feat/again", base="main")
    assert git("rev-parse", "HEAD", cwd=path) == sha


def test_remove_refuses_unpushed_commits_unless_forced(repo: Repo) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-6", branch="feat/unpushed", base="main")
    repo.commit_file(path, "work.txt", message="precious work")

    with pytest.raises(WorkspaceRefused, match=r"commits that are on no remote.*precious work"):
        ws.remove(repo_path=repo.path, root=repo.root, path=path)
    assert (path / "work.txt").exists()
    assert str(path) in worktrees(repo)

    git("push", "-q", "origin", "feat/unpushed", cwd=path)
    ws.remove(repo_path=repo.path, root=repo.root, path=path)
    assert not path.exists()


def test_remove_refuses_dirty_tree_unless_forced(repo: Repo) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-7", branch="feat/dirty", base="main")
    (path / "scratch.txt").write_text("uncommitted\n")

    with pytest.raises(WorkspaceRefused, match=r"uncommitted changes \(\?\? scratch.txt\)"):
        ws.remove(repo_path=repo.path, root=repo.root, path=path)
    assert (path / "scratch.txt").exists()

    ws.remove(repo_path=repo.path, root=repo.root, path=path, force=True)
    assert not path.exists()
    assert str(path) not in worktrees(repo)


def test_remove_refuses_paths_outside_root_and_the_project_checkout(repo: Repo, tmp_path: Path) -> None:
    ws = WorktreeWorkspace()
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo.root / "sneaky").symlink_to(outside)
    for path in (outside, repo.root / "sneaky", repo.root / ".." / ".." / "outside", repo.root, tmp_path):
        with pytest.raises(WorkspaceRefused, match=r"not inside ao's managed root|project's own checkout"):
            ws.remove(repo_path=repo.path, root=repo.root, path=path, force=True)
    with pytest.raises(WorkspaceRefused, match="project's own checkout"):
        ws.remove(repo_path=repo.path, root=repo.path.parent, path=repo.path, force=True)
    # root inside the project checkout still never removes the checkout itself
    with pytest.raises(WorkspaceRefused):
        ws.remove(repo_path=repo.path, root=repo.path, path=repo.path, force=True)
    assert outside.exists() and (repo.path / "README.md").exists()


def test_remove_of_a_missing_workspace_is_a_no_op_and_prunes(repo: Repo) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-8", branch="feat/gone", base="main")
    import shutil

    shutil.rmtree(path)
    ws.remove(repo_path=repo.path, root=repo.root, path=path)
    assert str(path) not in worktrees(repo)


def test_remove_refuses_a_stray_directory_unless_forced(repo: Repo) -> None:
    stray = repo.root / "ao-9"
    stray.mkdir()
    ws = WorktreeWorkspace()
    with pytest.raises(WorkspaceRefused, match="not a worktree"):
        ws.remove(repo_path=repo.path, root=repo.root, path=stray)
    ws.remove(repo_path=repo.path, root=repo.root, path=stray, force=True)
    assert not stray.exists()


# --- setup: symlinks and post_create ---------------------------------------------------------------
def test_setup_links_files_and_runs_argv_commands(repo: Repo, tmp_path: Path) -> None:
    (repo.path / ".env").write_text("SECRET=1\n")
    (repo.path / "scripts").mkdir()
    (repo.path / "scripts" / "setup.sh").write_text('echo "setup ran in $(pwd)"\n')
    git("add", "scripts/setup.sh", cwd=repo.path)
    git("commit", "-q", "-m", "setup script", cwd=repo.path)
    git("push", "-q", "origin", "main", cwd=repo.path)
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-10", branch="feat/setup", base="main")
    pwned = tmp_path / "pwned"

    results = ws.setup(
        repo_path=repo.path,
        path=path,
        symlinks=[".env", "missing.txt"],
        post_create=[
            ["python3", "-c", "import sys; print('args', sys.argv[1:])", f"$(touch {pwned})"],
            "scripts/setup.sh",
        ],
    )

    assert (path / ".env").is_symlink() and (path / ".env").read_text() == "SECRET=1\n"
    assert [r.output for r in results[:2]] == [
        "linked .env",
        "skipped: missing.txt does not exist in the project",
    ]
    assert results[2].ok and results[2].output == f"args ['$(touch {pwned})']\n"
    assert results[3].ok and results[3].output == f"setup ran in {path}\n"
    assert not pwned.exists()
    # our own symlink does not make the workspace "dirty"
    (repo.path / ".gitignore").write_text("")  # even when .env is not ignored
    ws.remove(repo_path=repo.path, root=repo.root, path=path)
    assert not path.exists() and (repo.path / ".env").read_text() == "SECRET=1\n"


def test_setup_stops_at_first_failure_and_captures_timeouts(repo: Repo) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-11", branch="feat/fail", base="main")
    results = ws.setup(
        repo_path=repo.path,
        path=path,
        post_create=[["sh", "-c", "echo oops; exit 3"], ["touch", "never"]],
    )
    assert [(r.returncode, r.output) for r in results] == [(3, "oops\n")]
    assert not (path / "never").exists()

    (timed_out,) = ws.setup(repo_path=repo.path, path=path, post_create=[["sleep", "5"]], timeout=0.2)
    assert timed_out.timed_out and timed_out.returncode is None and not timed_out.ok

    (missing,) = ws.setup(repo_path=repo.path, path=path, post_create=[["no-such-binary-ao"]])
    assert missing == CommandOutput(("no-such-binary-ao",), None, missing.output, missing.duration_s)
    assert "could not start" in missing.output


@pytest.mark.parametrize("entry", ["/etc/passwd", "../project/README.md", "..", "a/../../x"])
def test_symlinks_escaping_the_project_are_refused(repo: Repo, entry: str) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-12", branch="feat/links", base="main")
    with pytest.raises(PermanentIntegrationError, match=r"relative|escapes"):
        ws.setup(repo_path=repo.path, path=path, symlinks=[entry])
    assert sorted(os.listdir(path)) == [".git", ".gitignore", "README.md"]


def test_post_create_strings_are_split_into_words_never_given_to_a_shell(repo: Repo) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-13", branch="feat/cmds", base="main")
    (step,) = ws.setup(
        repo_path=repo.path, path=path, post_create=["echo 'a b' hi; touch pwned && echo $HOME `id`"]
    )
    assert step.ok
    assert step.argv == ("echo", "a b", "hi;", "touch", "pwned", "&&", "echo", "$HOME", "`id`")
    assert step.output.strip() == "a b hi; touch pwned && echo $HOME `id`"
    assert not (path / "pwned").exists()


@pytest.mark.parametrize("entry", ["", "   ", "unterminated 'quote", [], ["ok", 1]])
def test_post_create_malformed_entries_are_refused(repo: Repo, entry) -> None:
    ws = WorktreeWorkspace()
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-13", branch="feat/cmds", base="main")
    with pytest.raises(PermanentIntegrationError):
        ws.setup(repo_path=repo.path, path=path, symlinks=[".env"], post_create=[entry])
    assert not (path / ".env").exists()


# --- clone ------------------------------------------------------------------------------------------
def test_clone_create_points_at_the_real_origin_and_removes_safely(repo: Repo) -> None:
    repo.commit_file(repo.path, "local.txt", message="unpushed in checkout")  # main is ahead of origin
    ws = CloneWorkspace()
    path = ws.create(
        repo_path=repo.path, root=repo.root, name="ao-20", branch="feat/clone", base="origin/main"
    )

    assert git("symbolic-ref", "--short", "HEAD", cwd=path) == "feat/clone"
    assert git("remote", "get-url", "origin", cwd=path) == str(repo.origin)
    assert not (path / "local.txt").exists()
    ws.remove(repo_path=repo.path, root=repo.root, path=path)  # nothing unpushed on origin/main's commit
    assert not path.exists()

    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-21", branch="feat/clone2", base="main")
    with pytest.raises(WorkspaceRefused, match="unpushed in checkout"):
        ws.remove(repo_path=repo.path, root=repo.root, path=path)
    git("push", "-q", "origin", "feat/clone2", cwd=path)
    (path / "dirty.txt").write_text("x")
    with pytest.raises(WorkspaceRefused, match="uncommitted"):
        ws.remove(repo_path=repo.path, root=repo.root, path=path)
    ws.remove(repo_path=repo.path, root=repo.root, path=path, force=True)
    assert not path.exists()
    assert gitutil.resolve_commit(repo.origin, "feat/clone2")


def test_clone_from_origin_and_refusals(repo: Repo, tmp_path: Path) -> None:
    ws = CloneWorkspace(CloneWorkspace.Config(source="origin"))
    path = ws.create(repo_path=repo.path, root=repo.root, name="ao-22", branch="x$(id)", base="main")
    assert git("symbolic-ref", "--short", "HEAD", cwd=path) == "x$(id)"
    with pytest.raises(WorkspaceRefused):
        ws.remove(repo_path=repo.path, root=repo.root, path=tmp_path, force=True)
    with pytest.raises(WorkspaceRefused):
        ws.remove(repo_path=repo.path, root=repo.path.parent, path=repo.path, force=True)
    assert (repo.path / ".git").exists()
