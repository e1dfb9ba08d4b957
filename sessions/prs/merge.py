"""Merging a session's PR on a person's word (dashboard, API, chat): one path for all of them."""

from __future__ import annotations

import logging

from django.db import transaction

from integrations.base import IntegrationError, PermanentIntegrationError
from integrations.registry import ConfigurationError, plugin_for
from sessions.core import audit, selectors, services
from sessions.models import Actor, PullRequest, Session
from sessions.prs import prsync

log = logging.getLogger(__name__)


class MergeRefused(Exception):
    """The PR cannot be merged now; ``blockers`` says why."""

    def __init__(self, blockers: list[str]) -> None:
        self.blockers = blockers
        super().__init__("; ".join(blockers))


def session_pull_request_merge(
    *, session: Session, by=None, via: str = "", actor: str = Actor.USER, expected_head_sha: str = ""
) -> PullRequest:
    """Merge the session's PR through the project's SCM when nothing blocks it, then refresh its facts.

    ``expected_head_sha``: the commit the person approved (e.g. in chat); refuse if the head moved.
    Raises MergeRefused with the blockers or the SCM's refusal (the PR is read again then), or the
    SCM's TransientIntegrationError.
    """
    blockers = selectors.merge_blockers(session)  # "no pull request yet" among them when it has none
    pr: PullRequest | None = getattr(session, "pull_request", None)
    if not blockers and pr is not None and expected_head_sha and pr.head_sha != expected_head_sha:
        blockers = [f"the PR's head moved to {pr.head_sha[:7]} since {expected_head_sha[:7]} was approved"]
    if blockers or pr is None:
        raise MergeRefused(blockers)
    who = by.get_username() if by is not None else actor
    try:
        plugin_for(session.project, "scm").merge(number=pr.number, expected_head_sha=pr.head_sha)
    except PermanentIntegrationError as exc:
        # the SCM refused (the head moved since ao checked it, not mergeable there): a refusal with
        # its reason, and the PR read again so the board shows what the SCM has now
        services.event_record(
            project=session.project,
            session=session,
            kind="pr.merge_refused",
            summary=f"#{pr.number} not merged (asked by {who}" + (f" via {via}" if via else "") + f"): {exc}",
            actor=actor,
            actor_user=by,
            data={"number": pr.number, "head_sha": pr.head_sha, "error": str(exc)[:500]},
        )
        _refresh(session)
        raise MergeRefused([str(exc)]) from exc
    with transaction.atomic():
        services.event_record(
            project=session.project,
            session=session,
            kind="pr.merge_requested",
            summary=f"#{pr.number} merged by {who}" + (f" via {via}" if via else ""),
            actor=actor,
            actor_user=by,
            data={"number": pr.number, "head_sha": pr.head_sha},
        )
        audit.record(action="pr.merge", target=session, project=session.project,
                     data={"number": pr.number, "head_sha": pr.head_sha})  # fmt: skip
    _refresh(session)
    pr.refresh_from_db()
    return pr


def _refresh(session: Session) -> None:
    """Read the session's PR from the SCM after a merge or a refused one."""
    try:
        result = prsync.pull_requests_sync(project=session.project, session_ids=[session.pk])
    except (IntegrationError, ConfigurationError) as exc:  # the next sweep or webhook catches up
        log.warning("PR sync after merging %s failed: %s", session.pk, exc)
        return
    for session_id in result.recorded:  # an operator's action: it asks the reactions about what it stored
        services.session_react_after_commit(session_id=session_id)
