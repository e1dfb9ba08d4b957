"""`ao doctor`: check what ao needs and say how to fix each problem."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from ao_site import served
from ao_site.home import open_to_others
from integrations.base import IntegrationError
from integrations.credentials import CredentialUnavailable, credential, secret_settings
from integrations.registry import ConfigurationError, agents, registry_for
from reactions.models import NotifierInstance
from reactions.notify import notifiers_test
from sessions.agents.starting import agent_installed
from sessions.core.config.discovery import config_discover
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError
from sessions.dashboard import health
from sessions.models import Project, Secret


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # a failed optional check is a warning

    def as_dict(self) -> dict:
        return asdict(self)


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""


def check_binary(name: str, *, version_args: list[str], fix: str, required: bool = True) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, False, f"{name} not found on PATH", fix, required)
    return Check(name, True, _version([path, *version_args]) or path, "", required)


def check_agents() -> list[Check]:
    """Every agent CLI ao knows: found or not, with how to install it (warnings: a missing one only
    matters when a project uses it, which :func:`check_project_agents` checks)."""
    checks = []
    for key in agents.keys():
        cls = agents.get(key)
        binary = getattr(cls, "binary", "")
        if not binary:
            continue
        hint = getattr(cls, "install_hint", "") or f"install {binary}"
        found = check_binary(binary, version_args=["--version"], fix=hint, required=False)
        checks.append(Check(f"agent {key}", found.ok, found.detail, found.fix, required=False))
    return checks


def check_project_agents() -> list[Check]:
    """The agents the projects use (workers, and the orchestrator when it has its own), each built
    from the project's settings and asked whether it can start here (``Agent.check_installed``:
    the binary or custom command, and the agent's own preconditions). A problem fails the doctor."""
    checks = []
    for project in Project.objects.order_by("key"):
        uses = [("workers", project.agent, project.settings_for("agent"))]
        if project.orchestrator_enabled and project.orchestrator_agent:
            uses.append(("orchestrator", project.orchestrator_agent, project.orchestrator_agent_settings))
        for role, key, agent_settings in uses:
            name = f"agent for {project.key} {role}"
            try:
                agent = agents.create(
                    key, agent_settings, where=f"projects.{project.key}.agent", project=project
                )
                path = agent_installed(agent)
            except (ConfigurationError, IntegrationError) as exc:
                checks.append(Check(name, False, str(exc), AGENT_FIX))
            else:
                checks.append(Check(name, True, f"{key}: {path}"))
    return checks


AGENT_FIX = (
    "make it runnable here (the message says how), or change the project's agent / agentConfig in "
    "ao.config.yaml and run `ao config apply`"
)


def check_database() -> Check:
    result = health.timed_check(health.check_database)
    if result["ok"]:
        return Check("database", True, f"{result['detail']} ({result['ms']} ms)")
    fix = (
        "check DATABASE_URL and that PostgreSQL is running"
        if settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
        else f"check that {settings.AO_HOME} is writable"
    )
    return Check("database", False, result["error"], fix)


def check_redis() -> Check | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return Check("redis", False, str(exc), "check REDIS_URL and that Redis is running")
    return Check("redis", True, "reachable")


def check_agents_reach_ao(timeout: float = 3.0) -> Check:
    """Agents get ``AO_URL`` (``ao_site.served.agent_url``) for `ao report` and `ao pr create`:
    that address must answer ao's health endpoint. Before ao runs there is nothing to reach (a
    warning); once ao runs (or AO_URL names it) an address that does not answer fails."""
    import httpx

    url, source = served.where()
    told = f"agents are told AO_URL={url}"
    if source == "default":
        return Check(
            "agents reach ao",
            False,
            f"ao is not running here: {told} (the default)",
            "start ao (`ao start`), or set AO_URL to the address ao serves",
            required=False,
        )
    fix = (
        "set AO_URL to an address of ao that agents can reach (e.g. `AO_URL=http://127.0.0.1:8000`)"
        if source == "AO_URL"
        else "check that ao is still running (`ao status`), or set AO_URL to an address agents can reach"
    )
    try:
        response = httpx.get(f"{url}/healthz", timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return Check("agents reach ao", False, f"{told} (from {source}), which does not answer: {exc}", fix)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        hint = (
            " (the host name is not accepted: add it to AO_ALLOWED_HOSTS)"
            if response.status_code == 400
            else ""
        )
        return Check(
            "agents reach ao",
            False,
            f"{told} (from {source}), where something other than ao's health check answers "
            f"(HTTP {response.status_code}){hint}",
            fix,
        )
    return Check("agents reach ao", True, f"{told} (from {source}); /healthz says {body['status']}")


def check_config(start: Path | None = None) -> Check:
    path = config_discover(start)
    if path is None:
        return Check(
            "config", False, "no ao.config.yaml found here or above", "run `ao init` in your repository"
        )
    try:
        config_load(path)
    except ConfigError as exc:
        return Check(
            "config", False, f"{path}: {len(exc.problems)} problem(s)\n" + str(exc), "fix the lines above"
        )
    return Check("config", True, str(path))


def check_scm_state() -> list[Check]:
    """Each project's SCM as the last sweep saw it: failures in a row, and the rate budget."""
    checks = []
    for project in Project.objects.order_by("key"):
        rate = project.scm_rate or {}
        budget = (
            f"{rate['remaining']}/{rate['limit']} requests left"
            if rate.get("limit")
            else "no budget reported"
        )
        if rate.get("exhausted"):
            checks.append(
                Check(
                    f"scm {project.key}",
                    False,
                    f"rate limit exhausted until {rate.get('reset_at')}; only essential calls are made",
                    "wait for the reset, add webhooks, or use a token with a larger budget (a GitHub App)",
                    required=False,
                )
            )
        elif project.pr_sync_failures:
            checks.append(
                Check(
                    f"scm {project.key}",
                    False,
                    f"{project.pr_sync_failures} failed syncs in a row ({project.pr_sync_error}); backing off",
                    "check the SCM's status and the token; ao retries by itself",
                    required=False,
                )
            )
        elif project.last_pr_sync_at:
            checks.append(Check(f"scm {project.key}", True, f"{project.scm}: {budget}"))
    return checks


def check_secrets() -> list[Check]:
    """Each secret that a project's plugin settings or a notifier name (``token_secret``, ...): it
    must be stored and readable. Only names and times are shown, never a value."""
    users: dict[str, list[str]] = {}

    def collect(slot: str, plugin: str, plugin_settings: dict, where: str) -> None:
        try:
            config = registry_for(slot).validate_settings(plugin, plugin_settings, where=where)
        except ConfigurationError:
            return  # reported where the settings are checked
        for key, name in secret_settings(config).items():
            users.setdefault(name, []).append(f"{where}.{key}")

    for project in Project.objects.order_by("key"):
        for slot in Project.SLOTS:
            collect(
                slot, project.plugin_key(slot), project.settings_for(slot), f"projects.{project.key}.{slot}"
            )
    for row in NotifierInstance.objects.order_by("name"):
        collect("notifier", row.plugin, row.settings or {}, f"notifiers.{row.name}")
    updated = dict(Secret.objects.filter(name__in=users).values_list("name", "updated_at"))
    checks = []
    for name, wheres in sorted(users.items()):
        used_by = f"used by {', '.join(wheres)}"
        try:
            credential(env=None, secret=name, what="credential", who="ao")
        except CredentialUnavailable as exc:
            problem = exc.problem.removeprefix("ao: ")
            checks.append(Check(f"secret {name}", False, f"{problem} ({used_by})", exc.fix))
        else:
            when = updated[name].isoformat() if name in updated else "?"
            checks.append(Check(f"secret {name}", True, f"stored, updated {when} ({used_by})"))

    return checks


def check_home() -> Check:
    home = Path(settings.AO_HOME)
    if warning := open_to_others(home):
        return Check("AO_HOME", False, warning, f"chmod 700 {home}", required=False)
    return Check("AO_HOME", True, f"{home} (yours only)")


def run_checks(*, start: Path | None = None) -> list[Check]:
    checks = [
        check_binary("git", version_args=["--version"], fix="install git (apt install git)"),
        check_binary(
            "tmux",
            version_args=["-V"],
            fix="install tmux (apt install tmux) or use `runtime: process`",
            required=False,
        ),
        check_database(),
    ]
    redis_check = check_redis()
    if redis_check is not None:
        checks.append(redis_check)
    checks.append(check_home())
    checks.append(check_config(start))
    checks.append(check_agents_reach_ao())
    checks.extend(check_agents())
    if checks[2].ok:  # the database is reachable
        checks.extend(check_project_agents())
        checks.extend(check_scm_state())
        checks.extend(check_secrets())
    return checks


def check_notifiers_send(start: Path | None = None) -> list[Check]:
    """`ao doctor --test-notify`: a test notification through each notifier, one try each.

    Tests the notifiers of the discovered ao.config.yaml when it loads, else the stored ones.
    """
    loaded = None
    path = config_discover(start)
    if path is not None:
        try:
            loaded = config_load(path)
        except ConfigError:
            loaded = None  # reported by the config check; fall back to the stored notifiers
    results = notifiers_test(config=loaded)
    if not results:
        return [
            Check(
                "notify",
                True,
                "no notifiers configured: notifications go to the in-app inbox only",
                "add notifiers: and notificationRouting: to ao.config.yaml",
                required=False,
            )
        ]
    return [
        Check(
            f"notify {r.name}",
            r.ok,
            r.detail if r.detail.startswith(f"{r.plugin}:") else f"{r.plugin}: {r.detail}",
            r.fix,
        )
        for r in results
    ]
