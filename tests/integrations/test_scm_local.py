"""The `local` SCM with real git: PRs on branches pushed to a bare remote, reviews, conflicts, merges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from integrations.gitutil import BranchNameError
from integrations.models import LocalPullRequest, LocalReview
from integrations.registry import plugin_for, scms
from integrations.scm.local import LocalSCM, MergeRefused, ReviewRefused, review_decision
from tests.factories import ProjectFactory, SessionFactory
from tests.helpers.fixtures import Repo, git

pytestmark = pytest.mark.django_db


# --- helpers (also used by test_localci) -----------------------------------------------------------
def make_scm(repo: Repo, **scm_settings) -> LocalSCM:
    project = ProjectFactory(path=str(repo.path), scm="local", plugin_settings={"scm": scm_settings})
    return plugin_for(project, "scm")


def worktree(repo: Repo, branch: str, *, base: str = "main") -> Path:
    path = repo.root / branch.replace("/", "-")
    git("worktree", "add", "-q", "-b", branch, str(path), base, cwd=repo.path)
    return path


def push_branch(repo: Repo, branch: str, files: dict[str, str], *, message: str = "work") -> str:
    """A worktree on a new branch from main with one commit of ``files``, pushed to origin; its sha."""
    path = worktree(repo, branch)
    return commit_and_push(repo, path, branch, files, message=message)


def commit_and_push(
    repo: Repo, path: Path, branch: str, files: dict[str, str], *, message: str = "work"
) -> str:
    for name, text in files.items():
        (path / name).write_text(text)
    git("add", "--", *files, cwd=path)
    git("commit", "-q", "-m", message, cwd=path)
    git("push", "-q", "origin", f"refs/heads/{branch}:refs/heads/{branch}", cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def advance_main(repo: Repo, files: dict[str, str], *, message: str = "main moves") -> str:
    """Commit on main in the project's checkout and push it: the base moves on."""
    sha = ""
    for name, text in files.items():
        sha = repo.commit_file(repo.path, name, text, message=message)
    git("push", "-q", "origin", "main", cwd=repo.path)
    return sha


def origin_main(repo: Repo) -> str:
    return git("rev-parse", "refs/heads/main", cwd=repo.origin)


# --- config and remote ---------------------------------------------------------------------------------
def test_plugin_is_registered_and_a_string_command_is_split_not_shelled() -> None:
    assert scms.get("local") is LocalSCM
    config = scms.validate_settings("local", {"check_command": "pytest -q 'tests/a b.py' $(id)"})
    assert config.check_command == ["pytest", "-q", "tests/a b.py", "$(id)"]
    assert (config.check_name, config.check_timeout, config.merge_method) == ("ci", 900.0, "squash")
    assert (config.log_excerpt_bytes, config.require_review) == (8000, True)


def test_remote_is_the_local_origin(repo: Repo) -> None:
    assert make_scm(repo).remote_path() == repo.origin.resolve()


def test_remote_is_created_under_ao_home_when_origin_is_not_local(repo: Repo) -> None:
    git("remote", "set-url", "origin", "https://example.invalid/acme/web.git", cwd=repo.path)
    scm = make_scm(repo)

    remote = scm.remote_path()

    assert remote == Path(settings.AO_HOME) / "remotes" / f"{scm.project.key}.git"
    assert git("rev-parse", "--is-bare-repository", cwd=remote) == "true"
    assert git("rev-parse", "refs/heads/main", cwd=remote) == git("rev-parse", "main", cwd=repo.path)


# --- opening PRs ---------------------------------------------------------------------------------------
def test_open_pull_request_through_the_service_and_find_it(repo: Repo) -> None:
    scm = make_scm(repo)
    head = push_branch(repo, "feat/login", {"login.py": "ok\n"}, message="Add login")

    row, created = scm.open_pull_request(branch="feat/login", body="Closes #1")
    again, created_again = scm.open_pull_request(branch="feat/login", title="Better title")
    found = scm.find_pull_requests(branches=["feat/login", "feat/none", "x$(id)"])

    assert (row.number, created, created_again, again.pk) == (1, True, False, row.pk)
    assert list(found) == ["feat/login"]
    info = found["feat/login"]
    assert (info.number, info.title, info.base_branch, info.state, info.head_sha) == (
        1,
        "Better title",
        "main",
        "open",
        head,
    )
    assert (info.mergeable, info.conflicts, info.behind) == (True, False, False)
    assert (info.review_decision, info.checks, info.threads) == ("review_required", (), ())
    assert LocalPullRequest.objects.get().title == "Better title"


def test_open_refuses_a_branch_missing_from_the_remote_or_without_commits(repo: Repo) -> None:
    scm = make_scm(repo)
    worktree(repo, "feat/empty")
    git("push", "-q", "origin", "feat/empty", cwd=repo.path)

    with pytest.raises(Exception, match="not in the remote"):
        scm.open_pull_request(branch="feat/unpushed")
    with pytest.raises(Exception, match="no commits"):
        scm.open_pull_request(branch="feat/empty")
    assert not LocalPullRequest.objects.exists()


def test_ao_pr_create_from_an_agent_worktree_pushes_and_records(repo: Repo, monkeypatch, capsys) -> None:
    scm = make_scm(repo)
    session = SessionFactory(project=scm.project, branch="feat/agent")
    path = worktree(repo, "feat/agent")
    repo.commit_file(path, "agent.py", "print(1)\n", message="Agent work")
    monkeypatch.setenv("AO_SESSION", session.id)
    monkeypatch.chdir(path)

    call_command("pr", "create", "--title", "Agent PR", "--body", "Done")
    second = repo.commit_file(path, "agent.py", "print(2)\n", message="More work")
    call_command("pr", "create")

    out = capsys.readouterr().out
    assert "opened PR #1: Agent PR (feat/agent → main)" in out
    assert "updated PR #1" in out and out.count("pushed feat/agent") == 2
    row = LocalPullRequest.objects.get()
    assert (row.branch, row.created_by, row.title, row.body, row.head_sha) == (
        "feat/agent",
        session.id,
        "Agent PR",
        "Done",
        second,
    )
    assert git("rev-parse", "refs/heads/feat/agent", cwd=repo.origin) == second


def test_ao_pr_create_with_branch_and_ls(repo: Repo, monkeypatch, tmp_path: Path, capsys) -> None:
    scm = make_scm(repo)
    path = worktree(repo, "feat/cli")
    repo.commit_file(path, "cli.py", message="CLI thing")
    monkeypatch.chdir(tmp_path)  # not a git directory: the branch comes from --branch

    call_command("pr", "--project", scm.project.key, "create", "--branch", "feat/cli")
    call_command("pr", "ls", "--project", scm.project.key)
    out = capsys.readouterr().out
    call_command("pr", "--project", scm.project.key, "show", "1")
    shown = json.loads(capsys.readouterr().out)

    assert "opened PR #1: CLI thing (feat/cli → main)" in out
    assert "#1     open    feat/cli" in out and "review=review_required" in out
    assert (shown["number"], shown["branch"], shown["state"], shown["mergeable"]) == (
        1,
        "feat/cli",
        "open",
        True,
    )


@pytest.mark.parametrize("branch", ["x$(id)", "-rf", "--upload-pack=touch pwned", "feat/`id`", "a;b", "a b"])
def test_hostile_branch_names_are_rejected(repo: Repo, branch: str, monkeypatch, tmp_path: Path) -> None:
    scm = make_scm(repo)
    monkeypatch.chdir(tmp_path)

    with pytest.raises(BranchNameError):
        scm.open_pull_request(branch=branch)
    with pytest.raises(CommandError, match="invalid branch name"):
        call_command("pr", "--project", scm.project.key, "create", f"--branch={branch}")

    assert not LocalPullRequest.objects.exists()
    assert not (tmp_path / "pwned").exists()


def test_detect_pushed_branches_skips_ones_with_prs_and_unusable_names(repo: Repo) -> None:
    scm = make_scm(repo)
    push_branch(repo, "feat/a", {"a.txt": "a\n"})
    push_branch(repo, "feat/b", {"b.txt": "b\n"})
    push_branch(repo, "x$(id)", {"c.txt": "c\n"})
    worktree(repo, "feat/nothing-new")
    git("push", "-q", "origin", "feat/nothing-new", cwd=repo.path)

    before = scm.detect_pushed_branches()
    scm.open_pull_request(branch="feat/a")
    after = scm.detect_pushed_branches()

    assert before == ["feat/a", "feat/b"]
    assert after == ["feat/b"]


# --- reviews -------------------------------------------------------------------------------------------
def test_reviews_make_the_decision_and_threads(repo: Repo, capsys) -> None:
    scm = make_scm(repo)
    session = SessionFactory(project=scm.project)
    push_branch(repo, "feat/r", {"r.py": "x = 1\n"})
    scm.open_pull_request(branch="feat/r", created_by=session.id)

    scm.review(number=1, reviewer="alice", state="approved", body="LGTM")
    assert scm.fetch_pull_requests(numbers=[1])[1].review_decision == "approved"

    call_command(
        "pr", "--project", scm.project.key, "review", "1", "--request-changes",
        "--body", "Rename x", "--path", "r.py", "--line", "1", "--as", "bob",
    )  # fmt: skip
    scm.comment(number=1, body="ao: CI is green")
    info = scm.fetch_pull_requests(numbers=[1])[1]
    assert info.review_decision == "changes_requested"
    assert [(t.author, t.path, t.line, t.body, t.author_association, t.is_bot) for t in info.threads] == [
        ("bob", "r.py", 1, "Rename x", "MEMBER", False),
        ("ao", "", None, "ao: CI is green", "MEMBER", True),
    ]

    scm.review(number=1, reviewer="bob", state="commented", body="still waiting")  # comments do not count
    assert scm.fetch_pull_requests(numbers=[1])[1].review_decision == "changes_requested"
    scm.review(number=1, reviewer="bob", state="approved")
    assert scm.fetch_pull_requests(numbers=[1])[1].review_decision == "approved"
    assert LocalPullRequest.objects.get().review_decision == "approved"

    thread_id = LocalReview.objects.get(reviewer="bob", path="r.py").pk
    scm.resolve_thread(number=1, review_id=thread_id)
    assert scm.fetch_pull_requests(numbers=[1])[1].threads[0].resolved is True
    with pytest.raises(ReviewRefused, match="cannot review"):
        scm.review(number=1, reviewer=session.id, state="approved")
    with pytest.raises(ValueError, match="invalid path"):
        scm.review(number=1, reviewer="carol", state="commented", body="x", path="../etc/passwd")
    assert "changes requested by bob" in capsys.readouterr().out


def test_review_decision_without_required_reviews() -> None:
    assert review_decision([], require_review=False) == "none"
    assert review_decision([], require_review=True) == "review_required"


# --- conflicts, behind ---------------------------------------------------------------------------------
def test_behind_without_conflicts(repo: Repo) -> None:
    scm = make_scm(repo)
    push_branch(repo, "feat/b", {"b.txt": "b\n"})
    scm.open_pull_request(branch="feat/b")
    advance_main(repo, {"other.txt": "o\n"})

    info = scm.fetch_pull_requests(numbers=[1])[1]

    assert (info.behind, info.conflicts, info.mergeable) == (True, False, True)


def test_conflicts_are_detected_and_refuse_the_merge(repo: Repo) -> None:
    scm = make_scm(repo, require_review=False)
    push_branch(repo, "feat/c", {"README.md": "branch version\n"})
    scm.open_pull_request(branch="feat/c")
    advance_main(repo, {"README.md": "main version\n"})
    main_before = origin_main(repo)

    info = scm.fetch_pull_requests(numbers=[1])[1]
    with pytest.raises(MergeRefused, match="conflicts"):
        scm.merge(number=1, method="squash")

    assert (info.conflicts, info.mergeable, info.behind) == (True, False, True)
    assert origin_main(repo) == main_before
    assert LocalPullRequest.objects.get().state == "open"


# --- merging ------------------------------------------------------------------------------------------
def test_squash_merge_updates_the_remote_main_only(repo: Repo) -> None:
    scm = make_scm(repo, require_review=False)
    path = worktree(repo, "feat/s")
    repo.commit_file(path, "one.txt", "1\n", message="one")
    head = commit_and_push(repo, path, "feat/s", {"two.txt": "2\n"}, message="two")
    scm.open_pull_request(branch="feat/s", title="Add one and two", body="Body text")
    advance_main(repo, {"m.txt": "m\n"})  # behind but mergeable: squash still works
    base = origin_main(repo)
    checkout_head = git("rev-parse", "HEAD", cwd=repo.path)

    scm.merge(number=1, expected_head_sha=head)

    row = LocalPullRequest.objects.get()
    assert (row.state, row.merged_sha, row.head_sha) == ("merged", origin_main(repo), head)
    assert git("log", "-1", "--format=%s%n%b%n%P%n%an", "main", cwd=repo.origin).split("\n") == [
        "Add one and two (#1)",
        "Body text",
        "",
        base,
        "ao test",
    ]
    files = git("ls-tree", "--name-only", "main", cwd=repo.origin).split("\n")
    assert {"one.txt", "two.txt", "m.txt", "README.md"} <= set(files)
    assert git("rev-parse", "HEAD", cwd=repo.path) == checkout_head  # the project checkout is untouched
    assert git("status", "--porcelain", cwd=repo.path) == ""
    assert scm.find_pull_requests(branches=["feat/s"])["feat/s"].state == "merged"
    assert scm.detect_pushed_branches() == []
    with pytest.raises(MergeRefused, match="merged, not open"):
        scm.merge(number=1)


def test_ff_merge_moves_main_to_the_head(repo: Repo) -> None:
    scm = make_scm(repo, merge_method="ff", require_review=False)
    head = push_branch(repo, "feat/f", {"f.txt": "f\n"})
    scm.open_pull_request(branch="feat/f")

    scm.merge(number=1)

    assert origin_main(repo) == head
    assert LocalPullRequest.objects.get().merged_sha == head


def test_merge_commit_has_both_parents(repo: Repo) -> None:
    scm = make_scm(repo, require_review=False)
    head = push_branch(repo, "feat/m", {"m2.txt": "m\n"})
    scm.open_pull_request(branch="feat/m")
    base = origin_main(repo)

    scm.merge(number=1, method="merge")

    assert git("log", "-1", "--format=%P", "main", cwd=repo.origin) == f"{base} {head}"


def test_merge_refused_when_the_head_moved_or_ff_is_impossible(repo: Repo) -> None:
    scm = make_scm(repo, require_review=False)
    path = worktree(repo, "feat/h")
    old = commit_and_push(repo, path, "feat/h", {"h.txt": "1\n"})
    scm.open_pull_request(branch="feat/h")
    commit_and_push(repo, path, "feat/h", {"h.txt": "2\n"})
    advance_main(repo, {"z.txt": "z\n"})
    main_before = origin_main(repo)

    with pytest.raises(MergeRefused, match="head moved"):
        scm.merge(number=1, expected_head_sha=old)
    with pytest.raises(MergeRefused, match="fast-forward"):
        scm.merge(number=1, method="ff")
    with pytest.raises(MergeRefused, match="not supported"):
        scm.merge(number=1, method="rebase")

    assert origin_main(repo) == main_before
    assert LocalPullRequest.objects.get().state == "open"


def test_ao_pr_merge_and_close(repo: Repo, capsys) -> None:
    scm = make_scm(repo)
    push_branch(repo, "feat/x", {"x.txt": "x\n"})
    push_branch(repo, "feat/y", {"y.txt": "y\n"})
    scm.open_pull_request(branch="feat/x")
    scm.open_pull_request(branch="feat/y")

    call_command("pr", "--project", scm.project.key, "review", "1", "--approve", "--as", "ana")
    call_command("pr", "--project", scm.project.key, "merge", "1", "--method", "ff")
    call_command("pr", "--project", scm.project.key, "close", "2")

    out = capsys.readouterr().out
    assert f"merged PR #1 into main at {origin_main(repo)[:12]}\n" in out
    assert "closed PR #2" in out
    assert dict(LocalPullRequest.objects.values_list("number", "state")) == {1: "merged", 2: "closed"}


def test_a_deleted_branch_closes_its_pr(repo: Repo) -> None:
    scm = make_scm(repo)
    push_branch(repo, "feat/gone", {"g.txt": "g\n"})
    scm.open_pull_request(branch="feat/gone")
    git("push", "-q", "origin", "--delete", "feat/gone", cwd=repo.path)

    info = scm.fetch_pull_requests(numbers=[1, 99])

    assert list(info) == [1]
    assert (info[1].state, info[1].mergeable) == ("closed", None)


# --- the project's requirements hold for every merge, as a code host's branch protection ----------
def test_a_merge_needs_the_approval_and_the_passing_check_the_project_requires(repo: Repo) -> None:
    scm = make_scm(repo, check_command=["sh", "-c", "test -f ok.txt"], check_name="unit")
    path = worktree(repo, "feat/r")
    head = commit_and_push(repo, path, "feat/r", {"r.txt": "r\n"})
    scm.open_pull_request(branch="feat/r")
    main_before = origin_main(repo)

    with pytest.raises(MergeRefused) as refused:
        scm.merge(number=1)
    assert refused.value.unmet == [
        "no one approved it (the project requires a review)",
        f"its check 'unit' has not run on {head[:12]}",
    ]
    assert scm.run_checks(number=1).conclusion == "failure"
    scm.review(number=1, reviewer="ana", state="changes_requested", body="not yet")
    with pytest.raises(MergeRefused) as refused:
        scm.merge(number=1)
    assert refused.value.unmet == [
        "changes were requested",
        f"its check 'unit' did not pass on {head[:12]} (failure)",
    ]
    assert origin_main(repo) == main_before and LocalPullRequest.objects.get().state == "open"

    head = commit_and_push(repo, path, "feat/r", {"ok.txt": "ok\n"})
    assert scm.run_checks(number=1).conclusion == "success"
    scm.review(number=1, reviewer="ana", state="approved")
    scm.merge(number=1)
    assert LocalPullRequest.objects.get().state == "merged"


def test_ao_pr_merge_refuses_an_unreviewed_failing_pr_and_says_how_then_force_merges_it(
    repo: Repo, capsys
) -> None:
    scm = make_scm(repo, check_command=["false"], check_name="unit")
    head = push_branch(repo, "feat/u", {"u.txt": "u\n"})
    scm.open_pull_request(branch="feat/u")
    scm.run_checks(number=1)
    main_before = origin_main(repo)

    with pytest.raises(CommandError) as refused:
        call_command("pr", "--project", scm.project.key, "merge", "1")
    assert str(refused.value) == (
        "PR #1 is not ready to merge: no one approved it (the project requires a review); its check "
        f"'unit' did not pass on {head[:12]} (failure) — approve it (`ao pr review 1 --approve`) or rerun "
        "its check (`ao pr ci 1`), or merge anyway with `ao pr merge 1 --force`"
    )
    assert origin_main(repo) == main_before

    call_command("pr", "--project", scm.project.key, "merge", "1", "--force")
    assert "(--force: merged although no one approved it" in capsys.readouterr().out
    assert LocalPullRequest.objects.get().state == "merged" and origin_main(repo) != main_before


def test_an_agent_session_cannot_force_a_merge_nor_is_told_how(repo: Repo, monkeypatch) -> None:
    """The orchestrator drives ao with `ao pr`; what a merge requires is a person's call."""
    scm = make_scm(repo)
    push_branch(repo, "feat/o", {"o.txt": "o\n"})
    scm.open_pull_request(branch="feat/o")
    orchestrator = SessionFactory(
        project=scm.project, kind="orchestrator", id=f"{scm.project.key}-orchestrator"
    )
    monkeypatch.setenv("AO_SESSION", orchestrator.id)

    with pytest.raises(CommandError) as refused:
        call_command("pr", "--project", scm.project.key, "merge", "1")
    assert str(refused.value).endswith("— a person approves it, and its check must pass")
    assert "--force" not in str(refused.value)
    with pytest.raises(
        CommandError, match=rf"`ao pr merge --force` is for people, not for ao session {orchestrator.id}"
    ):
        call_command("pr", "--project", scm.project.key, "merge", "1", "--force")
    assert LocalPullRequest.objects.get().state == "open"
