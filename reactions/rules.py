"""Reaction rules: what ao does about each kind of change, with defaults and overrides.

A rule has a name users write in config (``ci-failed``), an action (``send-to-agent``,
``notify`` or ``auto-merge``), a message template, a priority, and how it retries and
escalates. The effective rules of a project are the defaults below, then the top-level
``reactions`` of the config file, then the project's own ``reactions`` (stored on
``Project.reactions`` with the config's camelCase keys); each layer overrides only the keys it
sets. Pure: no database access here (``global_overrides_current`` reads the config file).

Project-level switches that are not rules live next to them in ``Project.reactions``:
``autoCleanupOnMerge: true`` ends a session and removes its workspace after its PR merged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sessions.core.config.discovery import config_discover
from sessions.domain.lifecycle import DEFAULT_STUCK_AFTER, WRITER_ASSOCIATIONS

log = logging.getLogger(__name__)

SEND = "send-to-agent"
NOTIFY = "notify"
AUTO_MERGE = "auto-merge"
ACTIONS = (SEND, NOTIFY, AUTO_MERGE)
PRIORITIES = ("urgent", "action", "warning", "info")

CI_FAILED = "ci-failed"
CHANGES_REQUESTED = "changes-requested"
BOT_REVIEW_COMMENTS = "bot-review-comments"
MERGE_CONFLICTS = "merge-conflicts"
APPROVED_AND_GREEN = "approved-and-green"
REVIEW_REQUESTED = "review-requested"
AGENT_STUCK = "agent-stuck"
AGENT_NEEDS_INPUT = "agent-needs-input"
AGENT_EXITED = "agent-exited"
AGENT_IDLE = "agent-idle"
PR_CLOSED = "pr-closed"
ALL_COMPLETE = "all-complete"

# Review comments are forwarded to agents only from people who can write to the repository, or
# from bots named in the bot-review-comments rule's ``trustedBots``.
TRUSTED_ASSOCIATIONS = WRITER_ASSOCIATIONS
AUTO_CLEANUP_KEY = "autoCleanupOnMerge"
AUTO_CLEANUP = "auto-cleanup"  # bookkeeping rule of the switch: one cleanup per merged PR

_DURATION_RE = re.compile(r"^([0-9]{1,9})(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> timedelta:
    """``"30m"`` → 30 minutes. Units ms, s, m, h, d (the config file's duration syntax)."""
    match = _DURATION_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as 30m (units ms, s, m, h, d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class Rule:
    """One effective rule. ``escalate_after`` is a count of attempts or a duration since the first."""

    name: str
    action: str
    priority: str = "info"
    auto: bool = True
    message: str = ""  # a template with {facts}; empty: the rule's built-in message
    retries: int | None = None  # sends per fingerprint before escalating; None: no limit
    escalate_after: int | timedelta | None = None
    threshold: timedelta | None = None  # how long the condition must last first (THRESHOLD_RULES)
    trusted_bots: tuple[str, ...] = ()
    # approved-and-green: what green and approved mean (sessions.domain.lifecycle.ci_not_green and
    # review_not_approved). None: at least one check on the head commit, all passing.
    required_checks: tuple[str, ...] | None = None
    require_approval: bool = False
    include_summary: bool = False  # append a fleet summary to this rule's notifications
    priority_set: bool = False  # ``priority`` configured explicitly (not this rule's default)

    @property
    def escalation_priority(self) -> str:
        """Escalations go out ``urgent`` unless the config set this rule's priority explicitly."""
        return self.priority if self.priority_set else "urgent"

    @property
    def effective_action(self) -> str:
        """``auto: false`` turns any action into a notification for a person."""
        return self.action if self.auto else NOTIFY

    @property
    def enabled(self) -> bool:
        return self.action in ACTIONS


# The defaults: what ao does with no reactions configured.
DEFAULT_RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(CI_FAILED, SEND, priority="urgent", retries=2),
        Rule(CHANGES_REQUESTED, SEND, priority="urgent", retries=2, escalate_after=timedelta(minutes=30)),
        Rule(BOT_REVIEW_COMMENTS, SEND, priority="warning", retries=2),
        Rule(MERGE_CONFLICTS, SEND, priority="urgent", retries=2, escalate_after=timedelta(minutes=15)),
        Rule(APPROVED_AND_GREEN, NOTIFY, priority="action"),
        Rule(REVIEW_REQUESTED, NOTIFY, priority="action"),
        Rule(AGENT_STUCK, NOTIFY, priority="urgent", threshold=DEFAULT_STUCK_AFTER),
        Rule(AGENT_NEEDS_INPUT, NOTIFY, priority="urgent"),
        Rule(AGENT_EXITED, NOTIFY, priority="urgent"),
        Rule(AGENT_IDLE, SEND, priority="warning", retries=2, threshold=timedelta(minutes=2)),
        Rule(PR_CLOSED, NOTIFY, priority="info"),
        Rule(ALL_COMPLETE, NOTIFY, priority="info"),
    )
}
RULE_NAMES = tuple(DEFAULT_RULES)
# Keys that only some rules read; set on another rule they are ignored with a warning.
THRESHOLD_RULES = (AGENT_STUCK, AGENT_IDLE)
ONLY_FOR = {
    "threshold": THRESHOLD_RULES,
    "trustedBots": (BOT_REVIEW_COMMENTS,),
    "requiredChecks": (APPROVED_AND_GREEN,),
    "requireApproval": (APPROVED_AND_GREEN,),
}


def _override(rule: Rule, values: Mapping[str, Any], *, where: str) -> Rule:
    """Apply one layer of camelCase settings (``escalateAfter``, ``trustedBots``...) to a rule."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        try:
            if key in ONLY_FOR and rule.name not in ONLY_FOR[key]:
                raise ValueError(f"only {' and '.join(ONLY_FOR[key])} read {key}")
            if key == "auto" and isinstance(value, bool):
                changes["auto"] = value
            elif key == "action" and value in ACTIONS:
                if value == AUTO_MERGE and rule.name != APPROVED_AND_GREEN:
                    raise ValueError(f"only {APPROVED_AND_GREEN} can {AUTO_MERGE}")
                changes["action"] = value
            elif key == "message" and isinstance(value, str):
                changes["message"] = value
            elif key == "priority" and value in PRIORITIES:
                changes["priority"] = value
                changes["priority_set"] = True
            elif key == "retries" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                changes["retries"] = value
            elif key == "escalateAfter":
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    changes["escalate_after"] = value
                else:
                    changes["escalate_after"] = parse_duration(value)
            elif key == "threshold":
                threshold = parse_duration(value)
                if not threshold:
                    raise ValueError("a threshold must be longer than 0")
                changes["threshold"] = threshold
            elif key == "trustedBots" and isinstance(value, list | tuple):
                changes["trusted_bots"] = tuple(str(v) for v in value)
            elif key == "requiredChecks" and isinstance(value, list | tuple):
                changes["required_checks"] = tuple(str(v) for v in value)
            elif key == "requireApproval" and isinstance(value, bool):
                changes["require_approval"] = value
            elif key == "includeSummary" and isinstance(value, bool):
                changes["include_summary"] = value
            else:
                raise ValueError(f"unexpected value {value!r}")
        except ValueError as exc:
            log.warning("%s.%s ignored: %s", where, key, exc)
    return replace(rule, **changes)


def _as_mapping(value: Any) -> Mapping[str, Any]:
    """A ReactionConfig (pydantic) or a plain mapping, as camelCase keys."""
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="json", by_alias=True, exclude_none=True)
    return {}


def rules_merge(*layers: tuple[str, Mapping[str, Any] | None]) -> dict[str, Rule]:
    """Defaults, then each ``(where, {rule-name: settings})`` layer in order. Unknown rule names
    and non-mapping entries (project switches such as autoCleanupOnMerge) are skipped."""
    rules = dict(DEFAULT_RULES)
    for where, layer in layers:
        for name, values in (layer or {}).items():
            if name not in rules:
                if name != AUTO_CLEANUP_KEY:
                    log.warning(
                        "%s.%s: unknown reaction rule (known: %s)", where, name, ", ".join(RULE_NAMES)
                    )
                continue
            rules[name] = _override(rules[name], _as_mapping(values), where=f"{where}.{name}")
    return rules


def rules_for(project, *, global_overrides: Mapping[str, Any] | None = None) -> dict[str, Rule]:
    """The effective rules of a project: defaults < top-level ``reactions`` < the project's own."""
    if global_overrides is None:
        global_overrides = global_overrides_current()
    return rules_merge(
        ("reactions", global_overrides), (f"projects.{project.key}.reactions", project.reactions)
    )


def stuck_after(project, *, global_overrides: Mapping[str, Any] | None = None) -> timedelta:
    """How long an agent may sit at its prompt before the lifecycle derives ``stuck``: the
    project's effective ``agent-stuck`` threshold (the one value for both the status and the
    agent-stuck notification, which follows the status)."""
    threshold = rules_for(project, global_overrides=global_overrides)[AGENT_STUCK].threshold
    return threshold or DEFAULT_STUCK_AFTER


def merge_requirements(project, *, global_overrides: Mapping[str, Any] | None = None) -> Rule:
    """The project's effective approved-and-green rule: its ``required_checks`` and
    ``require_approval`` say what "approved and green" means for the status, the reaction and a
    person's merge alike."""
    return rules_for(project, global_overrides=global_overrides)[APPROVED_AND_GREEN]


def auto_cleanup_on_merge(project) -> bool:
    return (project.reactions or {}).get(AUTO_CLEANUP_KEY) is True


def is_trusted(*, author: str, association: str, is_bot: bool, trusted_bots: tuple[str, ...]) -> bool:
    """Whether a review comment may be forwarded to an agent.

    People: only OWNER, MEMBER or COLLABORATOR. Bots: only those named in ``trustedBots``
    (compared without the ``[bot]`` suffix, case-insensitively).
    """
    if is_bot:
        wanted = {_bot_name(b) for b in trusted_bots}
        return _bot_name(author) in wanted
    return association.upper() in TRUSTED_ASSOCIATIONS


def _bot_name(login: str) -> str:
    login = login.strip().lower()
    return login[: -len("[bot]")] if login.endswith("[bot]") else login


# --- the top-level reactions of the config file ----------------------------------------------------
@dataclass
class _Cache:
    key: tuple = ()
    value: dict = field(default_factory=dict)


_cache = _Cache()


def global_overrides_current() -> dict[str, Any]:
    """The top-level ``reactions`` of the config file in use (AO_CONFIG or found upwards), cached
    until the file changes. No file, or a file that does not load: no overrides (logged)."""
    try:
        path = config_discover()
        if path is None:
            return {}
        stat = Path(path).stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key != _cache.key:
            # remembered before loading: a broken file is reported once, not on every call
            _cache.key, _cache.value = key, {}
            # with no file (`ao status` outside a project) a command loads neither schema nor YAML
            from sessions.core.config.loading import config_load  # local: they load with a file to read

            loaded = config_load(path)
            _cache.value = {name: _as_mapping(rule) for name, rule in loaded.reactions.items()}
        return _cache.value
    except Exception as exc:  # a broken config must not stop reactions; ao doctor reports it
        log.warning("reactions: top-level reactions not loaded: %s", exc)
        return {}
