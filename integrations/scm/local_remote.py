"""The `local` SCM's bare remote: where it is (the checkout's ``origin`` when that is a local
bare repository, else ``<AO_HOME>/remotes/<project>.git``, created and seeded on first use), how
agents' worktrees reach it (``workspace_remote``), pushing to it, and the git reads ``LocalSCM``
computes PRs with (heads, counts, ``merge-tree --write-tree``), all inside the bare repository.

Branch names are data: they reach git only as ``refs/heads/<name>`` argv elements.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.conf import settings

from integrations.base import PermanentIntegrationError
from integrations.gitutil import BranchNameError, GitError, config_lock, run_git, validate_branch_name

log = logging.getLogger(__name__)

# Stricter than git: what ao accepts as a PR branch (no shell metacharacters, no leading '-').
PR_BRANCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}\Z")

# The name of ao's bare remote in a checkout whose own ``origin`` is somewhere else.
AO_REMOTE = "ao"
# The committer of a merge commit when git has no identity configured on the host.
FALLBACK_IDENTITY = {"GIT_COMMITTER_NAME": "ao", "GIT_COMMITTER_EMAIL": "ao@localhost"}


def validate_pr_branch(name: str) -> str:
    """``name`` if ao takes it as a PR branch, else BranchNameError."""
    if not isinstance(name, str) or not PR_BRANCH_RE.match(name):
        raise BranchNameError(
            f"invalid branch name {name!r}: a PR branch is letters, digits and '. _ / + -', "
            "starting with a letter or digit"
        )
    return validate_branch_name(name)


def _local_remote_path(url: str | None, *, base: Path) -> Path | None:
    """The directory a remote URL names when it is on this machine, else None."""
    if not url:
        return None
    if url.startswith("file://"):
        path = Path(unquote(urlparse(url).path))
    elif "://" in url or re.match(r"^[^/]+:", url):
        return None  # ssh://, https://, or scp-like host:path
    else:
        path = Path(url).expanduser()
        if not path.is_absolute():
            path = base / path
    return path.resolve() if path.is_dir() else None


def _is_bare(path: Path) -> bool:
    proc = run_git(["rev-parse", "--is-bare-repository"], cwd=path, check=False, timeout=10)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def ao_remote_path(project_key: str) -> Path:
    """Where ao makes a project's bare remote when it has no local bare ``origin`` of its own."""
    return Path(settings.AO_HOME) / "remotes" / f"{project_key}.git"


def _push_refusal(proc, *, branch: str) -> str:
    """Why ``git push --porcelain`` failed, in one line: not git's several lines of hints."""
    if any("[rejected]" in line for line in proc.stdout.splitlines()):  # not fast-forward, fetch first
        return (
            f"the remote's {branch} has commits this branch does not "
            "(fetch and rebase onto it, or push with --force)"
        )
    lines = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines()]
    said = [line for line in lines if line and not line.startswith(("hint:", "To ", "Done"))]
    return said[0][:300] if said else f"git push exited with {proc.returncode}"


class LocalRemote:
    """The bare-remote half of ``LocalSCM`` (its ``project`` and ``config.remote`` say where)."""

    # --- where things are -----------------------------------------------------------------

    def _project(self):
        if self.project is None:
            raise PermanentIntegrationError("the local SCM must be bound to a project")
        return self.project

    @property
    def default_branch(self) -> str:
        return self._project().default_branch or "main"

    def remote_path(self) -> Path:
        """The bare repository agents push to; created under AO_HOME/remotes when needed."""
        cached = getattr(self, "_remote", None)
        if cached is not None:
            return cached
        project = self._project()
        checkout = Path(project.path)
        if self.config.remote:
            path = Path(self.config.remote).expanduser()
            path = path if path.is_absolute() else checkout / path
            if not path.is_dir() or not _is_bare(path):
                raise PermanentIntegrationError(
                    f"projects.{project.key}.scm.remote: {path} is not a bare git repository"
                )
        else:
            origin = None
            if checkout.is_dir():
                proc = run_git(["remote", "get-url", "--", "origin"], cwd=checkout, check=False)
                origin = proc.stdout.strip() if proc.returncode == 0 else None
            path = _local_remote_path(origin, base=checkout)
            if path is None or not _is_bare(path):
                path = self._create_remote()
        self._remote = path
        return path

    def _create_remote(self) -> Path:
        project = self._project()
        path = ao_remote_path(project.key)
        if path.is_dir() and _is_bare(path):
            return path
        base = validate_branch_name(self.default_branch)
        path.parent.mkdir(parents=True, exist_ok=True)
        run_git(["init", "--quiet", "--bare", f"--initial-branch={base}", "--", str(path)], cwd=path.parent)
        checkout = Path(project.path)
        if checkout.is_dir():
            # Seed the default branch from the project's checkout (read-only for the checkout).
            run_git(
                ["fetch", "--quiet", "--", str(checkout), f"+refs/heads/{base}:refs/heads/{base}"],
                cwd=path,
                check=False,
                timeout=300,
            )
        log.info("created the local SCM remote for %s at %s", project.key, path)
        return path

    def workspace_remote(self, *, create: bool = True) -> str:
        """The remote agents push to and fetch from, in the project's checkout (so in every worktree):
        ``origin`` when the checkout has none (ao adds it, pointing at its bare remote) or it already
        is ao's remote; else ``ao``, added next to the checkout's own ``origin``, which stays as it is."""
        checkout = Path(self._project().path)
        if not checkout.is_dir():  # no checkout to look in (yet): the name ao gives its remote there
            return "origin"
        remote = self.remote_path().resolve()
        for name in ("origin", AO_REMOTE):
            proc = run_git(["remote", "get-url", "--", name], cwd=checkout, check=False)
            url = proc.stdout.strip() if proc.returncode == 0 else ""
            if not url:
                if create:
                    with config_lock(checkout):
                        if run_git(["remote", "get-url", "--", name], cwd=checkout, check=False).returncode:
                            run_git(["remote", "add", name, str(remote)], cwd=checkout)
                    log.info("added the remote %r (%s) to %s", name, remote, checkout)
                return name
            if _local_remote_path(url, base=checkout) == remote:
                return name
        raise PermanentIntegrationError(
            f"{checkout} has remotes 'origin' and '{AO_REMOTE}' that are not ao's remote {remote}: "
            f"rename the '{AO_REMOTE}' remote, or set projects.{self._project().key}.scm.remote"
        )

    def _remote_name_in(self, repo: Path) -> str | None:
        """The name ``repo`` (a checkout or workspace) gives ao's remote, if any."""
        remote = self.remote_path().resolve()
        for name in ("origin", AO_REMOTE):
            proc = run_git(["remote", "get-url", "--", name], cwd=repo, check=False)
            url = proc.stdout.strip() if proc.returncode == 0 else ""
            if url and _local_remote_path(url, base=Path(repo)) == remote:
                return name
        return None

    def _git(self, args: Sequence[str], **kwargs):
        return run_git(args, cwd=self.remote_path(), **kwargs)

    def _heads(self) -> dict[str, str]:
        """branch -> sha of every branch in the remote, in one git call."""
        out = self._git(["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/"]).stdout
        heads = {}
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            heads[ref.removeprefix("refs/heads/")] = sha
        return heads

    def branch_sha(self, branch: str) -> str | None:
        proc = self._git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"refs/heads/{branch}^{{commit}}"],
            check=False,
        )
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    def _count(self, exclude: str, include: str) -> int:
        return int(
            self._git(["rev-list", "--count", "--end-of-options", include, f"^{exclude}"]).stdout.strip() or 0
        )

    def _merge_tree(self, base_sha: str, head_sha: str) -> tuple[str, bool]:
        """(tree of merging head into base, conflicts?) computed without a working tree."""
        proc = self._git(["merge-tree", "--write-tree", "--no-messages", base_sha, head_sha], check=False)
        if proc.returncode not in (0, 1):
            raise GitError(
                f"git merge-tree failed ({proc.returncode}): {proc.stderr.strip()}",
                returncode=proc.returncode,
                stderr=proc.stderr,
            )
        lines = proc.stdout.splitlines()
        return (lines[0].strip() if lines else ""), proc.returncode == 1

    # --- pushing ---------------------------------------------------------------------------
    def push_branch(self, *, source: Path, branch: str, force: bool = False) -> bool:
        """Push ``branch`` from the repository at ``source`` to the remote; False if it was already there."""
        validate_pr_branch(branch)
        local = run_git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"refs/heads/{branch}^{{commit}}"],
            cwd=source,
            check=False,
        ).stdout.strip()
        if not local:
            raise PermanentIntegrationError(f"branch {branch!r} does not exist in {source}")
        if self.branch_sha(branch) == local:
            return False
        refspec = f"{'+' if force else ''}refs/heads/{branch}:refs/heads/{branch}"
        # by the remote's name where ``source`` has one: its remote-tracking ref then says it is pushed
        target = self._remote_name_in(source) or str(self.remote_path())
        proc = run_git(
            ["push", "--quiet", "--porcelain", "--", target, refspec],
            cwd=source,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            raise PermanentIntegrationError(f"could not push {branch}: {_push_refusal(proc, branch=branch)}")
        return True

    # --- reads for PRs and merges ------------------------------------------------------------
    def _subject(self, sha: str) -> str:
        return self._git(["log", "-1", "--format=%s", sha]).stdout.strip()

    def _identity(self, head: str, *, squash: bool) -> dict[str, str]:
        env: dict[str, str] = {}
        if squash:  # the squashed commit is the PR author's work
            name, _, email = (
                self._git(["log", "-1", "--format=%an%x00%ae", head]).stdout.strip().partition("\0")
            )
            if name and email:
                env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email)
        if self._git(["var", "GIT_COMMITTER_IDENT"], check=False).returncode != 0:
            env.update(FALLBACK_IDENTITY)
            env.setdefault("GIT_AUTHOR_NAME", FALLBACK_IDENTITY["GIT_COMMITTER_NAME"])
            env.setdefault("GIT_AUTHOR_EMAIL", FALLBACK_IDENTITY["GIT_COMMITTER_EMAIL"])
        return env
