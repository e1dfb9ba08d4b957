"""An agent's worktree shares the repository's git config and hooks, which the agent can write: a
program named there (``core.fsmonitor``, ``diff.external``, a diff driver's ``textconv`` or
``command``, ``core.pager``, a hook) must not run when ao's server or workers run git in that
worktree (a viewer opening the session page, the conflict and drift watchers, a fetch), and what
git does run there gets none of ao's credentials. With real git (docs/SECURITY.md, "Git in an
agent's worktree")."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from integrations import gitutil
from sessions.models import Membership, Session
from sessions.watchers import conflicts, drift
from tests.factories import ProjectFactory, SessionFactory, UserFactory
from tests.helpers.fixtures import git

pytestmark = pytest.mark.django_db

PLANTED = ("fsmonitor", "external-diff", "textconv", "driver-command", "pager", "hook")


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def hostile(repo, tmp_path, monkeypatch):
    """Session web-1 in a worktree whose agent made a commit and planted, in the repository's
    config and hooks, one program for each way git runs one; each leaves a marker file."""
    markers = tmp_path / "markers"
    markers.mkdir()
    bin_dir = tmp_path / "planted"
    bin_dir.mkdir()
    project = ProjectFactory(
        key="web", session_prefix="web", path=str(repo.path), tracker="local", default_branch="main"
    )
    workspace = repo.root / "web-1"
    git("worktree", "add", "-q", "-b", "feat/x", str(workspace), "main", cwd=repo.path)
    repo.commit_file(workspace, "health.py", "ok = True\n", message="Add a health check")
    (workspace / "health.py").write_text("ok = True\nchanged = 1\n")  # not committed yet
    session = SessionFactory(
        project=project,
        number=1,
        id="web-1",
        branch="feat/x",
        workspace_path=str(workspace),
        host=django_settings.AO_HOST_NAME,
    )
    for name in PLANTED:
        _script(bin_dir / name, f'echo "$0" >> "{markers}/{name}"\nexit 1\n')
    # the agent, in its own worktree: `git config` writes the repository's one config
    git("config", "core.fsmonitor", str(bin_dir / "fsmonitor"), cwd=workspace)
    git("config", "diff.external", str(bin_dir / "external-diff"), cwd=workspace)
    git("config", "diff.evil.textconv", str(bin_dir / "textconv"), cwd=workspace)
    git("config", "diff.evil.command", str(bin_dir / "driver-command"), cwd=workspace)
    git("config", "core.pager", str(bin_dir / "pager"), cwd=workspace)
    (workspace / ".gitattributes").write_text("*.py diff=evil\n")
    hooks = repo.path / ".git" / "hooks"  # the common dir's: every worktree's
    hooks.mkdir(exist_ok=True)
    for hook in ("reference-transaction", "post-checkout", "pre-push", "pre-auto-gc"):
        _script(hooks / hook, f'echo "{hook}" >> "{markers}/hook"\n')
    return session, workspace, markers


def _ran(markers: Path) -> list[str]:
    return sorted(path.name for path in markers.iterdir())


def test_a_viewer_opening_the_session_page_runs_nothing_the_agent_planted(hostile, client: Client) -> None:
    session, _workspace, markers = hostile
    viewer = UserFactory(username="viewer")
    Membership.objects.create(user=viewer, project=session.project, role="viewer")
    client.force_login(viewer)

    page = client.get("/s/web-1/").content.decode()

    assert _ran(markers) == []
    # the git facts are still right: the branch's own commit, and the diff stat against main
    # (health.py: its commit and its uncommitted line)
    assert "Add a health check" in page and "initial (" not in page
    assert "health.py | 2 ++" in page and "1 file changed, 2 insertions(+)" in page


def test_the_watchers_run_nothing_the_agent_planted(hostile, repo) -> None:
    session, workspace, markers = hostile
    Session.objects.filter(pk=session.pk).update(phase="running")
    other = repo.root / "elsewhere"  # main moves on at the origin: the fetch below updates a ref
    git("clone", "-q", str(repo.origin), str(other), cwd=repo.root)
    repo.commit_file(other, "merged.py", message="merged elsewhere")
    git("push", "-q", "origin", "main", cwd=other)

    files = conflicts.changed_files(session, repo=repo.path, refs=conflicts._refs(repo.path))
    drift.drift_check(session.project, force=True)
    fetched = gitutil.fetch_branch(workspace, remote="origin", branch="main")  # a ref moves: hooks run

    assert _ran(markers) == []
    assert files == {"health.py", ".gitattributes"}
    assert fetched == git("rev-parse", "HEAD", cwd=other)


def test_what_git_still_runs_in_a_worktree_gets_none_of_aos_credentials(
    hostile, monkeypatch, tmp_path
) -> None:
    """A clean filter is one program a repository's config still makes git run (docs/SECURITY.md,
    "Not covered"): it runs without ao's credentials."""
    _session, workspace, _markers = hostile
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_should_not_reach_git_0000000000000000")
    monkeypatch.setenv("AO_SECRET_KEY", "django-secret-should-not-reach-git")
    monkeypatch.setenv("DATABASE_URL", "postgres://ao:pw@127.0.0.1/ao")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")  # how git's ssh authenticates: kept
    seen = tmp_path / "env.txt"
    filter_ = _script(tmp_path / "clean", f'env > "{seen}"\ncat\n')
    git("config", "filter.dump.clean", filter_, cwd=workspace)
    (workspace / ".gitattributes").write_text("*.txt filter=dump\n")
    (workspace / "notes.txt").write_text("notes\n")
    git("add", "notes.txt", ".gitattributes", cwd=workspace)
    (workspace / "notes.txt").write_text("more notes\n")
    seen.unlink(missing_ok=True)

    gitutil.run_git(["diff", "--stat", "HEAD"], cwd=workspace)

    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    for name in ("GITHUB_TOKEN", "AO_SECRET_KEY", "DATABASE_URL"):
        assert name not in env, name
    assert env["PATH"] and env["HOME"] and env["SSH_AUTH_SOCK"] == "/tmp/agent.sock"
    assert env["GIT_AUTHOR_NAME"] == "ao test"  # the GIT_* of ao's environment are git's own


def test_a_fetch_keeps_what_credential_helpers_read_and_nothing_else_of_aos(
    repo, monkeypatch, tmp_path
) -> None:
    """A fetch authenticates with the person's own set-up: a keyring helper needs the session bus,
    `gh auth git-credential` and Git Credential Manager read tokens from the environment. Those
    stay for commands that talk to a remote; ao's other secrets do not. (The program git runs for
    a local remote, its upload-pack, shows the environment the fetch had.)"""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_for_the_credential_helper_000000000000")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus")
    monkeypatch.setenv("GCM_CREDENTIAL_STORE", "secretservice")
    monkeypatch.setenv("AO_SECRET_KEY", "django-secret-should-not-reach-git")
    monkeypatch.setenv("DATABASE_URL", "postgres://ao:pw@127.0.0.1/ao")
    seen = tmp_path / "fetch-env.txt"
    upload_pack = _script(tmp_path / "upload-pack", f'env > "{seen}"\nexec git-upload-pack "$@"\n')
    clone = tmp_path / "clone"
    git("clone", "-q", str(repo.path), str(clone), cwd=tmp_path)
    git("config", "remote.origin.uploadpack", upload_pack, cwd=clone)

    gitutil.fetch_branch(clone, remote="origin", branch="main")
    fetched = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)

    assert fetched["GITHUB_TOKEN"].startswith("ghp_for_the_credential_helper")
    assert fetched["DBUS_SESSION_BUS_ADDRESS"] and fetched["GCM_CREDENTIAL_STORE"] == "secretservice"
    assert "AO_SECRET_KEY" not in fetched and "DATABASE_URL" not in fetched
    assert "GITHUB_TOKEN" not in gitutil.git_env() and "DBUS_SESSION_BUS_ADDRESS" not in gitutil.git_env()


def test_a_checkout_keeps_them_too_for_lfs_smudge_filters(repo, monkeypatch, tmp_path) -> None:
    """`worktree add` checks files out through the smudge filter Git LFS configures, which downloads
    them with the credential helper: it needs the same variables as a fetch."""
    monkeypatch.setenv("GH_TOKEN", "ghp_for_the_lfs_download_0000000000000000")
    monkeypatch.setenv("AO_SECRET_KEY", "django-secret-should-not-reach-git")
    seen = tmp_path / "smudge-env.txt"
    smudge = _script(tmp_path / "smudge", f'env > "{seen}"\ncat\n')
    git("config", "filter.big.smudge", smudge, cwd=repo.path)
    git("config", "filter.big.clean", "cat", cwd=repo.path)
    (repo.path / ".gitattributes").write_text("*.bin filter=big\n")
    (repo.path / "data.bin").write_text("payload\n")
    git("add", ".gitattributes", "data.bin", cwd=repo.path)
    git("commit", "-qm", "big files", cwd=repo.path)

    gitutil.run_git(["worktree", "add", "-q", "-b", "feat/big", str(tmp_path / "wt"), "HEAD"], cwd=repo.path)

    smudged = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert smudged["GH_TOKEN"].startswith("ghp_for_the_lfs_download") and "AO_SECRET_KEY" not in smudged
    assert (tmp_path / "wt" / "data.bin").read_text() == "payload\n"
