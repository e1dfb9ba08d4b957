from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from integrations import gitutil
from integrations.gitutil import BranchNameError, branch_name_for, slugify, validate_branch_name
from tests.helpers.fixtures import GIT_IDENTITY

HOSTILE_TITLES = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "fix; touch PWNED",
    'it\'s "quoted" & <angled>',
    "line one\nline two\r\n",
    "../../etc/passwd",
    "--upload-pack=touch PWNED",
    "-rf /",
    "Ünïcødé — ☃ 日本語 title",
    "a" * 300,
    "refs/heads/../x",
    "x@{1}~^:?*[\\",
]


@pytest.mark.parametrize("name", ["feat/x", "session/ao-1", "x$(id)", "fix/it's", "a;b", "ünï"])
def test_valid_branch_names_are_accepted_as_is(name: str) -> None:
    assert validate_branch_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-x", "--force", "a..b", "a b", "a\nb", "a\x1bb", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b",
     "a@{1}", "@", "/a", "a/", "a//b", "a.", ".a", "a/.b", "a.lock", "x" * 201],
)  # fmt: skip
def test_invalid_branch_names_are_rejected(name: str) -> None:
    with pytest.raises(BranchNameError):
        validate_branch_name(name)


def test_slugify_is_lower_kebab_ascii_and_bounded() -> None:
    assert slugify("Fix the LOGIN bug!!") == "fix-the-login-bug"
    assert slugify("Ünïcödé — title") == "unicode-title"
    assert slugify("$(touch /tmp/pwned)") == "touch-tmp-pwned"
    assert slugify("日本語") == ""
    long = slugify("word " * 40)
    assert len(long) <= 60 and not long.endswith("-") and long.startswith("word-word")


def test_branch_precedence() -> None:
    assert (
        branch_name_for(session_id="ao-1", explicit="mine", tracker_branch="t/x", issue_title="T") == "mine"
    )
    assert branch_name_for(session_id="ao-1", tracker_branch="t/x", issue_title="T") == "t/x"
    assert branch_name_for(session_id="ao-1", issue_ref="#12", issue_title="Fix login") == "feat/12-fix-login"
    assert branch_name_for(session_id="ao-1") == "session/ao-1"
    assert branch_name_for(session_id="ao-1", issue_title="日本語") == "session/ao-1"


def test_explicit_invalid_branch_is_an_error_but_tracker_garbage_falls_through() -> None:
    with pytest.raises(BranchNameError):
        branch_name_for(session_id="ao-1", explicit="-x")
    assert branch_name_for(session_id="ao-1", tracker_branch="a..b", issue_title="Do it") == "feat/do-it"


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_issue_titles_make_safe_branches(title: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    branch = branch_name_for(session_id="ao-7", issue_title=title.replace("PWNED", str(tmp_path / "pwned")))
    assert branch == "session/ao-7" or (branch.startswith("feat/") and len(branch) <= 65)
    assert all(c.isascii() and (c.isalnum() or c in "-/") for c in branch)
    assert validate_branch_name(branch) == branch
    assert not (tmp_path / "pwned").exists()


def test_session_id_is_validated() -> None:
    with pytest.raises(BranchNameError):
        branch_name_for(session_id="../x")


def test_run_git_errors_and_timeout(tmp_path: Path) -> None:
    with pytest.raises(gitutil.GitError) as err:
        gitutil.run_git(["rev-parse", "--verify", "nope"], cwd=tmp_path)
    assert "rev-parse" in str(err.value)
    proc = gitutil.run_git(["--version"], cwd=tmp_path)
    assert proc.stdout.startswith("git version")
    with pytest.raises(gitutil.GitError):
        gitutil.resolve_commit(tmp_path, "--output=/tmp/x")


def test_repo_facts(repo) -> None:
    head = gitutil.resolve_commit(repo.path, "main")
    assert len(head) == 40
    assert gitutil.branch_exists(repo.path, "main")
    assert not gitutil.branch_exists(repo.path, "x$(id)")
    assert gitutil.current_branch(repo.path) == "main"
    assert gitutil.unpushed_commits(repo.path) == []
    assert gitutil.status_entries(repo.path) == []
    assert gitutil.remote_url(repo.path) == str(repo.origin)
    repo.commit_file(repo.path, "new.txt", message="local only")
    assert [c.split(" ", 1)[1] for c in gitutil.unpushed_commits(repo.path)] == ["local only"]
    (repo.path / "README.md").write_text("changed\n")
    (repo.path / "untracked file").write_text("u\n")
    assert sorted(gitutil.status_entries(repo.path)) == [(" M", "README.md"), ("??", "untracked file")]


def test_sessions_spawned_at_once_all_get_their_push_upstream(repo) -> None:
    """Spawns at once each write their branch's upstream into the one .git/config; git refuses a
    second writer while the first holds config.lock ("could not lock config file"), which errored a
    spawn. They now wait for each other."""
    from concurrent.futures import ThreadPoolExecutor

    branches = [f"feat/{n}" for n in range(16)]
    for branch in branches:
        gitutil.run_git(["branch", branch], cwd=repo.path)

    def set_upstream(branch: str) -> None:
        gitutil.set_push_upstream(repo.path, branch=branch, remote="origin")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(set_upstream, branches * 3))

    for branch in branches:
        assert (
            gitutil.run_git(["config", f"branch.{branch}.remote"], cwd=repo.path).stdout.strip() == "origin"
        )
        merge = gitutil.run_git(["config", f"branch.{branch}.merge"], cwd=repo.path).stdout.strip()
        assert merge == f"refs/heads/{branch}"


def _slow_origin(repo, tmp_path: Path) -> Path:
    """The checkout's fetches go through an upload-pack that logs each fetch, and ends the
    connection a second after it has answered (a remote far away); returns the log."""
    log = tmp_path / "fetches.log"
    wrapper = tmp_path / "slow-upload-pack"
    wrapper.write_text(
        f'#!/bin/sh\necho start >> "{log}"\ngit-upload-pack "$@"\necho answered >> "{log}"\nsleep 1\n'
    )
    wrapper.chmod(0o755)
    gitutil.run_git(["config", "remote.origin.uploadpack", str(wrapper)], cwd=repo.path)
    log.touch()
    return log


def _push_new_commit(repo, tmp_path: Path, name: str) -> str:
    """Someone else pushes a commit to the origin's main (a PR merged); its sha."""
    clone = tmp_path / f"clone-{name}"
    gitutil.run_git(["clone", "-q", str(repo.origin), str(clone)], cwd=tmp_path)
    (clone / f"{name}.txt").write_text(name)
    gitutil.run_git(["add", "."], cwd=clone)
    gitutil.run_git(["commit", "-q", "-m", name], cwd=clone)
    gitutil.run_git(["push", "-q", "origin", "HEAD:main"], cwd=clone)
    return gitutil.run_git(["rev-parse", "HEAD"], cwd=clone).stdout.strip()


def test_a_spawn_starts_from_what_the_remote_has_after_its_request_even_during_another_fetch(
    repo, tmp_path: Path
) -> None:
    """A fetch that answered before a merge is not shared with a spawn asked for after the merge."""
    import threading
    import time

    log = _slow_origin(repo, tmp_path)
    first: list[str] = []
    before = threading.Thread(
        target=lambda: first.append(gitutil.start_point(repo.path, remote="origin", branch="main"))
    )
    before.start()
    deadline = time.monotonic() + 60
    while "answered" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)  # the first fetch has its answer and is still running
    merged = _push_new_commit(repo, tmp_path, "merged")
    assert gitutil.start_point(repo.path, remote="origin", branch="main") == merged
    before.join(60)
    assert first and first[0] != merged


def test_spawns_at_once_share_fetches_of_the_default_branch(repo, tmp_path: Path) -> None:
    """Ten spawns at once: the first fetch, and one more for all that asked while it ran (ten
    fetches of one ref at once contend for its lock and each pay the remote's round trip)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    log = _slow_origin(repo, tmp_path)
    head = _push_new_commit(repo, tmp_path, "head")
    ready = threading.Barrier(10)

    def spawn_start(_: int) -> str:
        ready.wait(60)
        return gitutil.start_point(repo.path, remote="origin", branch="main")

    with ThreadPoolExecutor(max_workers=10) as pool:
        starts = list(pool.map(spawn_start, range(10)))
    assert starts == [head] * 10
    assert log.read_text().count("start") <= 2, log.read_text()


def test_a_branch_name_is_asked_of_git_once(monkeypatch) -> None:
    """A spawn validates its branch name several times on its way (each a `git` process): git's
    verdict on a name is kept, so later checks of that name need no git at all."""
    accepted, refused = f"feat/once-{os.getpid()}", "HEAD"
    assert validate_branch_name(accepted) == accepted
    with pytest.raises(BranchNameError, match="check-ref-format"):
        validate_branch_name(refused)
    monkeypatch.setenv("PATH", "/nonexistent")  # no git from here on
    assert validate_branch_name(accepted) == accepted
    with pytest.raises(BranchNameError, match="check-ref-format"):
        validate_branch_name(refused)
    with pytest.raises(Exception):  # noqa: B017 - a name not asked yet needs git, which is not there
        validate_branch_name(f"feat/new-{os.getpid()}")


def test_worktree_stamp_moves_with_commits_checkouts_staging_and_fetches(repo, tmp_path: Path) -> None:
    from tests.helpers.fixtures import git

    worktree = repo.root / "wt"
    git("worktree", "add", "-q", "-b", "feat/s", str(worktree), "main", cwd=repo.path)
    refs = ["refs/remotes/origin/main"]
    first = gitutil.worktree_stamp(worktree, refs)
    assert first is not None and gitutil.worktree_stamp(worktree, refs) == first  # nothing moved
    (worktree / "README.md").write_text("edited, not staged\n")
    assert gitutil.worktree_stamp(worktree, refs) == first  # unstaged edits are not in it

    git("add", "README.md", cwd=worktree)
    staged = gitutil.worktree_stamp(worktree, refs)
    assert staged != first
    git("commit", "-q", "-m", "edit", cwd=worktree)
    committed = gitutil.worktree_stamp(worktree, refs)
    assert committed != staged
    git("checkout", "-q", "-b", "feat/t", cwd=worktree)
    assert gitutil.worktree_stamp(worktree, refs) != committed
    checked_out = gitutil.worktree_stamp(worktree, refs)
    repo.commit_file(repo.path, "base.py")  # the base moves on the remote
    git("push", "-q", "origin", "main", cwd=repo.path)
    git("fetch", "-q", "origin", cwd=worktree)
    assert gitutil.worktree_stamp(worktree, refs) != checked_out

    clone = tmp_path / "clone"
    git("clone", "-q", str(repo.origin), str(clone), cwd=tmp_path)
    before = gitutil.worktree_stamp(clone, refs)
    assert before is not None
    repo.commit_file(clone, "c.py")
    assert gitutil.worktree_stamp(clone, refs) != before
    assert gitutil.worktree_stamp(tmp_path, refs) is None  # not a git worktree


def test_a_start_point_in_a_repository_without_a_commit_says_to_make_one(tmp_path: Path) -> None:
    """`git init` and straight to `ao spawn`: the error names the missing first commit, not a branch."""
    repo = tmp_path / "fresh"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)

    with pytest.raises(gitutil.GitError, match=r"has no commit yet: .* make a first commit"):
        gitutil.start_point(repo, remote="origin", branch="main")

    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "first"], check=True,
                   env={**os.environ, **GIT_IDENTITY})  # fmt: skip
    with pytest.raises(gitutil.GitError, match=r"'trunk' is neither .* set the project's default branch"):
        gitutil.start_point(repo, remote="origin", branch="trunk")
