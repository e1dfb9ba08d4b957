"""The plugins serving one agent session, built from its project's configuration
(``AgentContext``, ``context_for``; the orchestrator's session gets its own from the
orchestrator, handed down by ``sessions/apps.py``), its runtime handle and where its
workspaces live.

The agent services, by concern: ``spawning`` (request side: validate, admit, write the session
row), ``starting`` (on the agent host: workspace, prompt, environment, launch), ``observing``
(runtime and activity facts), ``operating`` (kill, restore, clean up, delete a project), ``claiming``
(a session takes over a PR). Everything that touches the workspace and the runtime runs on the
session's agent host, in the Celery queue ``host.<name>`` (in embedded mode: this process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from integrations.base import Agent, Runtime, RuntimeHandle, Workspace
from integrations.registry import agents, plugin_for, registry_for
from sessions.models import Project, Session

RULES_FILE_MAX = 64 * 1024
PANE_LINES = 120


@dataclass(frozen=True)
class AgentContext:
    """The plugins serving one session, built from its project's configuration."""

    agent: Agent
    runtime: Runtime
    workspace: Workspace


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def agent_for(project: Project, key: str) -> Agent:
    where = f"projects.{project.key}.agent"
    agent_settings = project.settings_for("agent") if key == project.agent else {}
    return agents.create(key, agent_settings, where=where, project=project)


# The orchestrator's session runs its own agent with its own prompt. The orchestrator is a watcher,
# above this module: sessions/apps.py hands both down at start ("context", "prompt").
orchestrator_hooks: dict[str, Callable] = {}


def use_orchestrator(*, context: Callable[[Session], AgentContext], prompt: Callable[[Project], str]) -> None:
    orchestrator_hooks.update(context=context, prompt=prompt)


def context_for(session: Session) -> AgentContext:
    if session.kind == Session.Kind.ORCHESTRATOR:  # the orchestrator issue: its own agent and settings
        return orchestrator_hooks["context"](session)
    project = session.project
    runtime_key = (session.runtime_handle or {}).get("runtime") or project.runtime
    runtime_settings = project.settings_for("runtime") if runtime_key == project.runtime else {}
    return AgentContext(
        agent=agent_for(project, session.agent or project.agent),
        runtime=registry_for("runtime").create(
            runtime_key, runtime_settings, where=f"projects.{project.key}.runtime", project=project
        ),
        workspace=plugin_for(project, "workspace"),
    )


def runtime_handle_for(session: Session) -> RuntimeHandle | None:
    data = session.runtime_handle or {}
    if not data.get("name"):
        return None
    return RuntimeHandle(runtime=data["runtime"], name=data["name"], data=data.get("data", {}))


def workspaces_root(project: Project) -> Path:
    return Path(settings.AO_WORKSPACES_ROOT) / project.key
