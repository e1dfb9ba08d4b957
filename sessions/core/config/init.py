"""``ao init``: a first ao.config.yaml for a repository, from what it holds (its remote, default
branch, test command, the agent CLIs on PATH).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sessions.core.config.discovery import CONFIG_FILENAME
from sessions.core.config.problems import problem_error
from sessions.core.config.schema import BRANCH_BAD, REPO_RE, session_prefix_for, yaml_scalar

GIT_TIMEOUT = 10.0
# Agent CLIs `ao init` looks for on PATH, in order of preference: binary -> agent plugin key.
AGENT_CLIS = (
    ("claude", "claude-code"),
    ("codex", "codex"),
    ("aider", "aider"),
    ("opencode", "opencode"),
    ("gemini", "gemini"),
)
DEFAULT_AGENT = "claude-code"


# --- ao init -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GitRemote:
    host: str
    owner: str
    name: str

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def is_github(self) -> bool:
        """github.com, or a GitHub Enterprise host such as github.acme.com."""
        return (
            self.host == "github.com" or self.host.endswith(".github.com") or "github" in self.host.split(".")
        )


_SCP_RE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>[^/].*)$")


def git_remote_parse(url: str) -> GitRemote | None:
    """owner/name and host from a git remote URL: https, ssh://, git://, or scp-like git@host:o/n.git.

    Credentials in the URL are dropped. None for local paths and paths that are not owner/name.
    """
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ssh", "git", "git+ssh", "ssh+git"):
            return None
        host, path = (parts.hostname or ""), parts.path
    else:
        match = _SCP_RE.match(url)
        if not match or url.startswith(("/", ".")):
            return None
        host, path = match["host"], match["path"]
    segments = [s for s in path.strip("/").split("/") if s]
    if not host or len(segments) != 2:
        return None
    owner, name = segments[0], segments[1].removesuffix(".git")
    if not REPO_RE.match(f"{owner}/{name}"):
        return None
    return GitRemote(host=host.lower(), owner=owner, name=name)


def _git(repo: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        raise problem_error(repo, "git is not installed (not found on PATH)")
    try:
        done = subprocess.run(
            [git, "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired:
        raise problem_error(repo, f"git {' '.join(args)} took longer than {GIT_TIMEOUT:.0f}s") from None
    return done.stdout.strip() if done.returncode == 0 else None


# The test command `ao init` proposes as the local SCM's check_command, looked for in this order:
# a Makefile's test target (the project's own entry point, often wrapping more than one tool), a
# package.json test script, then pytest (its config, a dependency on it, or a tests directory).
_MAKEFILES = ("GNUmakefile", "makefile", "Makefile")  # make's own order
_MAKE_TEST_RE = re.compile(r"^(?:[\w.%/-]+[ \t]+)*test(?:[ \t]+[\w.%/-]+)*[ \t]*::?(?!=)", re.MULTILINE)
_NPM_NO_TEST = "no test specified"  # npm init's placeholder script, which always fails
_PYTEST_MARKS = (
    ("pytest.ini", None),
    ("pyproject.toml", re.compile(r"\bpytest\b")),
    ("setup.cfg", re.compile(r"^\[tool:pytest\]", re.MULTILINE)),
    ("tox.ini", re.compile(r"^\[pytest\]", re.MULTILINE)),
    ("conftest.py", None),
)
_MAX_PROBE_BYTES = 1024 * 1024


def _probe_text(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_PROBE_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _is_test_file(path: Path) -> bool:
    return path.suffix == ".py" and (path.name.startswith("test_") or path.name.endswith("_test.py"))


def _python_tests(root: Path) -> tuple[str, list[Path]] | None:
    """Where the repository's Python test files are (a ``tests``/``test`` directory, else the top
    level) and a few of them; None when there are none."""
    for name in ("tests", "test"):
        directory = root / name
        if directory.is_dir() and not directory.is_symlink():
            found = []
            for count, path in enumerate(directory.rglob("*.py")):
                if _is_test_file(path):
                    found.append(path)
                if len(found) >= 20 or count > 2000:
                    break
            if found:
                return name, found
    top = sorted(path for path in root.glob("*.py") if _is_test_file(path))[:20]
    return (".", top) if top else None


_UNITTEST_RE = re.compile(r"^\s*(?:import unittest\b|from unittest\b)", re.MULTILINE)
_PYTEST_RE = re.compile(r"^\s*(?:import pytest\b|from pytest\b|from _pytest\b)", re.MULTILINE)


def _python_test_command(where: str, files: list[Path]) -> tuple[tuple[str, ...], str]:
    """pytest, unless the test files use unittest and none of them pytest: then the standard
    library's runner (pytest may not be installed where the check runs)."""
    texts = [_probe_text(path) or "" for path in files]
    place = "test files at the top level" if where == "." else f"a {where} directory"
    if any(_UNITTEST_RE.search(t) for t in texts) and not any(_PYTEST_RE.search(t) for t in texts):
        discover = () if where == "." else ("discover", "-s", where)
        return ("python3", "-m", "unittest", *discover), f"unittest ({place})"
    return ("pytest",), f"pytest ({place})"


def check_command_detect(root: Path) -> tuple[tuple[str, ...], str] | None:
    """The test command of the repository at ``root`` and where it was found, or None."""
    for name in _MAKEFILES:
        text = _probe_text(root / name)
        if text is not None:
            if _MAKE_TEST_RE.search(text):
                return ("make", "test"), f"the test target of {name}"
            break  # make reads only the first of these it finds
    text = _probe_text(root / "package.json")
    if text is not None:
        try:
            scripts = json.loads(text).get("scripts")
        except (ValueError, AttributeError):
            scripts = None
        script = scripts.get("test") if isinstance(scripts, dict) else None
        if isinstance(script, str) and script.strip() and _NPM_NO_TEST not in script:
            runner = (
                "pnpm"
                if (root / "pnpm-lock.yaml").is_file()
                else "yarn"
                if (root / "yarn.lock").is_file()
                else "npm"
            )
            return (runner, "test"), "the test script of package.json"
    for name, pattern in _PYTEST_MARKS:
        text = _probe_text(root / name)
        if text is not None and (pattern is None or pattern.search(text)):
            return ("pytest",), f"pytest ({name})"
    if found := _python_tests(root):
        return _python_test_command(*found)
    return None


@dataclass(frozen=True)
class RepoFacts:
    root: Path
    remote: GitRemote | None
    default_branch: str
    agents_found: tuple[str, ...]  # agent plugin keys whose CLI is on PATH
    check: tuple[tuple[str, ...], str] | None = None  # (test command, where it was found)

    @property
    def agent(self) -> str:
        return self.agents_found[0] if self.agents_found else DEFAULT_AGENT


def repo_inspect(*, repo: Path) -> RepoFacts:
    """What `ao init` learns from a repository: remote, default branch, agent CLIs on PATH."""
    repo = Path(repo).expanduser().absolute()
    if not repo.is_dir():
        raise problem_error(repo, "not a directory")
    top = _git(repo, "rev-parse", "--show-toplevel")
    if not top:
        raise problem_error(repo, "not inside a git repository (run `git init` first)")
    root = Path(top)
    url = _git(root, "remote", "get-url", "origin")
    remote = git_remote_parse(url) if url else None
    branch = _git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if branch and "/" in branch:
        branch = branch.split("/", 1)[1]
    else:
        branch = _git(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    if not branch or BRANCH_BAD.search(branch):
        branch = "main"
    found = tuple(key for binary, key in AGENT_CLIS if shutil.which(binary))
    return RepoFacts(
        root=root, remote=remote, default_branch=branch, agents_found=found, check=check_command_detect(root)
    )


def project_key_for(name: str) -> str:
    """A valid project key (PROJECT_KEY_RE) from a directory or repository name."""
    key = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return key[:63].rstrip("-_") or "project"


def config_init_text(*, repo: Path) -> str:
    """The ao.config.yaml `ao init` would write for ``repo``."""
    return _init_text(repo_inspect(repo=repo))


def _init_text(facts: RepoFacts) -> str:
    key = project_key_for(facts.remote.name if facts.remote else facts.root.name)
    hosted = facts.remote is not None and facts.remote.is_github
    found = ", ".join(binary for binary, k in AGENT_CLIS if k in facts.agents_found) or "none"
    lines = [
        "# ao configuration, written by `ao init`. Every key: docs/CONFIG.md.",
        "# Key names are those of agent-orchestrator.yaml, so either file works.",
        "",
        "projects:",
        f"  {key}:",
        f"    name: {yaml_scalar(facts.remote.name if facts.remote else facts.root.name)}",
    ]
    if facts.remote is not None:
        lines.append(f"    repo: {yaml_scalar(facts.remote.repo)}")
    lines += [
        "    path: .  # relative to this file",
        f"    defaultBranch: {yaml_scalar(facts.default_branch)}",
        f"    sessionPrefix: {session_prefix_for(key)}",
        f"    agent: {yaml_scalar(facts.agent)}  # agent CLIs found on PATH: {found}",
        "    runtime: tmux",
        "    workspace: worktree",
    ]
    remote = facts.remote
    # GitHub Enterprise Server's host: its API, not api.github.com, knows its repositories
    enterprise = remote.host if hosted and remote is not None and remote.host != "github.com" else None
    if enterprise is not None:
        api = f"https://{enterprise}/api/v3"
        for slot in ("tracker", "scm"):
            lines += [f"    {slot}:", "      plugin: github", f"      base_url: {yaml_scalar(api)}"]
    elif hosted:
        lines += ["    tracker: github", "    scm: github"]
    else:
        lines.append("    tracker: local")
        lines += ["    scm:", "      plugin: local"]
        if facts.check is not None:
            command, source = facts.check
            lines += [
                "      # Local CI: ao runs check_command on every pushed PR head, in a fresh clone, and",
                f"      # sends failures to the agent. Found: {source}.",
                f"      check_command: {yaml_scalar(list(command))}",
            ]
        else:
            lines += [
                "      # No test command found. Set check_command and ao runs it on every pushed PR head",
                "      # (local CI, in a fresh clone) and sends failures to the agent. Without one no check",
                "      # runs and no PR counts as green (for a project without tests, set the project's",
                "      # reactions: {approved-and-green: {requiredChecks: []}}).",
                "      # check_command: [pytest, -q]",
            ]
    if enterprise is not None:
        lines.append(f"    # GitHub Enterprise host: {enterprise}")
    lines += [
        "    # maxSessions: 4",
        "    # agentRules: |",
        "    #   Run the tests before pushing.",
        "",
    ]
    return "\n".join(lines)


def config_init(*, repo: Path, force: bool = False) -> Path:
    """Write ao.config.yaml at the root of the git repository ``repo``; return its path.

    Refuses to replace an existing file unless ``force``. Raises ConfigError.
    """
    facts = repo_inspect(repo=repo)
    text, root = _init_text(facts), facts.root
    target = root / CONFIG_FILENAME
    if target.exists() and not force:
        raise problem_error(target, "already exists; use --force to replace it")
    fd, temp = tempfile.mkstemp(prefix=".ao.config.", suffix=".yaml", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if force:
            os.replace(temp, target)
        else:
            os.link(temp, target)  # fails if the file appeared meanwhile: never overwrite silently
    except FileExistsError:
        raise problem_error(target, "already exists; use --force to replace it") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return target
