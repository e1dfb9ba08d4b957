"""Writes. Every change to sessions goes through a function here; only services write rows,
enqueue tasks and broadcast (after commit)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from reactions.notify import notifiers_apply, notify
from reactions.rules import AUTO_CLEANUP, stuck_after
from sessions.core import audit, host_settings, jobs, realtime, selectors
from sessions.core.config.problems import ConfigError, ConfigProblem
from sessions.domain import flaky, lifecycle
from sessions.domain.lifecycle import Facts, Zone
from sessions.domain.text import clean_text
from sessions.models import (
    Actor,
    AppliedConfig,
    CheckRun,
    Event,
    FlakyCheck,
    Message,
    Project,
    PullRequest,
    Session,
)

# A running sweep renews its lease every SWEEP_LEASE_RENEW_AFTER from a heartbeat thread (and at its
# steps), so the lease can be short: a sweep whose process died holds the project at most this long
# (45 s unless AO_SWEEP_LEASE says otherwise).
SWEEP_LEASE = timedelta(seconds=settings.AO_SWEEP_LEASE)
SWEEP_LEASE_RENEW_AFTER = SWEEP_LEASE / 3  # a running sweep extends its lease at most this often

log = logging.getLogger(__name__)


def event_record(
    *,
    project: Project,
    session: Session | None,
    kind: str,
    summary: str,
    actor: str = Actor.SYSTEM,
    actor_user=None,
    actor_name: str = "",
    data: dict[str, Any] | None = None,
) -> Event:
    event = Event.objects.create(
        project=project,
        session=session,
        kind=kind,
        summary=summary[:500],
        actor=actor,
        actor_user=actor_user,
        actor_name=actor_name,
        data=data or {},
    )
    transaction.on_commit(lambda: realtime.event_created(event))  # API event streams (sessions.api.sse)
    if session is not None:
        # the card shows the last event: every timeline entry refreshes it (coalesced per session)
        session_id = session.pk
        transaction.on_commit(lambda: realtime.card_changed(session_id))
    return event


def events_record(
    *, project: Project, session: Session | None, entries: Iterable[tuple[str, str, dict[str, Any] | None]]
) -> list[Event]:
    """Several system timeline entries (kind, summary, data) of one session at once: one INSERT,
    each announced after commit as ``event_record`` announces one, the card refreshed once."""
    events = [
        Event(
            project=project,
            session=session,
            kind=kind,
            summary=summary[:500],
            actor=Actor.SYSTEM,
            data=data or {},
        )
        for kind, summary, data in entries
    ]
    if not events:
        return []
    if connection.features.can_return_rows_from_bulk_insert:
        Event.objects.bulk_create(events)
    else:  # the announcements need the rows' ids
        for event in events:
            event.save(force_insert=True)
    for event in events:
        transaction.on_commit(partial(realtime.event_created, event))
    if session is not None:
        session_id = session.pk
        transaction.on_commit(lambda: realtime.card_changed(session_id))
    return events


def session_create(
    *,
    project: Project,
    kind: str = Session.Kind.WORKER,
    issue_ref: str = "",
    issue_title: str = "",
    prompt: str = "",
    agent: str = "",
    by=None,
) -> Session:
    """Create a session row with the next id of its project, allocated atomically.

    The counter is bumped with an UPDATE ... SET n = n + 1 inside the transaction, which takes the
    row lock (PostgreSQL) or the write lock (SQLite, IMMEDIATE transactions) first, so concurrent
    spawns never share a number.
    """
    with transaction.atomic():
        if kind == Session.Kind.ORCHESTRATOR:
            number = None
            session_id = f"{project.session_prefix}-orchestrator"
        else:
            Project.objects.filter(pk=project.pk).update(next_session_number=F("next_session_number") + 1)
            number = Project.objects.values_list("next_session_number", flat=True).get(pk=project.pk) - 1
            session_id = f"{project.session_prefix}-{number}"
        session = Session(
            id=session_id,
            project=project,
            number=number,
            kind=kind,
            issue_ref=issue_ref,
            issue_title=issue_title,
            prompt=prompt,
            agent=agent or project.agent,
            created_by=by,
        )
        session.full_clean(exclude=["project", "created_by"])
        session.save(force_insert=True)
        session_rederive(session=session, record=False)
        event_record(
            project=project,
            session=session,
            kind="session.created",
            summary=f"{session.id} created" + (f" for {issue_ref}" if issue_ref else ""),
            actor=Actor.USER if by else Actor.SYSTEM,
            actor_user=by,
        )
    return session


def session_facts(session: Session, *, now: datetime | None = None) -> Facts:
    """Gather a session's stored facts for the derivation function (with the project's
    agent-stuck threshold as ``stuck_after``)."""
    pr = getattr(session, "pull_request", None) if session.pk else None
    pr_facts = selectors.pr_facts(pr, project=session.project) if pr is not None else None
    return Facts(
        now=now or timezone.now(),
        phase=lifecycle.Phase(session.phase),
        runtime=lifecycle.RuntimeState(session.runtime_state),
        activity=lifecycle.Activity(session.activity),
        activity_at=session.activity_at,
        activity_weak=session.activity_weak,
        activity_since=session.activity_since,
        activity_streak=session.activity_streak,
        reported=lifecycle.Reported(session.reported_state),
        reported_at=session.reported_at,
        pr=pr_facts,
        pr_changed_at=pr.facts_changed_at if pr is not None else None,
        detecting_attempts=session.detecting_attempts,
        previous=lifecycle.Status(session.status),
        previous_since=session.status_changed_at,
        # only a PR problem's zone depends on who handles it: no query otherwise
        agent_handles=selectors.agent_handles(session)
        if session.status in lifecycle.AGENT_HANDLED
        or (pr_facts is not None and pr_facts.state == lifecycle.PRState.OPEN)
        else lifecycle.AGENT_HANDLED,
        stuck_after=stuck_after(session.project),
    )


def session_rederive(
    *,
    session: Session,
    now: datetime | None = None,
    record: bool = True,
    actor: str = Actor.SYSTEM,
    events: list[tuple[str, str, dict[str, Any] | None]] | None = None,
) -> bool:
    """Derive status and zone from the stored facts; on a change write them, an Event and a push.
    ``events``: the caller records the Event with its own (``events_record``, a system entry):
    it is appended there.

    The write is conditional on the phase and status it derived from (a compare-and-set): a
    caller's ``session`` may have been read before another writer changed the row (a kill while
    an observation probed, a restore while PR sync ran). Then the row is read again and derived
    from what it holds now, so a status derived from a phase that is no longer the row's (an
    observer's "runtime lost" after a kill) is never written.

    Returns True when the status or zone changed.
    """
    for _attempt in range(REDERIVE_ATTEMPTS):
        written = _rederive_once(session=session, now=now, record=record, actor=actor, events=events)
        if written is not None:
            return written
        session.refresh_from_db()  # the row moved since it was read: derive from what it holds now
    return False  # it kept moving: the writers that moved it derived from what they wrote


# How often session_rederive derives again when the row changed under it.
REDERIVE_ATTEMPTS = 3


def _rederive_once(
    *,
    session: Session,
    now: datetime | None,
    record: bool,
    actor: str,
    events: list[tuple[str, str, dict[str, Any] | None]] | None,
) -> bool | None:
    """One derivation and its conditional write: whether the status or zone changed, or None
    when the row's phase or status is no longer what ``session`` holds (nothing written)."""
    derived = lifecycle.derive(session_facts(session, now=now))
    before = {"status": session.status, "zone": session.zone}
    changed = (derived.status, derived.zone) != (session.status, session.zone)
    status_changed = derived.status != session.status
    reason_changed = derived.reason != session.status_reason
    as_read = Session.objects.filter(pk=session.pk, phase=session.phase, status=session.status)
    if not changed:
        if record and reason_changed:  # most sweeps derive the same: no write then
            if not as_read.update(status_reason=derived.reason):
                return None
        session.status_reason = derived.reason
        return False
    at = now or timezone.now()
    status_changed_at, ended_at = session.status_changed_at, session.ended_at
    if status_changed or status_changed_at is None:  # a zone move alone (escalated) is no new status
        status_changed_at = at
    if derived.zone == Zone.DONE and ended_at is None:
        ended_at = at
    if record and not as_read.update(
        status=derived.status,
        zone=derived.zone,
        status_reason=derived.reason,
        status_changed_at=status_changed_at,
        ended_at=ended_at,
        updated_at=timezone.now(),
    ):
        return None
    session.status, session.zone, session.status_reason = derived.status, derived.zone, derived.reason
    session.status_changed_at, session.ended_at = status_changed_at, ended_at
    if not record:
        return True
    summary = f"{before['status']} → {derived.status}: {derived.reason}"
    data = {"before": before, "after": {"status": derived.status, "zone": derived.zone}}
    if events is not None and actor == Actor.SYSTEM:
        events.append(("status.changed", summary, data))
    else:
        event_record(
            project=session.project,
            session=session,
            kind="status.changed",
            summary=summary,
            actor=actor,
            data=data,
        )
    return True


def _sweep_every(interval: float | None) -> timedelta:
    return timedelta(seconds=interval or settings.AO_SWEEP_INTERVAL)


class SweepLeaseLost(Exception):
    """The sweep's lease expired and another sweep claimed the project: this one must stop."""


@dataclass
class SweepLease:
    """A claimed sweep of one project. ``until`` is the value of ``sweep_lease_until`` while the
    lease is this sweep's: renewals and the release are conditional on it."""

    project_id: int
    until: datetime
    lost: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def keep(self, *, now: datetime | None = None) -> None:
        """Call at each step of a sweep: renews the lease when it was last renewed more than
        SWEEP_LEASE_RENEW_AFTER ago; raises SweepLeaseLost when it is no longer this sweep's."""
        project_sweep_renew(lease=self, now=now)

    @contextmanager
    def heartbeat(self, *, every: float | None = None) -> Iterator[SweepLease]:
        """Renew the lease from a thread every ``every`` seconds (SWEEP_LEASE_RENEW_AFTER) while
        the sweep runs: one step slower than the lease (a slow forge) does not lose it, and a
        sweep whose process dies stops renewing, so its lease lapses within SWEEP_LEASE."""
        stop = threading.Event()
        interval = every if every is not None else SWEEP_LEASE_RENEW_AFTER.total_seconds()

        def beat() -> None:
            try:
                while not stop.wait(interval):
                    try:
                        project_sweep_renew(lease=self, force=True)
                    except SweepLeaseLost:
                        return  # the sweep's next step sees it and stops
                    except DatabaseError as exc:  # the database briefly away: the next beat retries
                        log.warning("renewing the sweep lease of project %s failed: %s", self.project_id, exc)
            finally:
                connection.close()

        thread = threading.Thread(target=beat, name=f"sweep-lease-{self.project_id}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=30)


def project_sweep_claim(
    *, project_id: int, now: datetime | None = None, if_due: bool = True
) -> SweepLease | None:
    """Claim the project's sweep lease with a conditional UPDATE; None if another sweep holds an
    unexpired one or (``if_due``) the project was swept less than its interval ago, so a
    duplicate task queued while a sweep ran does nothing."""
    now = now or timezone.now()
    until = now + SWEEP_LEASE
    claim = Project.objects.filter(pk=project_id).filter(
        Q(sweep_lease_until__isnull=True) | Q(sweep_lease_until__lt=now)
    )
    if if_due:
        interval = Project.objects.filter(pk=project_id).values_list("sweep_interval", flat=True).first()
        claim = claim.filter(
            Q(last_swept_at__isnull=True) | Q(last_swept_at__lte=now - _sweep_every(interval))
        )
    return (
        SweepLease(project_id=project_id, until=until) if claim.update(sweep_lease_until=until) == 1 else None
    )


def project_sweep_renew(*, lease: SweepLease, now: datetime | None = None, force: bool = False) -> None:
    """Extend a running sweep's lease by SWEEP_LEASE from now (at most every
    SWEEP_LEASE_RENEW_AFTER unless ``force``). Raises SweepLeaseLost when it is no longer ours."""
    lost = SweepLeaseLost(f"the sweep lease of project {lease.project_id} expired and was claimed again")
    with lease._lock:  # the heartbeat thread and the sweep's steps renew the same lease
        if lease.lost:
            raise lost
        now = now or timezone.now()
        if not force and lease.until - now > SWEEP_LEASE - SWEEP_LEASE_RENEW_AFTER:
            return
        until = now + SWEEP_LEASE
        renewed = Project.objects.filter(pk=lease.project_id, sweep_lease_until=lease.until).update(
            sweep_lease_until=until
        )
        if renewed != 1:
            lease.lost = True
            raise lost
        lease.until = until


def project_sweep_release(*, lease: SweepLease, now: datetime | None = None) -> None:
    """Release the lease and record the sweep; nothing when the lease is no longer ours."""
    with lease._lock:
        Project.objects.filter(pk=lease.project_id, sweep_lease_until=lease.until).update(
            sweep_lease_until=None, last_swept_at=now or timezone.now()
        )


def project_sweep(
    *,
    project: Project,
    now: datetime | None = None,
    exclude_phase: str | None = None,
    keep: Callable[[], None] | None = None,
) -> int:
    """Re-derive the status of every live session of the project from its stored facts
    (time alone can change it: idle turns into stuck). Returns how many changed. ``keep`` is
    called before each session (the sweep lease's ``keep``)."""
    changes = 0
    live = Session.objects.filter(project=project).exclude(zone=Zone.DONE).select_related("project")
    if exclude_phase:
        live = live.exclude(phase=exclude_phase)
    for session in live:
        if keep is not None:
            keep()
        with transaction.atomic():
            if session_rederive(session=session, now=now):
                changes += 1
    return changes


def projects_due_for_sweep(*, now: datetime | None = None) -> list[int]:
    """Projects whose interval has passed and whose sweep lease is free (or expired): a project
    being swept is not queued again."""
    now = now or timezone.now()
    due = []
    free = Project.objects.filter(Q(sweep_lease_until__isnull=True) | Q(sweep_lease_until__lt=now))
    for pk, interval, last in free.values_list("pk", "sweep_interval", "last_swept_at"):
        if last is None or now - last >= _sweep_every(interval):
            due.append(pk)
    return due


def config_applied(*, config) -> AppliedConfig | None:
    """The record of this config's file if it was last applied with the same sha256 (unchanged
    since), else None. Always None for an upload (no file on the server)."""
    if config.source is None or not config.sha256:
        return None
    return AppliedConfig.objects.filter(path=str(config.source), sha256=config.sha256).first()


def config_apply(*, config, source: Path | str, applied_by: str = "", by=None) -> list[str]:
    """Create or update the Project rows of a loaded config (``sessions.core.config.loading.config_load``, or
    ``config_load_text`` for an upload), and its notifiers and routing.

    One transaction: either every project is written or none is. Projects in the database but
    not in the file are left alone and reported. A session prefix already held by another
    project (in the file or in the database) is a ConfigError and nothing is written.
    A config loaded from a file is recorded (path, sha256, when, ``applied_by``) in AppliedConfig:
    ``ao start`` skips a file whose sha256 is unchanged. An upload keeps each existing project's
    ``config_source`` (the file that still defines it) and gives new projects none.
    Returns human-readable lines describing what changed.

    ``by``: the person applying it through the admin; None for the host itself (``ao config apply``,
    ``ao start``). A change to a setting that runs programs or names places on the host, or that says
    where ao's credentials go (``repo``, the scm and tracker plugins and settings), is refused
    (``host_settings.HostSettingRefused``, nothing written) unless ``by`` is a superuser. Plugin
    settings their plugin refuses (the orchestrator's agent's too) are a ConfigError.
    """
    if not config.sha256:
        raise ValueError("config_apply needs a config returned by sessions.core.config.loading.config_load")
    file = str(source)
    uploaded = config.source is None
    wanted = {
        key: _project_fields(key, spec, file=file, uploaded=uploaded) for key, spec in config.projects.items()
    }
    changes: list[str] = []
    with transaction.atomic():
        existing = {p.key: p for p in Project.objects.select_for_update().order_by("key")}
        problems = _prefix_problems(config, file, wanted, existing)
        # the loader validated the settings; what is written is checked again, as the admin does
        problems += [
            ConfigProblem(file, None, f"projects.{key}", message)
            for key, values in wanted.items()
            for _field, message in host_settings.settings_problems(values, key=key)
        ]
        if problems:
            raise ConfigError(problems)
        for key, values in wanted.items() if by is not None else ():
            current = existing.get(key)
            host_settings.host_settings_guard(
                user=by,
                before=current,
                after={**host_settings.project_state(current), **values} if current else values,
            )
        for key, values in wanted.items():
            changes.append(_project_write(key, values, existing.get(key), file=file))
        for key in sorted(set(existing) - set(wanted)):
            changes.append(f"left alone project {key}: in the database but not in {file}")
        changes.extend(notifiers_apply(config))
        if not uploaded:
            AppliedConfig.objects.update_or_create(
                path=str(config.source),
                defaults={"sha256": config.sha256, "applied_at": timezone.now(), "applied_by": applied_by},
            )
        audit.record(action="config.apply", target=("config", file), data={"changes": changes})  # audit
    return changes


def _project_fields(key: str, spec, *, file: str, uploaded: bool) -> dict[str, Any]:
    """The Project fields a project's config gives; an upload sets no ``config_source``."""
    fields = {
        "name": spec.name or key,
        "repo": spec.repo or "",
        "path": spec.path,
        "default_branch": spec.default_branch,
        "session_prefix": spec.session_prefix,
        **{slot: spec.plugin_key(slot) for slot in Project.SLOTS},
        "plugin_settings": {
            slot: spec.settings_for(slot) for slot in Project.SLOTS if spec.settings_for(slot)
        },
        "agent_rules": spec.agent_rules or "",
        "agent_rules_file": spec.agent_rules_file or "",
        "symlinks": list(spec.symlinks),
        "post_create": list(spec.post_create),
        "reactions": {
            **{
                rule: reaction.model_dump(mode="json", by_alias=True, exclude_none=True)
                for rule, reaction in spec.reactions.items()
            },
            # a project switch the reactions engine reads next to the rule overrides
            **(
                {"autoCleanupOnMerge": spec.auto_cleanup_on_merge}
                if spec.auto_cleanup_on_merge is not None
                else {}
            ),
        },
        "max_sessions": spec.max_sessions,
        "refuse_over_cap": spec.refuse_over_cap,
        "monthly_budget_usd": _money_or_none(spec.monthly_budget_usd),
        "allow_agent_trust": spec.allow_agent_trust,
        "pass_tokens_to_agents": spec.pass_tokens_to_agents,
        "credentials": spec.credentials,
        "agent_secrets": dict(spec.agent_secrets),
        "sweep_interval": spec.sweep_interval,
        "config_source": file,
        **orchestrator_fields(spec),
    }
    if uploaded:
        del fields["config_source"]
    return fields


def _prefix_problems(
    config, file: str, wanted: dict[str, dict[str, Any]], existing: dict[str, Project]
) -> list[ConfigProblem]:
    """A session prefix claimed twice in the file, or held by another project in the database."""

    def problem(key: str, message: str) -> ConfigProblem:
        path = ("projects", key, "sessionPrefix")
        return ConfigProblem(file, config.line_of(*path), ".".join(path), message)

    problems = []
    claimed: dict[str, str] = {}
    holders = {p.session_prefix: p.key for p in existing.values()}
    for key, values in wanted.items():
        prefix = values["session_prefix"]
        if prefix in claimed:
            problems.append(
                problem(key, f"session prefix {prefix!r} is also claimed by project {claimed[prefix]!r}")
            )
        elif holders.get(prefix, key) != key:
            problems.append(
                problem(
                    key,
                    f"session prefix {prefix!r} is already used by project "
                    f"{holders[prefix]!r} in the database; choose another sessionPrefix",
                )
            )
        claimed.setdefault(prefix, key)
    return problems


def _project_write(key: str, values: dict[str, Any], project: Project | None, *, file: str) -> str:
    """Create the project, or update the fields that differ; the line saying what changed."""
    if project is None:
        project = Project(key=key, **values)
        project.full_clean(validate_unique=False)
        project.save(force_insert=True)
        event_record(
            project=project,
            session=None,
            kind="project.created",
            summary=f"project {key} created from {file}",
        )
        return (
            f"created project {key} (prefix {project.session_prefix}, agent {project.agent}, "
            f"path {project.path})"
        )
    diffs = [
        (name, getattr(project, name), value)
        for name, value in values.items()
        if getattr(project, name) != value
    ]
    if not diffs:
        return f"unchanged project {key}"
    for name, _old, value in diffs:
        setattr(project, name, value)
    project.full_clean(validate_unique=False)
    project.save(update_fields=[name for name, _, _ in diffs] + ["updated_at"])
    described = "; ".join(
        f"{PROJECT_LABELS[name]}: {old!r} → {new!r}"
        if name not in ("plugin_settings", "reactions", "agent_rules", *ORCHESTRATOR_OPAQUE)
        else f"{PROJECT_LABELS[name]} changed"
        for name, old, new in diffs
    )
    event_record(
        project=project,
        session=None,
        kind="project.updated",
        summary=f"project {key} updated from {file}: {described}",
        data={"fields": [name for name, _, _ in diffs]},
    )
    return f"updated project {key}: {described}"


def _money_or_none(value: float | None) -> Decimal | None:
    """A budget from the config file as the database holds it (cents), so an unchanged file is
    seen as unchanged."""
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


# --- orchestrator + intake config (orchestrator issue): ProjectConfig -> Project fields ---------------
ORCHESTRATOR_LABELS = {
    "orchestrator_enabled": "orchestrator.enabled",
    "orchestrator_agent": "orchestrator.agent",
    "orchestrator_agent_settings": "orchestrator.agent settings",
    "orchestrator_rules": "orchestrator.rules",
    "orchestrator_rules_file": "orchestrator.rulesFile",
    "intake_enabled": "intake.enabled",
    "intake_label": "intake.label",
    "intake_in_progress_label": "intake.inProgressLabel",
    "intake_done_label": "intake.doneLabel",
}
ORCHESTRATOR_OPAQUE = ("orchestrator_agent_settings", "orchestrator_rules")


# How a change to a Project field is named in what config_apply reports: the config's own key.
PROJECT_LABELS = {
    "name": "name",
    "repo": "repo",
    "path": "path",
    "default_branch": "defaultBranch",
    "session_prefix": "sessionPrefix",
    "agent": "agent",
    "runtime": "runtime",
    "workspace": "workspace",
    "tracker": "tracker",
    "scm": "scm",
    "plugin_settings": "plugin settings",
    "agent_rules": "agentRules",
    "agent_rules_file": "agentRulesFile",
    "symlinks": "symlinks",
    "post_create": "postCreate",
    "reactions": "reactions",
    "max_sessions": "maxSessions",
    "refuse_over_cap": "refuseOverCap",
    "monthly_budget_usd": "monthlyBudgetUsd",
    "allow_agent_trust": "allowAgentTrust",
    "pass_tokens_to_agents": "passTokensToAgents",
    "credentials": "credentials",
    "agent_secrets": "agentSecrets",
    "sweep_interval": "sweepInterval",
    "config_source": "config source",
    **ORCHESTRATOR_LABELS,
}


def orchestrator_fields(spec) -> dict[str, Any]:
    """The Project fields of a project's ``orchestrator`` and ``intake`` config. ``intake.enabled``
    left unset keeps what `ao intake on|off` chose."""
    orch, intake = spec.orchestrator, spec.intake
    rules = "\n\n".join(r.strip() for r in (orch.rules, spec.orchestrator_rules) if r and r.strip())
    fields: dict[str, Any] = {
        "orchestrator_enabled": orch.enabled,
        "orchestrator_agent": orch.agent.plugin if orch.agent is not None else "",
        "orchestrator_agent_settings": orch.agent.settings if orch.agent is not None else {},
        "orchestrator_rules": rules,
        "orchestrator_rules_file": orch.rules_file or "",
        "intake_label": intake.label,
        "intake_in_progress_label": intake.in_progress_label,
        "intake_done_label": intake.done_label,
    }
    if intake.enabled is not None:
        fields["intake_enabled"] = intake.enabled
    return fields


def session_report(*, session: Session, state: str, note: str = "", pr: str = "") -> None:
    """Record an agent's self-reported state (from `ao report`) and re-derive."""
    now = timezone.now()
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(reported_state=state, reported_at=now)
        session.reported_state, session.reported_at = state, now
        summary = f"agent reports {state}" + (f": {note}" if note else "") + (f" (PR {pr})" if pr else "")
        event_record(
            project=session.project,
            session=session,
            kind="agent.report",
            summary=summary,
            actor=Actor.AGENT,
            actor_name=session.id,
            data={"state": state, "note": note, "pr": pr},
        )
        audit.record(action="session.report", target=session, project=session.project, data={"state": state})
        session_rederive(session=session, actor=Actor.AGENT)


# --- flaky checks (sessions/domain/flaky.py) ------------------------------------------------------------------
def check_flips_record(*, pr: PullRequest, info, stored: dict | None = None) -> list[str]:
    """Called by prsync *before* it stores ``info.checks`` for ``info.head_sha``: flag checks that
    flip between failed and passed on the same commit. ``stored``: {(source, name): (status,
    conclusion)} of the commit's stored checks, when the caller has read them (else read here).
    Returns the names flagged now. Never raises into the PR sync."""
    try:
        if stored is None:
            stored = {
                (c.source, c.name): (c.status, c.conclusion)
                for c in CheckRun.objects.filter(pull_request=pr, head_sha=info.head_sha)
            }
        found = flaky.flips(stored, info.checks)
        if not found:
            return []
        with transaction.atomic():  # a savepoint: a failure here leaves the caller's transaction usable
            return _check_flips_record(pr=pr, info=info, found=found)
    except Exception:  # flakiness is advice; the PR facts must still be stored
        log.exception("flaky-check detection for %s failed", pr)
        return []


def _check_flips_record(*, pr: PullRequest, info, found: list[flaky.Flip]) -> list[str]:
    flagged: list[str] = []
    for flip in found:
        if _flaky_flag(
            project=pr.project,
            name=flip.name,
            reason=FlakyCheck.Reason.FLIP,
            head_sha=info.head_sha[: flaky.SHA_MAX],
            pull_request=pr,
            sessions=[pr.session_id] if pr.session_id else [],
            detail=flip.detail(head_sha=info.head_sha, number=pr.number),
        ):
            flagged.append(flip.name)
    return flagged


def _flaky_flag(*, project, name, reason, head_sha, pull_request, sessions, detail) -> bool:
    """Write the flag and its ``ci.flaky`` timeline entry once; True if it is new (or renewed)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            row, created = FlakyCheck.objects.get_or_create(
                project=project,
                name=name,
                reason=reason,
                head_sha=head_sha,
                defaults={"pull_request": pull_request, "sessions": sessions, "detail": detail[:500]},
            )
    except IntegrityError:  # a concurrent sync flagged it first
        return False
    if not created:
        if row.detected_at >= selectors.flaky_window_start(now):
            return False
        # an expired flag seen again: renew it (FlakyCheck rows are bookkeeping, not the timeline)
        FlakyCheck.objects.filter(pk=row.pk).update(detected_at=now, sessions=sessions, detail=detail[:500])
    session = Session.objects.filter(pk=pull_request.session_id).first() if pull_request else None
    event_record(
        project=project,
        session=session,
        kind="ci.flaky",
        summary=(
            f"check {name} flagged flaky on this commit: {detail}; when it fails here the agent is "
            "still told, with a note that a re-run may pass"
        )[:500],
        actor=Actor.SYSTEM,
        data={"check": name, "reason": reason, "sha": head_sha, "sessions": sessions},
    )
    return True


# --- messages: queued here, delivered by sessions/agents/messaging.py ------------------------------------
# A write of the core: the agents (the first prompt, a restore's message), the watchers and the
# reactions queue messages without importing the delivery, which builds on the agents.
def messages_abandon(*, session: Session, reason: str) -> int:
    """Fail the messages that can no longer reach the session's agent (it was cleaned up), so
    they do not wait forever; recorded on the timeline. Returns how many."""
    pending = list(
        session.messages.filter(state__in=[Message.State.QUEUED, Message.State.DELIVERED]).values_list(
            "pk", flat=True
        )
    )
    if not pending:
        return 0
    failed = Message.objects.filter(
        pk__in=pending, state__in=[Message.State.QUEUED, Message.State.DELIVERED]
    ).update(state=Message.State.FAILED, last_error=reason[:2000])
    if failed:
        event_record(
            project=session.project,
            session=session,
            kind="message.failed",
            summary=f"{failed} undelivered message{'s' if failed != 1 else ''} failed: {reason}"[:500],
            data={"messages": pending},
        )
    return failed


def message_queue(
    *,
    session: Session,
    text: str,
    sender: str = Actor.USER,
    sender_user=None,
    sender_name: str = "",
    answers_prompt: bool = False,
    watch: bool | None = None,
    first: bool = False,
) -> Message:
    """Queue a message and its delivery (after commit). ``watch``: whether a process without a
    worker keeps watching a busy agent to deliver it (None: yes; ao's own messages at spawn).
    ``first``: the session's task prompt, delivered before anything sent while it was spawning."""
    text = clean_text(text, max_chars=settings.AO_MAX_PROMPT_CHARS, what="message")
    if answers_prompt and sender != Actor.USER:
        raise ValueError("only a person may answer an agent's permission prompt")
    message = Message.objects.create(
        session=session,
        text=text,
        sender=sender,
        sender_user=sender_user,
        sender_name=sender_name,
        answers_prompt=answers_prompt,
    )
    if first:  # queued at start, but it comes before what people sent while the agent was starting
        Message.objects.filter(pk=message.pk).update(created_at=session.created_at)
    who = sender_user.get_username() if sender_user else (sender_name or sender)
    first_line = text.strip().splitlines()[0][:120]
    event_record(
        project=session.project,
        session=session,
        kind="message.queued",
        summary=f"message from {who}: {first_line}",
        actor=sender,
        actor_user=sender_user,
        actor_name=sender_name,
        data={"message": message.pk, "chars": len(text)},
    )
    audit.record(action="message.queue", target=message, project=session.project, data={"to": session.pk})
    _enqueue_delivery(session, watch=watch is not False)
    return message


def _enqueue_delivery(session: Session, *, watch: bool) -> None:
    session_id, queue = session.pk, jobs.host_queue(session.host or settings.AO_HOST_NAME)
    # A worker re-schedules itself while the agent is busy. Without one (tasks run inline: the CLI,
    # a test server), the CLI watches the agent for a while (``watch``); a request makes one attempt
    # and is answered at once: a message the busy agent could not take yet waits for the sweep.
    if jobs.runs_inline():
        wait = settings.AO_INLINE_DELIVERY_WAIT if watch else 0.0
    else:
        wait = 0.0
    transaction.on_commit(
        lambda: jobs.enqueue(jobs.MESSAGES_DELIVER, args=[session_id], kwargs={"wait": wait}, queue=queue)
    )


# --- reactions: asked to look at a session whose facts changed ---------------------------------------
# Recording a fact never asks the reactions (issue 16): the flow that records asks. The flows above
# the reactions (the sweep, a webhook refresh, the activity watcher, the tasks) call them directly.
# The operator's actions that live below them (a person's send and the delivery of messages, which
# ask between an observation and what they do next; a claim, a merge, a review, `ao pr create`,
# which ask about the PR facts they stored) ask through this: sessions/apps.py (the composition
# root) hands the reactions' entry point down at start, as it hands down the dashboard's renderers.
_reactor: Callable[..., None] | None = None


def use_reactor(react: Callable[..., None]) -> None:
    """``react(session_id=...)``: one session's reactions after commit."""
    global _reactor
    _reactor = react


def session_react_after_commit(*, session_id: str) -> None:
    """Have the reactions look at a session once the caller's transaction has committed: an
    operator's action below the reactions asks this after recording its facts. (No reactions
    handed down: nothing.)"""
    if _reactor is not None:
        _reactor(session_id=session_id)


def auto_cleanup_refused(*, session: Session, exc: Exception) -> None:
    """An auto-cleanup was refused (unpushed work) or failed, here or on the session's host:
    everything is kept; the timeline says why and a person is told."""
    pr = getattr(session, "pull_request", None)
    after = f"after PR #{pr.number} merged " if pr is not None else ""
    event_record(
        project=session.project,
        session=session,
        kind="reaction.cleanup_refused",
        summary=f"auto-cleanup {after}refused: {exc}"[:500],
        actor=Actor.REACTION,
        actor_name=AUTO_CLEANUP,
        data={"error": str(exc)[:1000]},
    )
    notify(
        project=session.project,
        session=session,
        priority="warning",
        rule=AUTO_CLEANUP,
        title=f"{session.pk}: workspace kept after merge",
        body=str(exc),
    )
