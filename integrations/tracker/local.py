"""The `local` tracker: issues kept in ao's own database (dashboard, API, `ao issue add`).

"Blocked by" links are the numbers in ``LocalIssue.blocked_by`` (``ao issue add --blocked-by 3``,
or ``set_blocked_by``); ``blocked_by(ref)`` answers those still open.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from integrations.base import IssueNotFound, PluginConfig, Tracker
from integrations.models import LocalIssue
from integrations.records import Issue, IssueState
from integrations.registry import trackers


def _as_issue(row: LocalIssue) -> Issue:
    return Issue(
        ref=str(row.number),
        title=row.title,
        body=row.body,
        url="",
        labels=tuple(row.labels),
        state=IssueState.DONE if row.state == LocalIssue.State.CLOSED else IssueState.OPEN,
        state_name=row.state,
    )


@trackers.register("local")
class LocalTracker(Tracker):
    class Config(PluginConfig):
        pass

    def _rows(self):
        if self.project is None:
            raise RuntimeError("the local tracker must be bound to a project")
        return LocalIssue.objects.filter(project=self.project)

    def _get(self, ref: str) -> LocalIssue:
        number = str(ref).lstrip("#")
        if not number.isdigit():
            raise IssueNotFound(f"{ref!r} is not a local issue number")
        row = self._rows().filter(number=int(number)).first()
        if row is None:
            raise IssueNotFound(f"issue #{number} not found in project {self.project.key}")
        return row

    def get_issue(self, ref: str) -> Issue:
        return _as_issue(self._get(ref))

    def list_issues(self, *, label: str | None = None, limit: int = 50) -> list[Issue]:
        rows = self._rows().filter(state=LocalIssue.State.OPEN)
        issues = [_as_issue(row) for row in rows[: limit * 4] if label is None or label in row.labels]
        return issues[:limit]

    def comment(self, ref: str, body: str) -> None:
        with transaction.atomic():
            row = self._rows().select_for_update().get(pk=self._get(ref).pk)
            row.comments = [*row.comments, {"body": body, "at": timezone.now().isoformat()}]
            row.save(update_fields=["comments", "updated_at"])

    def create_issue(self, *, title: str, body: str = "", labels: list[str] | None = None) -> Issue:
        title = title.strip()
        if not title:
            raise ValueError("an issue needs a title")
        with transaction.atomic():
            last = self._rows().select_for_update().aggregate(n=Max("number"))["n"] or 0
            row = LocalIssue.objects.create(
                project=self.project, number=last + 1, title=title, body=body, labels=list(labels or [])
            )
        return _as_issue(row)

    def set_labels(self, ref: str, *, add: list[str] = (), remove: list[str] = ()) -> None:
        with transaction.atomic():
            row = self._rows().select_for_update().get(pk=self._get(ref).pk)
            labels = [lbl for lbl in row.labels if lbl not in remove]
            labels += [lbl for lbl in add if lbl not in labels]
            row.labels = labels
            row.save(update_fields=["labels", "updated_at"])

    def blocked_by(self, ref: str) -> list[str]:
        numbers = [int(n) for n in self._get(ref).blocked_by if str(n).isdigit()]
        open_ = set(
            self._rows()
            .filter(number__in=numbers, state=LocalIssue.State.OPEN)
            .values_list("number", flat=True)
        )
        return [str(n) for n in dict.fromkeys(numbers) if n in open_]

    takes_blocked_by = True

    def set_blocked_by(self, ref: str, blockers: Sequence[str]) -> list[str]:
        """Replace the issue's "blocked by" links with ``blockers`` (refs of this project's issues;
        an unknown one raises IssueNotFound, the issue itself ValueError). Returns their numbers."""
        row = self._get(ref)
        numbers = list(dict.fromkeys(self._get(b).number for b in blockers))
        if row.number in numbers:
            raise ValueError(f"issue #{row.number} cannot be blocked by itself")
        with transaction.atomic():
            row = self._rows().select_for_update().get(pk=row.pk)
            row.blocked_by = numbers
            row.save(update_fields=["blocked_by", "updated_at"])
        return [str(n) for n in numbers]

    def close(self, ref: str) -> None:
        self._rows().filter(pk=self._get(ref).pk).update(
            state=LocalIssue.State.CLOSED, updated_at=timezone.now()
        )
