"""Deciding what to do about a session's current facts.

``sessions.core.selectors.reaction_facts`` reads the stored facts of a session (one small set of
queries) into the plain frozen dataclasses of ``reactions.facts``; ``decide`` turns facts +
effective rules into :class:`Decision` s; and ``plan_attempt`` says, for one decision and its
durable bookkeeping row, whether to act now, escalate to a person, or wait. This module is pure:
no database, no clock, no plugins.

Each decision carries a *fingerprint*: the identity of the situation it reacts to. Reactions
happen at most once per (session, rule, fingerprint) — the services claim a unique
``ReactionAttempt`` row — so a duplicate webhook, a re-run sweep, a restarted worker or two
workers at once never act twice, while a new situation (a new push that fails the same check)
has a new fingerprint and is acted on afresh:

| rule | fingerprint |
| --- | --- |
| ci-failed | head SHA + sorted names of the failing checks |
| changes-requested | sorted ids of the unresolved, trusted human review threads and of the reviews whose text is the reviewer's latest word (or the head SHA when changes were requested without either) |
| bot-review-comments | sorted ids of the unresolved, trusted bot threads |
| merge-conflicts | base branch + the conflict episode (the timeline entry where conflicts began) |
| approved-and-green | head SHA + outcome (ready / merge / not merged) |
| review-requested | PR number + the review episode (the timeline entry where the review decision last changed): a push does not re-notify, a new request after a review does |
| agent-stuck, agent-needs-input, agent-exited | status + when it began (``status_changed_at``) |
| agent-idle | constant per session: repeated idleness is a retry of the same nudge |
| pr-closed | PR number |
| all-complete | the set of the project's worker sessions (anchored on the newest one) |
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from reactions import messages
from reactions import rules as R
from reactions.facts import SessionFacts
from sessions.domain import lifecycle
from sessions.domain.lifecycle import (
    CIState,
    Phase,
    PRFact,
    PRState,
    ReviewDecision,
    RuntimeState,
    Status,
    ThreadFact,
    Zone,
)

ACT = "act"
ESCALATE = "escalate"
WAIT = "wait"

UNTRUSTED = "untrusted-comment"  # bookkeeping rule: one timeline entry per skipped thread
AUTO_CLEANUP = R.AUTO_CLEANUP  # bookkeeping rule: one cleanup per merged PR


@dataclass(frozen=True)
class Decision:
    rule: str
    action: str  # send-to-agent | notify | auto-merge | skip (untrusted)
    fingerprint: str
    priority: str
    title: str  # for people (notifications, escalations)
    text: str  # the message for the agent, or the notification's body
    url: str = ""
    session_id: str = ""  # where the bookkeeping row lives, if not the observed session
    data: dict = field(default_factory=dict, compare=False)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _episode(facts: SessionFacts) -> str:
    at = facts.status_changed_at.isoformat() if facts.status_changed_at else "unknown"
    return f"{facts.status}@{at}"


# --- deciding ------------------------------------------------------------------------------------------
def decide(facts: SessionFacts, rules: dict[str, R.Rule]) -> list[Decision]:
    """Every reaction the facts call for under these rules, before deduplication. Pure."""
    out: list[Decision] = []
    values = messages.placeholders(facts)
    agent_reachable = (
        facts.phase == Phase.RUNNING and facts.runtime_state == RuntimeState.ALIVE and facts.has_runtime
    )
    pr = facts.pr

    def add(
        rule_name: str,
        *,
        fingerprint: str,
        title: str,
        lead: str,
        details: str = "",
        url: str = "",
        action: str | None = None,
        session_id: str = "",
        data: dict | None = None,
    ) -> None:
        rule = rules.get(rule_name)
        if rule is None or not rule.enabled:
            return
        act = action or rule.effective_action
        text = messages.compose(template=rule.message, lead=lead, details=details, values=values)
        out.append(
            Decision(
                rule=rule_name,
                action=act,
                fingerprint=fingerprint,
                priority=rule.priority,
                title=title,
                text=text,
                url=url,
                session_id=session_id,
                data=data or {},
            )
        )

    if facts.kind == "worker" and pr is not None and pr.state == PRState.OPEN and agent_reachable:
        _pr_rules(facts, pr, rules, add, out)
    if (
        facts.kind == "worker"
        and pr is not None
        and pr.state == PRState.OPEN
        and _review_requested_now(facts)
    ):
        _review_requested(facts, pr, add)
    if facts.kind == "worker" and pr is not None and pr.state == PRState.CLOSED:
        add(
            R.PR_CLOSED,
            fingerprint=f"pr-{pr.number}-closed",
            url=pr.url,
            title=f"{facts.session_id}: PR #{pr.number} was closed without merging",
            lead=f"PR #{pr.number} ({pr.title or pr.branch}) was closed without merging: {pr.url}",
        )

    if facts.phase == Phase.RUNNING:
        _agent_rules(facts, rules, add)

    if facts.all_done:
        count = len(facts.all_done)
        add(
            R.ALL_COMPLETE,
            fingerprint=_digest(*sorted(facts.all_done)),
            session_id=facts.all_done[-1],
            title=f"{facts.project_key}: all {count} sessions are done"
            if count != 1
            else f"{facts.project_key}: its only session is done",
            lead=f"Every worker session of {facts.project_key} is done: {', '.join(facts.all_done)}.",
            data={"sessions": list(facts.all_done)},
        )
    return out


def _pr_rules(facts: SessionFacts, pr: PRFact, rules, add, out) -> None:
    # CI
    if pr.ci_state == CIState.FAILING and pr.failing:
        names = sorted(c.name for c in pr.failing)
        add(
            R.CI_FAILED,
            fingerprint=f"{pr.head_sha[:40]}:{_digest(*names)[:16]}",
            url=pr.url,
            title=f"{facts.session_id}: CI failing on PR #{pr.number} ({', '.join(names)})",
            lead=messages.ci_failed_lead(pr),
            details=messages.ci_failed_details(pr, pr.failing),
            data={"sha": pr.head_sha, "checks": names},
        )

    human = _review_thread_rules(facts, pr, rules, add, out)

    if pr.conflicts:
        episode = pr.conflict_episode or pr.head_sha[:40]
        add(
            R.MERGE_CONFLICTS,
            fingerprint=f"{pr.base[:60]}:{episode}"[:128],
            url=pr.url,
            title=f"{facts.session_id}: PR #{pr.number} conflicts with {pr.base}",
            lead=messages.merge_conflicts_lead(pr),
            details=messages.merge_conflicts_details(pr),
            data={"base": pr.base, "episode": episode},
        )

    gate = rules.get(R.APPROVED_AND_GREEN) or R.DEFAULT_RULES[R.APPROVED_AND_GREEN]
    if lifecycle.approved_and_green(_gated(pr, gate)) and not human:  # open trusted threads: not yet
        _approved_and_green(facts, pr, rules, add)


def _review_thread_rules(facts: SessionFacts, pr: PRFact, rules, add, out) -> list[ThreadFact]:
    """Review threads: trusted ones are forwarded (people's as changes requested, bots' as bot
    review comments); untrusted ones are recorded as skipped. Returns the people's open threads."""
    bots_rule = rules.get(R.BOT_REVIEW_COMMENTS)
    trusted_bots = bots_rule.trusted_bots if bots_rule else ()
    human: list[ThreadFact] = []
    bots: list[ThreadFact] = []
    for thread in pr.threads:
        trusted = R.is_trusted(
            author=thread.author,
            association=thread.association,
            is_bot=thread.is_bot,
            trusted_bots=trusted_bots,
        )
        if not trusted:
            out.append(
                Decision(
                    rule=UNTRUSTED,
                    action="skip",
                    fingerprint=thread.external_id[:128],
                    priority="info",
                    url=thread.url,
                    text="",
                    title=f"review comment by @{thread.author or 'unknown'} "
                    f"({thread.association or 'no association'}) not forwarded: untrusted author",
                    data={"thread": thread.external_id, "author": thread.author},
                )
            )
        elif thread.is_bot:
            bots.append(thread)
        else:
            human.append(thread)
    if human or pr.review_decision == ReviewDecision.CHANGES_REQUESTED:
        ids = sorted(t.external_id for t in human)
        add(
            R.CHANGES_REQUESTED,
            fingerprint=_digest(*ids) if ids else f"decision:{pr.head_sha[:40]}",
            url=pr.url,
            title=f"{facts.session_id}: changes requested on PR #{pr.number}",
            lead=messages.changes_requested_lead(
                pr,
                sum(1 for t in human if not t.review_state),
                sum(1 for t in human if t.review_state),
            ),
            details=messages.threads_details(tuple(human)),
            data={"threads": ids},
        )
    if bots:
        ids = sorted(t.external_id for t in bots)
        add(
            R.BOT_REVIEW_COMMENTS,
            fingerprint=_digest(*ids),
            url=pr.url,
            title=f"{facts.session_id}: automated review comments on PR #{pr.number}",
            lead=messages.bot_comments_lead(pr, len(bots)),
            details=messages.threads_details(tuple(bots), label="bot review comment"),
            data={"threads": ids},
        )
    return human


def _review_requested_now(facts: SessionFacts) -> bool:
    """The session's status puts it in the board's "Review requested" zone (a person reviews next,
    as lifecycle.needs_person counts it): the one condition of the review-requested rule."""
    return _status_zone(facts.status) == Zone.REVIEW


def _status_zone(status: str) -> str:
    try:
        return lifecycle.zone_for(Status(status))
    except ValueError:
        return ""


def _review_requested(facts: SessionFacts, pr: PRFact, add) -> None:
    label = f"PR #{pr.number} ({pr.title or pr.branch})"
    where = pr.url or f"on the dashboard, or `ao pr review {pr.number} --approve` / `--request-changes`"
    add(
        R.REVIEW_REQUESTED,
        fingerprint=f"pr-{pr.number}:{pr.review_episode or 'opened'}",
        url=pr.url,
        title=f"{facts.session_id}: {label} is waiting for your review",
        lead=f"{label} is waiting for a person's review ({facts.status_reason or 'review requested'}): "
        f"review it {where}",
        data={"number": pr.number, "sha": pr.head_sha},
    )


def _gated(pr: PRFact, gate: R.Rule) -> PRFact:
    """The PR with what the approved-and-green rule requires: one definition of approved and
    green (sessions.domain.lifecycle.approved_and_green)."""
    return replace(pr, required_checks=gate.required_checks, require_approval=gate.require_approval)


def _approved_and_green(facts: SessionFacts, pr: PRFact, rules, add) -> None:
    rule = rules.get(R.APPROVED_AND_GREEN)
    if rule is None:
        return
    if pr.mergeable is None and not pr.behind:
        return  # the SCM is still computing mergeability: decide once it knows
    ready = pr.mergeable is True and not pr.behind
    why = "behind its base branch" if pr.behind else "the SCM reports it not mergeable"
    label = f"PR #{pr.number} ({pr.title or pr.branch})"
    if rule.effective_action == R.AUTO_MERGE:
        if ready:
            add(
                R.APPROVED_AND_GREEN,
                action=R.AUTO_MERGE,
                fingerprint=f"{pr.head_sha[:40]}:merge",
                url=pr.url,
                title=f"{facts.session_id}: merging {label}",
                lead=f"{label} is approved and green: merging.",
                data={"sha": pr.head_sha},
            )
        else:
            add(
                R.APPROVED_AND_GREEN,
                action=R.NOTIFY,
                fingerprint=f"{pr.head_sha[:40]}:not-merged",
                url=pr.url,
                title=f"{facts.session_id}: {label} approved and green but not merged automatically",
                lead=f"{label} is approved and green but was not merged automatically: {why}. {pr.url}",
                data={"sha": pr.head_sha, "why": why},
            )
        return
    note = "" if ready else f" (but {why})"
    add(
        R.APPROVED_AND_GREEN,
        fingerprint=f"{pr.head_sha[:40]}:ready",
        url=pr.url,
        title=f"{facts.session_id}: {label} is {lifecycle.ready_words(pr.review_decision)}{note}",
        lead=f"{label} is {lifecycle.ready_words(pr.review_decision)}{note}; ready to merge: {pr.url}",
        data={"sha": pr.head_sha},
    )


def _agent_rules(facts: SessionFacts, rules, add) -> None:
    since = facts.status_changed_at
    lasted = (facts.now - since) if since else timedelta(0)
    sid = facts.session_id
    if facts.status == Status.STUCK:
        # The lifecycle derived ``stuck`` with this project's agent-stuck threshold as its
        # stuck_after (reactions.rules.stuck_after): the status is the one source, no second clock.
        add(
            R.AGENT_STUCK,
            fingerprint=_episode(facts),
            title=f"{sid} is stuck: {facts.status_reason or 'no progress'}",
            lead=f"{sid} is stuck: {facts.status_reason}. "
            f"Last activity: {facts.activity_summary or 'unknown'}.",
        )
    elif facts.status in (Status.NEEDS_INPUT, Status.BLOCKED):
        question = facts.activity_summary or facts.status_reason
        add(
            R.AGENT_NEEDS_INPUT,
            fingerprint=_episode(facts),
            title=f"{sid} needs input: {question}"[:300],
            lead=f"{sid} needs a person: {facts.status_reason}. On screen: {question}",
        )
    elif facts.status in (Status.EXITED, Status.RUNTIME_LOST):
        if facts.kept_alive:
            return
        add(
            R.AGENT_EXITED,
            fingerprint=_episode(facts),
            title=f"{sid}: {facts.status_reason or 'the agent exited'}",
            lead=f"{sid}: {facts.status_reason}. Restore it (`ao session restore {sid}`) or clean it up.",
        )
    elif (
        facts.status == Status.IDLE
        and facts.kind == "worker"
        and facts.pr is None
        and facts.runtime_state == RuntimeState.ALIVE
        and facts.has_runtime
        and facts.pending_messages == 0
    ):
        rule = rules.get(R.AGENT_IDLE)
        if rule is not None and (rule.threshold is None or lasted >= rule.threshold):
            add(
                R.AGENT_IDLE,
                fingerprint="no-pr",
                title=f"{sid} keeps stopping without a pull request",
                lead=messages.idle_nudge_lead(facts),
            )


# --- attempts ----------------------------------------------------------------------------------------------
def plan_attempt(
    rule: R.Rule,
    *,
    action: str,
    attempts: int,
    first_at: datetime,
    escalated: bool,
    now: datetime,
    rearmed: bool,
) -> str:
    """ACT, ESCALATE or WAIT for one fingerprint, given its bookkeeping so far. Pure.

    - The first time a fingerprint is seen: act (or escalate at once with ``retries: 0``).
    - Notifications and merges happen once per fingerprint.
    - For send-to-agent, the same fingerprint seen again is a *retry* only when re-armed (the
      services decide: the agent took the last message and finished a turn since, and a
      cool-down passed) — the failure persisted after the agent said it dealt with it.
      Attempt n escalates instead when n > ``retries`` or n > ``escalateAfter`` (a count).
    - ``escalateAfter`` as a duration escalates as soon as the same fingerprint is still
      observed that long after its first attempt, re-armed or not.
    - After an escalation nothing more happens for that fingerprint.
    """
    if escalated:
        return WAIT
    if attempts > 0:
        if action != R.SEND:
            return WAIT
        if isinstance(rule.escalate_after, timedelta) and now - first_at >= rule.escalate_after:
            return ESCALATE
        if not rearmed:
            return WAIT
    if action != R.SEND:
        return ACT
    n = attempts + 1
    if rule.retries is not None and n > rule.retries:
        return ESCALATE
    if isinstance(rule.escalate_after, int) and n > rule.escalate_after:
        return ESCALATE
    return ACT
