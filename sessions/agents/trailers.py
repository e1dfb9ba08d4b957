"""Commit trailers: the commits an agent makes in its worktree carry ``Ao-Session``, ``Ao-Agent``
and ``Ao-Model`` trailers, so ``git log`` ties code back to the session (and the learning loop's
outcomes to the commits). Set up when the agent's workspace is made (``starting.session_start``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from integrations import gitutil
from integrations.base import IntegrationError
from sessions.models import Session

log = logging.getLogger(__name__)

# --- commit trailers ---------------------------------------------------------------------------------
GIT_TIMEOUT = 20.0
HOOKS_DIR_NAME = "ao-hooks"
# Only these characters reach a trailer: values are also filtered again by the hook itself.
TRAILER_VALUE_RE = re.compile(r"[^A-Za-z0-9._:/@+-]")
# The repository's own hooks that keep running in ao's worktrees (through a delegating stub).
DELEGATED_HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "post-rewrite",
)

# Static scripts: no data is ever templated into them. The values come from git config keys
# (``ao.session``, ``ao.agent``, ``ao.hooksdir``) written with argv, read back with argv.
PREPARE_COMMIT_MSG = r"""#!/bin/sh
# Written by ao: adds Ao-Session, Ao-Agent and Ao-Model trailers to the commits made in this worktree.
# The values come from `git config ao.session` / `ao.agent` / `ao.model`, never from this file.
msg_file="$1"
clean() { printf '%s' "$1" | tr -cd 'A-Za-z0-9._:/@+-' | cut -c1-200; }
session=$(clean "$(git config --get ao.session)")
agent=$(clean "$(git config --get ao.agent)")
model=$(clean "$(git config --get ao.model)")
if [ -n "$msg_file" ] && [ -f "$msg_file" ]; then
  if [ -n "$session" ]; then
    git interpret-trailers --in-place --if-exists replace --trailer "Ao-Session: $session" "$msg_file" || true
  fi
  if [ -n "$agent" ]; then
    git interpret-trailers --in-place --if-exists replace --trailer "Ao-Agent: $agent" "$msg_file" || true
  fi
  if [ -n "$model" ]; then
    git interpret-trailers --in-place --if-exists replace --trailer "Ao-Model: $model" "$msg_file" || true
  fi
fi
orig=$(git config --get ao.hooksdir)
if [ -n "$orig" ] && [ -x "$orig/prepare-commit-msg" ]; then
  exec "$orig/prepare-commit-msg" "$@"
fi
exit 0
"""

DELEGATE_HOOK = r"""#!/bin/sh
# Written by ao: runs the repository's own hook of this name, if it has one.
orig=$(git config --get ao.hooksdir)
name=$(basename "$0")
if [ -n "$orig" ] && [ -x "$orig/$name" ]; then
  exec "$orig/$name" "$@"
fi
exit 0
"""


def _git(args: list[str], *, cwd: Path) -> str:
    return gitutil.git_out(args, cwd=cwd, timeout=GIT_TIMEOUT).strip()


def trailer_value(value: str) -> str:
    return TRAILER_VALUE_RE.sub("", value or "")[:200]


def workspace_commit_trailers(path: Path | str, session: Session) -> bool:
    """Make commits in the worktree at ``path`` carry ``Ao-Session: <id>``, ``Ao-Agent: <agent>``
    and (when known) ``Ao-Model: <model>`` trailers. Returns False (and logs) when git refuses.

    Hooks live in the repository's common dir and are shared by all its worktrees, so ao does
    not touch them: it enables per-worktree config (``extensions.worktreeConfig``), points this
    worktree's ``core.hooksPath`` at a hooks dir inside the worktree's own git dir (outside the
    working tree, so it is never committed), and writes there a ``prepare-commit-msg`` hook
    (which ``--no-verify`` does not skip) plus stubs that still run the repository's own hooks.
    """
    path = Path(path)
    try:
        git_dir = Path(_git(["rev-parse", "--absolute-git-dir"], cwd=path))
        hooks = git_dir / HOOKS_DIR_NAME
        # The hooks this worktree would run without us (core.hooksPath honoured; relative to it).
        current = Path(_git(["rev-parse", "--git-path", "hooks"], cwd=path))
        current = current if current.is_absolute() else (path / current)
        # in the checkout's one .git/config, shared by every worktree: written once, under the lock
        # that sessions spawned at once take turns on (git refuses a second writer)
        enabled = gitutil.run_git(["config", "--get", "extensions.worktreeConfig"], cwd=path, check=False)
        if enabled.stdout.strip() != "true":
            with gitutil.config_lock(path):
                _git(["config", "extensions.worktreeConfig", "true"], cwd=path)
        if current.resolve() != hooks.resolve():
            _git(["config", "--worktree", "ao.hooksdir", str(current.resolve())], cwd=path)
        _git(["config", "--worktree", "ao.session", trailer_value(session.id)], cwd=path)
        _git(["config", "--worktree", "ao.agent", trailer_value(session.agent)], cwd=path)
        _git(["config", "--worktree", "ao.model", trailer_value(session.model)], cwd=path)
        hooks.mkdir(mode=0o755, exist_ok=True)
        for name in DELEGATED_HOOKS:
            (hooks / name).write_text(DELEGATE_HOOK)
            (hooks / name).chmod(0o755)
        (hooks / "prepare-commit-msg").write_text(PREPARE_COMMIT_MSG)
        (hooks / "prepare-commit-msg").chmod(0o755)
        _git(["config", "--worktree", "core.hooksPath", str(hooks)], cwd=path)
    except (OSError, IntegrationError) as exc:
        log.warning("commit trailers for %s not set up in %s: %s", session.pk, path, exc)
        return False
    return True


def workspace_model_record(path: Path | str, model: str) -> bool:
    """The model the agent says it runs, for the ``Ao-Model`` trailer of the worktree's next
    commits (the session's model changed after the trailers were set up). False when git refuses,
    or when no trailers were set up in the repository (the orchestrator's worktree has none: it
    makes no commits; per-worktree config is off until a worker's trailers turn it on)."""
    try:
        enabled = gitutil.run_git(
            ["config", "--get", "extensions.worktreeConfig"], cwd=Path(path), check=False
        )
        if enabled.stdout.strip() != "true":
            return False
        _git(["config", "--worktree", "ao.model", trailer_value(model)], cwd=Path(path))
    except (OSError, IntegrationError) as exc:
        log.warning("Ao-Model trailer not updated in %s: %s", path, exc)
        return False
    return True
