"""Workspace plugins (``worktree``, ``clone``) and the safety checks they share.

Shared rules:

- a workspace lives at ``<root>/<name>`` where ``root`` is ao's managed root for the project
  (normally ``settings.AO_WORKSPACES_ROOT / <project-key>``) and ``name`` is the session id;
- removal resolves symlinks first and refuses anything not strictly inside ``root``, the
  project's own checkout, and (unless ``force``) unpushed commits or uncommitted changes;
  ``check_remove`` is that decision alone (a dry run asks it; ``remove`` asks it first);
- ``setup`` links files from the project's checkout (refusing links that escape it) and runs
  ``post_create`` commands as argv lists or repo-relative script files, never shell strings.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from integrations import gitutil
from integrations.errors import CommandOutput, PermanentIntegrationError, WorkspaceRefused

OUTPUT_LIMIT = 64 * 1024


def resolve_path(path: Path | str) -> Path:
    return Path(os.path.abspath(path)).resolve()


def workspace_path(*, root: Path, name: str) -> Path:
    """``<root>/<name>`` after validating ``name`` as a single safe path component."""
    gitutil.validate_safe_name(name, what="workspace name")
    return resolve_path(root) / name


def check_removable(*, repo_path: Path, root: Path, path: Path) -> Path:
    """Return the resolved ``path`` if it is strictly inside ``root`` and is not the project checkout."""
    real_root = resolve_path(root)
    real = resolve_path(path)
    real_repo = resolve_path(repo_path)
    if real == real_repo or real_repo.is_relative_to(real):
        raise WorkspaceRefused(f"refusing to remove {path}: it is (or contains) the project's own checkout")
    if real == real_root or not real.is_relative_to(real_root):
        raise WorkspaceRefused(f"refusing to remove {path}: it is not inside ao's managed root {real_root}")
    return real


def _linked_from(entry: Path, repo_path: Path) -> bool:
    """True when ``entry`` is a symlink into the project's checkout (one ``setup`` made)."""
    if not entry.is_symlink():
        return False
    target = Path(os.readlink(entry))
    if not target.is_absolute():
        target = entry.parent / target
    return resolve_path(target).is_relative_to(resolve_path(repo_path))


def uncommitted_changes(*, path: Path, repo_path: Path) -> list[str]:
    """``git status`` lines of ``path``, without the symlinks ``setup`` made into the checkout."""
    return [
        f"{code} {rel}"
        for code, rel in gitutil.status_entries(path)
        if not (code == "??" and _linked_from(path / rel.rstrip("/"), repo_path))
    ]


def check_clean(
    *, path: Path, repo_path: Path, timeout: float = gitutil.DEFAULT_TIMEOUT, safe: Sequence[str] = ()
) -> None:
    """Raise WorkspaceRefused if ``path`` has uncommitted changes or commits on no remote.

    Commits that are in one of the ``safe`` commits (the head of a merged PR, which a squash
    merge leaves on no branch) count as pushed. Untracked symlinks into the project's checkout
    (made by ``setup``) do not count as changes.
    """
    dirty = uncommitted_changes(path=path, repo_path=repo_path)
    if dirty:
        shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        raise WorkspaceRefused(
            f"refusing to remove {path}: it has uncommitted changes ({shown}); commit and push them, "
            "or remove with force"
        )
    unpushed = gitutil.unpushed_commits(path, safe=safe)
    if unpushed:
        branch = gitutil.current_branch(path) or "HEAD"
        shown = "; ".join(unpushed[:3]) + (" ..." if len(unpushed) > 3 else "")
        raise WorkspaceRefused(
            f"refusing to remove {path}: branch {branch!r} has commits that are on no remote ({shown}); "
            "push them, or remove with force"
        )


# --- setup: symlinks and post-create commands -------------------------------------------------------
def link_symlinks(*, repo_path: Path, path: Path, symlinks: Sequence[str]) -> list[CommandOutput]:
    """Link each repo-relative entry from the project's checkout into the workspace.

    Refuses (PermanentIntegrationError) absolute entries and any that resolve outside the
    project's checkout or the workspace; skips, with a note, missing sources and entries
    the workspace already has (e.g. tracked files).
    """
    real_repo = resolve_path(repo_path)
    real_ws = resolve_path(path)
    results = []
    for rel in symlinks:
        if not isinstance(rel, str) or not rel or "\0" in rel or Path(rel).is_absolute():
            raise PermanentIntegrationError(f"symlink entry {rel!r} must be a path relative to the project")
        source = resolve_path(real_repo / rel)
        if source == real_repo or not source.is_relative_to(real_repo):
            raise PermanentIntegrationError(f"symlink {rel!r} escapes the project directory {real_repo}")
        dest = real_ws / rel
        if not resolve_path(dest.parent).is_relative_to(real_ws) or ".." in Path(rel).parts:
            raise PermanentIntegrationError(f"symlink {rel!r} escapes the workspace {real_ws}")
        argv = ("ln", "-s", str(source), str(dest))
        if not source.exists():
            results.append(CommandOutput(argv, 0, f"skipped: {rel} does not exist in the project"))
        elif dest.exists() or dest.is_symlink():
            results.append(CommandOutput(argv, 0, f"skipped: {rel} already exists in the workspace"))
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(source)
            results.append(CommandOutput(argv, 0, f"linked {rel}"))
    return results


def post_create_argv(entry: str | Sequence[str], *, path: Path) -> list[str]:
    """The argv for one ``postCreate`` entry; nothing is ever given to a shell.

    - a list is an argv, used as given;
    - a string naming a script file inside the workspace runs that script (``sh <script>``
      unless it is executable);
    - any other string is split into words like a shell would (``shlex.split``: quotes work)
      and run directly, so pipes, redirects, ``&&`` and ``$VARS`` have no effect: put those in
      a script.
    """
    if isinstance(entry, str):
        if not entry.strip() or "\0" in entry:
            raise PermanentIntegrationError(f"post_create command {entry!r} is empty or contains NUL")
        if not Path(entry).is_absolute():
            script = resolve_path(path / entry)
            if script.is_relative_to(resolve_path(path)) and script.is_file():
                return [str(script)] if os.access(script, os.X_OK) else ["sh", str(script)]
        try:
            words = shlex.split(entry)
        except ValueError as exc:
            raise PermanentIntegrationError(f"post_create command {entry!r} cannot be split: {exc}") from exc
        return post_create_argv(words, path=path)
    argv = list(entry)
    if not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise PermanentIntegrationError(f"post_create command {entry!r} must be a non-empty list of strings")
    return argv


def run_command(argv: Sequence[str], *, cwd: Path, timeout: float) -> CommandOutput:
    """Run ``argv`` (no shell) in ``cwd`` with stdin closed; capture output, never raise on failure."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            list(argv),
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")[-OUTPUT_LIMIT:]
        return CommandOutput(
            tuple(argv), None, out + f"\n[timed out after {timeout:g}s]", time.monotonic() - started, True
        )
    except OSError as exc:
        return CommandOutput(tuple(argv), None, f"could not start: {exc}", time.monotonic() - started)
    out = proc.stdout.decode("utf-8", "replace")[-OUTPUT_LIMIT:]
    return CommandOutput(tuple(argv), proc.returncode, out, time.monotonic() - started)


def setup_workspace(
    *,
    repo_path: Path,
    path: Path,
    symlinks: Sequence[str] = (),
    post_create: Sequence[str | Sequence[str]] = (),
    timeout: float = 600.0,
) -> list[CommandOutput]:
    """Link ``symlinks``, then run ``post_create`` commands in order, stopping at the first failure.

    Returns one CommandOutput per step so the caller can put them on the session's timeline.
    Invalid entries (escaping links, shell strings) raise PermanentIntegrationError before
    anything runs.
    """
    argvs = [post_create_argv(entry, path=path) for entry in post_create]
    results = link_symlinks(repo_path=repo_path, path=path, symlinks=symlinks)
    for argv in argvs:
        result = run_command(argv, cwd=path, timeout=timeout)
        results.append(result)
        if not result.ok:
            break
    return results
