"""The `linear` tracker: issues in a Linear team, through Linear's GraphQL API.

Every request is one POST of ``{"query": ..., "variables": ...}`` with the personal API key in
the ``Authorization`` header (no ``Bearer`` prefix). The query documents below are constants:
refs, titles, bodies and label names travel only in ``variables``, never spliced into a document.

Linear answers GraphQL errors with HTTP 200 (or 400) and an ``errors`` array whose
``extensions`` carry a ``type`` ("invalid input", "authentication error", "ratelimited", ...)
and a ``code`` ("INPUT_ERROR", "AUTHENTICATION_ERROR", "RATELIMITED", ...). They map to:

- an unknown issue ("Entity not found: Issue")            -> IssueNotFound
- a refused key (HTTP 401/403 or an authentication error) -> PermanentIntegrationError
- HTTP 429 / "ratelimited", HTTP 5xx, timeouts, network   -> TransientIntegrationError
- anything else Linear rejects                            -> PermanentIntegrationError

The API key is read on each call from the environment variable named by ``api_key_env``
(default ``LINEAR_API_KEY``) or from the secret stored in ao named by ``api_key_secret``, and
never appears in an error message or a log line.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator, model_validator

from integrations import httpopen
from integrations.base import (
    IssueNotFound,
    PermanentIntegrationError,
    PluginConfig,
    Tracker,
    TransientIntegrationError,
)
from integrations.credentials import (
    ENV_NAME_RE,
    EnvName,
    SecretName,
    credential,
    credential_source,
    one_source,
    secret_name,
)
from integrations.records import Issue, IssueState
from integrations.registry import trackers

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.linear.app/graphql"
PAGE_SIZE = 100  # Linear's default page is 50; a connection may ask for up to 250
LABEL_PAGE = 100
# Error types (extensions.type) worth retrying: Linear's own trouble, not the request's.
TRANSIENT_TYPES = {"internal error", "lock timeout", "network error", "bootstrap error"}
CLOSED_STATE_TYPES = ["completed", "canceled"]
# Linear's workflow state types (each team names its states as it likes: "Todo", "In Review", ...)
STATE_TYPES = {
    "triage": IssueState.OPEN,
    "backlog": IssueState.OPEN,
    "unstarted": IssueState.OPEN,
    "started": IssueState.IN_PROGRESS,
    "completed": IssueState.DONE,
    "canceled": IssueState.DONE,
}

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9]*-\d+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# --- GraphQL documents (constants; every value is a variable) -----------------------------------
ISSUE_FIELDS = """
    id
    identifier
    title
    description
    url
    branchName
    state { id name type }
    team { id key }
    labels(first: 100) { nodes { id name } }
"""

ISSUE_QUERY = (
    """
query AoLinearIssue($id: String!) {
  issue(id: $id) {"""
    + ISSUE_FIELDS
    + """  }
}
"""
)

ISSUES_QUERY = (
    """
query AoLinearIssues($filter: IssueFilter, $first: Int, $after: String) {
  issues(filter: $filter, first: $first, after: $after) {
    nodes {"""
    + ISSUE_FIELDS
    + """    }
    pageInfo { hasNextPage endCursor }
  }
}
"""
)

# Relations pointing at the issue (``inverseRelations``): type "blocks" means ``issue`` blocks
# ``relatedIssue``, so on the blocked issue the blocker is each such relation's ``issue``.
BLOCKED_BY_QUERY = """
query AoLinearBlockedBy($id: String!) {
  issue(id: $id) {
    identifier
    team { id key }
    inverseRelations(first: 100) {
      nodes { type issue { identifier state { type } } }
    }
  }
}
"""

TEAM_QUERY = """
query AoLinearTeam($filter: TeamFilter) {
  teams(filter: $filter, first: 2) {
    nodes { id key name }
  }
}
"""

WORKFLOW_STATES_QUERY = """
query AoLinearWorkflowStates($filter: WorkflowStateFilter) {
  workflowStates(filter: $filter, first: 100) {
    nodes { id name type }
  }
}
"""

LABELS_QUERY = """
query AoLinearLabels($filter: IssueLabelFilter, $first: Int) {
  issueLabels(filter: $filter, first: $first) {
    nodes { id name team { id } }
  }
}
"""

COMMENT_CREATE = """
mutation AoLinearCommentCreate($input: CommentCreateInput!) {
  commentCreate(input: $input) {
    success
    comment { id }
  }
}
"""

ISSUE_UPDATE = """
mutation AoLinearIssueUpdate($id: String!, $input: IssueUpdateInput!) {
  issueUpdate(id: $id, input: $input) {
    success
    issue { id identifier state { name } }
  }
}
"""

LABEL_CREATE = """
mutation AoLinearLabelCreate($input: IssueLabelCreateInput!) {
  issueLabelCreate(input: $input) {
    success
    issueLabel { id name }
  }
}
"""

ISSUE_CREATE = (
    """
mutation AoLinearIssueCreate($input: IssueCreateInput!) {
  issueCreate(input: $input) {
    success
    issue {"""
    + ISSUE_FIELDS
    + """    }
  }
}
"""
)


class LinearRateLimited(TransientIntegrationError):
    """Linear's rate limit is exhausted; ``retry_after`` is seconds to wait, when Linear said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _as_issue(node: dict[str, Any]) -> Issue:
    labels = ((node.get("labels") or {}).get("nodes")) or []
    return Issue(
        ref=node["identifier"],
        title=node.get("title") or "",
        body=node.get("description") or "",
        url=node.get("url") or "",
        labels=tuple(label["name"] for label in labels),
        branch_name=node.get("branchName") or "",
        state=STATE_TYPES.get((node.get("state") or {}).get("type") or "", IssueState.OPEN),
        state_name=(node.get("state") or {}).get("name") or "",
    )


def _is_issue_not_found(error: dict[str, Any]) -> bool:
    """``Entity not found: Issue`` (or the same said only in the user-facing message)."""
    message = str(error.get("message", ""))
    presentable = str((error.get("extensions") or {}).get("userPresentableMessage", ""))
    if not message.startswith("Entity not found"):
        return False
    path = error.get("path") or [None]
    return message.endswith(": Issue") or presentable.endswith("referenced Issue.") or path[0] == "issue"


def _first_message(errors: list[dict[str, Any]]) -> str:
    for error in errors:
        ext = error.get("extensions") or {}
        message = ext.get("userPresentableMessage") or error.get("message")
        if message:
            return str(message)[:300]
    return "unknown error"


@trackers.register("linear")
class LinearTracker(Tracker):
    class Config(PluginConfig):
        team: str = Field(
            description="The Linear team key, e.g. ENG (the prefix of its issue identifiers); ao reads "
            "and writes this team's issues only, whatever else the API key can see."
        )
        api_url: str = Field(default=DEFAULT_API_URL, description="Linear's GraphQL endpoint.")
        api_key_env: str = EnvName("Environment variable holding the key.", default="LINEAR_API_KEY")
        api_key_secret: str | None = SecretName(
            "Name of the secret stored in ao holding the key (instead of api_key_env)."
        )
        in_progress_state: str = Field(
            default="In Progress",
            description="Workflow state an issue is moved to when an agent starts on it.",
        )
        done_state: str = Field(
            default="Done", description="Workflow state an issue is moved to when its PR merged."
        )
        timeout: float = Field(default=15.0, gt=0, le=300, description="Seconds per HTTP request.")

        @field_validator("team")
        @classmethod
        def _team_key(cls, value: str) -> str:
            value = value.strip().upper()
            if not re.fullmatch(r"[A-Z0-9]{1,16}", value):
                raise ValueError("must be a Linear team key such as ENG (letters and digits)")
            return value

        @field_validator("api_url")
        @classmethod
        def _http_url(cls, value: str) -> str:
            if not re.match(r"^https?://[^\s/]+", value):
                raise ValueError("must be an http:// or https:// URL")
            return value

        @field_validator("api_key_env")
        @classmethod
        def _env_name(cls, value: str) -> str:
            if not ENV_NAME_RE.fullmatch(value):
                raise ValueError("must be an environment variable name")
            return value

        @field_validator("api_key_secret")
        @classmethod
        def _secret_name(cls, value: str | None) -> str | None:
            return secret_name(value)

        @model_validator(mode="after")
        def _one_key_source(self) -> LinearTracker.Config:
            one_source(self, "api_key_env", "api_key_secret")
            return self

        @field_validator("in_progress_state", "done_state")
        @classmethod
        def _state_name(cls, value: str) -> str:
            if not value.strip():
                raise ValueError("must name a workflow state")
            return value.strip()

    # The last rate-limit figures Linear reported (X-RateLimit-Requests-*), for dashboards.
    rate_limit_remaining: int | None = None
    rate_limit_limit: int | None = None

    # --- Tracker interface ------------------------------------------------------------------------
    def get_issue(self, ref: str) -> Issue:
        return _as_issue(self._issue_node(ref))

    def list_issues(
        self, *, label: str | None = None, limit: int = 50, state: str | None = None
    ) -> list[Issue]:
        """The team's open issues (or those in workflow state ``state``), optionally with ``label``."""
        if limit <= 0:
            return []
        flt: dict[str, Any] = {"team": {"key": {"eq": self.config.team}}}
        if state is not None:
            flt["state"] = {"name": {"eq": state}}
        else:
            flt["state"] = {"type": {"nin": CLOSED_STATE_TYPES}}
        if label is not None:
            flt["labels"] = {"name": {"eq": label}}
        issues: list[Issue] = []
        after: str | None = None
        while len(issues) < limit:
            variables = {"filter": flt, "first": min(PAGE_SIZE, limit - len(issues)), "after": after}
            page = self._graphql(ISSUES_QUERY, variables)["issues"]
            issues += [_as_issue(node) for node in page["nodes"]]
            info = page.get("pageInfo") or {}
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after or not page["nodes"]:
                break
        return issues[:limit]

    def comment(self, ref: str, body: str) -> None:
        node = self._issue_node(ref)
        result = self._graphql(
            COMMENT_CREATE, {"input": {"issueId": node["id"], "body": body}}, ref=node["identifier"]
        )
        self._require_success(result, "commentCreate", f"comment on {node['identifier']}")

    def set_labels(self, ref: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """Add and remove labels by name; a label to add that the team lacks is created on the team.

        Uses ``addedLabelIds``/``removedLabelIds`` rather than replacing ``labelIds`` so labels a
        person sets at the same moment are not lost. A label in both lists ends up present.
        """
        node = self._issue_node(ref)
        current = {label["name"]: label["id"] for label in node["labels"]["nodes"]}
        to_add = [name for name in dict.fromkeys(add) if name not in current]
        to_remove = [current[name] for name in dict.fromkeys(remove) if name in current and name not in add]
        if not to_add and not to_remove:
            return
        added_ids = self._label_ids(to_add, team_id=node["team"]["id"]) if to_add else []
        result = self._graphql(
            ISSUE_UPDATE,
            {"id": node["id"], "input": {"addedLabelIds": added_ids, "removedLabelIds": to_remove}},
            ref=node["identifier"],
        )
        self._require_success(result, "issueUpdate", f"change labels of {node['identifier']}")

    def close(self, ref: str) -> None:
        """Move the issue to ``done_state`` (Linear issues are closed by state, not a flag)."""
        self.move(ref, self.config.done_state)

    def create_issue(self, *, title: str, body: str = "", labels: Sequence[str] = ()) -> Issue:
        title = title.strip()
        if not title:
            raise ValueError("an issue needs a title")
        team_id = self._team_id()
        input_: dict[str, Any] = {"teamId": team_id, "title": title, "description": body}
        if labels:
            input_["labelIds"] = self._label_ids(list(dict.fromkeys(labels)), team_id=team_id)
        result = self._graphql(ISSUE_CREATE, {"input": input_})
        payload = self._require_success(result, "issueCreate", f"create an issue in team {self.config.team}")
        return _as_issue(payload["issue"])

    def blocked_by(self, ref: str) -> list[str]:
        """Identifiers of the issues blocking this one (relations of type "blocks" pointing at it),
        leaving out those already completed or canceled."""
        identifier = self.identifier_for(ref)
        node = self._graphql(BLOCKED_BY_QUERY, {"id": identifier}, ref=identifier).get("issue")
        node = self._of_team(node, identifier)
        found = []
        for relation in (node.get("inverseRelations") or {}).get("nodes") or []:
            blocker = (relation or {}).get("issue") or {}
            if relation.get("type") != "blocks" or not blocker.get("identifier"):
                continue
            if (blocker.get("state") or {}).get("type") in CLOSED_STATE_TYPES:
                continue
            found.append(blocker["identifier"])
        return list(dict.fromkeys(found))

    # --- Linear extras ----------------------------------------------------------------------------
    def move(self, ref: str, state_name: str) -> None:
        """Move the issue to the workflow state named ``state_name`` of the issue's team."""
        node = self._issue_node(ref)
        if node["state"]["name"] == state_name:
            return
        team_key = node["team"]["key"]
        # All of the team's states (a handful), so a wrong name can list the valid ones.
        states = self._graphql(WORKFLOW_STATES_QUERY, {"filter": {"team": {"key": {"eq": team_key}}}})[
            "workflowStates"
        ]["nodes"]
        match = [s for s in states if s["name"] == state_name] or [
            s for s in states if s["name"].casefold() == state_name.casefold()
        ]
        if not match:
            valid = ", ".join(sorted(s["name"] for s in states)) or "(none visible)"
            raise PermanentIntegrationError(
                f"Linear team {team_key} has no workflow state named {state_name!r}; its states are: {valid}"
            )
        if match[0]["id"] == node["state"]["id"]:
            return
        result = self._graphql(
            ISSUE_UPDATE, {"id": node["id"], "input": {"stateId": match[0]["id"]}}, ref=node["identifier"]
        )
        self._require_success(result, "issueUpdate", f"move {node['identifier']} to {state_name!r}")

    def mark_in_progress(self, ref: str) -> None:
        """Move the issue to ``in_progress_state`` (when an agent starts on it)."""
        self.move(ref, self.config.in_progress_state)

    def identifier_for(self, ref: str) -> str:
        """``ENG-123`` for "ENG-123", "eng-123", "123" or "#123"; raises IssueNotFound for junk
        and for another team's identifier ("HR-1" when the team is ENG): the API key may see every
        team of the workspace, the project's tracker is its one team (docs/SECURITY.md)."""
        text = str(ref).strip().lstrip("#")
        if text.isdigit():
            return f"{self.config.team}-{int(text)}"
        if _IDENTIFIER.match(text):
            identifier = text.upper()
            if identifier.rpartition("-")[0] != self.config.team:
                raise IssueNotFound(f"{identifier} is not an issue of Linear team {self.config.team}")
            return identifier
        if _UUID.match(text):
            return text.lower()
        raise IssueNotFound(
            f"{ref!r} is not a Linear issue identifier (expected e.g. {self.config.team}-123)"
        )

    # --- helpers ----------------------------------------------------------------------------------
    def _issue_node(self, ref: str) -> dict[str, Any]:
        identifier = self.identifier_for(ref)
        node = self._graphql(ISSUE_QUERY, {"id": identifier}, ref=identifier).get("issue")
        return self._of_team(node, identifier)

    def _of_team(self, node: dict[str, Any] | None, identifier: str) -> dict[str, Any]:
        """``node`` when it is an issue of the configured team. A UUID names no team, and Linear
        answers an old identifier with the issue wherever it moved since: another team's issue is
        answered as one not found, saying nothing of it (not even its identifier)."""
        if not node or ((node.get("team") or {}).get("key") or "").upper() != self.config.team:
            raise IssueNotFound(
                f"Linear issue {identifier} was not found in Linear team {self.config.team}"
                " (or the API key cannot see it)"
            )
        return node

    def _team_id(self) -> str:
        teams = self._graphql(TEAM_QUERY, {"filter": {"key": {"eq": self.config.team}}})["teams"]["nodes"]
        if not teams:
            raise PermanentIntegrationError(
                f"Linear has no team with key {self.config.team} that this API key can see"
            )
        return teams[0]["id"]

    def _label_ids(self, names: list[str], *, team_id: str) -> list[str]:
        """Ids of labels ``names`` usable on the team (team labels first, then workspace labels);
        labels that do not exist yet are created on the team."""
        found = self._graphql(LABELS_QUERY, {"filter": {"name": {"in": names}}, "first": LABEL_PAGE})[
            "issueLabels"
        ]["nodes"]
        by_name: dict[str, str] = {}
        for label in found:
            team = label.get("team")
            if team is None:
                by_name.setdefault(label["name"], label["id"])
        for label in found:
            team = label.get("team")
            if team is not None and team.get("id") == team_id:
                by_name[label["name"]] = label["id"]
        ids = []
        for name in names:
            if name not in by_name:
                result = self._graphql(LABEL_CREATE, {"input": {"name": name, "teamId": team_id}})
                payload = self._require_success(result, "issueLabelCreate", f"create label {name!r}")
                by_name[name] = payload["issueLabel"]["id"]
            ids.append(by_name[name])
        return ids

    @staticmethod
    def _require_success(result: dict[str, Any], field: str, what: str) -> dict[str, Any]:
        payload = result.get(field) or {}
        if not payload.get("success"):
            raise PermanentIntegrationError(f"Linear did not {what} (success=false)")
        return payload

    def _api_key(self) -> str:
        return credential(
            env=self.config.api_key_env,
            secret=self.config.api_key_secret,
            what="Linear API key",
            who="linear",
            hint="a personal API key from Linear settings > Security & access",
            stored_as="api_key_secret",
        )

    @property
    def _key_source(self) -> str:
        return credential_source(env=self.config.api_key_env, secret=self.config.api_key_secret)

    def _graphql(self, query: str, variables: dict[str, Any], *, ref: str | None = None) -> dict[str, Any]:
        """POST one GraphQL document; return ``data`` or raise the matching integration error."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked by Config (http/https)
            self.config.api_url,
            data=body,
            method="POST",
            headers={
                "Authorization": self._api_key(),
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "ao-linear-tracker",
            },
        )
        timeout = self.config.timeout
        try:
            # no redirect followed: it would carry the API key to wherever it points
            with httpopen.opener.open(request, timeout=timeout) as response:
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, headers = exc.code, exc.headers
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
        except TimeoutError as exc:
            raise TransientIntegrationError(f"Linear did not answer within {timeout:g}s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise TransientIntegrationError(f"Linear did not answer within {timeout:g}s") from exc
            raise TransientIntegrationError(
                f"could not reach Linear at {self.config.api_url}: {exc.reason}"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransientIntegrationError(f"Linear connection failed: {type(exc).__name__}: {exc}") from exc
        return self._data_or_raise(status, headers, raw, ref=ref)

    def _data_or_raise(self, status: int, headers: Any, raw: bytes, *, ref: str | None) -> dict[str, Any]:
        self._note_rate_limit(headers)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        errors = (payload.get("errors") or []) if isinstance(payload, dict) else []
        errors = [e for e in errors if isinstance(e, dict)]
        types = {str((e.get("extensions") or {}).get("type", "")).lower() for e in errors}
        codes = {str((e.get("extensions") or {}).get("code", "")).upper() for e in errors}

        if status == 429 or "ratelimited" in types or "RATELIMITED" in codes:
            retry_after = self._retry_after(headers)
            when = f"; retry after {retry_after:g}s" if retry_after is not None else ""
            raise LinearRateLimited(
                f"Linear rate limit reached (HTTP {status}){when}", retry_after=retry_after
            )
        if status in (401, 403) or "authentication error" in types or "AUTHENTICATION_ERROR" in codes:
            detail = f": {_first_message(errors)}" if errors else ""
            raise PermanentIntegrationError(
                f"Linear refused the API key from {self._key_source} (HTTP {status}){detail}"
            )
        if "forbidden" in types or "FORBIDDEN" in codes:
            raise PermanentIntegrationError(
                f"Linear refused the request: the API key from {self._key_source} lacks permission: "
                f"{_first_message(errors)}"
            )
        if status >= 500:
            raise TransientIntegrationError(f"Linear answered HTTP {status}")
        if not isinstance(payload, dict):
            raise PermanentIntegrationError(f"Linear answered HTTP {status} without a JSON body")
        if errors:
            if any(_is_issue_not_found(error) for error in errors):
                raise IssueNotFound(f"Linear issue {ref or '?'} was not found (or the API key cannot see it)")
            if types & TRANSIENT_TYPES:
                raise TransientIntegrationError(f"Linear had trouble answering: {_first_message(errors)}")
            raise PermanentIntegrationError(f"Linear rejected the request: {_first_message(errors)}")
        if status >= 400:
            raise PermanentIntegrationError(f"Linear answered HTTP {status}")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise PermanentIntegrationError("Linear answered without data")
        return data

    def _note_rate_limit(self, headers: Any) -> None:
        if headers is None:
            return
        for attr, name in (
            ("rate_limit_remaining", "X-RateLimit-Requests-Remaining"),
            ("rate_limit_limit", "X-RateLimit-Requests-Limit"),
        ):
            value = headers.get(name)
            if value is not None and str(value).strip().isdigit():
                setattr(self, attr, int(value))
        if self.rate_limit_remaining is not None and self.rate_limit_remaining < 50:
            log.warning("Linear API requests left before the rate limit: %s", self.rate_limit_remaining)

    @staticmethod
    def _retry_after(headers: Any) -> float | None:
        """Seconds to wait: ``Retry-After``, else the requests bucket's reset time (epoch ms)."""
        if headers is None:
            return None
        value = headers.get("Retry-After")
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
        reset = headers.get("X-RateLimit-Requests-Reset")
        if reset is not None:
            try:
                return max(0.0, round(float(reset) / 1000 - time.time(), 1))
            except ValueError:
                pass
        return None
