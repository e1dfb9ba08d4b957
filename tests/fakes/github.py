"""A local fake of GitHub's REST v3 and GraphQL v4 APIs, for the subset ao calls.

Start one per test (``with FakeGitHub() as gh:``), shape its in-memory state (repos, pull
requests, check runs, commit statuses, Actions job logs, review threads, issues and their "blocked
by" dependencies), point the real plugin at ``gh.base_url`` with one of ``gh.tokens``, and assert
on what the fake saw (``gh.counts``, ``gh.requests``) and on its state afterwards.

What it speaks, like GitHub does:
- ``Authorization: token|Bearer <token>`` is required; anything else is ``401 Bad credentials``.
- every response carries ``X-RateLimit-Limit/Remaining/Used/Reset/Resource``; REST calls spend
  the ``core`` bucket, GraphQL queries spend the ``graphql`` bucket by the query's cost
  (GitHub's formula: connection requests / 100, at least 1); an empty bucket answers ``403 API
  rate limit exceeded`` (REST) or a ``RATE_LIMITED`` GraphQL error.
- GET responses carry a weak ``ETag``; a matching ``If-None-Match`` gets ``304 Not Modified``,
  which costs nothing.
- Actions job logs answer ``302`` to a pre-signed, unauthenticated blob URL (or the log text
  directly with ``logs_redirect = False``).
- GraphQL is parsed and executed for real (aliases, variables, fragments, inline fragments,
  ``__typename``), so a query asking for a field the fake's schema lacks fails the way GitHub
  fails: ``200`` with ``errors`` and no ``data``.
- faults for resilience tests: ``gh.fail(...)`` queues 5xx, 429, secondary-limit 403s with
  ``retry-after``, or slow answers for matching requests.

As its own process (``python -m tests.fakes.github --port N --repo acme/web [--enterprise]
[--git-root DIR] [--hook URL --hook-secret S]``; prints ``listening on PORT``) it is driven over
HTTP under ``/_fake/`` (see ``_Handler._control``): shape the state, read what it received, and
have it deliver signed webhooks, as GitHub does, to the ``--hook`` URL. With ``--git-root``,
``<DIR>/<owner>/<name>.git`` is the repository's git: a PR opened with ``POST /repos/{o}/{r}/pulls``
takes its head from the branch pushed there, and ``/_fake/sync`` moves open PRs' heads to their
branches (GitHub receiving a push).

``gh.webhook(event, secret=...)`` builds a signed delivery (``X-GitHub-Event``,
``X-GitHub-Delivery``, ``X-Hub-Signature-256``) from the fake's state, for Django's test
client (``.headers`` / ``.body``) or POSTed to a URL (``.post(url)``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes import serve_until_interrupted

DOCS = "https://docs.github.com/rest"
# fields of a pull request that GitHub's ``GET /pulls`` list items do not carry
LIST_OMITS = ("mergeable", "rebaseable", "mergeable_state", "merged", "merged_by", "comments",
              "review_comments", "maintainer_can_modify", "commits", "additions", "deletions",
              "changed_files")  # fmt: skip


# who owns the fork a cross-repository PR comes from
FORK_OWNER = "contributor"
# the jobs GitHub's "Re-run failed jobs" runs again
RERUN_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "startup_failure"})


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _sha(seed: str = "") -> str:
    return hashlib.sha1(f"{seed}{uuid.uuid4()}".encode()).hexdigest()  # noqa: S324 - an id, not security


def _node_id(prefix: str, number: int) -> str:
    return f"{prefix}_" + base64.b64encode(f"{prefix}:{number}".encode()).decode().rstrip("=")


# ================================================================================================
# A small GraphQL engine: enough of the language for real queries, executed against Python objects.
# ================================================================================================
class GraphQLError(Exception):
    def __init__(self, message: str, *, type_: str | None = None, path: list | None = None) -> None:
        super().__init__(message)
        self.type = type_
        self.path = path

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"message": str(self)}
        if self.type:
            out["type"] = self.type
        if self.path is not None:
            out["path"] = self.path
        out["locations"] = [{"line": 1, "column": 1}]
        return out


_TOKEN = re.compile(
    r"""(?P<ws>[\s,]+|\#[^\n]*)
      | (?P<spread>\.\.\.)
      | (?P<punct>[!$():=@\[\]{}|])
      | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<string>"(?:\\.|[^"\\])*")""",
    re.VERBOSE,
)


@dataclass
class Var:
    name: str


@dataclass
class Field:
    name: str
    alias: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    selections: list | None = None

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class InlineFragment:
    type_condition: str | None
    selections: list


@dataclass
class FragmentSpread:
    name: str


@dataclass
class Document:
    operation: str
    variables: dict[str, tuple[str, Any]]  # name -> (type, default)
    selections: list
    fragments: dict[str, tuple[str, list]]


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(source):
            match = _TOKEN.match(source, pos)
            if match is None:
                raise GraphQLError(f"Parse error on {source[pos : pos + 10]!r}")
            pos = match.end()
            kind = match.lastgroup or ""
            if kind != "ws":
                self.tokens.append((kind, match.group()))
        self.i = 0

    def peek(self, value: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        return value is None or self.tokens[self.i][1] == value

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise GraphQLError("Parse error: unexpected end of document")
        tkind, tvalue = self.tokens[self.i]
        if (value is not None and tvalue != value) or (kind is not None and tkind != kind):
            raise GraphQLError(f'Parse error on "{tvalue}" ({tkind.upper()})')
        self.i += 1
        return tvalue

    def document(self) -> Document:
        operation, variables, selections = "query", {}, None
        fragments: dict[str, tuple[str, list]] = {}
        while self.peek():
            if self.peek("fragment"):
                self.take()
                name = self.take(kind="name")
                self.take("on")
                fragments[name] = (self.take(kind="name"), self.selection_set())
                continue
            if selections is not None:
                raise GraphQLError("This fake supports one operation per document")
            if self.peek("{"):
                selections = self.selection_set()
                continue
            operation = self.take(kind="name")
            if operation not in ("query", "mutation"):
                raise GraphQLError(f'Parse error on "{operation}"')
            if self.tokens[self.i][0] == "name":
                self.take()
            if self.peek("("):
                self.take("(")
                while not self.peek(")"):
                    self.take("$")
                    name = self.take(kind="name")
                    self.take(":")
                    type_ = self.type_ref()
                    default = None
                    if self.peek("="):
                        self.take("=")
                        default = self.value()
                    variables[name] = (type_, default)
                self.take(")")
            selections = self.selection_set()
        if selections is None:
            raise GraphQLError("No operations in the document")
        return Document(operation, variables, selections, fragments)

    def type_ref(self) -> str:
        if self.peek("["):
            self.take("[")
            inner = self.type_ref()
            self.take("]")
            out = f"[{inner}]"
        else:
            out = self.take(kind="name")
        if self.peek("!"):
            self.take("!")
            out += "!"
        return out

    def selection_set(self) -> list:
        self.take("{")
        out: list = []
        while not self.peek("}"):
            if self.peek("..."):
                self.take("...")
                if self.peek("on"):
                    self.take("on")
                    out.append(InlineFragment(self.take(kind="name"), self.selection_set()))
                elif self.peek("{"):
                    out.append(InlineFragment(None, self.selection_set()))
                else:
                    out.append(FragmentSpread(self.take(kind="name")))
                continue
            name = self.take(kind="name")
            alias = None
            if self.peek(":"):
                self.take(":")
                alias, name = name, self.take(kind="name")
            args: dict[str, Any] = {}
            if self.peek("("):
                self.take("(")
                while not self.peek(")"):
                    arg = self.take(kind="name")
                    self.take(":")
                    args[arg] = self.value()
                self.take(")")
            if self.peek("@"):
                raise GraphQLError("Directives are not supported by this fake")
            selections = self.selection_set() if self.peek("{") else None
            out.append(Field(name, alias, args, selections))
        self.take("}")
        return out

    def value(self) -> Any:
        kind, raw = self.tokens[self.i]
        if raw == "$":
            self.take("$")
            return Var(self.take(kind="name"))
        if raw == "[":
            self.take("[")
            items = []
            while not self.peek("]"):
                items.append(self.value())
            self.take("]")
            return items
        if raw == "{":
            self.take("{")
            obj = {}
            while not self.peek("}"):
                key = self.take(kind="name")
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        self.take()
        if kind == "string":
            return json.loads(raw)
        if kind == "number":
            return float(raw) if any(c in raw for c in ".eE") else int(raw)
        if raw in ("true", "false"):
            return raw == "true"
        if raw == "null":
            return None
        return raw  # an enum value


def parse_graphql(source: str) -> Document:
    return _Parser(source).document()


def _resolve(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, Var):
        return variables.get(value.name)
    if isinstance(value, list):
        return [_resolve(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, variables) for k, v in value.items()}
    return value


class Obj:
    """A GraphQL object: its type name, the interfaces it implements, and field values or resolvers.

    A resolver is called with the field's arguments; it may raise GraphQLError (``NOT_FOUND``
    leaves null and records the error with its path, like GitHub).
    """

    def __init__(
        self, typename: str, fields: dict[str, Any], interfaces: tuple[str, ...] = ("Node",)
    ) -> None:
        self.typename = typename
        self.fields = fields
        self.interfaces = interfaces

    def matches(self, type_condition: str | None) -> bool:
        return type_condition is None or type_condition == self.typename or type_condition in self.interfaces


def connection(typename: str, items: list, args: dict[str, Any]) -> Obj:
    """A Relay connection over ``items`` honouring first/last/after like GitHub (max 100)."""
    first, last, after = args.get("first"), args.get("last"), args.get("after")
    if first is None and last is None:
        raise GraphQLError(
            f"You must provide a `first` or `last` value to properly paginate the `{typename}`."
        )
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= 100:
            raise GraphQLError(
                f"Requesting {value} records on the `{typename}` connection exceeds the `{name}` limit of 100 records."
            )
    start = 0
    if after:
        start = int(base64.b64decode(after).decode().split(":")[1]) + 1
    window = list(enumerate(items))[start:]
    if first is not None:
        window = window[:first]
    if last is not None:
        window = window[-last:] if last else []
    has_next = bool(window) and window[-1][0] < len(items) - 1
    end_cursor = base64.b64encode(f"cursor:{window[-1][0]}".encode()).decode() if window else None
    return Obj(
        typename,
        {
            "nodes": [item for _, item in window],
            "edges": [Obj(typename.replace("Connection", "Edge"), {"node": item}, ()) for _, item in window],
            "totalCount": len(items),
            "pageInfo": Obj("PageInfo", {"hasNextPage": has_next, "endCursor": end_cursor}, ()),
        },
        (),
    )


def query_cost(document: Document, variables: dict[str, Any]) -> int:
    """GitHub's documented rate-limit cost: requests needed to fill each connection, / 100, min 1."""
    total = 0

    def walk(selections: list, multiplier: int) -> None:
        nonlocal total
        for sel in selections:
            if isinstance(sel, FragmentSpread):
                walk(document.fragments.get(sel.name, ("", []))[1], multiplier)
            elif isinstance(sel, InlineFragment):
                walk(sel.selections, multiplier)
            elif sel.selections:
                args = _resolve(sel.args, variables)
                size = args.get("first") or args.get("last")
                if isinstance(size, int):
                    total += multiplier
                    walk(sel.selections, multiplier * max(size, 1))
                else:
                    walk(sel.selections, multiplier)

    walk(document.selections, 1)
    return max(1, round(total / 100))


def execute_graphql(document: Document, root: Obj, variables: dict[str, Any]) -> dict[str, Any]:
    """Run the operation; returns a GraphQL response body ({"data": ..., "errors": [...]})."""
    errors: list[GraphQLError] = []
    for name, (type_, default) in document.variables.items():
        if name not in variables:
            if default is not None:
                variables[name] = default
            elif type_.endswith("!"):
                return {
                    "errors": [
                        GraphQLError(f"Variable ${name} of type {type_} was provided invalid value").as_dict()
                    ]
                }
    fatal: list[GraphQLError] = []

    def run(selections: list, obj: Obj, path: list) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for sel in selections:
            if isinstance(sel, FragmentSpread):
                if sel.name not in document.fragments:
                    fatal.append(GraphQLError(f"Fragment {sel.name} was used, but not defined"))
                    continue
                type_condition, inner = document.fragments[sel.name]
                if obj.matches(type_condition):
                    out.update(run(inner, obj, path))
                continue
            if isinstance(sel, InlineFragment):
                if obj.matches(sel.type_condition):
                    out.update(run(sel.selections, obj, path))
                continue
            if sel.name == "__typename":
                out[sel.key] = obj.typename
                continue
            if sel.name not in obj.fields:
                fatal.append(
                    GraphQLError(f"Field '{sel.name}' doesn't exist on type '{obj.typename}'", type_=None)
                )
                continue
            value = obj.fields[sel.name]
            if callable(value):
                try:
                    value = value(_resolve(sel.args, variables))
                except GraphQLError as exc:
                    if exc.type == "NOT_FOUND":
                        exc.path = [*path, sel.key]
                        errors.append(exc)
                        out[sel.key] = None
                        continue
                    fatal.append(exc)
                    continue
            out[sel.key] = shape(value, sel, [*path, sel.key])
        return out

    def shape(value: Any, sel: Field, path: list) -> Any:
        if isinstance(value, Obj):
            if sel.selections is None:
                fatal.append(
                    GraphQLError(
                        f"Field must have selections (field '{sel.name}' returns {value.typename} but has no selections.)"
                    )
                )
                return None
            return run(sel.selections, value, path)
        if isinstance(value, list):
            return [shape(item, sel, [*path, i]) for i, item in enumerate(value)]
        if sel.selections is not None and value is not None:
            fatal.append(GraphQLError(f"Selections can't be made on scalars (field '{sel.name}')"))
        return value

    if document.operation != "query":
        return {"errors": [GraphQLError("This fake answers queries only").as_dict()]}
    data = run(document.selections, root, [])
    if fatal:
        return {"errors": [e.as_dict() for e in fatal]}
    body: dict[str, Any] = {"data": data}
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    return body


# ================================================================================================
# State
# ================================================================================================
@dataclass
class FakeUser:
    login: str
    type: str = "User"  # User | Bot
    id: int = 0

    def rest(self, html: str) -> dict[str, Any]:
        return {
            # REST names an app's bot user ``name[bot]``; GraphQL's Bot actor is ``name``
            "login": f"{self.login}[bot]" if self.type == "Bot" else self.login,
            "id": self.id,
            "node_id": _node_id("U", self.id),
            "type": self.type,
            "site_admin": False,
            "html_url": f"{html}/{self.login}",
        }


@dataclass
class FakeCheckRun:
    id: int
    name: str
    head_sha: str
    status: str = "completed"  # queued | in_progress | completed
    conclusion: str | None = (
        "success"  # success | failure | neutral | cancelled | skipped | timed_out | action_required
    )
    app_slug: str = "github-actions"
    run_id: int = 0
    log: str = ""  # the job's log (Actions only)
    steps: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime = field(default_factory=_now)
    completed_at: datetime | None = None
    details_url: str = ""


@dataclass
class FakeStatus:
    id: int
    sha: str
    context: str
    state: str = "success"  # pending | success | failure | error
    target_url: str = ""
    description: str = ""
    created_at: datetime = field(default_factory=_now)


@dataclass
class FakeReviewComment:
    id: int
    author: FakeUser
    body: str
    path: str = ""
    line: int | None = None
    association: str = "MEMBER"
    created_at: datetime = field(default_factory=_now)
    url: str = ""


@dataclass
class FakeThread:
    id: int
    path: str
    line: int | None
    resolved: bool = False
    outdated: bool = False
    comments: list[FakeReviewComment] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return _node_id("PRRT", self.id)


@dataclass
class FakeReview:
    id: int
    author: FakeUser
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED (set on a dismissed review)
    body: str = ""
    commit_id: str = ""
    association: str = "MEMBER"
    submitted_at: datetime = field(default_factory=_now)


@dataclass
class FakeComment:
    id: int
    author: FakeUser
    body: str
    created_at: datetime = field(default_factory=_now)


@dataclass
class FakeIssue:
    number: int
    title: str
    body: str = ""
    labels: list[str] = field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    author: FakeUser = field(default_factory=lambda: FakeUser("octocat", id=1))
    comments: list[FakeComment] = field(default_factory=list)
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    closed_at: datetime | None = None
    # issue dependencies: the issues this one is blocked by, as (repo full name, number)
    blocked_by: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class FakePull(FakeIssue):
    head: str = ""
    base: str = "main"
    head_sha: str = ""
    base_sha: str = ""
    draft: bool = False
    merged: bool = False
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None
    mergeable: bool | None = True  # None: GitHub has not computed it yet
    mergeable_state: str = "clean"  # clean | dirty | behind | blocked | unstable | draft | unknown
    review_decision: str | None = (
        None  # None: derive from reviews (APPROVED | CHANGES_REQUESTED | REVIEW_REQUIRED)
    )
    cross_repository: bool = False
    threads: list[FakeThread] = field(default_factory=list)
    reviews: list[FakeReview] = field(default_factory=list)
    # pending review requests (people asked for a review who have not submitted one since)
    review_requests: list[FakeUser] = field(default_factory=list)


@dataclass
class FakeRepo:
    owner: str
    name: str
    id: int
    default_branch: str = "main"
    private: bool = True
    issues: dict[int, FakeIssue] = field(default_factory=dict)  # issues and pull requests share numbers
    check_runs: dict[int, FakeCheckRun] = field(default_factory=dict)
    statuses: list[FakeStatus] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)  # name -> sha; open PRs' heads exist too
    run_attempts: dict[int, int] = field(default_factory=dict)  # Actions run id -> its attempt, once re-run
    fake: FakeGitHub | None = field(default=None, repr=False)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def pulls(self) -> dict[int, FakePull]:
        return {n: i for n, i in self.issues.items() if isinstance(i, FakePull)}

    def _next_number(self) -> int:
        return max(self.issues, default=0) + 1

    def _ids(self) -> itertools.count:
        assert self.fake is not None
        return self.fake._ids

    # --- builders (tests call these; each takes the fake's lock) ---------------------------------
    def add_issue(
        self, title: str, *, body: str = "", labels: list[str] | tuple[str, ...] = (), state: str = "open"
    ) -> FakeIssue:
        with self.fake.lock:
            issue = FakeIssue(
                number=self._next_number(), title=title, body=body, labels=list(labels), state=state
            )
            self.issues[issue.number] = issue
            return issue

    def block(self, issue: FakeIssue, *, by: FakeIssue, by_repo: FakeRepo | None = None) -> None:
        """Record that ``issue`` is blocked by ``by`` (of ``by_repo``, default this repo), as
        GitHub's issue dependencies do."""
        with self.fake.lock:
            key = ((by_repo or self).full_name.lower(), by.number)
            if key not in issue.blocked_by:
                issue.blocked_by.append(key)

    def add_pull(
        self,
        head: str,
        *,
        title: str = "",
        base: str | None = None,
        draft: bool = False,
        mergeable_state: str = "clean",
        mergeable: bool | str | None = "auto",
        state: str = "open",
        head_sha: str | None = None,
        body: str = "",
        labels: list[str] | tuple[str, ...] = (),
        cross_repository: bool = False,
    ) -> FakePull:
        with self.fake.lock:
            if mergeable == "auto":
                mergeable = None if mergeable_state == "unknown" else mergeable_state != "dirty"
            pull = FakePull(
                number=self._next_number(),
                title=title or f"Change {head}",
                body=body,
                labels=list(labels),
                state=state,
                head=head,
                base=base or self.default_branch,
                head_sha=head_sha or _sha(head),
                base_sha=_sha("base"),
                draft=draft,
                mergeable=mergeable,  # type: ignore[arg-type]
                mergeable_state="draft" if draft and mergeable_state == "clean" else mergeable_state,
                cross_repository=cross_repository,
            )
            self.issues[pull.number] = pull
            return pull

    def add_check_run(
        self,
        sha: str,
        name: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
        log: str = "",
        app_slug: str = "github-actions",
        steps: list[dict[str, Any]] | None = None,
    ) -> FakeCheckRun:
        with self.fake.lock:
            run_id = next(self._ids())
            check = FakeCheckRun(
                id=next(self._ids()),
                name=name,
                head_sha=sha,
                status=status,
                conclusion=conclusion if status == "completed" else None,
                app_slug=app_slug,
                run_id=run_id,
                log=log,
                steps=steps or [],
                completed_at=_now() if status == "completed" else None,
            )
            if app_slug == "github-actions":
                check.details_url = (
                    f"{self.fake.html_base}/{self.full_name}/actions/runs/{run_id}/job/{check.id}"
                )
            else:
                check.details_url = f"https://ci.example.com/{app_slug}/{check.id}"
            self.check_runs[check.id] = check
            self._touch_sha(sha)
            return check

    def add_status(
        self, sha: str, context: str, state: str = "success", *, target_url: str = "", description: str = ""
    ) -> FakeStatus:
        with self.fake.lock:
            status = FakeStatus(
                id=next(self._ids()),
                sha=sha,
                context=context,
                state=state,
                target_url=target_url or f"https://ci.example.com/{context}",
                description=description,
            )
            self.statuses.append(status)
            self._touch_sha(sha)
            return status

    def rerun(self, run_id: int, *, failed_only: bool = True) -> list[FakeCheckRun]:
        """GitHub's "Re-run failed jobs" (or "Re-run all jobs") of an Actions run: new check runs of
        the same names in the same run, queued, and the run's attempt goes up. Like GitHub, the
        PR does not move; the commit's check runs and the repository's workflow runs do."""
        with self.fake.lock:
            jobs = self.jobs_of(run_id)
            again = [j for j in jobs if not failed_only or j.conclusion in RERUN_CONCLUSIONS]
            self.run_attempts[run_id] = self.run_attempts.get(run_id, 1) + 1
            new = []
            for job in again:
                check = FakeCheckRun(
                    id=next(self._ids()), name=job.name, head_sha=job.head_sha, status="queued",
                    conclusion=None, app_slug=job.app_slug, run_id=run_id, log=job.log,
                )  # fmt: skip
                check.details_url = job.details_url.rsplit("/", 1)[0] + f"/{check.id}"
                self.check_runs[check.id] = check
                new.append(check)
            return new

    def jobs_of(self, run_id: int) -> list[FakeCheckRun]:
        """An Actions run's jobs: the newest check run of each name in it."""
        latest: dict[str, FakeCheckRun] = {}
        for check in self.check_runs.values():
            if check.app_slug == "github-actions" and check.run_id == run_id:
                latest[check.name] = check
        return list(latest.values())

    def _touch_sha(self, sha: str) -> None:
        """Like GitHub: a check run or a commit status on a PR's head does not move the PR's
        ``updated_at`` (so it does not change the PR list); it changes the commit's check runs,
        statuses and the repository's workflow runs."""

    def checks_for(self, sha: str) -> list[FakeCheckRun]:
        latest: dict[str, FakeCheckRun] = {}
        for check in self.check_runs.values():
            if check.head_sha == sha:
                latest[check.name] = check  # the newest run of each name, like the rollup
        return list(latest.values())

    def statuses_for(self, sha: str) -> list[FakeStatus]:
        latest: dict[str, FakeStatus] = {}
        for status in self.statuses:
            if status.sha == sha:
                latest[status.context] = status
        return list(latest.values())


def merge_state(pull: FakePull) -> str:
    """GitHub's mergeable_state: ``blocked`` while branch protection holds the PR back (the fake
    models protection as a ``review_decision`` set on the PR, not yet APPROVED)."""
    if pull.mergeable_state in ("clean", "unstable") and pull.review_decision not in (None, "APPROVED"):
        return "blocked"
    return pull.mergeable_state


def push(pull: FakePull, sha: str | None = None) -> str:
    """A new head commit on the PR's branch."""
    pull.head_sha = sha or _sha(pull.head)
    pull.updated_at = _now()
    return pull.head_sha


def add_thread(
    fake: FakeGitHub,
    pull: FakePull,
    *,
    body: str,
    path: str = "src/app.py",
    line: int | None = 1,
    author: str = "reviewer",
    bot: bool = False,
    association: str = "MEMBER",
    resolved: bool = False,
) -> FakeThread:
    with fake.lock:
        thread = FakeThread(id=next(fake._ids), path=path, line=line, resolved=resolved)
        comment = FakeReviewComment(
            id=next(fake._ids),
            author=fake.user(author, bot=bot),
            body=body,
            path=path,
            line=line,
            association=association,
        )
        thread.comments.append(comment)
        pull.threads.append(thread)
        pull.updated_at = _now()
        return thread


def add_review(
    fake: FakeGitHub,
    pull: FakePull,
    *,
    state: str,
    author: str = "reviewer",
    body: str = "",
    association: str = "MEMBER",
) -> FakeReview:
    with fake.lock:
        review = FakeReview(
            id=next(fake._ids),
            author=fake.user(author),
            state=state,
            body=body,
            commit_id=pull.head_sha,
            association=association,
        )
        pull.reviews.append(review)
        # as on GitHub: a requested reviewer's review answers (removes) their pending request
        pull.review_requests = [u for u in pull.review_requests if u.login != author]
        pull.updated_at = _now()
        return review


def request_review(fake: FakeGitHub, pull: FakePull, *, reviewer: str) -> FakeUser:
    """Ask ``reviewer`` for a review (GitHub's "Reviewers" box; no branch protection needed)."""
    with fake.lock:
        user = fake.user(reviewer)
        if all(u.login != reviewer for u in pull.review_requests):
            pull.review_requests.append(user)
        pull.updated_at = _now()
        return user


# ================================================================================================
# Faults
# ================================================================================================
@dataclass
class Fault:
    status: int = 502
    times: int = 1
    path: str | None = None  # substring of the request path; None: any
    method: str | None = None
    kind: str | None = None  # "rest" | "graphql"; None: any
    retry_after: int | None = None
    message: str = ""
    delay: float = 0.0  # seconds to sleep before answering (status 0: then answer normally)

    def matches(self, method: str, path: str, kind: str) -> bool:
        return (
            self.times > 0
            and (self.path is None or self.path in path)
            and (self.method is None or self.method == method)
            and (self.kind is None or self.kind == kind)
        )


@dataclass
class RecordedRequest:
    method: str
    path: str
    status: int
    kind: str  # rest | graphql | blob | 304 | unauthenticated | fault
    cost: int = 0


@dataclass
class Bucket:
    limit: int
    remaining: int
    reset: int

    @property
    def used(self) -> int:
        return self.limit - self.remaining


# ================================================================================================
# The server
# ================================================================================================
class FakeGitHub:
    """GitHub on 127.0.0.1:<random port>. ``enterprise=True`` serves ``/api/v3`` and ``/api/graphql``."""

    def __init__(
        self,
        *,
        enterprise: bool = False,
        tokens: dict[str, str] | None = None,
        core_limit: int = 5000,
        graphql_limit: int = 5000,
        html_base: str = "https://github.com",
        git_root: Path | None = None,
        port: int = 0,
    ) -> None:
        self.enterprise = enterprise
        self.git_root = git_root  # <git_root>/<owner>/<name>.git: the repositories' git, when given
        self.bind_port = port
        self.hook: tuple[str, str] | None = None  # (url, secret) webhooks are delivered to
        self.move_head_on_merge: set[int] = set()  # PRs a push lands on just before their merge
        self.tokens = dict(tokens or {"ghp_testtoken0000000000000000000000000000": "ao-bot"})
        self.html_base = html_base
        self.limits = {"core": core_limit, "graphql": graphql_limit}
        self.lock = threading.RLock()
        self._ids = itertools.count(1000)
        self.repos: dict[str, FakeRepo] = {}
        self.users: dict[str, FakeUser] = {}
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.counts: Counter[str] = Counter()
        self.graphql_points = 0
        self.logs_redirect = True
        self.secret_log_tokens: dict[str, int] = {}
        self.queries: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the fake was answering at once
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.bind_port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to configure as the GitHub API base URL (``https://api.github.com`` for the real one)."""
        return self.origin + ("/api/v3" if self.enterprise else "")

    @property
    def graphql_url(self) -> str:
        return self.origin + ("/api/graphql" if self.enterprise else "/graphql")

    @property
    def token(self) -> str:
        return next(iter(self.tokens))

    # --- state helpers -------------------------------------------------------------------------
    def user(self, login: str, *, bot: bool = False) -> FakeUser:
        with self.lock:
            if login not in self.users:
                self.users[login] = FakeUser(login=login, type="Bot" if bot else "User", id=next(self._ids))
            return self.users[login]

    def add_repo(self, full_name: str, *, default_branch: str = "main", private: bool = True) -> FakeRepo:
        owner, name = full_name.split("/")
        with self.lock:
            repo = FakeRepo(
                owner=owner,
                name=name,
                id=next(self._ids),
                default_branch=default_branch,
                private=private,
                fake=self,
            )
            repo.branches[default_branch] = _sha("base")  # move it: repo.branches["main"] = sha
            self.repos[full_name.lower()] = repo
            return repo

    def repo(self, full_name: str) -> FakeRepo:
        return self.repos[full_name.lower()]

    def add_thread(self, pull: FakePull, **kwargs: Any) -> FakeThread:
        return add_thread(self, pull, **kwargs)

    def add_review(self, pull: FakePull, **kwargs: Any) -> FakeReview:
        return add_review(self, pull, **kwargs)

    def request_review(self, pull: FakePull, **kwargs: Any) -> FakeUser:
        return request_review(self, pull, **kwargs)

    def push(self, pull: FakePull, sha: str | None = None) -> str:
        with self.lock:
            return push(pull, sha)

    def fail(self, status: int = 502, **kwargs: Any) -> Fault:
        """Queue a fault for matching requests, e.g. ``gh.fail(403, retry_after=1, kind="graphql")``."""
        fault = Fault(status=status, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def set_remaining(
        self, resource: str, remaining: int, *, token: str | None = None, reset_in: int = 3600
    ) -> None:
        with self.lock:
            bucket = self._bucket(token or self.token, resource)
            bucket.remaining = remaining
            bucket.reset = int(time.time()) + reset_in

    def bucket(self, resource: str, token: str | None = None) -> Bucket:
        with self.lock:
            return self._bucket(token or self.token, resource)

    def _bucket(self, token: str, resource: str) -> Bucket:
        key = (token, resource)
        bucket = self.buckets.get(key)
        now = int(time.time())
        if bucket is None or bucket.reset <= now:
            limit = self.limits.get(resource, 5000)
            bucket = Bucket(limit=limit, remaining=limit, reset=now + 3600)
            self.buckets[key] = bucket
        return bucket

    def git_head(self, repo: FakeRepo, branch: str) -> str | None:
        """The commit ``branch`` points at in the repository's git (``git_root``), if any."""
        if self.git_root is None:
            return None
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_root / repo.owner / f"{repo.name}.git"), "rev-parse",
             "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return done.stdout.strip() or None

    def sync_heads(self, repo: FakeRepo) -> list[int]:
        """GitHub receives pushes: each open PR's head becomes its branch's commit in the git.
        Returns the numbers of the PRs whose head moved."""
        moved = []
        with self.lock:
            for pull in repo.pulls.values():
                sha = self.git_head(repo, pull.head) if pull.state == "open" else None
                if sha and sha != pull.head_sha:
                    push(pull, sha)
                    moved.append(pull.number)
        return moved

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.counts.clear()
            self.graphql_points = 0
            self.queries.clear()

    def count(self, kind: str) -> int:
        return self.counts[kind]

    # --- wire helpers --------------------------------------------------------------------------
    def api(self, path: str) -> str:
        return self.base_url + path

    def html(self, path: str) -> str:
        return self.html_base + path

    def rest_repo(self, repo: FakeRepo) -> dict[str, Any]:
        owner = self.user(repo.owner)
        return {
            "id": repo.id,
            "node_id": _node_id("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": owner.rest(self.html_base),
            "html_url": self.html(f"/{repo.full_name}"),
            "description": None,
            "fork": False,
            "url": self.api(f"/repos/{repo.full_name}"),
            "pulls_url": self.api(f"/repos/{repo.full_name}/pulls{{/number}}"),
            "issues_url": self.api(f"/repos/{repo.full_name}/issues{{/number}}"),
            "clone_url": self.html(f"/{repo.full_name}.git"),
            "default_branch": repo.default_branch,
            "visibility": "private" if repo.private else "public",
            "has_issues": True,
            "archived": False,
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
        }

    def rest_labels(self, repo: FakeRepo, names: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "id": int(hashlib.md5(n.encode()).hexdigest()[:8], 16),  # noqa: S324 - an id
                "node_id": _node_id("LA", len(n)),
                "url": self.api(f"/repos/{repo.full_name}/labels/{urllib.parse.quote(n)}"),
                "name": n,
                "color": "ededed",
                "default": False,
                "description": None,
            }
            for n in names
        ]

    def rest_issue(self, repo: FakeRepo, issue: FakeIssue) -> dict[str, Any]:
        base = f"/repos/{repo.full_name}/issues/{issue.number}"
        is_pull = isinstance(issue, FakePull)
        out = {
            "url": self.api(base),
            "repository_url": self.api(f"/repos/{repo.full_name}"),
            "labels_url": self.api(base + "/labels{/name}"),
            "comments_url": self.api(base + "/comments"),
            "events_url": self.api(base + "/events"),
            "html_url": self.html(f"/{repo.full_name}/{'pull' if is_pull else 'issues'}/{issue.number}"),
            "id": issue.number * 7919 + repo.id,
            "node_id": _node_id("PR" if is_pull else "I", issue.number),
            "number": issue.number,
            "title": issue.title,
            "user": issue.author.rest(self.html_base),
            "labels": self.rest_labels(repo, issue.labels),
            "state": issue.state,
            "state_reason": issue.state_reason,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": len(issue.comments),
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": _iso(issue.closed_at),
            "author_association": "OWNER",
            "body": issue.body or None,
        }
        if is_pull:
            out["pull_request"] = {
                "url": self.api(f"/repos/{repo.full_name}/pulls/{issue.number}"),
                "html_url": out["html_url"],
                "diff_url": out["html_url"] + ".diff",
                "patch_url": out["html_url"] + ".patch",
                "merged_at": _iso(issue.merged_at),  # type: ignore[union-attr]
            }
        return out

    def rest_pull(self, repo: FakeRepo, pull: FakePull, *, listed: bool = False) -> dict[str, Any]:
        """A PR as ``GET /pulls/N`` gives it; ``listed``: as an item of ``GET /pulls`` (GitHub
        leaves mergeability, merge details and counts out of lists)."""
        full = self._rest_pull(repo, pull)
        if listed:
            for name in LIST_OMITS:
                full.pop(name, None)
        return full

    def rest_workflow_runs(self, repo: FakeRepo) -> list[dict[str, Any]]:
        """``GET /repos/o/r/actions/runs``: the Actions runs, newest first; a run's status is its
        jobs' (the fake's check runs with the run's ``run_id``)."""
        by_run = {
            run_id: repo.jobs_of(run_id)
            for run_id in {c.run_id for c in repo.check_runs.values() if c.app_slug == "github-actions"}
        }
        heads = {p.head_sha: p.head for p in repo.pulls.values()}
        runs = []
        for run_id, jobs in sorted(by_run.items(), reverse=True):
            done = all(j.status == "completed" for j in jobs)
            started = any(j.status != "queued" for j in jobs)
            status = "completed" if done else ("in_progress" if started else "queued")
            conclusions = {j.conclusion for j in jobs}
            conclusion = None
            if done:
                failed = [c for c in ("failure", "timed_out", "cancelled") if c in conclusions]
                conclusion = failed[0] if failed else "success"
            changed = max((j.completed_at or j.started_at) for j in jobs)
            runs.append(
                {
                    "id": run_id,
                    "name": jobs[0].name,
                    "head_branch": heads.get(jobs[0].head_sha, ""),
                    "head_sha": jobs[0].head_sha,
                    "status": status,
                    "conclusion": conclusion,
                    "run_attempt": repo.run_attempts.get(run_id, 1),
                    "created_at": _iso(min(j.started_at for j in jobs)),
                    "updated_at": _iso(changed),
                    "html_url": self.html(f"/{repo.full_name}/actions/runs/{run_id}"),
                }
            )
        return runs

    def _rest_pull(self, repo: FakeRepo, pull: FakePull) -> dict[str, Any]:
        base = f"/repos/{repo.full_name}/pulls/{pull.number}"
        repo_json = self.rest_repo(repo)
        head_owner, head_repo = repo.owner, repo_json
        if pull.cross_repository:  # from a fork: its head is another repository's branch
            head_owner = FORK_OWNER
            head_repo = {**repo_json, "full_name": f"{FORK_OWNER}/{repo.name}", "fork": True}
        return {
            "url": self.api(base),
            "id": pull.number * 7919 + repo.id,
            "node_id": _node_id("PR", pull.number),
            "html_url": self.html(f"/{repo.full_name}/pull/{pull.number}"),
            "diff_url": self.html(f"/{repo.full_name}/pull/{pull.number}.diff"),
            "issue_url": self.api(f"/repos/{repo.full_name}/issues/{pull.number}"),
            "commits_url": self.api(base + "/commits"),
            "review_comments_url": self.api(base + "/comments"),
            "comments_url": self.api(f"/repos/{repo.full_name}/issues/{pull.number}/comments"),
            "statuses_url": self.api(f"/repos/{repo.full_name}/statuses/{pull.head_sha}"),
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": pull.author.rest(self.html_base),
            "body": pull.body or None,
            "labels": self.rest_labels(repo, pull.labels),
            "created_at": _iso(pull.created_at),
            "updated_at": _iso(pull.updated_at),
            "closed_at": _iso(pull.closed_at),
            "merged_at": _iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [u.rest(self.html_base) for u in pull.review_requests],
            "requested_teams": [],
            "draft": pull.draft,
            "head": {
                "label": f"{head_owner}:{pull.head}",
                "ref": pull.head,
                "sha": pull.head_sha,
                "user": self.user(head_owner).rest(self.html_base),
                "repo": head_repo,
            },
            "base": {
                "label": f"{repo.owner}:{pull.base}",
                "ref": pull.base,
                "sha": pull.base_sha,
                "user": self.user(repo.owner).rest(self.html_base),
                "repo": repo_json,
            },
            "author_association": "OWNER",
            "auto_merge": None,
            "merged": pull.merged,
            "mergeable": pull.mergeable if pull.state == "open" else None,
            "rebaseable": pull.mergeable,
            "mergeable_state": merge_state(pull),
            "merged_by": None,
            "comments": len(pull.comments),
            "review_comments": sum(len(t.comments) for t in pull.threads),
            "maintainer_can_modify": False,
            "commits": 1,
            "additions": 1,
            "deletions": 0,
            "changed_files": 1,
        }

    def rest_check_run(self, repo: FakeRepo, check: FakeCheckRun) -> dict[str, Any]:
        return {
            "id": check.id,
            "node_id": _node_id("CR", check.id),
            "head_sha": check.head_sha,
            "external_id": "",
            "url": self.api(f"/repos/{repo.full_name}/check-runs/{check.id}"),
            "html_url": check.details_url,
            "details_url": check.details_url,
            "status": check.status,
            "conclusion": check.conclusion,
            "started_at": _iso(check.started_at),
            "completed_at": _iso(check.completed_at),
            "output": {"title": None, "summary": None, "text": None, "annotations_count": 0},
            "name": check.name,
            "check_suite": {"id": check.run_id},
            "app": {"id": 15368, "slug": check.app_slug, "name": check.app_slug.replace("-", " ").title()},
            "pull_requests": [
                {"number": p.number, "url": self.api(f"/repos/{repo.full_name}/pulls/{p.number}")}
                for p in repo.pulls.values()
                if p.head_sha == check.head_sha
            ],
        }

    def rest_job(self, repo: FakeRepo, check: FakeCheckRun) -> dict[str, Any]:
        return {
            "id": check.id,
            "run_id": check.run_id,
            "run_url": self.api(f"/repos/{repo.full_name}/actions/runs/{check.run_id}"),
            "run_attempt": repo.run_attempts.get(check.run_id, 1),
            "node_id": _node_id("CR", check.id),
            "head_sha": check.head_sha,
            "head_branch": next((p.head for p in repo.pulls.values() if p.head_sha == check.head_sha), ""),
            "url": self.api(f"/repos/{repo.full_name}/actions/jobs/{check.id}"),
            "html_url": check.details_url,
            "status": check.status,
            "conclusion": check.conclusion,
            "created_at": _iso(check.started_at),
            "started_at": _iso(check.started_at),
            "completed_at": _iso(check.completed_at),
            "name": check.name,
            "steps": check.steps,
            "check_run_url": self.api(f"/repos/{repo.full_name}/check-runs/{check.id}"),
            "labels": ["ubuntu-latest"],
            "runner_id": 1,
            "runner_name": "GitHub Actions 1",
            "runner_group_id": 1,
            "runner_group_name": "GitHub Actions",
            "workflow_name": "CI",
        }

    def rest_status(self, status: FakeStatus) -> dict[str, Any]:
        return {
            "id": status.id,
            "node_id": _node_id("SC", status.id),
            "state": status.state,
            "description": status.description or None,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": _iso(status.created_at),
            "updated_at": _iso(status.created_at),
        }

    def rest_review(self, repo: FakeRepo, pull: FakePull, review: FakeReview) -> dict[str, Any]:
        """A review as ``GET /pulls/N/reviews`` lists it (oldest first; its ``node_id`` is the
        GraphQL review's ``id``)."""
        return {
            "id": review.id,
            "node_id": _node_id("PRR", review.id),
            "user": review.author.rest(self.html_base),
            "body": review.body,
            "state": review.state,
            "html_url": self.html(f"/{repo.full_name}/pull/{pull.number}#pullrequestreview-{review.id}"),
            "pull_request_url": self.api(f"/repos/{repo.full_name}/pulls/{pull.number}"),
            "author_association": review.association,
            "submitted_at": _iso(review.submitted_at),
            "commit_id": review.commit_id,
        }

    def rest_review_comment(
        self, repo: FakeRepo, pull: FakePull, comment: FakeReviewComment, *, reply_to: int | None
    ) -> dict[str, Any]:
        """A review comment as ``GET /pulls/N/comments`` lists it: a thread's first comment has no
        ``in_reply_to_id``, its replies point at it. REST has no thread id and no resolution."""
        item = {
            "id": comment.id,
            "node_id": _node_id("PRRC", comment.id),
            "pull_request_review_id": None,
            "path": comment.path,
            "line": comment.line,
            "original_line": comment.line,
            "side": "RIGHT",
            "commit_id": pull.head_sha,
            "user": comment.author.rest(self.html_base),
            "body": comment.body,
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.created_at),
            "html_url": self.html(f"/{repo.full_name}/pull/{pull.number}#discussion_r{comment.id}"),
            "pull_request_url": self.api(f"/repos/{repo.full_name}/pulls/{pull.number}"),
            "author_association": comment.association,
            "subject_type": "line",
        }
        if reply_to is not None:
            item["in_reply_to_id"] = reply_to
        return item

    def rest_comment(self, repo: FakeRepo, number: int, comment: FakeComment) -> dict[str, Any]:
        return {
            "id": comment.id,
            "node_id": _node_id("IC", comment.id),
            "url": self.api(f"/repos/{repo.full_name}/issues/comments/{comment.id}"),
            "html_url": self.html(f"/{repo.full_name}/issues/{number}#issuecomment-{comment.id}"),
            "issue_url": self.api(f"/repos/{repo.full_name}/issues/{number}"),
            "body": comment.body,
            "user": comment.author.rest(self.html_base),
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.created_at),
            "author_association": "OWNER",
        }

    # --- GraphQL schema over the state ---------------------------------------------------------
    def gql_root(self, viewer: str) -> Obj:
        def repository(args: dict[str, Any]) -> Obj:
            full = f"{args.get('owner')}/{args.get('name')}"
            repo = self.repos.get(full.lower())
            if repo is None:
                raise GraphQLError(
                    f"Could not resolve to a Repository with the name '{full}'.", type_="NOT_FOUND"
                )
            return self.gql_repo(repo)

        return Obj(
            "Query",
            {
                "repository": repository,
                "viewer": Obj("User", {"login": viewer, "__typename": "User"}),
                "rateLimit": lambda args: None,  # filled in by the handler, which knows the cost
            },
            (),
        )

    def gql_repo(self, repo: FakeRepo) -> Obj:
        def pull_request(args: dict[str, Any]) -> Obj:
            pull = repo.pulls.get(args.get("number"))  # type: ignore[arg-type]
            if pull is None:
                raise GraphQLError(
                    f"Could not resolve to a PullRequest with the number of {args.get('number')}.",
                    type_="NOT_FOUND",
                )
            return self.gql_pull(repo, pull)

        def pull_requests(args: dict[str, Any]) -> Obj:
            pulls = list(repo.pulls.values())
            if args.get("headRefName") is not None:
                pulls = [p for p in pulls if p.head == args["headRefName"]]
            if args.get("baseRefName") is not None:
                pulls = [p for p in pulls if p.base == args["baseRefName"]]
            if args.get("states"):
                pulls = [p for p in pulls if self.gql_pull_state(p) in args["states"]]
            order = args.get("orderBy") or {"field": "CREATED_AT", "direction": "ASC"}
            key = "updated_at" if order.get("field") == "UPDATED_AT" else "created_at"
            pulls.sort(key=lambda p: (getattr(p, key), p.number), reverse=order.get("direction") == "DESC")
            return connection("PullRequestConnection", [self.gql_pull(repo, p) for p in pulls], args)

        return Obj(
            "Repository",
            {
                "id": _node_id("R", repo.id),
                "name": repo.name,
                "nameWithOwner": repo.full_name,
                "url": self.html(f"/{repo.full_name}"),
                "owner": Obj("User", {"login": repo.owner}, ("Node", "RepositoryOwner")),
                "defaultBranchRef": Obj("Ref", {"name": repo.default_branch}),
                "pullRequest": pull_request,
                "pullRequests": pull_requests,
            },
        )

    @staticmethod
    def gql_pull_state(pull: FakePull) -> str:
        return "MERGED" if pull.merged else pull.state.upper()

    def gql_actor(self, user: FakeUser | None) -> Obj | None:
        if user is None:
            return None
        return Obj(user.type, {"login": user.login, "url": self.html(f"/{user.login}")}, ("Node", "Actor"))

    def gql_review(self, repo: FakeRepo, pull: FakePull, review: FakeReview) -> Obj:
        return Obj(
            "PullRequestReview",
            {
                "id": _node_id("PRR", review.id),
                "state": review.state,
                "body": review.body,
                "author": self.gql_actor(review.author),
                "authorAssociation": review.association,
                "submittedAt": _iso(review.submitted_at),
                "url": self.html(f"/{repo.full_name}/pull/{pull.number}#pullrequestreview-{review.id}"),
            },
        )

    def gql_latest_opinionated(self, repo: FakeRepo, pull: FakePull) -> list[Obj]:
        """GitHub's latestOpinionatedReviews: each author's latest approving or changes-requesting
        review; a dismissed one (its state becomes DISMISSED) is their latest word and leaves none."""
        latest: dict[str, FakeReview] = {}
        for review in pull.reviews:
            if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest.pop(review.author.login, None)
                latest[review.author.login] = review
        return [self.gql_review(repo, pull, r) for r in latest.values() if r.state != "DISMISSED"]

    def gql_pull(self, repo: FakeRepo, pull: FakePull) -> Obj:
        def review_decision() -> str | None:
            # GitHub gives a decision only under branch protection that requires reviews (the
            # fake's protection is a review_decision set on the PR); else null
            return pull.review_decision

        head_commit = self.gql_commit(repo, pull.head_sha)
        mergeable = {True: "MERGEABLE", False: "CONFLICTING", None: "UNKNOWN"}[pull.mergeable]
        threads = [self.gql_thread(repo, pull, t) for t in pull.threads]
        return Obj(
            "PullRequest",
            {
                "id": _node_id("PR", pull.number),
                "databaseId": pull.number * 7919 + repo.id,
                "number": pull.number,
                "url": self.html(f"/{repo.full_name}/pull/{pull.number}"),
                "title": pull.title,
                "body": pull.body,
                "headRefName": pull.head,
                "baseRefName": pull.base,
                "headRefOid": pull.head_sha,
                "baseRefOid": pull.base_sha,
                "state": self.gql_pull_state(pull),
                "isDraft": pull.draft,
                "closed": pull.state == "closed",
                "merged": pull.merged,
                "mergedAt": _iso(pull.merged_at),
                "mergeable": mergeable if pull.state == "open" else "UNKNOWN",
                "mergeStateStatus": merge_state(pull).upper(),
                "reviewDecision": review_decision(),
                "isCrossRepository": pull.cross_repository,
                "headRepository": Obj("Repository", {"nameWithOwner": repo.full_name, "name": repo.name}),
                "createdAt": _iso(pull.created_at),
                "updatedAt": _iso(pull.updated_at),
                "author": self.gql_actor(pull.author),
                "commits": lambda args: connection(
                    "PullRequestCommitConnection", [Obj("PullRequestCommit", {"commit": head_commit})], args
                ),
                "reviewThreads": lambda args: connection("PullRequestReviewThreadConnection", threads, args),
                "reviewRequests": lambda args: connection(
                    "ReviewRequestConnection",
                    [
                        Obj(
                            "ReviewRequest",
                            {
                                "id": _node_id("RR", pull.number * 1000 + i),
                                "requestedReviewer": self.gql_actor(u),
                            },
                        )
                        for i, u in enumerate(pull.review_requests)
                    ],
                    args,
                ),
                "latestOpinionatedReviews": lambda args: connection(
                    "PullRequestReviewConnection", self.gql_latest_opinionated(repo, pull), args
                ),
                "reviews": lambda args: connection(
                    "PullRequestReviewConnection",
                    [
                        Obj(
                            "PullRequestReview",
                            {
                                "id": _node_id("PRR", r.id),
                                "state": r.state,
                                "body": r.body,
                                "author": self.gql_actor(r.author),
                                "authorAssociation": r.association,
                                "submittedAt": _iso(r.submitted_at),
                                "url": self.html(
                                    f"/{repo.full_name}/pull/{pull.number}#pullrequestreview-{r.id}"
                                ),
                            },
                        )
                        for r in pull.reviews
                        if not args.get("states") or r.state in args["states"]
                    ],
                    args,
                ),
                "labels": lambda args: connection(
                    "LabelConnection", [Obj("Label", {"name": n}) for n in pull.labels], args
                ),
            },
            ("Node", "Closable", "Comment", "Labelable", "UniformResourceLocatable"),
        )

    def gql_commit(self, repo: FakeRepo, sha: str) -> Obj:
        checks = repo.checks_for(sha)
        statuses = repo.statuses_for(sha)
        rollup = None
        if checks or statuses:
            states = [self._check_state(c) for c in checks] + [s.state.upper() for s in statuses]
            if "ERROR" in states:
                state = "ERROR"
            elif "FAILURE" in states:
                state = "FAILURE"
            elif "PENDING" in states or "EXPECTED" in states:
                state = "PENDING"
            else:
                state = "SUCCESS"
            contexts = [self.gql_check(c) for c in checks] + [self.gql_status(s) for s in statuses]
            rollup = Obj(
                "StatusCheckRollup",
                {
                    "state": state,
                    "contexts": lambda args: connection("StatusCheckRollupContextConnection", contexts, args),
                },
            )
        return Obj(
            "Commit",
            {
                "oid": sha,
                "abbreviatedOid": sha[:7],
                "url": self.html(f"/{repo.full_name}/commit/{sha}"),
                "statusCheckRollup": rollup,
            },
            ("Node", "GitObject"),
        )

    @staticmethod
    def _check_state(check: FakeCheckRun) -> str:
        if check.status != "completed":
            return "PENDING"
        if check.conclusion in ("success", "neutral", "skipped"):
            return "SUCCESS"
        return "FAILURE"

    def gql_check(self, check: FakeCheckRun) -> Obj:
        return Obj(
            "CheckRun",
            {
                "id": _node_id("CR", check.id),
                "databaseId": check.id,
                "name": check.name,
                "status": check.status.upper(),
                "conclusion": check.conclusion.upper() if check.conclusion else None,
                "detailsUrl": check.details_url,
                "url": check.details_url,
                "startedAt": _iso(check.started_at),
                "completedAt": _iso(check.completed_at),
                "title": None,
                "summary": None,
                "checkSuite": Obj(
                    "CheckSuite",
                    {
                        "databaseId": check.run_id,
                        "app": Obj("App", {"slug": check.app_slug, "name": check.app_slug}),
                        "workflowRun": Obj("WorkflowRun", {"databaseId": check.run_id})
                        if check.app_slug == "github-actions"
                        else None,
                    },
                ),
            },
            ("Node", "StatusCheckRollupContext", "RequirableByPullRequest"),
        )

    def gql_status(self, status: FakeStatus) -> Obj:
        return Obj(
            "StatusContext",
            {
                "id": _node_id("SC", status.id),
                "context": status.context,
                "state": status.state.upper(),
                "targetUrl": status.target_url,
                "description": status.description or None,
                "createdAt": _iso(status.created_at),
            },
            ("Node", "StatusCheckRollupContext", "RequirableByPullRequest"),
        )

    def gql_thread(self, repo: FakeRepo, pull: FakePull, thread: FakeThread) -> Obj:
        comments = [
            Obj(
                "PullRequestReviewComment",
                {
                    "id": _node_id("PRRC", c.id),
                    "databaseId": c.id,
                    "body": c.body,
                    "path": c.path,
                    "line": c.line,
                    "originalLine": c.line,
                    "url": self.html(f"/{repo.full_name}/pull/{pull.number}#discussion_r{c.id}"),
                    "createdAt": _iso(c.created_at),
                    "authorAssociation": c.association,
                    "author": self.gql_actor(c.author),
                },
            )
            for c in thread.comments
        ]
        return Obj(
            "PullRequestReviewThread",
            {
                "id": thread.node_id,
                "isResolved": thread.resolved,
                "isOutdated": thread.outdated,
                "path": thread.path,
                "line": thread.line,
                "originalLine": thread.line,
                "comments": lambda args: connection("PullRequestReviewCommentConnection", comments, args),
            },
        )

    # --- webhooks ------------------------------------------------------------------------------
    def webhook(
        self, event: str, *, secret: str, repo: str | None = None, delivery: str | None = None, **kwargs: Any
    ) -> WebhookDelivery:
        """A signed delivery of ``event`` built from the current state.

        kwargs by event: pull_request(number, action="synchronize"), pull_request_review(number,
        state="approved"), pull_request_review_thread(number, thread_id), check_run(check_id, action="completed"), check_suite(sha),
        status(status_id), workflow_job(check_id, action="completed"), push(ref, before, after),
        ping().
        """
        with self.lock:
            full = repo or next(iter(self.repos.values())).full_name
            payload = self.webhook_payload(event, self.repo(full), **kwargs)
        return webhook_request(event, payload, secret=secret, delivery=delivery)

    def webhook_payload(self, event: str, repo: FakeRepo, **kw: Any) -> dict[str, Any]:
        sender = self.user(kw.pop("sender", "octocat")).rest(self.html_base)
        common = {"repository": self.rest_repo(repo), "sender": sender}
        if event == "ping":
            return {
                "zen": "Keep it logically awesome.",
                "hook_id": 1,
                "hook": {
                    "type": "Repository",
                    "id": 1,
                    "name": "web",
                    "active": True,
                    "events": ["pull_request", "check_run", "check_suite", "status", "push"],
                    "config": {
                        "content_type": "json",
                        "insecure_ssl": "0",
                        "url": "https://ao.example/webhooks/github",
                    },
                },
                **common,
            }
        if event == "pull_request":
            pull = repo.pulls[kw["number"]]
            return {
                "action": kw.get("action", "synchronize"),
                "number": pull.number,
                "pull_request": self.rest_pull(repo, pull),
                **common,
            }
        if event == "pull_request_review":
            pull = repo.pulls[kw["number"]]
            state = kw.get("state", "approved")
            return {
                "action": kw.get("action", "submitted"),
                "review": {
                    "id": next(self._ids),
                    "node_id": _node_id("PRR", 1),
                    "user": self.user(kw.get("reviewer", "reviewer")).rest(self.html_base),
                    "body": kw.get("body"),
                    "commit_id": pull.head_sha,
                    "submitted_at": _iso(_now()),
                    "state": state,
                    "html_url": self.html(f"/{repo.full_name}/pull/{pull.number}#pullrequestreview-1"),
                    "pull_request_url": self.api(f"/repos/{repo.full_name}/pulls/{pull.number}"),
                    "author_association": "MEMBER",
                },
                "pull_request": self.rest_pull(repo, pull),
                **common,
            }
        if event == "pull_request_review_thread":
            pull = repo.pulls[kw["number"]]
            thread = next(t for t in pull.threads if t.id == kw["thread_id"])
            return {
                "action": kw.get("action", "resolved" if thread.resolved else "unresolved"),
                "thread": {
                    "node_id": thread.node_id,
                    "comments": [
                        self.rest_review_comment(repo, pull, c, reply_to=thread.comments[0].id if i else None)
                        for i, c in enumerate(thread.comments)
                    ],
                },
                "pull_request": self.rest_pull(repo, pull),
                **common,
            }
        if event in ("check_run", "workflow_job"):
            check = repo.check_runs[kw["check_id"]]
            prs = [
                self._pr_ref(repo, p)
                for p in repo.pulls.values()
                if p.head_sha == check.head_sha and p.state == "open"
            ]
            if event == "workflow_job":
                return {
                    "action": kw.get("action", "completed"),
                    "workflow_job": self.rest_job(repo, check),
                    **common,
                }
            body = self.rest_check_run(repo, check)
            body["pull_requests"] = prs
            body["check_suite"] = self._suite(repo, check.head_sha, prs)
            return {"action": kw.get("action", "completed"), "check_run": body, **common}
        if event == "check_suite":
            sha = kw["sha"]
            prs = [
                self._pr_ref(repo, p) for p in repo.pulls.values() if p.head_sha == sha and p.state == "open"
            ]
            return {
                "action": kw.get("action", "completed"),
                "check_suite": self._suite(repo, sha, prs),
                **common,
            }
        if event == "status":
            status = next(s for s in repo.statuses if s.id == kw["status_id"])
            branches = [
                {
                    "name": p.head,
                    "commit": {
                        "sha": p.head_sha,
                        "url": self.api(f"/repos/{repo.full_name}/commits/{p.head_sha}"),
                    },
                    "protected": False,
                }
                for p in repo.pulls.values()
                if p.head_sha == status.sha
            ]
            return {
                "id": status.id,
                "sha": status.sha,
                "name": repo.full_name,
                "target_url": status.target_url,
                "context": status.context,
                "description": status.description or None,
                "state": status.state,
                "commit": {
                    "sha": status.sha,
                    "url": self.api(f"/repos/{repo.full_name}/commits/{status.sha}"),
                },
                "branches": branches,
                "created_at": _iso(status.created_at),
                "updated_at": _iso(status.created_at),
                **common,
            }
        if event == "push":
            ref, after = kw["ref"], kw.get("after") or _sha("push")
            before = kw.get("before") or "0" * 40
            return {
                "ref": ref,
                "before": before,
                "after": after,
                "created": before == "0" * 40,
                "deleted": after == "0" * 40,
                "forced": bool(kw.get("forced", False)),
                "base_ref": None,
                "compare": self.html(f"/{repo.full_name}/compare/{before[:12]}...{after[:12]}"),
                "commits": [],
                "head_commit": {
                    "id": after,
                    "message": kw.get("message", "change"),
                    "timestamp": _iso(_now()),
                },
                "pusher": {"name": sender["login"], "email": None},
                **common,
            }
        raise ValueError(f"the fake cannot build a {event!r} webhook")

    def _pr_ref(self, repo: FakeRepo, pull: FakePull) -> dict[str, Any]:
        mini = {"id": repo.id, "url": self.api(f"/repos/{repo.full_name}"), "name": repo.name}
        return {
            "url": self.api(f"/repos/{repo.full_name}/pulls/{pull.number}"),
            "id": pull.number * 7919 + repo.id,
            "number": pull.number,
            "head": {"ref": pull.head, "sha": pull.head_sha, "repo": mini},
            "base": {"ref": pull.base, "sha": pull.base_sha, "repo": mini},
        }

    def _suite(self, repo: FakeRepo, sha: str, prs: list) -> dict[str, Any]:
        checks = repo.checks_for(sha)
        done = all(c.status == "completed" for c in checks)
        failed = any(self._check_state(c) == "FAILURE" for c in checks)
        return {
            "id": checks[0].run_id if checks else next(self._ids),
            "head_branch": next((p["head"]["ref"] for p in prs), None),
            "head_sha": sha,
            "status": "completed" if done else "in_progress",
            "conclusion": ("failure" if failed else "success") if done else None,
            "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
            "pull_requests": prs,
            "url": self.api(f"/repos/{repo.full_name}/check-suites/1"),
        }


@dataclass
class WebhookDelivery:
    headers: dict[str, str]
    body: bytes

    def post(self, url: str, *, timeout: float = 10.0) -> int:
        """POST the delivery to ``url``; returns the HTTP status."""
        request = urllib.request.Request(url, data=self.body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


def sign_webhook(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_request(
    event: str, payload: dict[str, Any], *, secret: str, delivery: str | None = None
) -> WebhookDelivery:
    """Headers and raw body of a GitHub webhook delivery, signed with ``secret``."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc1234",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": str(payload.get("repository", {}).get("id", 1)),
        "X-Hub-Signature-256": sign_webhook(secret, body),
    }
    return WebhookDelivery(headers=headers, body=body)


# ================================================================================================
# HTTP
# ================================================================================================
class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, message: str, **extra: Any) -> _Reply:
    return _Reply(status, {"message": message, "documentation_url": DOCS, **extra})


Route = tuple[str, re.Pattern, Callable[..., Any]]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing ------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        fake = self.fake
        with fake.lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._dispatch_inner(method)
        finally:
            with fake.lock:
                fake.in_flight -= 1

    def _dispatch_inner(self, method: str) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
        rest_prefix = "/api/v3" if fake.enterprise else ""
        graphql_path = "/api/graphql" if fake.enterprise else "/graphql"

        if path.startswith("/_blobs/logs/"):
            self._serve_blob(method, path, query)
            return
        if path.startswith("/_fake/"):
            self._control(method, path[len("/_fake/") :], query, raw)
            return
        if path == graphql_path and method == "POST":
            kind = "graphql"
        elif path.startswith(rest_prefix + "/"):
            kind = "rest"
            path = path[len(rest_prefix) :]
        else:
            self._send(
                404,
                {"message": "Not Found", "documentation_url": DOCS},
                kind="rest",
                method=method,
                path=path,
            )
            return

        token = self._token()
        if token is None:
            self._send(
                401,
                {"message": "Bad credentials", "documentation_url": DOCS},
                kind="unauthenticated",
                method=method,
                path=path,
            )
            return

        fault = None
        with fake.lock:
            for candidate in fake.faults:
                if candidate.matches(method, path, kind):
                    candidate.times -= 1
                    fault = candidate
                    break
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status:
                self._send_fault(fault, token, kind, method, path)
                return

        try:
            if kind == "graphql":
                status, body, headers, cost = self._graphql(token, raw)
                self._send(
                    status,
                    body,
                    headers=headers,
                    kind="graphql",
                    method=method,
                    path=path,
                    cost=cost,
                    token=token,
                    resource="graphql",
                )
                return
            with fake.lock:
                bucket = fake._bucket(token, "core")
                if bucket.remaining <= 0 and path != "/rate_limit":
                    raise _error(
                        403,
                        f"API rate limit exceeded for user ID {abs(hash(token)) % 10**7}. If you reach out to GitHub Support for help, please include the request ID.",
                    )
                status, body, headers = self._rest(method, path, query, raw)
        except _Reply as reply:
            status, body, headers = reply.status, reply.body, reply.headers
        if method == "GET" and status == 200 and path != "/rate_limit":
            payload = body if isinstance(body, bytes) else json.dumps(body, sort_keys=True).encode()
            etag = 'W/"' + hashlib.sha256(payload).hexdigest()[:40] + '"'
            headers = {**headers, "ETag": etag}
            if etag in [t.strip() for t in (self.headers.get("If-None-Match") or "").split(",")]:
                self._send(
                    304,
                    None,
                    headers={"ETag": etag},
                    kind="304",
                    method=method,
                    path=path,
                    token=token,
                    resource="core",
                )
                return
        spend = 0 if path == "/rate_limit" else 1  # like GitHub: every authenticated call but 304s counts
        self._send(
            status,
            body,
            headers=headers,
            kind="rest",
            method=method,
            path=path,
            cost=spend,
            token=token,
            resource="core",
        )

    def _token(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and value.strip() in self.fake.tokens:
            return value.strip()
        return None

    def _rate_headers(self, token: str | None, resource: str) -> dict[str, str]:
        if token is None:
            return {}
        with self.fake.lock:
            bucket = self.fake._bucket(token, resource)
            return {
                "X-RateLimit-Limit": str(bucket.limit),
                "X-RateLimit-Remaining": str(bucket.remaining),
                "X-RateLimit-Used": str(bucket.used),
                "X-RateLimit-Reset": str(bucket.reset),
                "X-RateLimit-Resource": resource,
            }

    def _send_fault(self, fault: Fault, token: str, kind: str, method: str, path: str) -> None:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.status in (403, 429):
            message = fault.message or (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                "If you reach out to GitHub Support for help, please include the request ID."
            )
        else:
            message = fault.message or {
                500: "Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
            }.get(fault.status, "Error")
        body: Any = {"message": message, "documentation_url": DOCS}
        if fault.status in (502, 504) and not fault.message:
            body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            headers["Content-Type"] = "text/html"
        self._send(
            fault.status,
            body,
            headers=headers,
            kind="fault",
            method=method,
            path=path,
            token=token,
            resource="graphql" if kind == "graphql" else "core",
        )

    def _send(
        self,
        status: int,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        kind: str,
        method: str,
        path: str,
        cost: int = 0,
        token: str | None = None,
        resource: str = "core",
    ) -> None:
        fake = self.fake
        with fake.lock:
            if token is not None and cost:
                bucket = fake._bucket(token, resource)
                bucket.remaining = max(0, bucket.remaining - cost)
            fake.counts[kind] += 1
            fake.counts["total"] += 1
            if kind == "graphql":
                fake.graphql_points += cost
            fake.requests.append(RecordedRequest(method, path, status, kind, cost))
        out_headers = {**self._rate_headers(token, resource), **(headers or {})}
        if isinstance(body, bytes):
            data = body
            out_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        elif body is None:
            data = b""
        else:
            data = json.dumps(body).encode()
            out_headers.setdefault("Content-Type", "application/json; charset=utf-8")
        out_headers["X-GitHub-Request-Id"] = uuid.uuid4().hex[:16].upper()
        out_headers["X-GitHub-Media-Type"] = "github.v3; format=json"
        self.send_response(status)
        for name, value in out_headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 304 and method != "HEAD":
            self.wfile.write(data)

    def _serve_blob(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        fake = self.fake
        job_key = path.rsplit("/", 1)[1]
        with fake.lock:
            check_id = fake.secret_log_tokens.get(query.get("sig", [""])[0])
            text = None
            for repo in fake.repos.values():
                if check_id in repo.check_runs:
                    text = repo.check_runs[check_id].log
        if check_id is None or str(check_id) != job_key or text is None:
            self._send(
                403,
                b"<Error><Code>AuthenticationFailed</Code></Error>",
                kind="blob",
                method=method,
                path=path,
            )
            return
        self._send(200, text.encode(), kind="blob", method=method, path=path)

    # --- GraphQL -------------------------------------------------------------------------------
    def _graphql(self, token: str, raw: bytes) -> tuple[int, Any, dict[str, str], int]:
        fake = self.fake
        try:
            request = json.loads(raw or b"{}")
            query = request["query"]
        except (ValueError, KeyError, TypeError):
            return 400, {"message": "Problems parsing JSON", "documentation_url": DOCS}, {}, 0
        variables = dict(request.get("variables") or {})
        with fake.lock:
            fake.queries.append(query)
        try:
            document = parse_graphql(query)
        except GraphQLError as exc:
            return 200, {"errors": [exc.as_dict()]}, {}, 0
        cost = query_cost(document, variables)
        with fake.lock:
            bucket = fake._bucket(token, "graphql")
            if bucket.remaining < cost:
                body = {
                    "errors": [
                        {
                            "type": "RATE_LIMITED",
                            "code": "graphql_rate_limit",
                            "message": f"API rate limit already exceeded for user ID {abs(hash(token)) % 10**7}.",
                        }
                    ]
                }
                return 200, body, {}, 0
            remaining_after = bucket.remaining - cost
            root = fake.gql_root(fake.tokens[token])
            root.fields["rateLimit"] = lambda args: Obj(
                "RateLimit",
                {
                    "cost": cost,
                    "limit": bucket.limit,
                    "remaining": remaining_after,
                    "used": bucket.limit - remaining_after,
                    "resetAt": _iso(datetime.fromtimestamp(bucket.reset, UTC)),
                    "nodeCount": 0,
                },
                (),
            )
            body = execute_graphql(document, root, variables)
        return 200, body, {}, cost

    # --- REST ----------------------------------------------------------------------------------
    def _rest(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        fake = self.fake
        if path == "/rate_limit" and method == "GET":
            token = self._token() or ""
            resources = {}
            for name in ("core", "graphql"):
                b = fake._bucket(token, name)
                resources[name] = {
                    "limit": b.limit,
                    "remaining": b.remaining,
                    "used": b.used,
                    "reset": b.reset,
                }
            return 200, {"resources": resources, "rate": resources["core"]}, {}
        if path == "/user" and method == "GET":
            return 200, fake.user(fake.tokens[self._token() or ""]).rest(fake.html_base), {}

        match = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        if not match:
            raise _error(404, "Not Found")
        repo = fake.repos.get(f"{match.group(1)}/{match.group(2)}".lower())
        if repo is None:
            raise _error(404, "Not Found")
        rest = match.group(3) or ""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise _error(400, "Problems parsing JSON") from None

        def q(name: str, default: str | None = None) -> str | None:
            return query.get(name, [default])[0]

        if rest == "" and method == "GET":
            return 200, fake.rest_repo(repo), {}
        if rest == "/pulls" and method == "GET":
            pulls = list(repo.pulls.values())
            state = q("state", "open")
            if state != "all":
                pulls = [p for p in pulls if p.state == state]
            if q("head"):
                owner, _, branch = (q("head") or "").partition(":")
                pulls = [p for p in pulls if p.head == branch and owner.lower() == repo.owner.lower()]
            if q("base"):
                pulls = [p for p in pulls if p.base == q("base")]
            if q("sort") == "updated":
                pulls.sort(key=lambda p: (p.updated_at, p.number), reverse=q("direction", "desc") == "desc")
            else:
                pulls.sort(key=lambda p: p.number, reverse=q("direction", "desc") == "desc")
            return self._page(
                query, [fake.rest_pull(repo, p, listed=True) for p in pulls], f"/repos/{repo.full_name}/pulls"
            )
        if rest == "/pulls" and method == "POST":
            return self._open_pull(repo, body)
        if rest == "/actions/runs" and method == "GET":
            runs = fake.rest_workflow_runs(repo)
            page = runs[: min(int(q("per_page", "30") or 30), 100)]
            return 200, {"total_count": len(runs), "workflow_runs": page}, {}
        m = re.fullmatch(r"/pulls/(\d+)/(reviews|comments)", rest)
        if m and method == "GET":
            pull = repo.pulls.get(int(m.group(1)))
            if pull is None:
                raise _error(404, "Not Found")
            base = f"/repos/{repo.full_name}/pulls/{pull.number}/{m.group(2)}"
            if m.group(2) == "reviews":
                items = [fake.rest_review(repo, pull, r) for r in pull.reviews]
            else:
                items = [
                    fake.rest_review_comment(repo, pull, c, reply_to=t.comments[0].id if i else None)
                    for t in pull.threads
                    for i, c in enumerate(t.comments)
                ]
                items.sort(key=lambda c: c["id"])
            return self._page(query, items, base)
        m = re.fullmatch(r"/pulls/(\d+)(/merge)?", rest)
        if m:
            pull = repo.pulls.get(int(m.group(1)))
            if pull is None:
                raise _error(404, "Not Found")
            if not m.group(2) and method == "GET":
                return 200, fake.rest_pull(repo, pull), {}
            if m.group(2) and method == "PUT":
                return self._merge(repo, pull, body)
            if m.group(2) and method == "GET":
                return (204 if pull.merged else 404), None, {}
        m = re.fullmatch(r"/commits/([0-9a-f]{7,40})/(check-runs|status|statuses)", rest)
        if m and method == "GET":
            sha = m.group(1)
            if m.group(2) == "check-runs":
                checks = [c for c in repo.check_runs.values() if c.head_sha.startswith(sha)]
                if (query.get("filter") or ["latest"])[
                    0
                ] != "all":  # GitHub's default: the newest of each name
                    checks = list({c.name: c for c in checks}.values())
                return (
                    200,
                    {
                        "total_count": len(checks),
                        "check_runs": [fake.rest_check_run(repo, c) for c in checks],
                    },
                    {},
                )
            statuses = [s for s in repo.statuses if s.sha.startswith(sha)]
            if m.group(2) == "statuses":
                return 200, [fake.rest_status(s) for s in reversed(statuses)], {}
            latest = repo.statuses_for(sha) if len(sha) == 40 else statuses
            states = {s.state for s in latest}
            combined = (
                "failure"
                if states & {"failure", "error"}
                else ("pending" if "pending" in states or not latest else "success")
            )
            return (
                200,
                {
                    "state": combined,
                    "statuses": [fake.rest_status(s) for s in latest],
                    "sha": sha,
                    "total_count": len(latest),
                    "repository": fake.rest_repo(repo),
                    "commit_url": fake.api(f"/repos/{repo.full_name}/commits/{sha}"),
                    "url": fake.api(f"/repos/{repo.full_name}/commits/{sha}/status"),
                },
                {},
            )
        m = re.fullmatch(r"/git/ref/heads/(.+)", rest)
        if m and method == "GET":
            name = urllib.parse.unquote(m.group(1))
            sha = repo.branches.get(name) or next(
                (p.head_sha for p in repo.pulls.values() if p.head == name and p.state == "open"), None
            )
            if sha is None:
                raise _error(404, "Not Found")
            ref_url = fake.api(f"/repos/{repo.full_name}/git/refs/heads/{name}")
            commit_url = fake.api(f"/repos/{repo.full_name}/git/commits/{sha}")
            return (
                200,
                {
                    "ref": f"refs/heads/{name}",
                    "node_id": _node_id("REF", abs(hash(name)) % 10**9),
                    "url": ref_url,
                    "object": {"sha": sha, "type": "commit", "url": commit_url},
                },
                {},
            )
        m = re.fullmatch(r"/check-runs/(\d+)", rest)
        if m and method == "GET":
            check = repo.check_runs.get(int(m.group(1)))
            if check is None:
                raise _error(404, "Not Found")
            return 200, fake.rest_check_run(repo, check), {}
        m = re.fullmatch(r"/actions/jobs/(\d+)(/logs)?", rest)
        if m and method == "GET":
            check = repo.check_runs.get(int(m.group(1)))
            if check is None or check.app_slug != "github-actions":
                raise _error(404, "Not Found")
            if not m.group(2):
                return 200, fake.rest_job(repo, check), {}
            if check.status != "completed":
                raise _error(404, "Not Found")
            if not fake.logs_redirect:
                return 200, check.log.encode(), {"Content-Type": "text/plain"}
            sig = uuid.uuid4().hex
            fake.secret_log_tokens[sig] = check.id
            location = f"{fake.origin}/_blobs/logs/{check.id}?sig={sig}&se=2099-01-01"
            return 302, b"", {"Location": location, "Content-Type": "text/html"}
        if rest == "/issues" and method == "GET":
            issues = list(repo.issues.values())
            state = q("state", "open")
            if state != "all":
                issues = [i for i in issues if i.state == state]
            for label in filter(None, (q("labels") or "").split(",")):
                issues = [i for i in issues if label in i.labels]
            issues.sort(key=lambda i: i.number, reverse=q("direction", "desc") == "desc")
            return self._page(
                query, [fake.rest_issue(repo, i) for i in issues], f"/repos/{repo.full_name}/issues"
            )
        if rest == "/issues" and method == "POST":
            if not body.get("title"):
                raise _error(
                    422,
                    "Validation Failed",
                    errors=[{"resource": "Issue", "code": "missing_field", "field": "title"}],
                )
            issue = FakeIssue(
                number=repo._next_number(),
                title=body["title"],
                body=body.get("body") or "",
                labels=list(body.get("labels") or []),
            )
            repo.issues[issue.number] = issue
            return (
                201,
                fake.rest_issue(repo, issue),
                {"Location": fake.api(f"/repos/{repo.full_name}/issues/{issue.number}")},
            )
        m = re.fullmatch(r"/issues/(\d+)(/comments|/labels(?:/([^/]+))?|/dependencies/blocked_by)?", rest)
        if m:
            issue = repo.issues.get(int(m.group(1)))
            if issue is None:
                raise _error(404, "Not Found")
            sub = m.group(2) or ""
            if sub == "" and method == "GET":
                return 200, fake.rest_issue(repo, issue), {}
            if sub == "" and method == "PATCH":
                if "title" in body:
                    issue.title = body["title"]
                if "body" in body:
                    issue.body = body["body"] or ""
                if "labels" in body:
                    issue.labels = [lbl if isinstance(lbl, str) else lbl["name"] for lbl in body["labels"]]
                if body.get("state") in ("open", "closed"):
                    if body["state"] == "closed" and issue.state != "closed":
                        issue.closed_at = _now()
                        issue.state_reason = body.get("state_reason") or "completed"
                    elif body["state"] == "open":
                        issue.closed_at, issue.state_reason = (
                            None,
                            "reopened" if issue.state == "closed" else None,
                        )
                    issue.state = body["state"]
                elif "state" in body:
                    raise _error(
                        422,
                        "Validation Failed",
                        errors=[{"resource": "Issue", "code": "invalid", "field": "state"}],
                    )
                issue.updated_at = _now()
                return 200, fake.rest_issue(repo, issue), {}
            if sub == "/dependencies/blocked_by" and method == "GET":
                # GitHub's issue dependencies: a page of the blocking issues, as issue objects
                blockers = []
                for repo_name, number in issue.blocked_by:
                    other = fake.repos.get(repo_name)
                    blocker = other.issues.get(number) if other is not None else None
                    if blocker is not None:
                        blockers.append(fake.rest_issue(other, blocker))
                return self._page(query, blockers, f"/repos/{repo.full_name}/issues/{issue.number}{sub}")
            if sub == "/comments" and method == "GET":
                return 200, [fake.rest_comment(repo, issue.number, c) for c in issue.comments], {}
            if sub == "/comments" and method == "POST":
                if not body.get("body"):
                    raise _error(
                        422,
                        "Validation Failed",
                        errors=[{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
                    )
                comment = FakeComment(
                    id=next(fake._ids), author=fake.user(fake.tokens[self._token() or ""]), body=body["body"]
                )
                issue.comments.append(comment)
                issue.updated_at = _now()
                return 201, fake.rest_comment(repo, issue.number, comment), {}
            if sub == "/labels" and method == "POST":
                names = body.get("labels", body) if isinstance(body, dict) else body
                for name in names:
                    name = name if isinstance(name, str) else name["name"]
                    if name not in issue.labels:
                        issue.labels.append(name)
                issue.updated_at = _now()
                return 200, fake.rest_labels(repo, issue.labels), {}
            if sub == "/labels" and method == "PUT":
                issue.labels = list(body.get("labels", []))
                issue.updated_at = _now()
                return 200, fake.rest_labels(repo, issue.labels), {}
            if sub.startswith("/labels/") and method == "DELETE":
                name = urllib.parse.unquote(m.group(3))
                if name not in issue.labels:
                    raise _error(404, "Label does not exist")
                issue.labels.remove(name)
                issue.updated_at = _now()
                return 200, fake.rest_labels(repo, issue.labels), {}
        raise _error(404, "Not Found")

    def _open_pull(self, repo: FakeRepo, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """``POST /repos/{owner}/{repo}/pulls`` (what ``gh pr create`` calls)."""
        fake = self.fake
        for name in ("title", "head"):
            if not body.get(name):
                raise _error(
                    422,
                    "Validation Failed",
                    errors=[{"resource": "PullRequest", "code": "missing_field", "field": name}],
                )
        owner, _, branch = str(body["head"]).rpartition(":")
        if owner and owner.lower() != repo.owner.lower():
            raise _error(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            )
        if any(p.head == branch and p.state == "open" for p in repo.pulls.values()):
            raise _error(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "code": "custom",
                         "message": f"A pull request already exists for {repo.owner}:{branch}."}],
            )  # fmt: skip
        sha = repo.branches.get(branch) or fake.git_head(repo, branch)
        if sha is None:
            raise _error(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            )
        pull = repo.add_pull(
            branch,
            title=body["title"],
            body=body.get("body") or "",
            base=body.get("base") or repo.default_branch,
            head_sha=sha,
            draft=bool(body.get("draft")),
        )
        pull.author = fake.user(fake.tokens[self._token() or ""])
        location = fake.api(f"/repos/{repo.full_name}/pulls/{pull.number}")
        return 201, fake.rest_pull(repo, pull), {"Location": location}

    # --- control (the fake run as a process) ---------------------------------------------------
    def _control(self, method: str, op: str, query: dict[str, list[str]], raw: bytes) -> None:
        """``/_fake/<op>``: what a test does to GitHub's state, and what it asks about it.

        GET ``requests`` (everything received: method, path, status, kind), GET ``pull?number=N``;
        POST ``issue`` {title, body, labels}, ``review`` {number, state, body, author,
        association}, ``check`` {number, name, conclusion}, ``sync`` (heads from the git),
        ``close`` {number}, ``move-head-on-merge`` {number} (a push lands on the PR just before
        its next merge arrives), ``webhook`` {event, delivery, ...the event's kwargs} (signed and
        delivered to the ``--hook`` URL: the answer's ``status`` is ao's HTTP status).
        Every op takes an optional ``repo`` (default: the first)."""
        fake = self.fake
        try:
            args = json.loads(raw) if raw else {}
        except ValueError:
            args = {}
        for name, values in query.items():
            args.setdefault(name, values[0])
        with fake.lock:
            repo = fake.repo(args.pop("repo", None) or next(iter(fake.repos.values())).full_name)
        number = int(args["number"]) if "number" in args else None
        pull = repo.pulls[number] if number is not None and number in repo.pulls else None
        result: Any
        if op == "requests" and method == "GET":
            with fake.lock:
                result = [
                    {"method": r.method, "path": r.path, "status": r.status, "kind": r.kind}
                    for r in fake.requests
                ]
        elif op == "pull" and method == "GET" and pull is not None:
            result = {"number": pull.number, "state": pull.state, "merged": pull.merged,
                      "head": pull.head, "head_sha": pull.head_sha, "title": pull.title, "body": pull.body}  # fmt: skip
        elif op == "issue" and method == "POST":
            issue = repo.add_issue(args["title"], body=args.get("body", ""), labels=args.get("labels", ()))
            result = {"number": issue.number}
        elif op == "review" and method == "POST" and pull is not None:
            review = fake.add_review(pull, state=args["state"], body=args.get("body", ""),
                                     author=args.get("author", "reviewer"),
                                     association=args.get("association", "MEMBER"))  # fmt: skip
            result = {"id": review.id}
        elif op == "check" and method == "POST" and pull is not None:
            check = repo.add_check_run(
                pull.head_sha, args["name"], conclusion=args.get("conclusion", "success")
            )
            result = {"id": check.id, "head_sha": pull.head_sha}
        elif op == "sync" and method == "POST":
            result = {"moved": fake.sync_heads(repo)}
        elif op == "close" and method == "POST" and pull is not None:
            with fake.lock:
                pull.state, pull.closed_at = "closed", _now()
                pull.updated_at = pull.closed_at
            result = {"state": "closed"}
        elif op == "move-head-on-merge" and method == "POST" and pull is not None:
            with fake.lock:
                fake.move_head_on_merge.add(pull.number)
            result = {}
        elif op == "webhook" and method == "POST" and fake.hook is not None:
            url, secret = fake.hook
            event, delivery = args.pop("event"), args.pop("delivery", None)
            result = {
                "status": fake.webhook(
                    event, secret=secret, repo=repo.full_name, delivery=delivery, **args
                ).post(url)
            }
        else:
            self._send(404, {"message": f"no control {method} {op}"}, kind="control", method=method, path=op)
            return
        data = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _page(self, query: dict[str, list[str]], items: list, path: str) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = max(int(query.get("page", ["1"])[0]), 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            params = {k: v[0] for k, v in query.items()}
            params.update(page=str(page + 1), per_page=str(per_page))
            headers["Link"] = f'<{self.fake.api(path)}?{urllib.parse.urlencode(params)}>; rel="next"'
        return 200, chunk, headers

    def _merge(self, repo: FakeRepo, pull: FakePull, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        method = body.get("merge_method", "merge")
        if method not in ("merge", "squash", "rebase"):
            raise _error(422, "Invalid request.\n\nmerge_method must be one of merge, squash, rebase.")
        if pull.state != "open" or pull.merged:
            raise _error(405, "Pull Request is not mergeable")
        if pull.number in self.fake.move_head_on_merge:  # someone pushed just before this arrived
            self.fake.move_head_on_merge.discard(pull.number)
            push(pull)
        if body.get("sha") and body["sha"] != pull.head_sha:
            raise _error(409, "Head branch was modified. Review and try the merge again.")
        if pull.draft or pull.mergeable is False or merge_state(pull) in ("dirty", "blocked", "draft"):
            raise _error(405, "Pull Request is not mergeable")
        pull.merged, pull.state = True, "closed"
        pull.merged_at = pull.closed_at = pull.updated_at = _now()
        pull.merge_commit_sha = _sha("merge")
        pull.mergeable_state = "unknown"
        return (
            200,
            {"sha": pull.merge_commit_sha, "merged": True, "message": "Pull Request successfully merged"},
            {},
        )


def main() -> None:
    """Run the fake as its own process until interrupted (see the module's docstring)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.github")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--repo", action="append", default=[], help="owner/name (repeatable)")
    parser.add_argument("--enterprise", action="store_true", help="serve /api/v3 and /api/graphql")
    parser.add_argument("--token", default="ghp_testtoken0000000000000000000000000000")
    parser.add_argument("--login", default="ao-bot", help="the token's user")
    parser.add_argument("--git-root", type=Path, default=None)
    parser.add_argument("--hook", default="", help="URL webhooks are delivered to")
    parser.add_argument("--hook-secret", default="")
    args = parser.parse_args()
    fake = FakeGitHub(enterprise=args.enterprise, tokens={args.token: args.login}, git_root=args.git_root,
                      port=args.port)  # fmt: skip
    if args.hook:
        fake.hook = (args.hook, args.hook_secret)
    for name in args.repo:
        fake.add_repo(name)
    fake.start()
    serve_until_interrupted(fake.port, fake.close)


if __name__ == "__main__":
    main()
