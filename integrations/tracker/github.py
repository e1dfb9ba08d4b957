"""The `github` tracker: GitHub issues of the project's repository, through the shared client.

Reads are conditional (ETag), so re-reading an unchanged issue or label list costs nothing.
Pull requests (which GitHub's issues API also returns) are never treated as issues.

``blocked_by`` reads GitHub's issue dependencies (``GET /repos/{owner}/{repo}/issues/{number}/
dependencies/blocked_by``: a page of issue objects, the same shape as ``GET .../issues/{number}``),
keeps the open ones, and names each by its number, or ``owner/repo#number`` when it lives in
another repository. A 404 there (a GitHub Enterprise Server without issue dependencies) is
"no links", not an error.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from integrations.base import IssueNotFound, PermanentIntegrationError, Tracker
from integrations.github import GitHubNotFound, GitHubPluginMixin, GitHubSettings
from integrations.github.results import GitHubError
from integrations.gitutil import slugify
from integrations.records import Issue, IssueState
from integrations.registry import trackers

_REF = re.compile(r"^(?:(?P<repo>[\w.-]+/[\w.-]+))?#?(?P<number>\d{1,10})$")
_URL = re.compile(r"^https?://[^/]+/(?P<repo>[\w.-]+/[\w.-]+)/issues/(?P<number>\d{1,10})/?$")
_REPO_URL = re.compile(r"/repos/(?P<repo>[\w.-]+/[\w.-]+)/?$")
MAX_PAGES = 10
MAX_DEPENDENCY_PAGES = 2  # 200 blockers of one issue is plenty


@trackers.register("github")
class GitHubTracker(GitHubPluginMixin, Tracker):
    class Config(GitHubSettings):
        branch_prefix: str = Field(
            "feat",
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,40}$",
            description="branches for issues are <prefix>/<number>-<title slug>",
        )

    config: Config

    # --- refs ----------------------------------------------------------------------------------
    def _number(self, ref: str) -> int:
        text = str(ref).strip()
        match = _URL.match(text) or _REF.match(text)
        if match is None:
            raise IssueNotFound(f"{ref!r} is not a GitHub issue number or URL")
        other = match.group("repo")
        if other and other.lower() != self.repo_full_name.lower():
            raise IssueNotFound(f"{ref!r} is not an issue of {self.repo_full_name}")
        return int(match.group("number"))

    def _issue_path(self, number: int) -> str:
        return f"/repos/{self.repo_full_name}/issues/{number}"

    def _call(self, method: str, path: str, *, ref: str | None, **kwargs: Any) -> Any:
        """A REST call; 404 means the issue (``ref``) or, without a ref, the repository is missing."""
        try:
            return self.client().request(method, path, **kwargs).data
        except GitHubNotFound:
            if ref is None:
                raise PermanentIntegrationError(
                    f"GitHub repository {self.repo_full_name} not found, or the token cannot see it"
                ) from None
            raise IssueNotFound(f"GitHub issue {ref} not found in {self.repo_full_name}") from None
        except GitHubError as exc:
            if exc.status == 410:
                raise IssueNotFound(f"GitHub issue {ref} in {self.repo_full_name} was deleted") from None
            raise

    def _as_issue(self, data: Mapping[str, Any]) -> Issue:
        number = int(data["number"])
        title = data.get("title") or ""
        slug = slugify(title, max_length=40)
        branch = (
            f"{self.config.branch_prefix}/{number}-{slug}"
            if slug
            else f"{self.config.branch_prefix}/issue-{number}"
        )
        return Issue(
            ref=str(number),
            title=title,
            body=data.get("body") or "",
            url=data.get("html_url") or "",
            labels=tuple(
                (lbl.get("name") if isinstance(lbl, dict) else str(lbl)) or ""
                for lbl in data.get("labels") or ()
            ),
            branch_name=branch,
            # GitHub's two states; an assignee or a label is not "in progress" to GitHub
            state=IssueState.DONE if data.get("state") == "closed" else IssueState.OPEN,
            state_name=data.get("state") or "open",
        )

    # --- Tracker -------------------------------------------------------------------------------
    def get_issue(self, ref: str) -> Issue:
        number = self._number(ref)
        data = self._call("GET", self._issue_path(number), ref=f"#{number}")
        if not isinstance(data, dict) or "pull_request" in data:
            raise IssueNotFound(f"#{number} in {self.repo_full_name} is a pull request, not an issue")
        return self._as_issue(data)

    def list_issues(self, *, label: str | None = None, limit: int = 50) -> list[Issue]:
        limit = max(0, int(limit))
        issues: list[Issue] = []
        params: dict[str, Any] = {"state": "open", "per_page": 100, "sort": "created", "direction": "desc"}
        if label:
            params["labels"] = label
        page = 1
        while len(issues) < limit and page <= MAX_PAGES:
            data = self._call(
                "GET", f"/repos/{self.repo_full_name}/issues", ref=None, params={**params, "page": page}
            )
            rows = data if isinstance(data, list) else []
            issues += [
                self._as_issue(row) for row in rows if isinstance(row, dict) and "pull_request" not in row
            ]
            if len(rows) < params["per_page"]:
                break
            page += 1
        return issues[:limit]

    def comment(self, ref: str, body: str) -> None:
        number = self._number(ref)
        self._call("POST", self._issue_path(number) + "/comments", ref=f"#{number}", json_body={"body": body})

    def set_labels(self, ref: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        number = self._number(ref)
        path = self._issue_path(number) + "/labels"
        add = [name for name in dict.fromkeys(add) if name]
        if add:
            self._call("POST", path, ref=f"#{number}", json_body={"labels": add})
        for name in dict.fromkeys(remove):
            if not name or name in add:
                continue
            try:
                self.client().request("DELETE", f"{path}/{urllib.parse.quote(name, safe='')}")
            except GitHubNotFound:
                pass  # the label was not on the issue (or the issue is gone: the next read says so)

    def close(self, ref: str) -> None:
        number = self._number(ref)
        self._call(
            "PATCH",
            self._issue_path(number),
            ref=f"#{number}",
            json_body={"state": "closed", "state_reason": "completed"},
        )

    def create_issue(self, *, title: str, body: str = "", labels: Sequence[str] = ()) -> Issue:
        title = title.strip()
        if not title:
            raise PermanentIntegrationError("an issue needs a title")
        data = self._call(
            "POST",
            f"/repos/{self.repo_full_name}/issues",
            ref=None,
            json_body={"title": title, "body": body, "labels": list(labels)},
        )
        return self._as_issue(data)

    def blocked_by(self, ref: str) -> list[str]:
        number = self._number(ref)
        path = self._issue_path(number) + "/dependencies/blocked_by"
        found: list[str] = []
        for page in range(1, MAX_DEPENDENCY_PAGES + 1):
            try:
                data = self._call("GET", path, ref=f"#{number}", params={"per_page": 100, "page": page})
            except IssueNotFound:
                return found  # no dependencies API here (or the issue is gone: get_issue says so)
            rows = [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []
            found += [self._dependency_ref(row) for row in rows if row.get("state") != "closed"]
            if len(rows) < 100:
                break
        return list(dict.fromkeys(r for r in found if r))

    def _dependency_ref(self, row: Mapping[str, Any]) -> str:
        number = row.get("number")
        if not isinstance(number, int):
            return ""
        match = _REPO_URL.search(str(row.get("repository_url") or ""))
        repo = match.group("repo") if match else self.repo_full_name
        return str(number) if repo.lower() == self.repo_full_name.lower() else f"{repo}#{number}"
