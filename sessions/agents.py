"""Services that run agents: spawn, start, observe, kill, restore, clean up.

`session_spawn` runs where the request is made (dashboard, API, CLI): it validates, fetches
the issue, applies admission control and writes the session row. Everything that touches the
workspace and the runtime (`session_start`, `session_observe`, `session_kill`, ...) runs on the
session's agent host, in the Celery queue ``host.<name>`` (in embedded mode: this process).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ao_site import served
from integrations import gitutil
from integrations.base import (
    Agent,
    IntegrationError,
    IssueNotFound,
    PermanentIntegrationError,
    Runtime,
    RuntimeHandle,
    Workspace,
    WorkspaceRefused,
)
from integrations.credentials import env_settings, env_settings_raw
from integrations.registry import ConfigurationError, agents, plugin_for, registry_for
from integrations.workspace import uncommitted_changes
from reactions.models import NotifierInstance
from sessions import audit, hosts, jobs, prompts, prsync, realtime, services, usage
from sessions import secrets as secrets_store  # model credentials: the project's or a person's own
from sessions.hosts import live_sessions
from sessions.jobs import host_queue
from sessions.lifecycle import Activity, Phase, RuntimeState, Zone
from sessions.models import Actor, Event, Project, PullRequest, Session
from sessions.selectors import lessons_for_prompt  # the learning loop
from sessions.text import clean_text
from sessions.trailers import workspace_commit_trailers, workspace_model_record  # the learning loop

log = logging.getLogger(__name__)

RULES_FILE_MAX = 64 * 1024
PANE_LINES = 120


class SpawnRefused(Exception):
    """The spawn was not accepted (over the cap with refusal configured, bad input)."""


class IssueMissing(SpawnRefused):
    """The issue named does not exist in the project's tracker (and the caller did not say to go
    ahead without it): a typo must not start an agent on nothing."""


@dataclass(frozen=True)
class AgentContext:
    """The plugins serving one session, built from its project's configuration."""

    agent: Agent
    runtime: Runtime
    workspace: Workspace


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _agent_for(project: Project, key: str) -> Agent:
    where = f"projects.{project.key}.agent"
    agent_settings = project.settings_for("agent") if key == project.agent else {}
    return agents.create(key, agent_settings, where=where, project=project)


# The orchestrator's session runs its own agent with its own prompt. The orchestrator is a watcher,
# above this module: sessions/apps.py hands both down at start ("context", "prompt").
_orchestrator: dict[str, Callable] = {}


def use_orchestrator(*, context: Callable[[Session], AgentContext], prompt: Callable[[Project], str]) -> None:
    _orchestrator.update(context=context, prompt=prompt)


def context_for(session: Session) -> AgentContext:
    if session.kind == Session.Kind.ORCHESTRATOR:  # the orchestrator issue: its own agent and settings
        return _orchestrator["context"](session)
    project = session.project
    runtime_key = (session.runtime_handle or {}).get("runtime") or project.runtime
    runtime_settings = project.settings_for("runtime") if runtime_key == project.runtime else {}
    return AgentContext(
        agent=_agent_for(project, session.agent or project.agent),
        runtime=registry_for("runtime").create(
            runtime_key, runtime_settings, where=f"projects.{project.key}.runtime", project=project
        ),
        workspace=plugin_for(project, "workspace"),
    )


def _handle(session: Session) -> RuntimeHandle | None:
    data = session.runtime_handle or {}
    if not data.get("name"):
        return None
    return RuntimeHandle(runtime=data["runtime"], name=data["name"], data=data.get("data", {}))


def workspaces_root(project: Project) -> Path:
    return Path(settings.AO_WORKSPACES_ROOT) / project.key


def _host_lock_key(host: str) -> int:
    """A PostgreSQL advisory-lock key (signed 64-bit) standing for one agent host."""
    return int.from_bytes(
        hashlib.sha256(f"ao.admission.host:{host}".encode()).digest()[:8], "big", signed=True
    )


def admission_lock(*, project: Project, host: str) -> None:
    """Serialise admission decisions: call inside the transaction that then counts
    (``admission_check``) and creates or admits the session, so that concurrent spawns cannot
    both see room under a cap. PostgreSQL: the project's row lock, then a transaction-scoped
    advisory lock standing for the host (always in this order). SQLite: the IMMEDIATE
    transaction already holds the database's write lock from its BEGIN."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("admission_lock must run inside the transaction that creates the session")
    if connection.vendor == "sqlite":
        return
    list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_host_lock_key(host)])


def admission_check(*, project: Project, host: str) -> str:
    """Empty when a new session may start now, else the reason it may not. Only a hint unless
    called after ``admission_lock`` in the transaction that creates or admits the session."""
    if project.max_sessions is not None:
        count = live_sessions(project=project).count()
        if count >= project.max_sessions:
            return f"project {project.key} has {count} live sessions (cap {project.max_sessions})"
    host_count, host_cap = live_sessions(host=host).count(), hosts.host_cap(host)
    if host_count >= host_cap:
        return f"host {host} runs {host_count} live sessions (cap {host_cap})"
    return ""


# --- spawn (request side) ----------------------------------------------------------------------
def session_spawn(
    *,
    project: Project,
    issue_ref: str | None = None,
    prompt: str | None = None,
    agent: str | None = None,
    branch: str | None = None,
    by=None,
    actor: str = Actor.USER,
    actor_name: str = "",
    missing_issue_ok: bool = False,
    host: str | None = None,
) -> Session:
    """Accept a spawn request: validate, fetch the issue, admit or queue, write the session.

    The start itself runs in the background on the agent host. Raises SpawnRefused,
    ConfigurationError or PermanentIntegrationError without writing anything; IssueMissing (a
    SpawnRefused) when the tracker does not know ``issue_ref``, unless ``missing_issue_ok`` (then
    the agent starts without issue context and the timeline says so).
    """
    agent_key = agent or project.agent
    # unknown agent or bad settings: ConfigurationError, nothing written
    configured_model = getattr(_agent_for(project, agent_key).config, "model", None) or ""
    task = clean_text(prompt or "", max_chars=settings.AO_MAX_PROMPT_CHARS, what="prompt", allow_empty=True)
    if branch:
        try:
            gitutil.validate_branch_name(branch)
        except ValueError as exc:
            raise SpawnRefused(str(exc)) from exc
    if issue_ref is not None:
        issue_ref = issue_ref.strip().lstrip("#")
        if not issue_ref or len(issue_ref) > 100 or any(c.isspace() for c in issue_ref):
            raise SpawnRefused(f"{issue_ref!r} is not an issue reference")
    over_budget = usage.spawn_budget_refusal(project=project, by=by)  # monthly cost caps; members told
    if over_budget:
        raise SpawnRefused(f"not spawned: {over_budget}")
    try:  # whose model credentials it runs with (kept for restores); refused without any
        credentials, credentials_of = secrets_store.spawn_credentials(project=project, by=by)
    except ValueError as exc:
        raise SpawnRefused(f"not spawned: {exc}") from exc
    try:  # ``host`` asked for, else theirs, allowed, shared: the first with room (sessions/hosts.py)
        host = hosts.host_for_spawn(user=by, requested=host)
    except hosts.HostRefused as exc:
        raise SpawnRefused(f"not spawned: {exc}") from exc

    issue = None
    issue_note = ""
    if issue_ref:
        tracker = plugin_for(project, "tracker")
        try:
            issue = tracker.get_issue(issue_ref)
        except IssueNotFound as exc:
            if not missing_issue_ok:
                raise IssueMissing(str(exc) or f"issue {issue_ref} not found") from exc
            issue_note = f"issue {issue_ref} not found ({exc}); spawned without issue context"
        # Any other tracker error (auth, network) propagates: nothing has been written.

    with transaction.atomic():
        admission_lock(project=project, host=host)  # count and create atomically
        reason = admission_check(project=project, host=host)
        if reason and project.refuse_over_cap:
            raise SpawnRefused(f"not spawned: {reason}")
        session = services.session_create(
            project=project,
            issue_ref=issue_ref or "",
            issue_title=issue.title if issue else "",
            prompt=task,
            agent=agent_key,
            by=by,
        )
        session.issue_url = issue.url if issue else ""
        session.host = host
        session.branch = branch or ""
        session.model = configured_model[:128]  # until the agent says which model it runs
        session.phase = Phase.QUEUED if reason else Phase.SPAWNING
        session.runtime_handle = {"runtime": project.runtime}
        session.credentials, session.credentials_of = credentials, credentials_of
        session.save(
            update_fields=[
                *("issue_url", "host", "branch", "model", "phase", "runtime_handle", "updated_at"),
                *("credentials", "credentials_of"),
            ]
        )
        services.event_record(
            project=project,
            session=session,
            kind="session.credentials",
            summary=f"runs with {secrets_store.credentials_label(session)}"
            + (f" (spawned by {by.get_username()})" if getattr(by, "pk", None) else " (spawned on the host)"),
            data={
                "credentials": credentials,
                "of": credentials_of.get_username() if credentials_of else None,
            },
        )
        if issue is not None:
            # Kept for the start (branch name, prompt): the issue is read once per spawn.
            session._issue = issue
            _issue_keep(session, issue)
        if issue_note:
            services.event_record(
                project=project, session=session, kind="spawn.issue_missing", summary=issue_note
            )
        if reason:
            services.event_record(
                project=project, session=session, kind="spawn.queued", summary=f"queued: {reason}"
            )
        services.session_rederive(session=session, actor=actor)
        audit.record(action="session.spawn", target=session, project=project, data={"issue": issue_ref or ""})
        if not reason:
            _enqueue_start(session)
    return session


def _enqueue_start(session: Session) -> None:
    session_id, queue = session.id, host_queue(session.host or settings.AO_HOST_NAME)
    transaction.on_commit(lambda: jobs.enqueue(jobs.SESSION_START, args=[session_id], queue=queue))


# A start that no worker has begun this long after the spawn was never enqueued (the broker was
# unreachable) or its task was lost with a broker that restarted empty: the sweep enqueues it again
# (a minute unless AO_START_RETRY_AFTER says otherwise).
START_RETRY_AFTER = timedelta(seconds=settings.AO_START_RETRY_AFTER)
# A start begun longer ago than this (the workspace's set-up steps time out after 10 minutes) whose
# session is still spawning died with its worker: the session fails with that reason.
START_LEASE = timedelta(minutes=15)


def unstarted_sessions_recover(*, project: Project, now=None) -> list[str]:
    """Spawned worker sessions left behind by a fault: enqueue starts nobody began, and fail the
    ones whose starter died part-way (cleaning up what it made), so none stays "spawning" forever.
    Returns the ids it acted on."""
    now = now or timezone.now()
    spawning = Session.objects.filter(project=project, kind=Session.Kind.WORKER, phase=Phase.SPAWNING)
    acted = []
    for session in spawning.filter(start_claimed_at__isnull=True, created_at__lt=now - START_RETRY_AFTER):
        _enqueue_start(session)  # a second delivery of the task is harmless: the start is claimed
        acted.append(session.pk)
    for session in spawning.filter(start_claimed_at__lt=now - START_LEASE).select_related("project"):
        ctx = None
        with contextlib.suppress(ConfigurationError, IntegrationError):
            ctx = context_for(session)
        _start_failed(
            session,
            PermanentIntegrationError(
                f"its start was abandoned: the process starting it stopped more than "
                f"{int(START_LEASE.total_seconds() // 60)} minutes ago; restore or spawn again"
            ),
            ctx=ctx,
            handle=_handle(session) if ctx is not None else None,
            workspace=Path(session.workspace_path) if ctx is not None and session.workspace_path else None,
        )
        acted.append(session.pk)
    return acted


def queued_sessions_admit(*, project: Project) -> list[str]:
    """Start queued sessions of the project while there is room under the caps. Oldest first."""
    started = []
    for session in Session.objects.filter(project=project, phase=Phase.QUEUED).order_by("created_at"):
        with transaction.atomic():
            host = session.host or settings.AO_HOST_NAME
            admission_lock(project=project, host=host)
            if admission_check(project=project, host=host):
                break
            claimed = Session.objects.filter(pk=session.pk, phase=Phase.QUEUED).update(phase=Phase.SPAWNING)
            if claimed != 1:
                continue
            session.refresh_from_db()
            services.event_record(
                project=project, session=session, kind="spawn.admitted", summary="a slot freed up: starting"
            )
            services.session_rederive(session=session)
            _enqueue_start(session)
            started.append(session.id)
    return started


# --- start (agent host) ------------------------------------------------------------------------
# The issue the spawn read, for the start on whichever host runs it (the shared cache: Redis when
# scaled out). A start that finds it gone (expired, another cache) reads the tracker once.
ISSUE_KEPT_FOR = timedelta(days=2)


def _issue_key(session: Session) -> str:
    """Per session row (an id comes back after a project is deleted and created again)."""
    return f"ao:spawn-issue:{session.id}:{session.created_at.timestamp():.6f}"


def _issue_keep(session: Session, issue) -> None:
    from django.core.cache import cache

    try:
        cache.set(_issue_key(session), issue, timeout=int(ISSUE_KEPT_FOR.total_seconds()))
    except Exception as exc:  # the cache is down: the start reads the tracker instead
        log.warning("could not keep issue %s for %s in the cache: %s", issue.ref, session.id, exc)


def _issue_for(session: Session):
    """The session's issue: the one its spawn read (this process, or the shared cache), else read
    from the tracker once for this session object; None without an issue or when it cannot be read."""
    if hasattr(session, "_issue") or not session.issue_ref:
        return getattr(session, "_issue", None)
    from django.core.cache import cache

    issue = None
    with contextlib.suppress(Exception):  # the cache is down: read the tracker
        issue = cache.get(_issue_key(session))
    if issue is None:
        try:
            issue = plugin_for(session.project, "tracker").get_issue(session.issue_ref)
        except IntegrationError as exc:
            log.warning("issue %s of %s could not be read: %s", session.issue_ref, session.id, exc)
    session._issue = issue
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
    if session.kind == Session.Kind.ORCHESTRATOR:  # the orchestrator issue: e.g. `ao session restore`
        return _orchestrator["prompt"](session.project)
    project = session.project
    issue = _issue_for(session)
    by = session.created_by.get_username() if session.created_by_id else ""
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
# Never removed, whatever a (mis)configured setting names: the agent cannot run without them.
ESSENTIAL_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TMPDIR"})


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
    ao_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    env.update(
        PATH=path if ao_bin in path.split(os.pathsep) else os.pathsep.join([ao_bin, path]),
        AO_SESSION=session.id,
        AO_PROJECT=project.key,
        AO_ISSUE=session.issue_ref,
        AO_URL=served.agent_url(),  # where this ao really serves, or the operator's AO_URL
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
        ctx.agent.check_installed()
        repo = Path(project.path)
        scm = plugin_for(project, "scm")
        # every instruction ao sends the agent names this remote; it exists in the checkout from now on
        remote = scm.workspace_remote()
        if not session.branch:
            issue = _issue_for(session)
            branch = gitutil.branch_name_for(
                session_id=session.id,
                tracker_branch=issue.branch_name if issue else None,
                issue_ref=session.issue_ref,
                issue_title=issue.title if issue else session.issue_title,
                cwd=repo,
            )
            session.branch = _free_branch_name(branch, session=session, repo=repo, scm=scm, remote=remote)
        root = workspaces_root(project)
        root.mkdir(parents=True, exist_ok=True)
        # from the remote's default branch as it is now (merged work included), not a stale local one
        start = gitutil.start_point(repo, remote=remote, branch=project.default_branch)
        created_workspace = ctx.workspace.create(
            repo_path=repo, root=root, name=session.id, branch=session.branch, base=start
        )
        gitutil.set_push_upstream(created_workspace, branch=session.branch, remote=remote)
        session.workspace_path = str(created_workspace)
        Session.objects.filter(pk=session.pk).update(
            branch=session.branch, workspace_path=session.workspace_path
        )
        services.event_record(
            project=project,
            session=session,
            kind="workspace.created",
            summary=f"workspace {created_workspace} on branch {session.branch}",
        )
        for step in ctx.workspace.setup(
            repo_path=repo, path=created_workspace, symlinks=project.symlinks, post_create=project.post_create
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
        workspace_commit_trailers(created_workspace, session)
        for note in ctx.agent.prepare_workspace(created_workspace, allow_trust=project.allow_agent_trust):
            services.event_record(project=project, session=session, kind="agent.prepared", summary=note)

        prompt = worker_prompt(session)
        argv = ctx.agent.launch_command(
            workspace=created_workspace, prompt=prompt if ctx.agent.prompt_in_command else None
        )
        with transaction.atomic():
            handle = _launch(session, ctx, cwd=created_workspace, argv=argv)
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
        _start_failed(session, exc, ctx=ctx, handle=handle, workspace=created_workspace)
        if not isinstance(exc, IntegrationError | ConfigurationError | ValueError):
            log.exception("unexpected error starting %s", session_id)
        return True


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


def _launch(session: Session, ctx: AgentContext, *, cwd: Path, argv: list[str], **facts) -> RuntimeHandle:
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


def _start_failed(
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
        ["rev-list", "--count", session.branch, "--not", session.project.default_branch, "--remotes"],
        cwd=repo,
    )
    if ahead.strip() == "0":
        gitutil.run_git(["branch", "-D", "--", session.branch], cwd=repo)


# --- observe (agent host) ---------------------------------------------------------------------
def session_observe(*, session: Session) -> bool:
    """Probe the runtime and the agent's activity, store the facts, re-derive. True if status changed.

    A running session's facts are stored (any other is only re-derived). It asks no reactions: the
    flow that observes asks them to look at the session (the sweep for all its sessions at once,
    a webhook refresh, the activity watcher, the observe task, message delivery)."""
    if session.phase != Phase.RUNNING:
        return services.session_rederive(session=session)
    handle = _handle(session)
    now = timezone.now()
    ctx = context_for(session)
    state = ctx.runtime.probe(handle) if handle else RuntimeState.LOST
    fields: dict = {"runtime_state": state, "runtime_checked_at": now}
    fields["detecting_attempts"] = session.detecting_attempts + 1 if state == RuntimeState.PROBE_FAILED else 0
    if state in (RuntimeState.ALIVE, RuntimeState.EXITED) and session.workspace_path:
        pane = ""
        try:
            pane = ctx.runtime.read_output(handle, lines=PANE_LINES)
        except IntegrationError:
            pass
        reading = ctx.agent.detect_activity(
            workspace=Path(session.workspace_path),
            pane_text=pane,
            now=now,
            process_alive=state == RuntimeState.ALIVE,
        )
        fields.update(activity=reading.state, activity_at=reading.at or now, activity_weak=reading.weak)
        # readings that agree with the previous one extend its run (lifecycle.confirmed)
        same = session.activity_streak > 0 and reading.state == session.activity and session.activity_since
        fields.update(
            activity_since=session.activity_since if same else now,
            activity_streak=session.activity_streak + 1 if same else 1,
        )
        if reading.summary:
            fields["activity_summary"] = reading.summary[:500]
        elif reading.state != session.activity:
            # a summary says what the agent does now: one about the previous state ("Waiting
            # for the model") is wrong once the state changed and the new reading says nothing
            fields["activity_summary"] = ""
        if reading.tokens_in is not None:
            fields["tokens_in"] = reading.tokens_in
        if reading.tokens_out is not None:
            fields["tokens_out"] = reading.tokens_out
        if reading.cost_usd is not None:
            fields["cost_usd"] = round(reading.cost_usd, 4)
        if reading.conversation_id:
            fields["agent_session_ref"] = reading.conversation_id[:255]
        if reading.model and reading.model[:128] != session.model:  # the model it says it runs
            fields["model"] = reading.model[:128]
            workspace_model_record(session.workspace_path, fields["model"])  # the Ao-Model trailer
    else:  # the screen was not read: the next reading starts a new run
        fields["activity_streak"] = 0
    shown = ("runtime_state", "activity", "activity_summary", "tokens_in", "tokens_out", "cost_usd", "model")
    card_stale = any(
        name in fields and _card_value(name, fields[name]) != _card_value(name, getattr(session, name))
        for name in shown
    )
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(**fields)
        for name, value in fields.items():
            setattr(session, name, value)
        if card_stale:  # the card shows these facts even when the status stays the same
            transaction.on_commit(lambda: realtime.card_changed(session.pk))
        return services.session_rederive(session=session)


def _card_value(name: str, value):
    return round(float(value), 4) if name == "cost_usd" else value


# --- kill / restore / cleanup ------------------------------------------------------------------
# Each runs on the session's agent host: called elsewhere in scale-out (another `ao web`, a worker
# of another machine), the service records the request and enqueues `sessions.operate` on the
# host's queue; there `session_operate` runs the same code (`_kill_here`, ...). Inline otherwise.
@dataclass(frozen=True)
class Requested:
    """A kill, restore or clean-up enqueued on the session's agent host; its result lands on the
    session's timeline when it has run there."""

    action: str
    host: str

    def __str__(self) -> str:
        return f"{self.action} requested; runs on host {self.host}"


OPERATIONS = ("kill", "restore", "cleanup")
# the timeline entries that end an operation (a redelivered task whose request has one does nothing)
OPERATION_RESULTS = {
    "kill": ("session.killed", "session.kill_failed"),
    "restore": ("session.restored", "session.restore_failed"),
    "cleanup": (
        "session.cleaned",
        "session.cleanup_failed",
        "session.cleanup_refused",
        "reaction.cleanup_refused",
    ),
}


def runs_elsewhere(session: Session) -> str:
    """The session's host when its runtime must be driven there (scale-out, another host), else ''."""
    host = session.host or settings.AO_HOST_NAME
    if settings.AO_EMBEDDED or host == settings.AO_HOST_NAME:
        return ""
    return host


def _request_on_host(session: Session, action: str, *, host: str, by, actor: str, params: dict) -> Requested:
    """Record the request on the timeline (and the audit log) and enqueue it on the host's queue."""
    here = settings.AO_HOST_NAME
    with transaction.atomic():
        event = services.event_record(
            project=session.project,
            session=session,
            kind=f"session.{action}_requested",
            summary=f"{action} requested from {here}; runs on host {host}",
            actor=actor,
            actor_user=by,
            data={"from": here, "host": host, **params},
        )
        audit.record(
            action=f"session.{action}",
            target=session,
            project=session.project,
            data={**params, "host": host, "requested": True},
        )
        kwargs = {"request_event": event.pk, "by": getattr(by, "pk", None), "actor": actor, "params": params}
        session_id, queue = session.pk, host_queue(host)
        transaction.on_commit(
            lambda: jobs.enqueue(jobs.SESSION_OPERATE, args=[session_id, action], kwargs=kwargs, queue=queue)
        )
    return Requested(action=action, host=host)


def session_operate(
    *, session_id: str, action: str, request_event: int = 0, by=None, actor: str = Actor.USER, params=None
) -> None:
    """Run a requested kill, restore or clean-up here, on the session's host (the `sessions.operate`
    task). Skipped when the request already has its result (the task may be delivered twice);
    a failure is recorded on the timeline (an auto-cleanup's refusal also tells people)."""
    if action not in OPERATIONS:
        raise ValueError(f"unknown session operation {action!r}")
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is None:
        return
    if Event.objects.filter(
        session=session, pk__gt=request_event, kind__in=OPERATION_RESULTS[action]
    ).exists():
        return
    params = params or {}
    user = get_user_model().objects.filter(pk=by).first() if by else None
    try:
        if action == "kill":
            _kill_here(session=session, by=user, actor=actor, reason=params.get("reason", ""))
        elif action == "restore":
            _restore_here(session=session, by=user, actor=actor)
        else:
            _cleanup_here(session=session, force=bool(params.get("force")), by=user, actor=actor)
    except Exception as exc:
        if not isinstance(exc, IntegrationError | ConfigurationError | SpawnRefused):
            log.exception("%s of %s failed", action, session_id)
        session.refresh_from_db()
        if action == "cleanup" and actor == Actor.REACTION:
            services.auto_cleanup_refused(session=session, exc=exc)
            return
        if Event.objects.filter(
            session=session, pk__gt=request_event, kind__in=OPERATION_RESULTS[action]
        ).exists():
            return  # the operation put its own result on the timeline (a clean-up's refusal)
        services.event_record(
            project=session.project,
            session=session,
            kind=f"session.{action}_failed",
            summary=f"{action} failed on host {settings.AO_HOST_NAME}: {exc}"[:500],
            actor=actor,
            actor_user=user,
            data={"error": str(exc)[:1000]},
        )


def session_kill(*, session: Session, by=None, actor: str = Actor.USER, reason: str = "") -> Requested | None:
    """Stop the agent. The workspace and branch stay, so the session can be restored.
    On another agent host (scale-out): requested there, returns ``Requested``."""
    host = runs_elsewhere(session)
    if host:
        return _request_on_host(session, "kill", host=host, by=by, actor=actor, params={"reason": reason})
    _kill_here(session=session, by=by, actor=actor, reason=reason)
    return None


def _kill_here(*, session: Session, by=None, actor: str = Actor.USER, reason: str = "") -> None:
    handle = _handle(session)
    if handle is not None:
        context_for(session).runtime.kill(handle)
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(
            phase=Phase.KILLED, runtime_state=RuntimeState.LOST, runtime_checked_at=timezone.now()
        )
        session.refresh_from_db()
        services.event_record(
            project=session.project,
            session=session,
            kind="session.killed",
            summary=f"killed{': ' + reason if reason else ''}",
            actor=actor,
            actor_user=by,
        )
        audit.record(action="session.kill", target=session, project=session.project, data={"reason": reason})
        services.session_rederive(session=session, actor=actor)
        queued_project = session.project
    queued_sessions_admit(project=queued_project)


def session_restore(*, session: Session, by=None, actor: str = Actor.USER) -> Requested | None:
    """Bring a killed, exited or lost session back in the same workspace and branch.

    Resumes the agent's conversation where the agent supports it; otherwise starts it afresh
    with a note to continue the work already on the branch. On another agent host (scale-out):
    requested there, returns ``Requested``.
    """
    if session.phase in (Phase.CLEANED,) or not session.workspace_path:
        raise SpawnRefused(f"{session.id} has no workspace any more; spawn a new session instead")
    host = runs_elsewhere(session)
    if host:
        return _request_on_host(session, "restore", host=host, by=by, actor=actor, params={})
    _restore_here(session=session, by=by, actor=actor)
    return None


def _restore_here(*, session: Session, by=None, actor: str = Actor.USER) -> None:
    if session.phase in (Phase.CLEANED,) or not session.workspace_path:
        raise SpawnRefused(f"{session.id} has no workspace any more; spawn a new session instead")
    workspace = Path(session.workspace_path)
    if not workspace.is_dir():
        raise SpawnRefused(f"{session.id}'s workspace {workspace} is gone; spawn a new session instead")
    ctx = context_for(session)
    old = _handle(session)
    if old is not None and ctx.runtime.probe(old) == RuntimeState.ALIVE:
        raise SpawnRefused(f"{session.id} is still running")
    if old is not None:
        ctx.runtime.kill(old)
    ctx.agent.check_installed()
    argv = None
    if session.agent_session_ref:
        argv = ctx.agent.resume_command(workspace=workspace, conversation_id=session.agent_session_ref)
    note = "resumed its conversation" if argv else "started afresh"
    first_message = None
    if argv is None:
        prompt = worker_prompt(session) + (
            "\nYou are being restored: the work so far is committed on your branch or in the working tree. "
            "Review `git status` and `git log`, then continue.\n"
        )
        argv = ctx.agent.launch_command(
            workspace=workspace, prompt=prompt if ctx.agent.prompt_in_command else None
        )
        first_message = None if ctx.agent.prompt_in_command else prompt
    with transaction.atomic():
        _launch(
            session,
            ctx,
            cwd=workspace,
            argv=argv,
            activity=Activity.UNKNOWN,
            detecting_attempts=0,
            ended_at=None,
        )
        services.event_record(
            project=session.project,
            session=session,
            kind="session.restored",
            summary=f"restored ({note}); runs with {secrets_store.credentials_label(session)}",
            actor=actor,
            actor_user=by,
        )
        audit.record(action="session.restore", target=session, project=session.project, data={"how": note})
        if first_message:
            services.message_queue(session=session, text=first_message, sender=Actor.SYSTEM, sender_name="ao")
        services.session_rederive(session=session, actor=actor)


def cleanup_candidates(*, project: Project | None = None):
    """Worker sessions whose PR merged or closed, or whose runtime is gone. Never orchestrators."""
    qs = (
        Session.objects.filter(kind=Session.Kind.WORKER)
        .exclude(phase=Phase.CLEANED)
        .select_related("project")
    )
    if project is not None:
        qs = qs.filter(project=project)
    return qs.filter(
        Q(pull_request__state__in=["merged", "closed"])
        | Q(runtime_state=RuntimeState.LOST)
        | Q(phase__in=[Phase.KILLED, Phase.ERRORED])
    )


def session_cleanup(
    *, session: Session, force: bool = False, by=None, actor: str = Actor.USER
) -> str | Requested:
    """End the session and remove its workspace; refuses unpushed work unless forced. Returns
    the session id; on another agent host (scale-out): requested there, returns ``Requested``."""
    if session.kind == Session.Kind.ORCHESTRATOR:
        raise SpawnRefused("orchestrator sessions are never cleaned up")
    host = runs_elsewhere(session)
    if host:
        return _request_on_host(session, "cleanup", host=host, by=by, actor=actor, params={"force": force})
    return _cleanup_here(session=session, force=force, by=by, actor=actor)


def cleanup_refusal(*, session: Session, force: bool = False) -> str:
    """Why cleaning up ``session`` would be refused now, or "" when it would go ahead: the check
    the clean-up itself makes before touching anything, so a dry run says what the real run does."""
    if session.kind == Session.Kind.ORCHESTRATOR:
        return "orchestrator sessions are never cleaned up"
    workspace = _existing_workspace(session)
    if workspace is None:
        return ""
    try:
        _check_removable(session, context_for(session), workspace=workspace, force=force)
    except WorkspaceRefused as exc:
        return str(exc)
    return ""


def _existing_workspace(session: Session) -> Path | None:
    path = Path(session.workspace_path) if session.workspace_path else None
    return path if path is not None and (path.exists() or path.is_symlink()) else None


def _check_removable(session: Session, ctx: AgentContext, *, workspace: Path, force: bool) -> list[str]:
    """WorkspaceRefused unless the workspace may go: with no work that is on no remote, counting a
    merged PR's head as on the remote (a squash merge leaves it on no branch). Returns those heads."""
    pr = getattr(session, "pull_request", None)
    safe = [pr.head_sha] if pr is not None and pr.state == "merged" and pr.head_sha else []
    if not force:
        try:  # what the remote has now, so work merged or pushed since the last fetch counts
            remote = plugin_for(session.project, "scm").workspace_remote(create=False)
            gitutil.fetch_remote(workspace, remote=remote)
        except (IntegrationError, ConfigurationError) as exc:
            log.info("clean-up of %s: could not fetch the remote: %s", session.pk, exc)
    ctx.workspace.check_remove(
        repo_path=Path(session.project.path),
        root=workspaces_root(session.project),
        path=workspace,
        force=force,
        safe=safe,
    )
    return safe


def _cleanup_here(*, session: Session, force: bool = False, by=None, actor: str = Actor.USER) -> str:
    """Check first, then stop the agent and remove the workspace. A refusal changes nothing (the
    agent keeps running) and says why on the timeline; the session's row says what really happened."""
    if session.kind == Session.Kind.ORCHESTRATOR:
        raise SpawnRefused("orchestrator sessions are never cleaned up")
    ctx = context_for(session)
    workspace = _existing_workspace(session)
    safe: list[str] = []
    if workspace is not None:
        try:
            safe = _check_removable(session, ctx, workspace=workspace, force=force)
        except WorkspaceRefused as exc:
            if actor != Actor.REACTION:  # an auto-cleanup's refusal is recorded by the reaction
                services.event_record(
                    project=session.project,
                    session=session,
                    kind="session.cleanup_refused",
                    summary=f"clean-up refused, nothing changed: {exc}"[:500],
                    actor=actor,
                    actor_user=by,
                    data={"error": str(exc)[:1000]},
                )
            raise
    handle = _handle(session)
    if handle is not None and ctx.runtime.probe(handle) == RuntimeState.ALIVE:
        ctx.runtime.kill(handle)
    if workspace is not None:
        try:
            ctx.workspace.remove(
                repo_path=Path(session.project.path),
                root=workspaces_root(session.project),
                path=workspace,
                force=force,
                safe=safe,
            )
        except Exception as exc:
            _cleanup_failed(session, exc, killed=handle is not None, by=by, actor=actor)
            raise
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(phase=Phase.CLEANED, runtime_state=RuntimeState.LOST)
        session.refresh_from_db()
        services.event_record(
            project=session.project,
            session=session,
            kind="session.cleaned",
            summary="session ended and workspace removed" + (" (forced)" if force else ""),
            actor=actor,
            actor_user=by,
        )
        audit.record(action="session.cleanup", target=session, project=session.project, data={"force": force})
        services.messages_abandon(
            session=session, reason="the session was cleaned up before the agent took it"
        )
        services.session_rederive(session=session, actor=actor)
    return session.id


def _cleanup_failed(session: Session, exc: Exception, *, killed: bool, by, actor: str) -> None:
    """The agent was stopped but the workspace could not be removed: the row says so."""
    with transaction.atomic():
        if killed:
            Session.objects.filter(pk=session.pk, phase=Phase.RUNNING).update(phase=Phase.KILLED)
            Session.objects.filter(pk=session.pk).update(
                runtime_state=RuntimeState.LOST, runtime_checked_at=timezone.now()
            )
        session.refresh_from_db()
        services.event_record(
            project=session.project,
            session=session,
            kind="session.cleanup_failed",
            summary=(f"agent stopped, workspace kept: {exc}" if killed else f"clean-up failed: {exc}")[:500],
            actor=actor,
            actor_user=by,
            data={"error": str(exc)[:1000]},
        )
        services.session_rederive(session=session, actor=actor)


RUNTIME_GONE = (RuntimeState.EXITED, RuntimeState.LOST)


def observed_sessions(*, project: Project):
    """The sessions whose runtime and activity a sweep (or a webhook refresh) observes: running
    ones, finished ones included (PR merged or closed) until their runtime is gone or they are
    cleaned up. An agent mid-turn when its PR merged is seen to finish its turn, so the clean-up
    after merge follows at once instead of after the grace period, and one that exits is seen."""
    return Session.objects.filter(project=project, phase=Phase.RUNNING).filter(
        ~Q(zone=Zone.DONE) | ~Q(runtime_state__in=RUNTIME_GONE)
    )


class ClaimRefused(SpawnRefused):
    """The PR cannot become this session's (merged or closed, another session's, a dirty workspace)."""


class ClaimedPullRequestMissing(ClaimRefused):
    pass


class SessionHasPullRequest(ClaimRefused):
    """The session already has another PR."""


class PullRequestHeld(ClaimRefused):
    """The PR is another session's."""


def session_pr_claim(*, session: Session, number: int, by=None, actor: str = Actor.USER) -> None:
    """Make an existing open PR the session's: its branch is checked out in the session's workspace
    (the agent then works on the PR), its facts are recorded and the claim audited. Refused: a
    session that has another PR, a PR another session holds, and a merged or closed PR (nothing is
    left to do on it, and the session would be finished the moment it took it). The one claim for
    the CLI and the API."""
    project = session.project
    current = PullRequest.objects.filter(session=session).first()
    if current is not None and current.number != number:
        raise SessionHasPullRequest(f"{session.id} already has PR #{current.number}")
    holder = PullRequest.objects.filter(project=project, number=number).exclude(session=None).first()
    if holder is not None and holder.session_id != session.pk:
        raise PullRequestHeld(f"PR #{number} belongs to {holder.session_id}")
    scm = plugin_for(project, "scm")
    info = scm.fetch_pull_requests(numbers=[number], previous={}).get(number)
    if info is None:
        raise ClaimedPullRequestMissing(f"the {project.scm} SCM has no PR #{number}")
    if info.state != "open":
        raise ClaimRefused(f"PR #{number} is {info.state}: only an open PR can be claimed")
    workspace = _existing_workspace(session)
    if workspace is not None and info.branch != session.branch:
        _checkout_pr_branch(session, workspace, branch=info.branch, remote=scm.workspace_remote())
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(branch=info.branch)
        session.branch = info.branch
        prsync.pull_request_record(project=project, session=session, info=info)
        # an operator's action: it asks the reactions about the facts it stored (after commit)
        services.session_react_after_commit(session_id=session.pk)
        services.event_record(
            project=project,
            session=session,
            kind="pr.claimed",
            summary=f"claimed PR #{number} ({info.branch})"
            + (f"; its branch is checked out in {workspace}" if workspace is not None else ""),
            actor=actor,
            actor_user=by,
            data={"number": number, "branch": info.branch},
        )
        audit.record(action="pr.claim", target=session, project=project, data={"number": number})


def _checkout_pr_branch(session: Session, workspace: Path, *, branch: str, remote: str) -> None:
    """Check the PR's ``branch``, as the remote has it, out in ``workspace``; refuses (changing
    nothing) over uncommitted changes or a local branch of that name with commits the PR lacks."""
    repo = Path(session.project.path)
    try:
        gitutil.validate_branch_name(branch)
    except gitutil.BranchNameError as exc:
        raise ClaimRefused(str(exc)) from exc
    dirty = uncommitted_changes(path=workspace, repo_path=repo)
    if dirty:
        raise ClaimRefused(
            f"{session.id}'s workspace has uncommitted changes ({', '.join(dirty[:3])}): "
            "commit or discard them before it takes another branch"
        )
    sha = gitutil.fetch_branch(workspace, remote=remote, branch=branch)
    if sha is None:
        raise ClaimRefused(f"could not fetch the PR's branch {branch!r} from the remote {remote!r}")
    if gitutil.branch_exists(workspace, branch):
        local = gitutil.resolve_commit(workspace, f"refs/heads/{branch}")
        if not gitutil.is_ancestor(workspace, local, sha):
            raise ClaimRefused(
                f"the local branch {branch!r} has commits the PR does not: push or rename it first"
            )
    gitutil.run_git(["checkout", "--quiet", "-B", branch, sha], cwd=workspace)
    gitutil.set_push_upstream(workspace, branch=branch, remote=remote)


# --- project deletion -----------------------------------------------------------------------------
def project_delete(*, project: Project, by=None) -> list[str]:
    """Delete a project with its sessions, timeline, PRs and messages, after stopping every agent
    of it that still has a runtime here (workspaces stay on disk: they may hold unpushed work).
    Refuses (SpawnRefused, nothing changed) while one of its agents runs on another agent host.
    Returns notes of what it stopped."""
    sessions = list(Session.objects.filter(project=project).exclude(phase=Phase.CLEANED))
    with_runtime = [s for s in sessions if _handle(s) is not None and s.runtime_state != RuntimeState.LOST]
    elsewhere = sorted({host for s in with_runtime if (host := runs_elsewhere(s))})
    if elsewhere:
        raise SpawnRefused(
            f"project {project.key} has agents on host(s) {', '.join(elsewhere)}: kill its sessions first "
            "(`ao session kill ID`), then delete it"
        )
    notes = []
    for session in with_runtime:
        try:
            context_for(session).runtime.kill(_handle(session))
        except (IntegrationError, ConfigurationError) as exc:  # already gone, or a broken runtime config
            notes.append(f"{session.id}: could not stop its runtime ({exc})")
            continue
        notes.append(f"stopped {session.id}")
    key, count = project.key, len(sessions)
    with transaction.atomic():
        audit.record(
            action="project.delete", target=project, project=None, data={"key": key, "sessions": count}
        )
        project.delete()
    return notes
