"""Reviews of a `local` SCM pull request on a person's word (dashboard, API, `ao pr review`): one path.

The review is stored by the plugin (``LocalSCM.review``), written on the timeline of the session the
PR belongs to (with the reviewer) and in the audit log, and the PR's facts are read again at once,
so the card, the review decision and the threads do not wait for the next sweep.
"""

from __future__ import annotations

import logging

from django.db import transaction

from integrations.base import IntegrationError
from integrations.models import LocalReview
from integrations.registry import ConfigurationError, plugin_for
from integrations.scm.local import LocalSCM
from sessions.core import audit, services
from sessions.models import Actor, Project, PullRequest
from sessions.prs import prsync

log = logging.getLogger(__name__)

# what people say (dashboard buttons, API ``decision``) -> the stored review state
DECISIONS = {
    "approve": LocalReview.State.APPROVED,
    "request_changes": LocalReview.State.CHANGES_REQUESTED,
    "comment": LocalReview.State.COMMENTED,
}
LABELS: dict[str, str] = {
    LocalReview.State.APPROVED: "approved",
    LocalReview.State.CHANGES_REQUESTED: "changes requested",
    LocalReview.State.COMMENTED: "commented",
}


class ReviewNotSupported(Exception):
    """The project's SCM is not `local`: reviews happen on the hosted service itself."""


def pull_request_review(
    *,
    project: Project,
    number: int,
    state: str,
    reviewer: str,
    body: str = "",
    path: str = "",
    line: int | None = None,
    by=None,
    actor: str = Actor.USER,
    via: str = "",
) -> LocalReview:
    """Approve, request changes on or comment on local PR ``number`` as ``reviewer``.

    Requesting changes needs a comment (the agent is told what to change). Raises
    ReviewNotSupported, ValueError (bad input) or the plugin's errors (``ReviewRefused``,
    ``PullRequestNotFound``: IntegrationErrors).
    """
    scm = plugin_for(project, "scm")
    if not isinstance(scm, LocalSCM):
        raise ReviewNotSupported(
            f"project {project.key} uses the {project.scm!r} SCM: review the PR there (e.g. on GitHub)"
        )
    if state == LocalReview.State.CHANGES_REQUESTED and not body.strip():
        raise ValueError("requesting changes needs a comment saying what to change")
    review = scm.review(number=number, reviewer=reviewer, state=state, body=body, path=path, line=line)
    pr = PullRequest.objects.filter(project=project, number=number).select_related("session").first()
    session = pr.session if pr is not None else None
    summary = f"#{number} {LABELS.get(review.state, review.state)} by {review.reviewer}"
    data = {"number": number, "state": review.state, "reviewer": review.reviewer, "review_id": review.pk}
    with transaction.atomic():
        services.event_record(
            project=project,
            session=session,
            kind="pr.review",
            summary=summary + (f" via {via}" if via else "") + (f": {body.strip()}" if body.strip() else ""),
            actor=actor,
            actor_user=by,
            actor_name="" if by is not None else review.reviewer,
            data={**data, "body": body[:2000], "path": review.path, "line": review.line},
        )
        audit.record(
            action="pr.review", target=session or ("pull_request", str(number)), project=project, data=data
        )
    if session is not None:
        try:
            result = prsync.pull_requests_sync(project=project, session_ids=[session.pk])
        except (IntegrationError, ConfigurationError) as exc:  # the next sweep catches up
            log.warning("PR sync after reviewing %s #%s failed: %s", project.key, number, exc)
        else:  # an operator's action: it asks the reactions about what it stored
            for session_id in result.recorded:
                services.session_react_after_commit(session_id=session_id)
    return review
