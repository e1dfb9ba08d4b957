"""Creating an issue in a project's tracker (dashboard, API, `ao issue add`): one path."""

from __future__ import annotations

from collections.abc import Sequence

from integrations.base import Issue
from integrations.registry import plugin_for
from sessions import audit
from sessions.models import Project


def issue_create(*, project: Project, title: str, body: str = "", labels: Sequence[str] = ()) -> Issue:
    """Create the issue through the project's tracker (the `local` one keeps it in ao) and audit it.

    Raises ValueError (no title) or the tracker's IntegrationError (e.g. it does not take issues).
    """
    labels = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    issue = plugin_for(project, "tracker").create_issue(title=title, body=body, labels=labels)
    audit.record(
        action="issue.create", target=("issue", issue.ref), project=project, data={"title": issue.title}
    )
    return issue
