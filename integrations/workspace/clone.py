"""``clone`` workspace: a full clone per session, for tools that dislike worktrees.

``source: local`` (default) runs ``git clone --local`` from the project's checkout (fast,
hard-linked objects, no network), then gives the clone the checkout's remotes (``origin`` at
the checkout's own origin URL, and ``ao`` when the local SCM added it) and copies their
remote-tracking refs, so pushes go to the real remote and the "commits on no remote" check
means the same thing as in the checkout. ``source: origin``
clones from the checkout's origin URL instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from integrations import gitutil
from integrations.base import PermanentIntegrationError, PluginConfig, Workspace, WorkspaceRefused
from integrations.registry import workspaces
from integrations.workspace import check_clean, check_removable, resolve_path, workspace_path


@workspaces.register("clone")
class CloneWorkspace(Workspace):
    class Config(PluginConfig):
        source: Literal["local", "origin"] = Field(
            default="local", description="clone from the project's checkout (local) or its origin URL"
        )
        git_timeout: float = Field(default=600.0, gt=0, description="seconds for each git command")

    def create(self, *, repo_path: Path, root: Path, name: str, branch: str, base: str) -> Path:
        timeout = self.config.git_timeout
        repo_path = resolve_path(repo_path)
        path = workspace_path(root=root, name=name)
        gitutil.validate_branch_name(branch, cwd=repo_path)
        if path.exists() or path.is_symlink():
            raise PermanentIntegrationError(f"workspace {path} already exists")
        commit = gitutil.resolve_commit(repo_path, base, timeout=timeout)
        origin = gitutil.remote_url(repo_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.config.source == "origin":
            if not origin:
                raise PermanentIntegrationError(f"{repo_path} has no 'origin' remote to clone from")
            source = origin
            args = ["clone", "--no-checkout", "--", source, str(path)]
        else:
            args = ["clone", "--local", "--no-checkout", "--", str(repo_path), str(path)]
        try:
            gitutil.run_git(args, cwd=path.parent, timeout=timeout)
            if self.config.source == "local":
                _copy_remotes(repo_path, path, timeout=timeout)
            if gitutil.branch_exists(repo_path, branch):
                start = gitutil.resolve_commit(repo_path, f"refs/heads/{branch}", timeout=timeout)
            else:
                start = commit
            gitutil.run_git(
                ["checkout", "--quiet", "--no-track", "-b", branch, start], cwd=path, timeout=timeout
            )
        except Exception:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return path

    def check_remove(
        self, *, repo_path: Path, root: Path, path: Path, force: bool = False, safe: Sequence[str] = ()
    ) -> None:
        real = check_removable(repo_path=repo_path, root=root, path=path)
        if force or not (real.exists() or real.is_symlink()):
            return
        top = gitutil.run_git(["rev-parse", "--show-toplevel"], cwd=real, check=False)
        if top.returncode != 0 or resolve_path(top.stdout.strip()) != real:
            raise WorkspaceRefused(f"refusing to remove {path}: it is not a clone ao made; remove with force")
        check_clean(path=real, repo_path=repo_path, timeout=self.config.git_timeout, safe=safe)

    def remove(
        self, *, repo_path: Path, root: Path, path: Path, force: bool = False, safe: Sequence[str] = ()
    ) -> None:
        self.check_remove(repo_path=repo_path, root=root, path=path, force=force, safe=safe)
        real = check_removable(repo_path=repo_path, root=root, path=path)
        if real.is_dir() and not real.is_symlink():
            shutil.rmtree(real)
        elif real.exists() or real.is_symlink():
            real.unlink()


def _copy_remotes(repo_path: Path, path: Path, *, timeout: float) -> None:
    """Give the clone the checkout's remotes (same names and URLs: ``origin``, and ``ao`` when the
    local SCM added it) and their remote-tracking refs, so the git commands ao gives agents and the
    "commits on no remote" check mean the same there as in a worktree."""
    names = gitutil.remote_names(repo_path)
    have = set(gitutil.remote_names(path))
    for name in names:
        url = gitutil.remote_url(repo_path, name)
        if not url:
            continue
        local = Path(url).expanduser()
        if "://" not in url and not url.startswith("file:") and (repo_path / local).is_dir():
            url = str(resolve_path(repo_path / local))  # a path relative to the checkout
        verb = "set-url" if name in have else "add"
        gitutil.run_git(["remote", verb, name, url], cwd=path, timeout=timeout)
    if names:
        gitutil.run_git(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--prune",
                "--",
                str(repo_path),
                "+refs/remotes/*:refs/remotes/*",
            ],
            cwd=path,
            timeout=timeout,
        )
