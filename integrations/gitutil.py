"""Shared git helpers: run git with an argv list and a timeout; validate and derive branch names.

Nothing here builds a shell string. Branch names are data (``x$(id)`` is a valid git branch
name): they travel to git as single argv elements, after a ``--`` or as an option's value,
never through a shell.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import subprocess
import threading
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from integrations.errors import PermanentIntegrationError, TransientIntegrationError

DEFAULT_TIMEOUT = 60.0
SLUG_MAX = 60
BRANCH_MAX = 200
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Characters git refuses anywhere in a ref (git-check-ref-format(1)), plus whitespace.
_REF_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?\Z")
_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


class GitError(PermanentIntegrationError):
    """git exited non-zero. ``stderr`` holds what it said."""

    def __init__(
        self, message: str, *, argv: Sequence[str] = (), returncode: int | None = None, stderr: str = ""
    ):
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(message)


class GitTimeout(TransientIntegrationError):
    """git did not finish within its timeout."""


class BranchNameError(PermanentIntegrationError, ValueError):
    """A branch name that ao will not use."""


# What git needs of ao's environment (docs/SECURITY.md, "Git in an agent's worktree"): where to find
# programs and the person's own git config, and how git itself authenticates (an ssh agent, proxies,
# CA bundles). Nothing else of ao's environment: git runs programs a repository's config names (a
# filter, a credential helper), and an agent can write its repository's config.
GIT_ENV_KEEP = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ",
        "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR",
        "SSH_AUTH_SOCK", "SSH_AGENT_PID",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
        "http_proxy", "https_proxy", "all_proxy", "no_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
    }
)  # fmt: skip
# A command that talks to a remote also keeps what credential helpers read: a keyring's session
# bus (git-credential-libsecret, gh's and Git Credential Manager's stores) and the tokens `gh auth
# git-credential` and GCM take from the environment (ao's GITHUB_TOKEN among them, as before). A
# helper named in a repository's config runs on a fetch whatever ao does (SECURITY.md, "Not
# covered"); without these a person's private repository stopped fetching.
# (A checkout reaches the network too: Git LFS's smudge filter downloads the files it checks out.)
GIT_NETWORK_COMMANDS = frozenset(
    {"fetch", "pull", "push", "ls-remote", "clone", "remote", "worktree", "checkout", "switch", "submodule"}
)
GIT_ENV_KEEP_NETWORK = frozenset(
    {
        "DBUS_SESSION_BUS_ADDRESS",
        "GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", "GH_HOST",
        "GH_CONFIG_DIR",
    }
)  # fmt: skip
# GIT_* variables are git's own settings (identity, GIT_SSH_COMMAND, GIT_CONFIG_GLOBAL, ...) and
# are kept, except those that point git at another repository or make it run another program.
GIT_ENV_DROP = frozenset(
    {
        "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "GIT_EDITOR",
    }
)  # fmt: skip
# Settings that a repository's config (which every worktree shares, so any agent can write it)
# could use to make a git command ao runs start a program of the agent's, turned off on every
# call: the ext:: transport, the file-system monitor (status, diff against the worktree), a pager.
GIT_HARDENING = (
    "-c", "protocol.ext.allow=never",
    "-c", "core.fsmonitor=false",
    "-c", "core.pager=cat",
)  # fmt: skip
# Hooks: ao runs none, in reads and in the writes it makes itself (worktree add, checkout, fetch,
# push, update-ref). Only these two leave ``core.hooksPath`` as the repository says: they run no
# hook, and ``rev-parse --git-path hooks`` answers where the repository's own hooks are (trailers).
_READS_HOOKS_PATH = frozenset({"rev-parse", "config"})
# Commands that can show a patch: no external diff program, no textconv filter.
_DIFF_COMMANDS = frozenset({"diff", "log", "show"})


def git_env(extra: Mapping[str, str] | None = None, *, network: bool = False) -> dict[str, str]:
    """Environment for git: never prompt, stable (untranslated) messages, none of ao's credentials
    (``GIT_ENV_KEEP`` and git's own ``GIT_*`` of ao's environment only; with ``network``, what
    credential helpers read too: ``GIT_ENV_KEEP_NETWORK``, ``GCM_*``)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name in GIT_ENV_KEEP
        or (name.startswith("GIT_") and name not in GIT_ENV_DROP)
        or (network and (name in GIT_ENV_KEEP_NETWORK or name.startswith("GCM_")))
    }
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "LANG": "C",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_PAGER": "cat",
        }
    )
    if extra:
        env.update(extra)
    return env


def git_argv(args: Sequence[str]) -> list[str]:
    """``git`` with ``GIT_HARDENING``, no hooks, and no external diff or textconv, then ``args``
    (the subcommand first)."""
    args = [str(a) for a in args]
    command = args[0] if args else ""
    argv = ["git", *GIT_HARDENING]
    if command not in _READS_HOOKS_PATH:
        argv += ["-c", "core.hooksPath=/dev/null"]
    if command in _DIFF_COMMANDS:
        return [*argv, command, "--no-ext-diff", "--no-textconv", *args[1:]]
    return [*argv, *args]


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | str,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``git <args>`` in ``cwd`` (argv, no shell) and return the completed process.

    Raises GitError on a non-zero exit when ``check`` is true, GitTimeout on timeout and
    PermanentIntegrationError when git is not installed.
    """
    argv = git_argv(args)
    try:
        proc = subprocess.run(
            argv,
            cwd=str(cwd),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            input=input,
            env=git_env(env, network=bool(args) and str(args[0]) in GIT_NETWORK_COMMANDS),
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitTimeout(f"git {' '.join(map(str, args[:2]))} timed out after {timeout:g}s in {cwd}") from exc
    except FileNotFoundError as exc:
        if not Path(cwd).is_dir():
            raise PermanentIntegrationError(f"directory {cwd} does not exist") from exc
        raise PermanentIntegrationError("git is not installed (not found on PATH)") from exc
    if check and proc.returncode != 0:
        what = " ".join(map(str, args[:2]))
        raise GitError(
            f"git {what} failed ({proc.returncode}) in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}",
            argv=argv,
            returncode=proc.returncode,
            stderr=proc.stderr,
        )
    return proc


def git_out(args: Sequence[str], *, cwd: Path | str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """``run_git`` and return stdout without the trailing newline."""
    return run_git(args, cwd=cwd, timeout=timeout).stdout.rstrip("\n")


# --- names ---------------------------------------------------------------------------------------
def validate_safe_name(name: str, *, what: str = "name") -> str:
    """A name used as one path component or tmux session name: ``[A-Za-z0-9][A-Za-z0-9._-]*``, no ``..``."""
    if not isinstance(name, str) or not _SAFE_NAME_RE.match(name) or ".." in name:
        raise BranchNameError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-' (at most 100), "
            "starting with a letter or digit, without '..'"
        )
    return name


def validate_branch_name(name: str, *, cwd: Path | str | None = None) -> str:
    """Return ``name`` if it is a branch name ao will use, else raise BranchNameError.

    Cheap checks first (leading ``-``, ``..``, control characters, whitespace, characters git
    forbids, length), then ``git check-ref-format --branch`` as the authority (``cwd`` does not
    change its answer for a name that passed the cheap checks).
    """
    if not isinstance(name, str) or not name:
        raise BranchNameError("a branch name must not be empty")
    problems = []
    if name.startswith("-"):
        problems.append("starts with '-'")
    if ".." in name:
        problems.append("contains '..'")
    if _CONTROL_RE.search(name):
        problems.append("contains control characters")
    elif _REF_FORBIDDEN_RE.search(name):
        problems.append("contains whitespace or one of ~ ^ : ? * [ \\")
    if "@{" in name or name == "@":
        problems.append("contains '@{' or is '@'")
    if len(name) > BRANCH_MAX:
        problems.append(f"is longer than {BRANCH_MAX} characters")
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        problems.append("has a component starting with '.' or ending with '.lock'")
    if name.endswith(("/", ".")) or name.startswith("/") or "//" in name:
        problems.append("has an empty component or ends with '/' or '.'")
    if problems:
        raise BranchNameError(f"invalid branch name {name!r}: {', '.join(problems)}")
    if not _git_accepts_branch(name):
        raise BranchNameError(f"invalid branch name {name!r}: git check-ref-format rejects it")
    return name


@functools.lru_cache(maxsize=4096)
def _git_accepts_branch(name: str) -> bool:
    """``git check-ref-format --branch`` on a name that passed the cheap checks. Its answer depends
    on the name alone (the one thing it would read from a repository, ``@{-N}``, is refused before),
    so it is asked once per name and process: a spawn validates its branch five times on its way."""
    proc = run_git(["check-ref-format", "--branch", name], cwd="/", check=False, timeout=10)
    return proc.returncode == 0 and proc.stdout.strip() == name


def is_valid_branch_name(name: str, *, cwd: Path | str | None = None) -> bool:
    try:
        validate_branch_name(name, cwd=cwd)
    except BranchNameError:
        return False
    return True


def slugify(text: str, *, max_length: int = SLUG_MAX) -> str:
    """Lower-kebab ASCII slug of ``text`` (``[a-z0-9-]``), cut at a word boundary to ``max_length``."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        if slug[max_length] != "-" and "-" in cut:
            cut = cut.rsplit("-", 1)[0]
        slug = cut.strip("-")
    return slug


def branch_name_for(
    *,
    session_id: str,
    explicit: str | None = None,
    tracker_branch: str | None = None,
    issue_ref: str | None = None,
    issue_title: str | None = None,
    prefix: str = "feat",
    cwd: Path | str | None = None,
) -> str:
    """Choose a session's branch: explicit > tracker's branch name > ``<prefix>/<issue-slug>`` > ``session/<id>``.

    An invalid explicit name is an error (a person typed it and must fix it); an invalid
    tracker-suggested name is untrusted data and falls through to the slug.
    """
    if explicit:
        return validate_branch_name(explicit, cwd=cwd)
    if tracker_branch and is_valid_branch_name(tracker_branch, cwd=cwd):
        return tracker_branch
    issue_text = " ".join(part for part in (issue_ref, issue_title) if part)
    slug = slugify(issue_text)
    if slug:
        candidate = f"{prefix}/{slug}"
        if is_valid_branch_name(candidate, cwd=cwd):
            return candidate
    validate_safe_name(session_id, what="session id")
    return validate_branch_name(f"session/{session_id}", cwd=cwd)


# --- repository facts ----------------------------------------------------------------------------
def resolve_commit(repo: Path | str, rev: str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Full SHA of ``rev`` in ``repo``; GitError naming the rev when it does not exist."""
    if not rev or rev.startswith("-") or _CONTROL_RE.search(rev):
        raise GitError(f"invalid revision {rev!r}")
    proc = run_git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        cwd=repo,
        check=False,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise GitError(f"revision {rev!r} does not exist in {repo}", returncode=proc.returncode)
    return proc.stdout.strip()


def branch_exists(repo: Path | str, branch: str) -> bool:
    return ref_exists(repo, f"refs/heads/{branch}")


def worktrees(repo: Path | str, *, timeout: float = DEFAULT_TIMEOUT) -> dict[Path, str | None]:
    """The repository's worktrees, its main checkout first: resolved path -> the branch checked
    out there (None when detached), from ``git worktree list --porcelain -z``."""
    out = run_git(["worktree", "list", "--porcelain", "-z"], cwd=repo, timeout=timeout).stdout
    trees: dict[Path, str | None] = {}
    current: Path | None = None
    for field in out.split("\0"):
        if field.startswith("worktree "):
            current = Path(os.path.abspath(field[len("worktree ") :])).resolve()
            trees[current] = None
        elif field.startswith("branch ") and current is not None:
            trees[current] = field[len("branch ") :].removeprefix("refs/heads/")
    return trees


def checked_out_at(repo: Path | str, branch: str, *, timeout: float = DEFAULT_TIMEOUT) -> Path | None:
    """Where ``branch`` is checked out (the main checkout or a worktree of ``repo``), or None:
    git refuses a second worktree on it ("already checked out")."""
    return next((path for path, name in worktrees(repo, timeout=timeout).items() if name == branch), None)


def ref_exists(repo: Path | str, ref: str) -> bool:
    proc = run_git(["show-ref", "--verify", "--quiet", ref], cwd=repo, check=False)
    return proc.returncode == 0


def current_branch(worktree: Path | str) -> str | None:
    """The branch checked out in ``worktree``, or None when HEAD is detached."""
    proc = run_git(["symbolic-ref", "-q", "--short", "HEAD"], cwd=worktree, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def unpushed_commits(
    worktree: Path | str, *, ref: str = "HEAD", limit: int = 20, safe: Sequence[str] = ()
) -> list[str]:
    """Commits reachable from ``ref`` that no remote-tracking ref has (``git rev-list ref --not
    --remotes``), nor any of the ``safe`` commits (e.g. the head of a PR that was squash-merged).

    A repository without any remote has every commit unpushed.
    """
    known = [sha for sha in safe if _SHA_RE.match(sha or "") and _has_commit(worktree, sha)]
    out = git_out(
        [
            "rev-list",
            f"--max-count={limit}",
            "--format=%h %s",
            "--no-commit-header",
            ref,
            "--not",
            "--remotes",
            *known,
        ],
        cwd=worktree,
    )
    return [line for line in out.splitlines() if line]


def _has_commit(repo: Path | str, sha: str) -> bool:
    proc = run_git(["cat-file", "-e", f"{sha}^{{commit}}"], cwd=repo, check=False)
    return proc.returncode == 0


def fetch_remote(repo: Path | str, *, remote: str, timeout: float = 30.0) -> bool:
    """``git fetch <remote>`` (its branches into its remote-tracking refs); False when it failed."""
    validate_safe_name(remote, what="remote name")
    try:
        proc = run_git(
            ["fetch", "--quiet", "--no-tags", "--", remote], cwd=repo, check=False, timeout=timeout
        )
    except GitTimeout:
        return False
    return proc.returncode == 0


def status_entries(worktree: Path | str) -> list[tuple[str, str]]:
    """``git status --porcelain -z`` as (two-letter code, path) pairs; empty when clean."""
    out = run_git(["status", "--porcelain=v1", "-z", "--untracked-files=all"], cwd=worktree).stdout
    entries: list[tuple[str, str]] = []
    fields = out.split("\0")
    i = 0
    while i < len(fields):
        field = fields[i]
        i += 1
        if len(field) < 4:
            continue
        code, path = field[:2], field[3:]
        if code[0] in "RC":
            i += 1  # the rename/copy source follows as its own field
        entries.append((code, path))
    return entries


def _git_dirs(worktree: Path) -> tuple[Path, Path] | None:
    """(the worktree's own git directory, the repository's common one), read from ``.git`` (a
    directory in a clone, a ``gitdir:`` file in a linked worktree) without running git."""
    dot = worktree / ".git"
    try:
        if dot.is_dir():
            return dot, dot
        line = dot.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not line.startswith("gitdir:"):
        return None
    gitdir = (worktree / line[len("gitdir:") :].strip()).resolve()
    try:
        common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except OSError:
        common = gitdir
    return gitdir, common


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def worktree_stamp(worktree: Path | str, refs: Sequence[str] = ()) -> tuple | None:
    """A cheap stamp of what a commit, a checkout, a ``git add``, a fetch or a ref update in
    ``worktree`` changes, taken without a git process: the content of ``HEAD`` and the stat of
    ``HEAD``, the index, ``packed-refs``, the ref ``HEAD`` names and each of ``refs`` (e.g.
    ``refs/remotes/origin/main``). Equal stamps: none of those moved. None when ``worktree`` is
    not a git worktree. Edits to files that are not staged do not change it."""
    dirs = _git_dirs(Path(worktree))
    if dirs is None:
        return None
    gitdir, common = dirs
    try:
        head = (gitdir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    names = list(refs)
    if head.startswith("ref:"):
        names.append(head[len("ref:") :].strip())
    files = [gitdir / "HEAD", gitdir / "index", common / "packed-refs"]
    files += [common / name for name in names if name.startswith("refs/") and ".." not in name]
    return (head, *(_stat_key(path) for path in files))


def remote_url(repo: Path | str, name: str = "origin") -> str | None:
    proc = run_git(["remote", "get-url", "--", name], cwd=repo, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def remote_names(repo: Path | str) -> list[str]:
    return run_git(["remote"], cwd=repo).stdout.split()


def fetch_branch(repo: Path | str, *, remote: str, branch: str, timeout: float = 30.0) -> str | None:
    """Fetch ``branch`` from ``remote`` into ``refs/remotes/<remote>/<branch>`` and return its sha;
    None when the remote cannot be reached (or took longer than ``timeout``) or has no such branch."""
    validate_safe_name(remote, what="remote name")
    validate_branch_name(branch)
    refspec = f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"
    try:
        proc = run_git(
            ["fetch", "--quiet", "--no-tags", "--", remote, refspec], cwd=repo, check=False, timeout=timeout
        )
    except GitTimeout:
        return None
    if proc.returncode != 0:
        return None
    return resolve_commit(repo, f"refs/remotes/{remote}/{branch}")


def branch_from_remote(repo: Path | str, *, remote: str, branch: str, timeout: float = 30.0) -> str | None:
    """Make ``branch``, which ``repo`` does not have, a local branch at the remote's commit (the
    one just fetched; when the remote cannot be reached, its last fetched copy) and return that
    commit; None when the remote has no such branch, and nothing changes then. A branch pushed
    from elsewhere is continued with its commits, not cut afresh from the default branch (whose
    push the remote would reject)."""
    sha = fetch_branch(repo, remote=remote, branch=branch, timeout=timeout)
    if sha is None:
        try:
            sha = resolve_commit(repo, f"refs/remotes/{remote}/{branch}", timeout=timeout)
        except GitError:
            return None
    # create only: an empty old value fails when the branch appeared meanwhile (git's own lock)
    run_git(["update-ref", f"refs/heads/{branch}", sha, ""], cwd=repo, timeout=timeout)
    return sha


class _Fetches:
    """A branch's fetches into one repository, one at a time in this process (see ``fetch_fresh``)."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.started = 0  # fetches begun, numbered from 1
        self.finished = 0  # the number of the last fetch that ended with an answer
        self.running = False
        self.result: str | None = None


_fetches: dict[tuple[str, str, str], _Fetches] = {}
_fetches_lock = threading.Lock()


def fetch_fresh(repo: Path | str, *, remote: str, branch: str, timeout: float = 30.0) -> str | None:
    """``fetch_branch``, from a fetch that began after this call did: what the remote has now.

    Sessions spawned at once fetch the same branch into the same repository; each fetch is a round
    trip to the remote, and concurrent ones contend for the same ref's lock. Here a caller that
    arrives while a fetch runs waits for it to end and shares the next one with every other caller
    that arrived meanwhile: ten spawns at once make two fetches, and none starts from a state of
    the remote older than its own request."""
    key = (os.path.realpath(repo), remote, branch)
    with _fetches_lock:
        state = _fetches.setdefault(key, _Fetches())
    with state.changed:
        wanted = state.started + 1  # the first fetch that begins after now
        while True:
            if state.finished >= wanted:
                return state.result
            if not state.running:
                state.running = True
                state.started += 1
                mine = state.started
                break
            state.changed.wait()
    result: str | None = None
    answered = False
    try:
        result = fetch_branch(repo, remote=remote, branch=branch, timeout=timeout)
        answered = True
    finally:
        with state.changed:
            state.running = False
            if answered:
                state.finished, state.result = mine, result
            state.changed.notify_all()  # on an error a waiter starts its own fetch
    return result


def start_point(repo: Path | str, *, remote: str, branch: str, timeout: float = 30.0) -> str:
    """The commit a new session's branch starts from: ``branch`` as the remote has it now (fetched,
    ``fetch_fresh``), so merged work reaches new sessions; when the remote cannot be reached, the
    last fetched copy or, failing that, the checkout's own ``branch``, whichever has the other (else
    the remote's)."""
    fetched = fetch_fresh(repo, remote=remote, branch=branch, timeout=timeout)
    if fetched:
        return fetched
    candidates = []
    for ref in base_refs(remote=remote, branch=branch):
        try:
            candidates.append(resolve_commit(repo, ref))
        except GitError:
            continue
    if not candidates:
        if run_git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=repo, check=False).returncode != 0:
            raise GitError(
                f"the repository {repo} has no commit yet: a session's branch starts from one — make a "
                "first commit (e.g. `git commit --allow-empty -m 'Initial commit'`), then spawn"
            )
        raise GitError(
            f"{branch!r} is neither in {repo} nor in its remote {remote!r} — set the project's default "
            "branch (`defaultBranch` in ao.config.yaml) to one that exists"
        )
    if len(candidates) == 2 and is_ancestor(repo, candidates[0], candidates[1]):
        return candidates[1]  # the checkout's own branch is ahead of the last fetch
    return candidates[0]


def base_refs(*, remote: str, branch: str) -> tuple[str, str]:
    """The refs ``base_ref`` chooses from, in its order of preference."""
    return f"refs/remotes/{remote}/{branch}", f"refs/heads/{branch}"


def base_ref(repo: Path | str, *, remote: str, branch: str) -> str | None:
    """The ref a session's branch is compared with (its own commits and changes, drift, overlaps):
    the base its worktree was made from (``start_point``), so ``refs/remotes/<remote>/<branch>`` as
    last fetched, else the checkout's own ``refs/heads/<branch>``; None when neither exists. Never
    the local branch first: the person's checkout is rarely pulled, and against its stale
    ``branch`` every PR merged on the remote since would count as the session's work."""
    return next((ref for ref in base_refs(remote=remote, branch=branch) if ref_exists(repo, ref)), None)


def is_ancestor(repo: Path | str, ancestor: str, descendant: str) -> bool:
    proc = run_git(
        ["merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant], cwd=repo, check=False
    )
    return proc.returncode == 0


@contextlib.contextmanager
def config_lock(repo: Path | str) -> Iterator[None]:
    """Hold the repository's config for writing. Every worktree shares the checkout's one
    ``.git/config``, and git refuses a writer while another holds ``config.lock`` ("could not lock
    config file"): ao's writers (sessions spawned at once, in threads or processes of this host)
    take turns on a lock file next to it instead."""
    common = run_git(["rev-parse", "--git-common-dir"], cwd=repo).stdout.strip()
    path = Path(repo, common) / "ao-config.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def set_push_upstream(worktree: Path | str, *, branch: str, remote: str) -> None:
    """Make a bare ``git push`` (and ``git fetch``) in ``worktree`` go to ``remote``'s ``branch``,
    as the "commit and push" ao asks of agents, before the branch was ever pushed."""
    validate_safe_name(remote, what="remote name")
    validate_branch_name(branch)
    with config_lock(worktree):
        run_git(["config", f"branch.{branch}.remote", remote], cwd=worktree)
        run_git(["config", f"branch.{branch}.merge", f"refs/heads/{branch}"], cwd=worktree)
