"""The plugin slots: small interfaces holding only what ao's core calls, plus shared errors.

Each plugin class declares a pydantic ``Config`` model for its settings and is registered
under the key users write in config (see ``integrations.registry``).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from integrations.errors import (  # noqa: F401  re-exported: they live below gitutil and workspace
    CommandOutput,
    IntegrationError,
    PermanentIntegrationError,
    TransientIntegrationError,
    WorkspaceRefused,
)
from integrations.records import (  # noqa: F401  re-exported: plugins (third-party ones too) import them from here
    ActivityReading,
    CheckInfo,
    Issue,
    IssueState,
    Notification,
    PullRequestChanges,
    PullRequestInfo,
    PullRequestMark,
    RateStatus,
    RuntimeHandle,
    ThreadInfo,
)
from integrations.workspace import setup_workspace


class PluginConfig(BaseModel):
    """Base for plugin settings models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --- settings that act on the ao host ----------------------------------------------------------------
# A setting that names a program ao runs, arguments it passes to one, a hook or check it runs, or a
# place on the host ao runs in or writes to is a *host setting*: only a superuser may change it
# (sessions.core.host_settings enforces this for the admin and every other path that edits settings).
# Declare it with HostSetting(...). A setting whose name looks like one (see HOST_LIKE_NAME) but is
# not declares so with NotHostSetting(...); an unmarked look-alike counts as a host setting, so a
# third-party plugin that forgets the marker fails closed.
HOST_MARK = "x-ao-host"
HOST_LIKE_NAME = re.compile(
    r"command|cmd|argv|(^|_)args?($|_)|binary|(^|_)bin($|_)|exec|program|script|shell|(^|_)hooks?($|_)|"
    r"check|post_?create|"
    r"path|dir|home|remote|socket|file|permission|allow",
    re.IGNORECASE,
)


def HostSetting(description: str, **kwargs: Any) -> Any:
    """A plugin setting that runs something on the ao host or names a place there: superusers only."""
    return Field(description=description, json_schema_extra={HOST_MARK: True}, **kwargs)


def NotHostSetting(description: str, **kwargs: Any) -> Any:
    """A setting whose name looks like a host setting but is not (reviewed): anyone who configures
    the project may change it."""
    return Field(description=description, json_schema_extra={HOST_MARK: False}, **kwargs)


def host_marker(info: Any) -> bool | None:
    """True / False when the field is declared a host setting or not; None when undeclared."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and HOST_MARK in extra:
        return bool(extra[HOST_MARK])
    return None


def host_settings(config: type[BaseModel]) -> tuple[str, ...]:
    """The host settings of a settings model: declared ones, and undeclared ones whose name looks
    like one (fail closed)."""
    names = []
    for name, info in config.model_fields.items():
        marker = host_marker(info)
        if marker or (marker is None and HOST_LIKE_NAME.search(name)):
            names.append(name)
    return tuple(names)


class Plugin:
    """Every plugin: a key (set by the registry), a settings model and its validated settings."""

    key: ClassVar[str] = ""
    slot: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig | None = None, *, project: Any = None) -> None:
        self.config = config if config is not None else self.Config()
        # The sessions.models.Project this instance serves, for plugins that need one
        # (trackers, SCMs); None for project-independent use.
        self.project = project


# --- runtime ------------------------------------------------------------------------------------
class RuntimeGone(PermanentIntegrationError):
    """The runtime behind a handle no longer exists (session killed, server gone, ao restarted)."""


# The keys that empty an agent's input line before ao types a message into it, so the message is
# never glued to what a person left half-typed there: to the end of the line, then delete back to
# its start. Emacs-style line editors (readline, prompt_toolkit, the agents' TUIs) take them with
# the cursor anywhere; a plain terminal line ignores C-e's effect as C-u kills the whole line.
CLEAR_INPUT_KEYS: tuple[str, ...] = ("C-e", "C-u")
# What runtimes accept in ``clear``: tmux key names, which the process runtime maps to bytes.
CLEAR_KEY_BYTES = {"C-a": b"\x01", "C-e": b"\x05", "C-k": b"\x0b", "C-u": b"\x15",
                   "End": b"\x1b[F", "Home": b"\x1b[H"}  # fmt: skip


def clear_keys_checked(keys: Sequence[str]) -> tuple[str, ...]:
    """``keys`` when every one is a key ao sends to clear a line (CLEAR_KEY_BYTES), else an error."""
    keys = tuple(keys)
    unknown = [k for k in keys if k not in CLEAR_KEY_BYTES]
    if unknown:
        raise PermanentIntegrationError(
            f"cannot clear an input line with {unknown!r}: use {', '.join(CLEAR_KEY_BYTES)}"
        )
    return keys


class Runtime(Plugin, abc.ABC):
    """Where an agent process runs. ``name`` is the session id; the handle is stored on the session.

    ``start`` runs ``command`` as an argv list (never a shell string) in ``cwd`` with ``env``
    layered over ao's own environment at that moment (a None value removes the variable; only
    what the terminal provides, e.g. TERM and TMUX, comes from the runtime). ``send_text`` delivers a message the way TUIs take
    it (clear the line with the ``clear`` keys, type or bracketed-paste, Enter) and raises
    RuntimeGone when there is no runtime. ``probe`` returns a ``sessions.domain.lifecycle.RuntimeState`` value and never raises.
    """

    slot = "runtime"

    @abc.abstractmethod
    def start(
        self, *, name: str, cwd: Path, command: list[str], env: dict[str, str | None]
    ) -> RuntimeHandle: ...

    @abc.abstractmethod
    def send_text(
        self,
        handle: RuntimeHandle,
        text: str,
        *,
        clear: Sequence[str] = CLEAR_INPUT_KEYS,
        paste: bool = False,
    ) -> None:
        """Clear the input line (``clear`` keys), type ``text`` (short text as keys; long or
        multi-line text, or any text with ``paste``, as a bracketed paste), then Enter. Empty
        ``text`` presses Enter alone."""

    @abc.abstractmethod
    def read_output(self, handle: RuntimeHandle, *, lines: int = 200) -> str: ...

    @abc.abstractmethod
    def is_alive(self, handle: RuntimeHandle) -> bool: ...

    @abc.abstractmethod
    def kill(self, handle: RuntimeHandle) -> None: ...

    def probe(self, handle: RuntimeHandle) -> str:
        """One of RuntimeState's values: "alive", "exited", "lost" or "probe_failed". Never raises."""
        try:
            return "alive" if self.is_alive(handle) else "lost"
        except Exception:
            return "probe_failed"

    def attach_command(self, handle: RuntimeHandle) -> list[str]:
        """argv a person can run on the agent host to watch/drive the agent; [] when not attachable."""
        return []

    def activity_marks(self, handles: Sequence[RuntimeHandle]) -> dict[str, str]:
        """A cheap token per handle name that changes whenever the agent's terminal shows new
        output (the activity watcher, ``sessions.flows.watch``); a handle without a runtime is left out.
        By default a hash of the screen; runtimes answer for many handles at once where they can."""
        import hashlib

        marks = {}
        for handle in handles:
            try:
                screen = self.read_output(handle, lines=50)
            except IntegrationError:
                continue  # no runtime behind it: the probe of the next sweep says so
            marks[handle.name] = hashlib.blake2b(screen.encode("utf-8", "replace"), digest_size=8).hexdigest()
        return marks


# --- agent ----------------------------------------------------------------------------------------
class Agent(Plugin, abc.ABC):
    """A coding-agent CLI run inside a runtime.

    Starting one: ``check_installed()``, then ``prepare_workspace()`` (pre-answers start-up
    dialogs through the agent's own settings files), then ``launch_command()``. When
    ``prompt_in_command`` is False the prompt is not part of the argv: the caller sends it
    through the runtime once ``detect_activity`` reports the agent ready. ``resume_command``
    continues an earlier conversation (its id comes from ``ActivityReading.conversation_id``),
    or is None when the CLI cannot.
    """

    slot = "agent"
    binary: ClassVar[str] = ""
    install_hint: ClassVar[str] = ""
    prompt_in_command: ClassVar[bool] = False
    # keys that empty its input line before ao types (see CLEAR_INPUT_KEYS)
    clear_input_keys: ClassVar[tuple[str, ...]] = CLEAR_INPUT_KEYS
    # every message is pasted (bracketed paste), never typed as keys: for a CLI that takes some
    # typed keys as shortcuts (Gemini's "?" on an empty input)
    paste_input: ClassVar[bool] = False
    # after a (re)start, ao types only once the screen has shown the agent's empty prompt for
    # this long (the CLI may draw its prompt before it takes input; see ``screen_ready``)
    input_settle_seconds: ClassVar[float] = 0.0
    # variables of ao's own environment that would turn the CLI into something else than the
    # interactive program ao supervises (Gemini runs headless and exits when it sees CI=true):
    # removed from the agent's environment
    unset_env: ClassVar[tuple[str, ...]] = ()

    def executable(self) -> str:
        """The command to run: the settings' ``binary`` override, else the plugin's default."""
        return getattr(self.config, "binary", None) or self.binary

    def check_installed(self, *, path: str | None = None) -> str:
        """Return the executable's full path; raise PermanentIntegrationError saying how to install it.

        ``path`` is a PATH-style search list (default: this process's PATH).
        """
        import shutil

        executable = self.executable()
        found = shutil.which(executable, path=path)
        if found is None:
            how = f"; install it with: {self.install_hint}" if self.install_hint else ""
            who = self.key or type(self).__name__
            raise PermanentIntegrationError(f"{who} agent: {executable!r} was not found on PATH{how}")
        return found

    @abc.abstractmethod
    def launch_command(self, *, workspace: Path, prompt: str | None, resume: str | None = None) -> list[str]:
        """argv to start the agent in ``workspace``. ``prompt`` is used only when ``prompt_in_command``;
        ``resume`` (a conversation id) delegates to ``resume_command`` and raises
        PermanentIntegrationError when the agent cannot resume."""

    def resume_command(
        self, *, workspace: Path, conversation_id: str, prompt: str | None = None
    ) -> list[str] | None:
        """argv continuing conversation ``conversation_id``; None when the CLI cannot resume."""
        return None

    def prepare_workspace(self, workspace: Path, *, allow_trust: bool) -> list[str]:
        """Pre-answer start-up dialogs through the agent's settings files; return what was done.

        With ``allow_trust`` False nothing that grants trust is written; any dialog left is
        reported by ``detect_activity`` as waiting_input, never answered blindly.
        """
        return []

    @property
    def recognizes_ready(self) -> bool:
        """Whether ``detect_activity`` can tell when this agent is at its prompt. When it can, a
        screen it does not recognise (``unknown``) is never typed into; when it cannot (a custom
        command without ``ready_pattern``), ao types after a short start-up grace."""
        return True

    @abc.abstractmethod
    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        """What the agent is doing now: its own transcript first, terminal heuristics as fallback."""

    def screen_ready(self, pane_text: str) -> bool | None:
        """Whether the screen itself shows the agent's empty input prompt (no dialog, no work,
        nothing typed), whatever its transcript says; None when the plugin cannot tell. A
        transcript written before the agent was (re)started says nothing about whether the new
        process takes input yet: after a launch ao types only once this is True."""
        return None


# --- workspace -----------------------------------------------------------------------------------
class Workspace(Plugin, abc.ABC):
    """A checkout of the project for one session, on its own branch, under ao's managed root.

    ``create`` makes ``<root>/<name>`` on a new ``branch`` from ``base`` and returns its path;
    ``setup`` then links the project's ``symlinks`` into it and runs its ``post_create``
    commands, returning their output for the timeline; ``remove`` deletes it, refusing
    (WorkspaceRefused) paths outside ``root``, the project's own checkout, unpushed commits
    and uncommitted changes unless ``force``.
    """

    slot = "workspace"

    @abc.abstractmethod
    def create(self, *, repo_path: Path, root: Path, name: str, branch: str, base: str) -> Path: ...

    @abc.abstractmethod
    def remove(
        self, *, repo_path: Path, root: Path, path: Path, force: bool = False, safe: Sequence[str] = ()
    ) -> None: ...

    def check_remove(
        self, *, repo_path: Path, root: Path, path: Path, force: bool = False, safe: Sequence[str] = ()
    ) -> None:
        """Raise WorkspaceRefused when ``remove`` with these arguments would refuse; change nothing.
        ``safe``: commits known to be on the remote although no branch has them (a squash-merged
        PR's head)."""

    def setup(
        self,
        *,
        repo_path: Path,
        path: Path,
        symlinks: Sequence[str] = (),
        post_create: Sequence[str | Sequence[str]] = (),
        timeout: float = 600.0,
    ) -> list[CommandOutput]:
        return setup_workspace(
            repo_path=repo_path, path=path, symlinks=symlinks, post_create=post_create, timeout=timeout
        )


# --- tracker -------------------------------------------------------------------------------------
class IssueNotFound(PermanentIntegrationError):
    pass


class Tracker(Plugin, abc.ABC):
    slot = "tracker"

    @abc.abstractmethod
    def get_issue(self, ref: str) -> Issue: ...

    @abc.abstractmethod
    def list_issues(self, *, label: str | None = None, limit: int = 50) -> list[Issue]: ...

    @abc.abstractmethod
    def comment(self, ref: str, body: str) -> None: ...

    def set_labels(self, ref: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """Add and remove labels (or, for trackers without labels, the closest equivalent)."""
        raise PermanentIntegrationError(f"the {self.key} tracker cannot change labels")

    def close(self, ref: str) -> None:
        """Close the issue (or move it to the tracker's done state)."""
        raise PermanentIntegrationError(f"the {self.key} tracker cannot close issues")

    def create_issue(self, *, title: str, body: str = "", labels: Sequence[str] = ()) -> Issue:
        raise PermanentIntegrationError(f"the {self.key} tracker does not take new issues from ao")

    def blocked_by(self, ref: str) -> list[str]:
        """Refs of the still-open issues this issue is blocked by (the tracker's own "blocked by"
        links), in the form ``get_issue`` returns as ``Issue.ref``; [] when the tracker has no such
        links. Issues elsewhere (another repository) keep a ref that names where they are."""
        return []

    # Whether ``set_blocked_by`` links issues (the `local` tracker); a caller asks before it
    # creates anything, so an issue is never left half made.
    takes_blocked_by: ClassVar[bool] = False

    def set_blocked_by(self, ref: str, blockers: Sequence[str]) -> list[str]:
        """Replace the issue's "blocked by" links with ``blockers`` (refs of this tracker's issues);
        returns their numbers. Only trackers with ``takes_blocked_by``; the others refuse."""
        raise PermanentIntegrationError(f"the {self.key} tracker does not take blocked-by links from ao")


# --- scm -----------------------------------------------------------------------------------------
class SCM(Plugin, abc.ABC):
    """Pull requests, their checks and reviews. Reads are batched: a sweep asks once for all.

    ``previous`` lets a plugin skip details that cannot have changed (e.g. fetch a failed job's
    log only when the check is new or its conclusion changed; use ETags for follow-up reads).
    Transient failures (network, 5xx, rate limits) raise TransientIntegrationError; the caller
    keeps the last known facts and marks them stale.
    """

    slot = "scm"

    @abc.abstractmethod
    def find_pull_requests(
        self, *, branches: Sequence[str], since: Mapping[str, datetime] | None = None
    ) -> dict[str, PullRequestInfo]:
        """Per branch, the PR whose head is that branch and that was opened at or after
        ``since[branch]`` (when given): the open one if any, else the most recent. Branches without
        one are absent. A PR opened before ``since`` (an earlier session's, a teammate's) never counts."""

    @abc.abstractmethod
    def fetch_pull_requests(
        self,
        *,
        numbers: Sequence[int],
        previous: Mapping[int, PullRequestInfo] | None = None,
        complete: bool = False,
    ) -> dict[int, PullRequestInfo]:
        """Current state, checks and threads of these PRs, in as few requests as the SCM allows.
        ``previous`` is what ao stored of them; ``complete`` asks for the SCM's most thorough
        read (the periodic full sync), where an SCM has a cheaper one that may miss a fact."""

    def pull_request_changes(
        self,
        *,
        prs: Mapping[int, PullRequestMark],
        branches: Sequence[str],
        state: Mapping[str, Any],
        bases: bool = False,
    ) -> PullRequestChanges | None:
        """Which of ``prs`` changed, and which of ``branches`` got a PR, since the look that
        returned ``state`` (empty: none yet), cheaply (conditional reads). ``bases``: also look
        whether the open PRs' base branches moved (their mergeability may have changed).
        None: the SCM cannot tell, so the caller reads as before. The caller keeps the returned
        ``state`` only after reading what was reported, so a failed read is reported again."""
        return None

    @abc.abstractmethod
    def merge(self, *, number: int, method: str = "squash", expected_head_sha: str = "") -> None: ...

    @abc.abstractmethod
    def comment(self, *, number: int, body: str) -> None: ...

    def rate_status(self) -> RateStatus | None:
        """The credential's remaining budget, when the SCM has one."""
        return None

    def webhook_signing_secret(self) -> str | None:
        """The secret the SCM signs this project's webhook deliveries with, read now; None when the
        project names none of its own (the caller then uses ao's global one). SCMs without
        webhooks keep this default."""
        return None

    # --- what an agent's workspace talks to ---
    def workspace_remote(self, *, create: bool = True) -> str:
        """The git remote (in the project's checkout, so in every worktree) that agents fetch from
        and push to; every instruction ao sends an agent names it. Hosted SCMs: ``origin``."""
        return "origin"

    def branch_on_remote(self, branch: str) -> bool:
        """Whether the remote already has ``branch`` (a new session then picks another name)."""
        return False

    # --- for SCMs where ao itself hosts PRs and CI (`local`); hosted SCMs keep the defaults ---
    def detect_pushed_branches(self) -> list[str]:
        """Branches pushed with commits the default branch lacks and no PR yet."""
        return []

    def branch_sha(self, branch: str) -> str | None:
        """The head commit of ``branch`` in the remote; None when it has no such branch."""
        return None

    def push_branch(self, *, source: Path, branch: str, force: bool = False) -> bool:
        raise PermanentIntegrationError(f"the {self.key} SCM does not take pushes through ao")

    def open_pull_request(self, *, branch: str, title: str = "", body: str = "", base: str | None = None,
                          created_by: str = "", claimed: bool = False) -> tuple[Any, bool]:  # fmt: skip
        """Open (or update) the PR for ``branch``; (row, created). Refuses (PermanentIntegrationError)
        an open PR that another session opened unless the caller claimed it (``claimed``)."""
        raise PermanentIntegrationError(
            f"the {self.key} SCM has agents open PRs with its own tools (e.g. `gh pr create`)"
        )

    def checks_due(self) -> list[int]:
        """Open PRs whose head still needs ao to run its checks."""
        return []

    def run_checks(self, *, number: int, force: bool = False) -> Any:
        """Run ao-hosted checks on a PR's head (once per head unless ``force``)."""
        return None


# --- notifier ------------------------------------------------------------------------------------
class Notifier(Plugin, abc.ABC):
    slot = "notifier"

    @abc.abstractmethod
    def send(self, notification: Notification) -> None: ...


# --- terminal ------------------------------------------------------------------------------------
class Terminal(Plugin, abc.ABC):
    slot = "terminal"

    @abc.abstractmethod
    def url_for(self, *, session_id: str) -> str: ...


SLOT_INTERFACES: dict[str, type[Plugin]] = {
    "runtime": Runtime,
    "agent": Agent,
    "workspace": Workspace,
    "tracker": Tracker,
    "scm": SCM,
    "notifier": Notifier,
    "terminal": Terminal,
}
