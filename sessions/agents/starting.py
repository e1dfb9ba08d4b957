"""Starting a session on its agent host: the issue, the worker's prompt (rules, lessons), the
agent's environment (only the credentials it is given, never ao's own), a workspace on a free
branch, and the launch in the runtime; a failed start is recorded and cleaned up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
import sysconfig
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ao_site import served
from integrations import gitutil
from integrations.base import Agent, IntegrationError, PermanentIntegrationError, RuntimeHandle
from integrations.credentials import env_settings, env_settings_raw
from integrations.records import Issue
from integrations.registry import ConfigurationError, plugin_for, registry_for
from integrations.runtime import ESSENTIAL_ENV
from reactions.models import NotifierInstance
from sessions.agents import prompts
from sessions.agents.plugins import (
    RULES_FILE_MAX,
    AgentContext,
    context_for,
    orchestrator_hooks,
    token_hash,
    workspaces_root,
)
from sessions.agents.trailers import workspace_commit_trailers  # the learning loop
from sessions.core import secrets as secrets_store  # model credentials: the project's or a person's own
from sessions.core import services
from sessions.core.selectors import lessons_for_prompt  # the learning loop
from sessions.domain.lifecycle import Phase, RuntimeState
from sessions.models import Actor, Project, Session

log = logging.getLogger(__name__)


# --- start (agent host) ------------------------------------------------------------------------
# The issue the spawn read, for the start on whichever host runs it (the shared cache: Redis when
# scaled out). A start that finds it gone (expired, another cache) reads the tracker once.
ISSUE_KEPT_FOR = timedelta(days=2)


def _issue_key(session: Session) -> str:
    """Per session row (an id comes back after a project is deleted and created again)."""
    return f"ao:spawn-issue:{session.id}:{session.created_at.timestamp():.6f}"


def issue_keep(session: Session, issue: Issue) -> None:
    from django.core.cache import cache

    try:
        cache.set(_issue_key(session), issue, timeout=int(ISSUE_KEPT_FOR.total_seconds()))
    except Exception as exc:  # the cache is down: the start reads the tracker instead
        log.warning("could not keep issue %s for %s in the cache: %s", issue.ref, session.id, exc)


def _issue_for(session: Session) -> Issue | None:
    """The session's issue: the one its spawn read (the shared cache), else read from the tracker;
    None without an issue or when it cannot be read. A start reads it once and passes it on."""
    if not session.issue_ref:
        return None
    from django.core.cache import cache

    issue = None
    with contextlib.suppress(Exception):  # the cache is down: read the tracker
        issue = cache.get(_issue_key(session))
    if issue is None:
        try:
            issue = plugin_for(session.project, "tracker").get_issue(session.issue_ref)
        except IntegrationError as exc:
            log.warning("issue %s of %s could not be read: %s", session.issue_ref, session.id, exc)
    return issue


def _agent_rules(project: Project) -> str:
    rules = project.agent_rules or ""
    if project.agent_rules_file:
        base = Path(project.path).resolve()
        path = (base / project.agent_rules_file).resolve()
        if not path.is_relative_to(base):
            raise ConfigurationError(
                f"projects.{project.key}.agentRulesFile: {project.agent_rules_file!r} is outside the project"
            )
        try:
            text = path.read_text(errors="replace")[:RULES_FILE_MAX]
        except OSError as exc:
            raise ConfigurationError(
                f"projects.{project.key}.agentRulesFile: cannot read {path}: {exc}"
            ) from exc
        rules = f"{rules}\n\n{text}".strip()
    return rules


def worker_prompt(session: Session) -> str:
    """The prompt of the session's agent, its issue read now (e.g. `ao session restore`)."""
    return _worker_prompt(session, _issue_for(session))


def _worker_prompt(session: Session, issue: Issue | None) -> str:
    if session.kind == Session.Kind.ORCHESTRATOR:  # the orchestrator issue: e.g. `ao session restore`
        return orchestrator_hooks["prompt"](session.project)
    project = session.project
    by = session.created_by.get_username() if session.created_by else ""
    return prompts.build_worker_prompt(
        prompts.PromptContext(
            session_id=session.id,
            project=project.name or project.key,
            repo=project.repo,
            scm=project.scm,
            remote=plugin_for(project, "scm").workspace_remote(create=False),
            branch=session.branch,
            base=project.default_branch,
            issue_ref=session.issue_ref,
            issue_title=issue.title if issue else session.issue_title,
            issue_url=issue.url if issue else session.issue_url,
            issue_body=issue.body if issue else "",
            agent_rules=_agent_rules(project),
            task=session.prompt,
            task_from=by,
            lessons=lessons_for_prompt(project=project),  # accepted lessons (the learning loop)
        )
    )


# ao's own credentials and internals: removed from an agent's environment (the agent's own
# model API keys, e.g. ANTHROPIC_API_KEY, pass through untouched). AO_TOKEN and AO_URL are
# replaced by the session's own.
AO_INTERNAL_ENV = (
    "AO_SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "AO_HOME",
    "DJANGO_SETTINGS_MODULE",
    "AO_CONFIG",
    "AO_GITHUB_WEBHOOK_SECRET",
    "AO_SLACK_SIGNING_SECRET",
    "AO_TELEGRAM_SECRET_TOKEN",
    "AO_TELEGRAM_BOT_TOKEN",
)


# The usual names of SCM/tracker tokens (passed on with passTokensToAgents) and of notifier URLs
# (never passed on), removed even when no plugin setting names them.
AO_SERVICE_TOKENS = ("GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN", "LINEAR_API_KEY")
AO_NOTIFIER_ENV = ("SLACK_WEBHOOK_URL",)


# The markers coding agents set for the shells and tools they run (found in the CLIs themselves):
# when ao was started from such a shell, an agent it starts would take itself for one nested in
# that session (Claude Code 2.1.328 then keeps no transcript, so ao loses its activity, tokens, cost
# and conversation; the issue reports versions that refuse to start). Removed from every agent.
AGENT_SESSION_MARKERS = (
    # Claude Code
    "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_CHILD_SESSION",
    "CLAUDE_CODE_SESSION_ATTENDED", "CLAUDE_CODE_CHILD_NOTES_DIR", "CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS",
    "CLAUDE_CODE_SSE_PORT", "CLAUDE_PID", "CLAUDE_PROJECT_DIR", "CLAUDE_EFFORT",
    # Codex
    "CODEX_SANDBOX", "CODEX_SANDBOX_NETWORK_DISABLED", "CODEX_THREAD_ID", "CODEX_TOOL_CALL_ID",
    "CODEX_MANAGED_BY_NPM", "CODEX_MANAGED_BY_BUN", "CODEX_MANAGED_BY_PNPM", "CODEX_MANAGED_BY_VITE_PLUS",
    "CODEX_MANAGED_PACKAGE_ROOT",
    # Gemini CLI
    "GEMINI_CLI", "GEMINI_CLI_NO_RELAUNCH", "GEMINI_CLI_IDE_SERVER_PORT", "GEMINI_CLI_IDE_WORKSPACE_PATH",
    # OpenCode
    "OPENCODE", "OPENCODE_PID", "OPENCODE_CLIENT",
)  # fmt: skip


# The slots whose settings may name ao's credentials; the agent's own settings name the
# agent's own keys, which it needs.
CREDENTIAL_SLOTS = ("tracker", "scm", "runtime", "workspace")
TOKEN_SLOTS = ("tracker", "scm")  # what passTokensToAgents passes on


def _named_env(registry, key: str, plugin_settings: dict, *, where: str) -> set[str]:
    """The environment variables a plugin's settings name (``credentials.env_settings``); by the
    naming convention alone when they cannot be validated (unknown plugin, stale settings)."""
    if not key:
        return set()
    try:
        config = registry.validate_settings(key, plugin_settings, where=where)
    except ConfigurationError:
        return env_settings_raw(plugin_settings)
    return set(env_settings(config).values())


def project_credential_env(project: Project, slots=CREDENTIAL_SLOTS) -> set[str]:
    """The variables holding credentials that the project's plugin settings name."""
    names: set[str] = set()
    for slot in slots:
        names |= _named_env(
            registry_for(slot),
            project.plugin_key(slot),
            project.settings_for(slot),
            where=f"projects.{project.key}.{slot}",
        )
    return names


def credential_env_names() -> set[str]:
    """Every variable holding a credential of ao: named by any project's plugin settings or any
    notifier instance's, plus the usual names of service tokens and ao's own secrets."""
    names = set(AO_INTERNAL_ENV) | set(AO_SERVICE_TOKENS) | set(AO_NOTIFIER_ENV)
    for project in Project.objects.all():
        names |= project_credential_env(project)
    notifier_registry = registry_for("notifier")
    for instance in NotifierInstance.objects.all():
        names |= _named_env(
            notifier_registry, instance.plugin, instance.settings or {}, where=f"notifiers.{instance.name}"
        )
    return names


# In AO_HOME: a directory holding only ao's `ao` command, first on every agent's PATH.
AGENT_BIN = "agent-bin"


def ao_script() -> Path | None:
    """The installed ``ao`` console script of the interpreter running ao (its shebang names that
    interpreter), or None when ao runs without one (``python -m ao_site.cli`` from a checkout)."""
    candidates = [Path(sys.executable).with_name("ao"), Path(sysconfig.get_path("scripts")) / "ao"]
    with contextlib.suppress(KeyError):  # a `pip install --user`
        candidates.append(Path(sysconfig.get_path("scripts", f"{os.name}_user")) / "ao")
    return next((path for path in candidates if path.is_file() and os.access(path, os.X_OK)), None)


def agent_bin() -> Path | None:
    """``AO_HOME/agent-bin``, holding only ``ao`` (a symlink to ao's installed script), made or
    repaired now; None when ao has no installed script (agents then find whatever ``ao`` is on
    the PATH)."""
    script = ao_script()
    if script is None:
        log.warning("no installed `ao` script next to %s: agents get no `ao` of this ao", sys.executable)
        return None
    directory = Path(settings.AO_HOME) / AGENT_BIN
    link = directory / "ao"
    with contextlib.suppress(OSError):
        if os.readlink(link) == str(script):
            return directory
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = directory / f".ao-{os.getpid()}-{secrets.token_hex(4)}"  # starts may run at once
    os.symlink(script, temporary)
    os.replace(temporary, link)
    return directory


def agent_path_env(base: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """An agent's PATH (and VIRTUAL_ENV): ``agent_bin`` first, then ao's own PATH without ao's
    virtualenv. Agents work on their project: its python, pip and pytest, never ao's (an agent's
    `pip install` changed ao's installation); `ao` is the one command of ao's they get."""
    base = os.environ if base is None else base
    path = [p for p in base.get("PATH", "").split(os.pathsep) if p]
    env: dict[str, str | None] = {}
    if sys.prefix != sys.base_prefix:  # ao runs in a virtualenv (activated or not): not the agent's
        ao_venv_bin = os.path.realpath(Path(sys.executable).parent)
        path = [p for p in path if os.path.realpath(p) != ao_venv_bin]
        if os.path.realpath(base.get("VIRTUAL_ENV") or "/nonexistent") == os.path.realpath(sys.prefix):
            env.update(VIRTUAL_ENV=None, VIRTUAL_ENV_PROMPT=None)
    if (directory := agent_bin()) is not None:
        path = [str(directory), *(p for p in path if p != str(directory))]
    env["PATH"] = os.pathsep.join(path)
    return env


def agent_installed(agent: Agent) -> str:
    """The agent CLI's full path as the agent's own PATH finds it (``agent_path_env``: without ao's
    virtualenv, where the launcher will look), not as ao's does; PermanentIntegrationError saying
    how to install it when that PATH has none."""
    return agent.check_installed(path=agent_path_env()["PATH"])


def agent_environment(session: Session, *, token: str, agent: Agent) -> dict[str, str | None]:
    """The agent's environment on top of ao's own (the runtime's launcher layers it over ao's
    environment at the moment it starts the agent, not over its tmux server's): its identity for
    `ao report`, and removed (None) every credential of ao (ao's own secrets, every variable a
    plugin setting of any project or notifier names) and other agents' session markers
    (AGENT_SESSION_MARKERS) and what would stop this CLI being interactive (``agent.unset_env``:
    a CI marker of the machine ao runs on). With passTokensToAgents, the project's own SCM/tracker tokens stay.
    The model credentials are the ones the session was spawned with (``secrets.credentials_env``):
    the project's, or its spawner's personal secrets with every other model credential removed."""
    project = session.project
    removed = credential_env_names()
    if project.pass_tokens_to_agents:
        removed -= set(AO_SERVICE_TOKENS) | project_credential_env(project, TOKEN_SLOTS)
        removed |= set(AO_INTERNAL_ENV)
    removed |= set(AGENT_SESSION_MARKERS) | set(agent.unset_env)
    env: dict[str, str | None] = dict.fromkeys(sorted(removed - ESSENTIAL_ENV))
    # the model credentials: the project's, or the spawner's own (and nobody else's), also on restore
    env.update(
        secrets_store.credentials_env(
            project=project, credentials=session.credentials, user=session.credentials_of
        )
    )
    env.update(agent_path_env())
    env.update(
        AO_SESSION=session.id,
        AO_PROJECT=project.key,
        AO_ISSUE=session.issue_ref,
        AO_URL=served.agent_url(),  # where this ao really serves, or the operator's AO_URL
        AO_URL_FILE=str(served.agent_url_file()),  # where it serves after a restart on another port
        AO_TOKEN=token,
    )
    return env


def session_start(*, session_id: str) -> bool:
    """Create the workspace, start the agent, deliver the prompt. Idempotent; False if not claimed.

    Any failure part-way removes what was created and records why on the session.
    """
    claimed = Session.objects.filter(
        pk=session_id, phase=Phase.SPAWNING, start_claimed_at__isnull=True
    ).update(start_claimed_at=timezone.now())
    if claimed != 1:
        return False
    session = Session.objects.select_related("project", "created_by").get(pk=session_id)
    project = session.project
    created_workspace: Path | None = None
    handle: RuntimeHandle | None = None
    ctx: AgentContext | None = None
    try:
        ctx = context_for(session)
        agent_installed(ctx.agent)
        issue = _issue_for(session)  # read once: the branch name and the prompt
        repo, root, remote, start = _workspace_plan(session, issue)
        created_workspace = ctx.workspace.create(
            repo_path=repo, root=root, name=session.id, branch=session.branch, base=start
        )
        _workspace_prepare(session, ctx, workspace=created_workspace, repo=repo, remote=remote)

        prompt = _worker_prompt(session, issue)
        argv = ctx.agent.launch_command(
            workspace=created_workspace, prompt=prompt if ctx.agent.prompt_in_command else None
        )
        with transaction.atomic():
            handle = launch(session, ctx, cwd=created_workspace, argv=argv)
            services.event_record(
                project=project,
                session=session,
                kind="agent.started",
                summary=f"{session.agent} started in {ctx.runtime.key} session {handle.name}",
                data={"argv": argv[:1]},
            )
            if not ctx.agent.prompt_in_command:
                services.message_queue(
                    session=session, text=prompt, sender=Actor.SYSTEM, sender_name="ao", first=True
                )
            services.session_rederive(session=session)
        return True
    except Exception as exc:
        start_failed(session, exc, ctx=ctx, handle=handle, workspace=created_workspace)
        if not isinstance(exc, IntegrationError | ConfigurationError | ValueError):
            log.exception("unexpected error starting %s", session_id)
        return True


def _workspace_plan(session: Session, issue: Issue | None) -> tuple[Path, Path, str, str]:
    """Where the workspace goes and what it starts from: the checkout, the workspaces' root, the
    remote every instruction names, the start point; the session's branch chosen when unset."""
    project = session.project
    repo = Path(project.path)
    scm = plugin_for(project, "scm")
    # every instruction ao sends the agent names this remote; it exists in the checkout from now on
    remote = scm.workspace_remote()
    if not session.branch:
        branch = gitutil.branch_name_for(
            session_id=session.id,
            tracker_branch=issue.branch_name if issue else None,
            issue_ref=session.issue_ref,
            issue_title=issue.title if issue else session.issue_title,
            cwd=repo,
        )
        session.branch = _free_branch_name(branch, session=session, repo=repo, scm=scm, remote=remote)
    elif not gitutil.branch_exists(repo, session.branch):  # a branch asked for: the remote's, if it has it
        gitutil.branch_from_remote(repo, remote=remote, branch=session.branch)
    root = workspaces_root(project)
    root.mkdir(parents=True, exist_ok=True)
    # from the remote's default branch as it is now (merged work included), not a stale local one
    start = gitutil.start_point(repo, remote=remote, branch=project.default_branch)
    return repo, root, remote, start


def _workspace_prepare(
    session: Session, ctx: AgentContext, *, workspace: Path, repo: Path, remote: str
) -> None:
    """The created workspace made ready for the agent: push upstream, recorded on the session,
    the project's setup steps, commit trailers, the agent's own preparation."""
    project = session.project
    gitutil.set_push_upstream(workspace, branch=session.branch, remote=remote)
    session.workspace_path = str(workspace)
    Session.objects.filter(pk=session.pk).update(branch=session.branch, workspace_path=session.workspace_path)
    services.event_record(
        project=project,
        session=session,
        kind="workspace.created",
        summary=f"workspace {workspace} on branch {session.branch}",
        # where the branch started: a head still there on the remote is none of this session's work
        data={"branch": session.branch, "head": gitutil.resolve_commit(workspace, "HEAD")},
    )
    for step in ctx.workspace.setup(
        repo_path=repo, path=workspace, symlinks=project.symlinks, post_create=project.post_create
    ):
        services.event_record(
            project=project,
            session=session,
            kind="workspace.setup",
            summary=f"{' '.join(step.argv)[:200]} → {'ok' if step.ok else 'failed'}",
            data={"argv": list(step.argv), "returncode": step.returncode, "output": step.output[-4000:]},
        )
        if not step.ok:
            raise PermanentIntegrationError(f"setup step failed: {' '.join(step.argv)}")
    # Commits in the worktree carry Ao-Session / Ao-Agent trailers (the learning loop).
    workspace_commit_trailers(workspace, session)
    for note in ctx.agent.prepare_workspace(workspace, allow_trust=project.allow_agent_trust):
        services.event_record(project=project, session=session, kind="agent.prepared", summary=note)


def _free_branch_name(branch: str, *, session: Session, repo: Path, scm, remote: str) -> str:
    """``branch``, or the first of ``<branch>-<session id>``, ``<branch>-<session id>-2``, ... that
    is neither a local branch nor on the remote (where an old session's PR may still point). When
    the remote cannot answer, its last fetched branches (``refs/remotes/<remote>/``) stand in."""
    ask_remote = True
    candidates = [branch, f"{branch}-{session.id}"] + [f"{branch}-{session.id}-{n}" for n in range(2, 100)]
    for candidate in candidates:
        name = gitutil.validate_branch_name(candidate, cwd=repo)
        if gitutil.branch_exists(repo, name):
            continue
        if ask_remote:
            try:
                if scm.branch_on_remote(name):
                    continue
                return name
            except IntegrationError as exc:
                log.warning("%s: could not ask the remote about branch %r: %s", session.pk, name, exc)
                ask_remote = False
        if not gitutil.ref_exists(repo, f"refs/remotes/{remote}/{name}"):
            return name
    raise PermanentIntegrationError(f"no free branch name like {branch!r}: delete old branches")


def launch(session: Session, ctx: AgentContext, *, cwd: Path, argv: list[str], **facts) -> RuntimeHandle:
    """Start the agent in its runtime with a fresh session token and record it running."""
    token = secrets.token_urlsafe(32)
    handle = ctx.runtime.start(
        name=session.id, cwd=cwd, command=argv, env=agent_environment(session, token=token, agent=ctx.agent)
    )
    Session.objects.filter(pk=session.pk).update(
        # launched_at: readings from before it (the transcript of the process before a restore)
        # do not show that this process takes input (messaging._launch_settled)
        runtime_handle={
            "runtime": handle.runtime,
            "name": handle.name,
            "data": handle.data,
            "launched_at": timezone.now().isoformat(),
        },
        api_token_hash=token_hash(token),
        phase=Phase.RUNNING,
        runtime_state=RuntimeState.ALIVE,
        runtime_checked_at=timezone.now(),
        error="",
        **facts,
    )
    session.refresh_from_db()
    return handle


def start_failed(
    session: Session,
    exc: Exception,
    *,
    ctx: AgentContext | None,
    handle: RuntimeHandle | None,
    workspace: Path | None,
) -> None:
    cleanup_notes = []
    if ctx is not None and handle is not None:
        try:
            ctx.runtime.kill(handle)
            cleanup_notes.append("runtime killed")
        except Exception as kill_exc:
            cleanup_notes.append(f"runtime kill failed: {kill_exc}")
    if ctx is not None and workspace is not None:
        try:
            ctx.workspace.remove(
                repo_path=Path(session.project.path),
                root=workspaces_root(session.project),
                path=workspace,
                force=True,
            )
            _delete_branch_if_fresh(session)
            cleanup_notes.append("workspace removed")
        except Exception as rm_exc:
            cleanup_notes.append(f"workspace removal failed: {rm_exc}")
    reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, IntegrationError) else str(exc)
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(
            phase=Phase.ERRORED, error=reason[:2000], workspace_path="", runtime_handle={}
        )
        session.refresh_from_db()
        services.event_record(
            project=session.project,
            session=session,
            kind="spawn.failed",
            summary=f"failed to start: {reason}"[:500],
            data={"cleanup": cleanup_notes},
        )
        services.session_rederive(session=session)


def _delete_branch_if_fresh(session: Session) -> None:
    """Delete the session's branch if it has no commits of its own (it was just created)."""
    repo = Path(session.project.path)
    if not session.branch or not gitutil.branch_exists(repo, session.branch):
        return
    ahead = gitutil.git_out(
        # the branches are data: after --end-of-options, never read as options
        [
            "rev-list",
            "--count",
            "--not",
            "--remotes",
            "--not",
            "--end-of-options",
            session.branch,
            f"^{session.project.default_branch}",
        ],
        cwd=repo,
    )
    if ahead.strip() == "0":
        gitutil.run_git(["branch", "-D", "--", session.branch], cwd=repo)
