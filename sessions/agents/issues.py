"""Creating an issue in a project's tracker (dashboard, API, `ao issue add`): one path."""

from __future__ import annotations

from collections.abc import Sequence

from integrations.base import PermanentIntegrationError
from integrations.records import Issue
from integrations.registry import plugin_for
from sessions.core import audit
from sessions.domain.text import clean_text
from sessions.models import Project

# The one limit of a new issue's title and body, whoever creates it (the dashboard, the API,
# `ao issue add`): longer is refused with the sizes, never cut.
ISSUE_TITLE_MAX_CHARS = 300
ISSUE_BODY_MAX_CHARS = 65536


def issue_title_clean(title: str) -> str:
    """The title on one line, whitespace collapsed; TextRejected (a ValueError) when empty or
    longer than ISSUE_TITLE_MAX_CHARS."""
    text = clean_text(title, max_chars=ISSUE_TITLE_MAX_CHARS, what="the issue title")
    text = " ".join(text.split())
    if not text:
        raise ValueError("an issue needs a title")
    return text


def issue_create(
    *,
    project: Project,
    title: str,
    body: str = "",
    labels: Sequence[str] = (),
    blocked_by: Sequence[str] = (),
) -> tuple[Issue, list[str]]:
    """Create the issue through the project's tracker (the `local` one keeps it in ao) and audit it;
    with ``blocked_by`` (refs of the project's issues) link it to its blockers. Returns the issue
    and the blockers' numbers.

    Raises ValueError (no title, a title or body over the limit), PermanentIntegrationError (the
    tracker takes no issues or no links from ao) or IssueNotFound (an unknown blocker) before
    anything is created.
    """
    title = issue_title_clean(title)
    body = clean_text(body or "", max_chars=ISSUE_BODY_MAX_CHARS, what="the issue body", allow_empty=True)
    tracker = plugin_for(project, "tracker")
    blockers = list(dict.fromkeys(ref.strip().lstrip("#") for ref in blocked_by if ref.strip()))
    if blockers:
        if not tracker.takes_blocked_by:
            raise PermanentIntegrationError(
                f"the {project.tracker} tracker does not take blocked-by links from ao"
            )
        for ref in blockers:
            tracker.get_issue(ref)  # an unknown blocker refuses before anything is created
    labels = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    issue = tracker.create_issue(title=title, body=body, labels=labels)
    numbers = tracker.set_blocked_by(issue.ref, blockers) if blockers else []
    audit.record(
        action="issue.create",
        target=("issue", issue.ref),
        project=project,
        data={"title": issue.title, **({"blocked_by": numbers} if numbers else {})},
    )
    return issue, numbers
