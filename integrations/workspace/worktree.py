"""``worktree`` workspace (the default): a git worktree of the project's checkout per session."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from integrations import gitutil
from integrations.base import PermanentIntegrationError, PluginConfig, Workspace, WorkspaceRefused
from integrations.registry import workspaces
from integrations.workspace import check_clean, check_removable, resolve_path, workspace_path


@workspaces.register("worktree")
class WorktreeWorkspace(Workspace):
    """``git worktree add -b <branch> <root>/<name> <base>``; an existing local branch is checked out as is."""

    class Config(PluginConfig):
        git_timeout: float = Field(default=120.0, gt=0, description="seconds for each git command")

    def create(self, *, repo_path: Path, root: Path, name: str, branch: str, base: str) -> Path:
        timeout = self.config.git_timeout
        repo_path = resolve_path(repo_path)
        path = workspace_path(root=root, name=name)
        gitutil.validate_branch_name(branch, cwd=repo_path)
        if path.exists() or path.is_symlink():
            raise PermanentIntegrationError(f"workspace {path} already exists")
        elsewhere = gitutil.checked_out_at(repo_path, branch, timeout=timeout)
        if elsewhere is not None:  # git would refuse: "already checked out at ..."
            raise PermanentIntegrationError(f"branch {branch} is already checked out in {elsewhere}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if gitutil.branch_exists(repo_path, branch):
            # Restoring a session, or an explicit branch a person wants continued.
            args = ["worktree", "add", "--", str(path), branch]
        else:
            commit = gitutil.resolve_commit(repo_path, base, timeout=timeout)
            args = ["worktree", "add", "--no-track", "-b", branch, "--", str(path), commit]
        gitutil.run_git(args, cwd=repo_path, timeout=timeout)
        return path

    def check_remove(
        self, *, repo_path: Path, root: Path, path: Path, force: bool = False, safe: Sequence[str] = ()
    ) -> None:
        self._checked(repo_path=repo_path, root=root, path=path, force=force, safe=safe)

    def _checked(
        self, *, repo_path: Path, root: Path, path: Path, force: bool, safe: Sequence[str]
    ) -> tuple[Path, dict[Path, str | None]]:
        """``check_remove``'s decision; returns the resolved path and the registered worktrees, so
        ``remove`` acts on what was checked without asking git again."""
        timeout = self.config.git_timeout
        real = check_removable(repo_path=repo_path, root=root, path=path)
        trees = gitutil.worktrees(resolve_path(repo_path), timeout=timeout)
        if force:
            return real, trees
        if real in trees and real.is_dir():
            check_clean(path=real, repo_path=repo_path, timeout=timeout, safe=safe)
        elif real.exists() or real.is_symlink():
            raise WorkspaceRefused(
                f"refusing to remove {path}: it is not a worktree of {repo_path}; remove with force"
            )
        return real, trees

    def remove(
        self, *, repo_path: Path, root: Path, path: Path, force: bool = False, safe: Sequence[str] = ()
    ) -> None:
        timeout = self.config.git_timeout
        real, trees = self._checked(repo_path=repo_path, root=root, path=path, force=force, safe=safe)
        if real in trees and real.is_dir():
            # --force twice also removes a locked worktree; our checks above are the gate.
            gitutil.run_git(
                ["worktree", "remove", "--force", "--force", "--", str(real)], cwd=repo_path, timeout=timeout
            )
        elif real.is_dir() and not real.is_symlink():
            shutil.rmtree(real)
        elif real.exists() or real.is_symlink():
            real.unlink()
        gitutil.run_git(["worktree", "prune"], cwd=repo_path, timeout=timeout)
