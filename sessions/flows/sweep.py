"""The sweep: ao's heartbeat over one project, a flow. It syncs PRs, observes the running sessions
(on their own host), delivers queued messages, re-derives the rest, records the learning loop's
outcomes, asks the reactions about finished sessions, and runs the watchers (drift, admission,
recovery, the orchestrator's keep-alive, intake and conflict watch). The beat's per-project task
(``sessions.tasks.project_sweep_task``) calls it under the project's sweep lease.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from ao_site import failpoints
from integrations.base import IntegrationError
from integrations.registry import ConfigurationError
from reactions import services as reactions
from sessions.agents import observing, spawning
from sessions.core import jobs, realtime, selectors, services
from sessions.core.config.discovery import discovery_pinned
from sessions.domain.lifecycle import Phase, Zone
from sessions.models import Message, Project, Session
from sessions.prs import prsync
from sessions.watchers import drift, orchestrator, outcomes

log = logging.getLogger(__name__)


def pull_requests_sweep(*, project: Project) -> None:
    """The sweep's PR sync (it reads only what changed, or may have), then the reactions of the
    sessions whose PR facts it stored, for all of them at once (their facts in a few queries),
    after commit. A changed PR's card is pushed once, not per stored fact."""
    with realtime.cards_folded():
        synced = prsync.pull_requests_sweep(project=project)
        if synced is not None and synced.recorded:
            reactions.sessions_react_after_commit(session_ids=list(dict.fromkeys(synced.recorded)))


def project_sweep(*, project: Project, keep=None) -> int:
    """One reconciliation pass over a project: observe running sessions (on their own host),
    deliver queued messages, re-derive everything else, admit queued spawns. Returns changes.

    ``keep`` (the sweep lease's ``keep``) is called before each step and each session: it renews
    the lease of a long sweep and raises ``services.SweepLeaseLost`` when it is no longer held."""
    with discovery_pinned():  # the config file is looked for once per sweep
        return _project_sweep(project=project, keep=keep)


def _project_sweep(*, project: Project, keep=None) -> int:

    def step() -> None:
        if keep is not None:
            keep()

    changes = 0
    step()
    try:
        for note in prsync.scm_housekeeping(project=project):
            log.info("%s: %s", project.key, note)
        pull_requests_sweep(project=project)
    except (ConfigurationError, IntegrationError) as exc:
        log.warning("PR sync of %s skipped: %s", project.key, exc)
    running = list(observing.observed_sessions(project=project).select_related("project", "pull_request"))
    # what derivation reads besides the session and its PR, for all of them in one query
    selectors.agent_handles_preload(running)
    observed = []
    reacting = []
    for session in running:  # its PR: derivation reads it
        step()
        if (session.host or settings.AO_HOST_NAME) != settings.AO_HOST_NAME:
            jobs.enqueue(jobs.SESSION_OBSERVE, args=[session.pk], queue=jobs.host_queue(session.host))
            continue
        try:
            changes += int(observing.session_observe(session=session))
            reacting.append(session.pk)
        except (IntegrationError, ConfigurationError) as exc:
            log.warning("observing %s failed: %s", session.pk, exc)
        failpoints.reach("sweep.claimed")
        observed.append(session)
    step()
    # as each observation's own reactions would (after commit: at once, outside a transaction),
    # for all of them at once (their facts and bookkeeping in a few queries)
    transaction.on_commit(lambda: reactions.sessions_react_safely(session_ids=reacting))
    # the observed sessions with messages to deliver (one query; reactions may just have queued some)
    waiting = set(
        Message.objects.filter(session__in=[s.pk for s in observed], state__in=["queued", "delivered"])
        .values_list("session_id", flat=True)
        .distinct()
    )
    for session in observed:
        if session.pk in waiting:
            # one attempt: a held message is looked at again by the next sweep
            jobs.enqueue(
                jobs.MESSAGES_DELIVER,
                args=[session.pk],
                kwargs={"rounds": jobs.DELIVERY_RETRY_ROUNDS},
                queue=jobs.host_queue(session.host),
            )
    changes += services.project_sweep(project=project, exclude_phase=Phase.RUNNING, keep=keep)
    step()
    outcomes.outcomes_record_due(project=project)  # the learning loop: outcomes of newly finished sessions
    # Finished sessions whose runtime is gone are no longer observed: reactions still decide
    # their clean-up after merge and whether the whole project is complete.
    finished = list(
        Session.objects.filter(project=project, phase=Phase.RUNNING, zone=Zone.DONE)
        .filter(runtime_state__in=observing.RUNTIME_GONE)
        .values_list("pk", flat=True)
    )
    if finished:
        transaction.on_commit(lambda: reactions.sessions_react_safely(session_ids=finished))
    step()
    drift.drift_check(project)  # signals that an agent goes the wrong way, to the orchestrator (rate-limited)
    step()
    spawning.queued_sessions_admit(project=project)
    step()
    spawning.unstarted_sessions_recover(project=project)
    step()
    # the orchestrator issue: orchestrator keep-alive, backlog intake, conflict watch
    changes += orchestrator.project_sweep_hooks(project=project)
    return changes
