"""``clone`` workspace: a full clone per session, for tools that dislike worktrees.

``source: local`` (default) runs ``git clone --local`` from the project's checkout (fast,
hard-linked objects, no network), then points ``origin`` at the checkout's own origin URL
and copies the checkout's remote-tracking refs, so pushes go to the real remote and the
"commits on no remote" check means the same thing as in the checkout. ``source: origin``
clones from the checkout's origin URL instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from integrations import gitutil
from integrations.base import PermanentIntegrationError, PluginConfig, Workspace, WorkspaceRefused
from integrations.registry import workspaces
from integrations.workspace import _resolve, check_clean, check_removable, workspace_path


@workspaces.register("clone")
class CloneWorkspace(Workspace):
    class Config(PluginConfig):
        source: Literal["local", "origin"] = Field(
            default="local", description="clone from the project's checkout (local) or its origin URL"
        )
        git_timeout: float = Field(default=600.0, gt=0, description="seconds for each git command")

    def create(self, *, repo_path: Path, root: Path, name: str, branch: str, base: str) -> Path:
        timeout = self.config.git_timeout
        repo_path = _resolve(repo_path)
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
            if self.config.source == "local" and origin:
                gitutil.run_git(["remote", "set-url", "origin", origin], cwd=path, timeout=timeout)
                gitutil.run_git(
                    [
                        "fetch",
                        "--quiet",
                        "--no-tags",
                        "--prune",
                        str(repo_path),
                        "+refs/remotes/origin/*:refs/remotes/origin/*",
                    ],
                    cwd=path,
                    timeout=timeout,
                )
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

    def remove(self, *, repo_path: Path, root: Path, path: Path, force: bool = False) -> None:
        real = check_removable(repo_path=repo_path, root=root, path=path)
        if not (real.exists() or real.is_symlink()):
            return
        if not force:
            top = gitutil.run_git(["rev-parse", "--show-toplevel"], cwd=real, check=False)
            if top.returncode != 0 or _resolve(top.stdout.strip()) != real:
                raise WorkspaceRefused(
                    f"refusing to remove {path}: it is not a clone ao made; remove with force"
                )
            check_clean(path=real, repo_path=repo_path, timeout=self.config.git_timeout)
        shutil.rmtree(real)
