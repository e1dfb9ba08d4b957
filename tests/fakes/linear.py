"""A local stand-in for Linear's GraphQL API, speaking its wire format over real HTTP.

``FakeLinear`` runs a threaded HTTP server on 127.0.0.1 (a random port). It parses the GraphQL
documents it receives (operations, variable definitions, fields, aliases, arguments, nested
selections), checks every ``$variable`` is declared, resolves the top-level fields the
``linear`` tracker uses against in-memory teams, workflow states, labels, issues and comments,
and answers with exactly the fields that were selected. Asking for a field or filter key the fake
does not know is a validation error (HTTP 400), as it would be against the real schema.

Wire format, after Linear:
- POST only, ``Content-Type: application/json``, body ``{"query", "variables", "operationName"}``;
- ``Authorization: <personal API key>`` (no ``Bearer``); otherwise HTTP 400 with an
  ``AUTHENTICATION_ERROR`` (``auth_failure_status`` switches it to 401);
- GraphQL errors as ``{"data": null, "errors": [{"message", "path", "locations", "extensions":
  {"type", "code", "userError", "userPresentableMessage"}}]}`` with HTTP 200, e.g. an unknown
  issue is ``Entity not found: Issue`` / ``INPUT_ERROR``;
- ``X-RateLimit-Requests-{Limit,Remaining,Reset}`` on every response; HTTP 429 + ``Retry-After``
  + ``RATELIMITED`` when a fault says so.

Tests drive it directly: ``add_team``, ``add_label``, ``add_issue``, ``add_relation`` (an issue
relation: ``type`` "blocks" means ``issue`` blocks ``related``; an issue's ``relations`` are the
ones it is the source of, its ``inverseRelations`` the ones pointing at it), ``issue``,
``comments_on``, ``requests`` (everything received), ``fail_next`` (401, 5xx, 429) and
``delay_next`` (slow).

As its own process (``python -m tests.fakes.linear --port N --team ENG``; prints ``listening on
PORT``) it is driven over HTTP: POST ``/_fake/issue`` {team, title, state, labels, description}
adds an issue (answers its ``identifier``), GET ``/_fake/issue?id=ENG-1`` answers its ``state``,
``labels`` and ``comments``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes import serve_until_interrupted

DEFAULT_STATES = (
    ("Backlog", "backlog"),
    ("Todo", "unstarted"),
    ("In Progress", "started"),
    ("In Review", "started"),
    ("Done", "completed"),
    ("Canceled", "canceled"),
)


# --- GraphQL documents ---------------------------------------------------------------------------
class GraphQLSyntaxError(Exception):
    pass


class GraphQLValidationError(Exception):
    pass


@dataclass(frozen=True)
class Var:
    name: str


@dataclass
class Selection:
    name: str
    alias: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    selections: list[Selection] | None = None

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class Operation:
    kind: str  # query | mutation
    name: str | None
    variables: dict[str, tuple[str, Any]]  # name -> (type, default)
    selections: list[Selection]


@dataclass
class Document:
    operations: list[Operation]
    string_literals: list[str]  # every "..." in the document: user input belongs in variables


_TOKEN = re.compile(
    r"""
    (?P<ws>[\s,\ufeff]+|\#[^\n]*)
  | (?P<block>\"\"\"(?:\\\"\"\"|[^"]|"(?!""))*\"\"\")
  | (?P<string>"(?:\\.|[^"\\\n])*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<punct>\.\.\.|[!$&()\:=@\[\]{}|])
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise GraphQLSyntaxError(f"Syntax Error: Unexpected character {text[pos]!r} at {pos}.")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        tokens.append((kind, m.group()))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.strings: list[str] = []

    def peek(self, value: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        return value is None or self.tokens[self.i][1] == value

    def next(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise GraphQLSyntaxError("Syntax Error: Unexpected <EOF>.")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        _kind, text = self.next()
        if text != value:
            raise GraphQLSyntaxError(f'Syntax Error: Expected "{value}", found "{text}".')

    def name(self) -> str:
        kind, text = self.next()
        if kind != "name":
            raise GraphQLSyntaxError(f'Syntax Error: Expected Name, found "{text}".')
        return text

    def document(self) -> Document:
        ops = []
        while self.peek():
            ops.append(self.operation())
        if not ops:
            raise GraphQLSyntaxError("Syntax Error: Unexpected <EOF>.")
        return Document(ops, self.strings)

    def operation(self) -> Operation:
        if self.peek("{"):
            return Operation("query", None, {}, self.selection_set())
        kind = self.name()
        if kind == "fragment":
            raise GraphQLValidationError("fragments are not supported by this fake")
        if kind not in ("query", "mutation", "subscription"):
            raise GraphQLSyntaxError(f'Syntax Error: Unexpected Name "{kind}".')
        name = self.name() if self.tokens[self.i][0] == "name" else None
        variables: dict[str, tuple[str, Any]] = {}
        if self.peek("("):
            self.next()
            while not self.peek(")"):
                self.expect("$")
                var = self.name()
                self.expect(":")
                typ = self.type_ref()
                default = None
                if self.peek("="):
                    self.next()
                    default = self.value(const=True)
                variables[var] = (typ, default)
            self.next()
        return Operation(kind, name, variables, self.selection_set())

    def type_ref(self) -> str:
        if self.peek("["):
            self.next()
            inner = self.type_ref()
            self.expect("]")
            typ = f"[{inner}]"
        else:
            typ = self.name()
        if self.peek("!"):
            self.next()
            typ += "!"
        return typ

    def selection_set(self) -> list[Selection]:
        self.expect("{")
        out = []
        while not self.peek("}"):
            if self.peek("..."):
                raise GraphQLValidationError("fragment spreads are not supported by this fake")
            first = self.name()
            alias, name = None, first
            if self.peek(":"):
                self.next()
                alias, name = first, self.name()
            args = {}
            if self.peek("("):
                self.next()
                while not self.peek(")"):
                    arg = self.name()
                    self.expect(":")
                    args[arg] = self.value()
                self.next()
            subs = self.selection_set() if self.peek("{") else None
            out.append(Selection(name, alias, args, subs))
        self.next()
        if not out:
            raise GraphQLSyntaxError('Syntax Error: Expected Name, found "}".')
        return out

    def value(self, *, const: bool = False) -> Any:
        kind, text = self.next()
        if text == "$" and not const:
            return Var(self.name())
        if kind == "string":
            value = json.loads(text)
            self.strings.append(value)
            return value
        if kind == "block":
            value = text[3:-3]
            self.strings.append(value)
            return value
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)  # enums stay strings
        if text == "[":
            items = []
            while not self.peek("]"):
                items.append(self.value(const=const))
            self.next()
            return items
        if text == "{":
            obj = {}
            while not self.peek("}"):
                key = self.name()
                self.expect(":")
                obj[key] = self.value(const=const)
            self.next()
            return obj
        raise GraphQLSyntaxError(f'Syntax Error: Unexpected "{text}".')


def parse_document(text: str) -> Document:
    return _Parser(text).document()


def _vars_used(value: Any) -> Iterator[str]:
    if isinstance(value, Var):
        yield value.name
    elif isinstance(value, list):
        for item in value:
            yield from _vars_used(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _vars_used(item)


def _selection_vars(selections: list[Selection]) -> Iterator[str]:
    for sel in selections:
        yield from _vars_used(sel.args)
        if sel.selections:
            yield from _selection_vars(sel.selections)


def _substitute(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, Var):
        return variables.get(value.name)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


# --- filters (the parts of Linear's filter input types the fake evaluates) ----------------------
_STRING = "StringComparator"
_NUMBER = "NumberComparator"
_ID = "IDComparator"
FILTER_TYPES: dict[str, dict[str, str]] = {
    "TeamFilter": {"id": _ID, "key": _STRING, "name": _STRING},
    "NullableTeamFilter": {"id": _ID, "key": _STRING, "name": _STRING},
    "WorkflowStateFilter": {"id": _ID, "name": _STRING, "type": _STRING, "team": "TeamFilter"},
    "IssueLabelFilter": {"id": _ID, "name": _STRING, "team": "NullableTeamFilter"},
    "IssueLabelCollectionFilter": {"id": _ID, "name": _STRING},
    "IssueFilter": {
        "id": _ID,
        "number": _NUMBER,
        "title": _STRING,
        "description": _STRING,
        "team": "TeamFilter",
        "state": "WorkflowStateFilter",
        "labels": "IssueLabelCollectionFilter",
    },
}
COMPARATORS = {
    _ID: {"eq", "neq", "in", "nin"},
    _NUMBER: {"eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "null"},
    _STRING: {
        "eq", "neq", "in", "nin", "eqIgnoreCase", "neqIgnoreCase", "contains",
        "containsIgnoreCase", "notContains", "startsWith", "endsWith", "null",
    },
}  # fmt: skip


def _compare(ctype: str, cond: Any, value: Any) -> bool:
    if not isinstance(cond, dict):
        raise GraphQLValidationError(f'Expected type "{ctype}" to be an object.')
    ok = True
    for op, arg in cond.items():
        if op not in COMPARATORS[ctype]:
            raise GraphQLValidationError(f'Field "{op}" is not defined by type "{ctype}".')
        low = value.casefold() if isinstance(value, str) else value
        if op == "null":
            ok &= (value is None) == bool(arg)
        elif value is None:
            ok &= op in ("neq", "nin", "neqIgnoreCase", "notContains")
        elif op == "eq":
            ok &= value == arg
        elif op == "neq":
            ok &= value != arg
        elif op == "in":
            ok &= value in (arg or [])
        elif op == "nin":
            ok &= value not in (arg or [])
        elif op == "eqIgnoreCase":
            ok &= low == str(arg).casefold()
        elif op == "neqIgnoreCase":
            ok &= low != str(arg).casefold()
        elif op == "contains":
            ok &= str(arg) in value
        elif op == "containsIgnoreCase":
            ok &= str(arg).casefold() in low
        elif op == "notContains":
            ok &= str(arg) not in value
        elif op == "startsWith":
            ok &= value.startswith(str(arg))
        elif op == "endsWith":
            ok &= value.endswith(str(arg))
        elif op in ("lt", "lte", "gt", "gte"):
            ok &= {"lt": value < arg, "lte": value <= arg, "gt": value > arg, "gte": value >= arg}[op]
    return ok


def check_filter(ftype: str, flt: Any) -> None:
    """Reject unknown filter fields and comparators up front, as input coercion would."""
    if flt is None:
        return
    if not isinstance(flt, dict):
        raise GraphQLValidationError(f'Expected type "{ftype}" to be an object.')
    for key, cond in flt.items():
        if key in ("and", "or"):
            for item in cond or []:
                check_filter(ftype, item)
        elif ftype.startswith("Nullable") and key == "null":
            continue
        elif ftype == "IssueLabelCollectionFilter" and key in ("some", "every"):
            check_filter("IssueLabelFilter", cond)
        elif ftype == "IssueLabelCollectionFilter" and key == "length":
            _compare(_NUMBER, cond, None)
        elif key not in FILTER_TYPES[ftype]:
            raise GraphQLValidationError(f'Field "{key}" is not defined by type "{ftype}".')
        elif FILTER_TYPES[ftype][key] in COMPARATORS:
            _compare(FILTER_TYPES[ftype][key], cond, None)
        else:
            check_filter(FILTER_TYPES[ftype][key], cond)


def matches(ftype: str, flt: Any, obj: dict[str, Any] | None) -> bool:
    """Whether ``obj`` (a resolved object dict) passes filter ``flt`` of input type ``ftype``."""
    if flt is None:
        return True
    if not isinstance(flt, dict):
        raise GraphQLValidationError(f'Expected type "{ftype}" to be an object.')
    ok = True
    for key, cond in flt.items():
        if key in ("and", "or") and ftype not in ("IssueLabelCollectionFilter",):
            results = [matches(ftype, c, obj) for c in (cond or [])]
            ok &= all(results) if key == "and" else any(results)
            continue
        if ftype.startswith("Nullable") and key == "null":
            ok &= (obj is None) == bool(cond)
            continue
        if ftype == "IssueLabelCollectionFilter":
            nodes = obj["nodes"] if obj else []
            if key in ("some", "every"):
                results = [matches("IssueLabelFilter", cond, n) for n in nodes]
                ok &= any(results) if key == "some" else all(results)
                continue
            if key == "length":
                ok &= _compare(_NUMBER, cond, len(nodes))
                continue
            if key in FILTER_TYPES[ftype]:
                ok &= any(_compare(FILTER_TYPES[ftype][key], cond, n.get(key)) for n in nodes)
                continue
        ctype = FILTER_TYPES[ftype].get(key)
        if ctype is None:
            raise GraphQLValidationError(f'Field "{key}" is not defined by type "{ftype}".')
        if obj is None:
            ok = False
            continue
        value = obj.get(key)
        ok &= _compare(ctype, cond, value) if ctype in COMPARATORS else matches(ctype, cond, value)
    return ok


# --- the in-memory workspace -------------------------------------------------------------------
def _new_id() -> str:
    return str(uuid.uuid4())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "issue"


@dataclass
class FakeTeam:
    id: str
    key: str
    name: str
    issue_count: int = 0


@dataclass
class FakeState:
    id: str
    name: str
    type: str
    team_id: str
    position: float


@dataclass
class FakeLabel:
    id: str
    name: str
    team_id: str | None  # None: a workspace label, usable by every team
    color: str = "#bec2c8"


@dataclass
class FakeComment:
    id: str
    issue_id: str
    body: str
    seq: int


@dataclass
class FakeIssue:
    id: str
    team_id: str
    number: int
    identifier: str
    title: str
    description: str
    state_id: str
    label_ids: list[str]
    seq: int


@dataclass
class FakeRelation:
    id: str
    type: str  # blocks | duplicate | related | similar
    issue_id: str  # the source: for "blocks", the blocking issue
    related_issue_id: str  # the target: for "blocks", the blocked issue


@dataclass
class RecordedRequest:
    """One request the fake received, as the plugin sent it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    payload: Any = None  # the parsed JSON body
    operation: str = ""  # query | mutation
    operation_name: str | None = None
    fields: tuple[str, ...] = ()  # top-level field names
    variables: dict[str, Any] = field(default_factory=dict)
    string_literals: tuple[str, ...] = ()
    status: int = 0


@dataclass
class Fault:
    status: int | None = None  # answer with this HTTP status instead of handling the request
    delay: float = 0.0  # seconds to wait before answering
    retry_after: int | None = None
    body: bytes | None = None


class _Error(Exception):
    """A GraphQL execution error for one top-level field."""

    def __init__(self, message: str, *, type_: str, code: str, presentable: str, status: int = 200) -> None:
        super().__init__(message)
        self.extensions = {
            "type": type_,
            "code": code,
            "statusCode": 400 if status == 200 else status,
            "userError": True,
            "userPresentableMessage": presentable,
        }


def _not_found(entity: str) -> _Error:
    return _Error(
        f"Entity not found: {entity}",
        type_="invalid input",
        code="INPUT_ERROR",
        presentable=f"Could not find referenced {entity}.",
    )


def _invalid(message: str) -> _Error:
    return _Error(message, type_="invalid input", code="INPUT_ERROR", presentable=message)


class FakeLinear:
    """Linear's GraphQL API on 127.0.0.1; use as a context manager or call start()/stop()."""

    path = "/graphql"
    organization = "ao-test"

    def __init__(
        self, *, api_key: str = "lin_api_fake_0123456789abcdef", rate_limit: int = 5000, port: int = 0
    ) -> None:
        self.api_key = api_key
        self.bind_port = port
        self.auth_failure_status = 400
        self.rate_limit = rate_limit
        self.rate_remaining = rate_limit
        self.lock = threading.RLock()
        self.teams: dict[str, FakeTeam] = {}
        self.states: dict[str, FakeState] = {}
        self.labels: dict[str, FakeLabel] = {}
        self.issues: dict[str, FakeIssue] = {}
        self.comments: list[FakeComment] = []
        self.relations: list[FakeRelation] = []
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._seq = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeLinear:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        server = ThreadingHTTPServer(("127.0.0.1", self.bind_port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-linear", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLinear:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    # --- test controls ----------------------------------------------------------------------------
    def fail_next(
        self, status: int, *, times: int = 1, retry_after: int | None = None, body: bytes | None = None
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (401, 429, 500, 502, 503 ...)."""
        with self.lock:
            self._faults.extend(
                Fault(status=status, retry_after=retry_after, body=body) for _ in range(times)
            )

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` requests (then answer normally)."""
        with self.lock:
            self._faults.extend(Fault(delay=seconds) for _ in range(times))

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    def mutations(self) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.operation == "mutation"]

    # --- data -------------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add_team(
        self, key: str, name: str = "", *, states: Iterable[tuple[str, str]] = DEFAULT_STATES
    ) -> FakeTeam:
        with self.lock:
            team = FakeTeam(_new_id(), key, name or key.title())
            self.teams[team.id] = team
            for pos, (state_name, state_type) in enumerate(states):
                state = FakeState(_new_id(), state_name, state_type, team.id, float(pos))
                self.states[state.id] = state
            return team

    def team(self, key: str) -> FakeTeam:
        with self.lock:
            return next(t for t in self.teams.values() if t.key == key)

    def state(self, team_key: str, name: str) -> FakeState:
        team = self.team(team_key)
        with self.lock:
            return next(s for s in self.states.values() if s.team_id == team.id and s.name == name)

    def add_label(self, name: str, *, team: str | None = None) -> FakeLabel:
        """A label on team ``team`` (a key), or a workspace label when ``team`` is None."""
        with self.lock:
            label = FakeLabel(_new_id(), name, self.team(team).id if team else None)
            self.labels[label.id] = label
            return label

    def add_issue(
        self,
        team: str,
        title: str,
        *,
        description: str = "",
        state: str = "Todo",
        labels: Iterable[str] = (),
    ) -> FakeIssue:
        """An issue in team ``team`` (a key); labels are found by name (team first, then workspace)
        and created on the team when missing."""
        with self.lock:
            t = self.team(team)
            t.issue_count += 1
            label_ids = [self._label_for(t, name).id for name in labels]
            issue = FakeIssue(
                id=_new_id(),
                team_id=t.id,
                number=t.issue_count,
                identifier=f"{t.key}-{t.issue_count}",
                title=title,
                description=description,
                state_id=self.state(team, state).id,
                label_ids=label_ids,
                seq=self._next_seq(),
            )
            self.issues[issue.id] = issue
            return issue

    def add_relation(self, issue: str, related: str, *, type: str = "blocks") -> FakeRelation:
        """A relation from ``issue`` to ``related`` (identifiers): ``add_relation("ENG-1", "ENG-2")``
        is "ENG-1 blocks ENG-2", which ENG-2 sees in its ``inverseRelations``."""
        if type not in ("blocks", "duplicate", "related", "similar"):
            raise ValueError(f"not an IssueRelationType: {type!r}")
        with self.lock:
            relation = FakeRelation(_new_id(), type, self.issue(issue).id, self.issue(related).id)
            self.relations.append(relation)
            return relation

    def _label_for(self, team: FakeTeam, name: str) -> FakeLabel:
        for team_id in (team.id, None):
            for label in self.labels.values():
                if label.name == name and label.team_id == team_id:
                    return label
        return self.add_label(name, team=team.key)

    def issue(self, identifier: str) -> FakeIssue:
        with self.lock:
            found = self._find_issue(identifier)
            if found is None:
                raise KeyError(identifier)
            return found

    def issue_labels(self, identifier: str) -> list[str]:
        with self.lock:
            return [self.labels[i].name for i in self.issue(identifier).label_ids]

    def issue_state(self, identifier: str) -> str:
        with self.lock:
            return self.states[self.issue(identifier).state_id].name

    def comments_on(self, identifier: str) -> list[str]:
        with self.lock:
            issue = self.issue(identifier)
            return [c.body for c in self.comments if c.issue_id == issue.id]

    def _find_issue(self, ref: Any) -> FakeIssue | None:
        if not isinstance(ref, str):
            return None
        if ref in self.issues:
            return self.issues[ref]
        upper = ref.upper()
        return next((i for i in self.issues.values() if i.identifier == upper), None)

    # --- objects as GraphQL sees them -------------------------------------------------------------
    def _team_obj(self, team: FakeTeam | None) -> dict[str, Any] | None:
        if team is None:
            return None
        return {"__typename": "Team", "id": team.id, "key": team.key, "name": team.name}

    def _state_obj(self, state: FakeState) -> dict[str, Any]:
        return {
            "__typename": "WorkflowState",
            "id": state.id,
            "name": state.name,
            "type": state.type,
            "position": state.position,
            "color": "#e2e2e2",
            "team": self._team_obj(self.teams[state.team_id]),
        }

    def _label_obj(self, label: FakeLabel) -> dict[str, Any]:
        return {
            "__typename": "IssueLabel",
            "id": label.id,
            "name": label.name,
            "color": label.color,
            "isGroup": False,
            "team": self._team_obj(self.teams.get(label.team_id)) if label.team_id else None,
        }

    def _issue_obj(self, issue: FakeIssue, *, relations: bool = True) -> dict[str, Any]:
        """The issue as GraphQL sees it; the issues inside its relations are shown without their
        own relations (one level deep, enough for the queries ao sends)."""
        team = self.teams[issue.team_id]
        slug = _slug(issue.title)
        comments = [c for c in self.comments if c.issue_id == issue.id]
        out = {
            "__typename": "Issue",
            "id": issue.id,
            "identifier": issue.identifier,
            "number": issue.number,
            "title": issue.title,
            "description": issue.description or None,
            "url": f"https://linear.app/{self.organization}/issue/{issue.identifier}/{slug}",
            "branchName": f"ao/{issue.identifier.lower()}-{slug}",
            "priority": 0,
            "state": self._state_obj(self.states[issue.state_id]),
            "team": self._team_obj(team),
            "labels": self._connection(
                [self._label_obj(self.labels[i]) for i in issue.label_ids], "IssueLabel"
            ),
            "comments": self._connection([self._comment_obj(c) for c in comments], "Comment"),
        }
        if relations:
            out["relations"] = self._connection(
                [self._relation_obj(r) for r in self.relations if r.issue_id == issue.id], "IssueRelation"
            )
            out["inverseRelations"] = self._connection(
                [self._relation_obj(r) for r in self.relations if r.related_issue_id == issue.id],
                "IssueRelation",
            )
        return out

    def _relation_obj(self, relation: FakeRelation) -> dict[str, Any]:
        return {
            "__typename": "IssueRelation",
            "id": relation.id,
            "type": relation.type,
            "issue": self._issue_obj(self.issues[relation.issue_id], relations=False),
            "relatedIssue": self._issue_obj(self.issues[relation.related_issue_id], relations=False),
        }

    def _comment_obj(self, comment: FakeComment) -> dict[str, Any]:
        issue = self.issues[comment.issue_id]
        return {
            "__typename": "Comment",
            "id": comment.id,
            "body": comment.body,
            "url": f"https://linear.app/{self.organization}/issue/{issue.identifier}#comment-{comment.id[:8]}",
        }

    @staticmethod
    def _connection(
        nodes: list[dict[str, Any]], typename: str, *, first: Any = None, after: Any = None
    ) -> dict[str, Any]:
        start = 0
        if after is not None:
            ids = [n["id"] for n in nodes]
            if after not in ids:
                raise _invalid("Invalid cursor")
            start = ids.index(after) + 1
        size = 50 if first is None else first
        if not isinstance(size, int) or size < 0 or size > 250:
            raise _invalid("first must be between 0 and 250")
        page = nodes[start : start + size]
        return {
            "__typename": f"{typename}Connection",
            "nodes": page,
            "edges": [{"__typename": f"{typename}Edge", "node": n, "cursor": n["id"]} for n in page],
            "pageInfo": {
                "__typename": "PageInfo",
                "hasNextPage": start + size < len(nodes),
                "hasPreviousPage": start > 0,
                "startCursor": page[0]["id"] if page else None,
                "endCursor": page[-1]["id"] if page else None,
            },
        }

    # --- resolvers (top-level fields) -------------------------------------------------------------
    def _resolve(self, kind: str, name: str, args: dict[str, Any]) -> Any:
        resolver = RESOLVERS.get((kind, name))
        if resolver is None:
            root = "Query" if kind == "query" else "Mutation"
            raise GraphQLValidationError(f'Cannot query field "{name}" on type "{root}".')
        return resolver(self, **args)

    def q_viewer(self) -> dict[str, Any]:
        return {"__typename": "User", "id": "user-ao", "name": "ao bot", "email": "ao@example.invalid"}

    def q_issue(self, id: str) -> dict[str, Any]:
        issue = self._find_issue(id)
        if issue is None:
            raise _not_found("Issue")
        return self._issue_obj(issue)

    def q_issues(self, filter: Any = None, first: Any = None, after: Any = None, **_: Any) -> dict[str, Any]:
        check_filter("IssueFilter", filter)
        ordered = sorted(self.issues.values(), key=lambda i: i.seq, reverse=True)  # newest first
        objs = [self._issue_obj(i) for i in ordered]
        objs = [o for o in objs if matches("IssueFilter", filter, o)]
        return self._connection(objs, "Issue", first=first, after=after)

    def q_teams(self, filter: Any = None, first: Any = None, after: Any = None, **_: Any) -> dict[str, Any]:
        check_filter("TeamFilter", filter)
        objs = [o for o in map(self._team_obj, self.teams.values()) if matches("TeamFilter", filter, o)]
        return self._connection(objs, "Team", first=first, after=after)

    def q_team(self, id: str) -> dict[str, Any]:
        team = self.teams.get(id) or next((t for t in self.teams.values() if t.key == id), None)
        if team is None:
            raise _not_found("Team")
        return self._team_obj(team)

    def q_workflow_states(
        self, filter: Any = None, first: Any = None, after: Any = None, **_: Any
    ) -> dict[str, Any]:
        check_filter("WorkflowStateFilter", filter)
        states = sorted(self.states.values(), key=lambda s: (s.team_id, s.position))
        objs = [o for o in map(self._state_obj, states) if matches("WorkflowStateFilter", filter, o)]
        return self._connection(objs, "WorkflowState", first=first, after=after)

    def q_issue_labels(
        self, filter: Any = None, first: Any = None, after: Any = None, **_: Any
    ) -> dict[str, Any]:
        objs = [
            o for o in map(self._label_obj, self.labels.values()) if matches("IssueLabelFilter", filter, o)
        ]
        return self._connection(objs, "IssueLabel", first=first, after=after)

    def m_comment_create(self, input: dict[str, Any]) -> dict[str, Any]:
        _require_keys(input, {"issueId", "body"}, "CommentCreateInput", optional={"id", "parentId"})
        issue = self._find_issue(input["issueId"])
        if issue is None:
            raise _not_found("Issue")
        if not str(input["body"]).strip():
            raise _invalid("Argument Validation Error - body should not be empty")
        comment = FakeComment(_new_id(), issue.id, input["body"], self._next_seq())
        self.comments.append(comment)
        return {
            "__typename": "CommentPayload",
            "success": True,
            "lastSyncId": comment.seq,
            "comment": self._comment_obj(comment),
        }

    def m_issue_update(self, id: str, input: dict[str, Any]) -> dict[str, Any]:
        _require_keys(
            input,
            set(),
            "IssueUpdateInput",
            optional={"title", "description", "stateId", "labelIds", "addedLabelIds", "removedLabelIds"},
        )
        issue = self._find_issue(id)
        if issue is None:
            raise _not_found("Issue")
        if "stateId" in input:
            state = self.states.get(input["stateId"])
            if state is None:
                raise _not_found("WorkflowState")
            if state.team_id != issue.team_id:
                raise _invalid("Invalid input: the workflow state does not belong to the issue's team")
        label_ids = list(issue.label_ids)
        if "labelIds" in input:
            label_ids = list(dict.fromkeys(input["labelIds"] or []))
        label_ids += [i for i in (input.get("addedLabelIds") or []) if i not in label_ids]
        label_ids = [i for i in label_ids if i not in (input.get("removedLabelIds") or [])]
        for label_id in label_ids:
            label = self.labels.get(label_id)
            if label is None:
                raise _not_found("IssueLabel")
            if label.team_id not in (None, issue.team_id):
                raise _invalid("Invalid input: label does not belong to the issue's team")
        # all checks passed: apply
        if "stateId" in input:
            issue.state_id = input["stateId"]
        issue.label_ids = label_ids
        if "title" in input:
            issue.title = input["title"]
        if "description" in input:
            issue.description = input["description"] or ""
        return {
            "__typename": "IssuePayload",
            "success": True,
            "lastSyncId": self._next_seq(),
            "issue": self._issue_obj(issue),
        }

    def m_issue_label_create(self, input: dict[str, Any]) -> dict[str, Any]:
        _require_keys(
            input, {"name"}, "IssueLabelCreateInput", optional={"teamId", "color", "description", "id"}
        )
        team_id = input.get("teamId")
        if team_id is not None and team_id not in self.teams:
            raise _not_found("Team")
        if any(
            lb.name.casefold() == input["name"].casefold() and lb.team_id == team_id
            for lb in self.labels.values()
        ):
            raise _invalid("Duplicate label name")
        label = FakeLabel(
            input.get("id") or _new_id(), input["name"], team_id, input.get("color") or "#bec2c8"
        )
        self.labels[label.id] = label
        return {
            "__typename": "IssueLabelPayload",
            "success": True,
            "lastSyncId": self._next_seq(),
            "issueLabel": self._label_obj(label),
        }

    def m_issue_create(self, input: dict[str, Any]) -> dict[str, Any]:
        _require_keys(
            input, {"teamId"}, "IssueCreateInput", optional={"title", "description", "stateId", "labelIds"}
        )
        team = self.teams.get(input["teamId"])
        if team is None:
            raise _not_found("Team")
        if not (input.get("title") or "").strip():
            raise _invalid("Argument Validation Error - title should not be empty")
        state_id = input.get("stateId") or next(
            s.id
            for s in sorted(self.states.values(), key=lambda s: s.position)
            if s.team_id == team.id and s.type == "unstarted"
        )
        for label_id in input.get("labelIds") or []:
            if label_id not in self.labels:
                raise _not_found("IssueLabel")
        team.issue_count += 1
        issue = FakeIssue(
            id=_new_id(),
            team_id=team.id,
            number=team.issue_count,
            identifier=f"{team.key}-{team.issue_count}",
            title=input["title"],
            description=input.get("description") or "",
            state_id=state_id,
            label_ids=list(dict.fromkeys(input.get("labelIds") or [])),
            seq=self._next_seq(),
        )
        self.issues[issue.id] = issue
        return {
            "__typename": "IssuePayload",
            "success": True,
            "lastSyncId": issue.seq,
            "issue": self._issue_obj(issue),
        }

    # --- one request ------------------------------------------------------------------------------
    def rate_headers(self) -> dict[str, str]:
        reset_ms = int((time.time() + 3600) * 1000)
        return {
            "X-RateLimit-Requests-Limit": str(self.rate_limit),
            "X-RateLimit-Requests-Remaining": str(max(self.rate_remaining, 0)),
            "X-RateLimit-Requests-Reset": str(reset_ms),
        }

    def handle(self, record: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        """Answer one recorded request: (status, extra headers, body)."""
        with self.lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.status is not None:
            return self._fault_response(fault)

        if record.method != "POST":
            return 405, {"Allow": "POST"}, _errors_body("Method not allowed", code="BAD_REQUEST")
        if record.path.split("?")[0] != self.path:
            return 404, {}, b"Not Found"
        auth = record.headers.get("authorization")
        if auth != self.api_key:
            return self._auth_failure(auth)

        with self.lock:
            self.rate_remaining -= 1
        if "application/json" not in record.headers.get("content-type", ""):
            return 400, {}, _errors_body("Must provide query string.", code="BAD_USER_INPUT")
        try:
            payload = json.loads(record.body)
        except ValueError:
            return 400, {}, _errors_body("Unexpected token in JSON body", code="BAD_REQUEST")
        record.payload = payload
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return 400, {}, _errors_body("Must provide query string.", code="BAD_USER_INPUT")
        variables = payload.get("variables") or {}
        if not isinstance(variables, dict):
            return 400, {}, _errors_body("Variables must be an object.", code="BAD_USER_INPUT")
        record.variables = variables
        try:
            doc = parse_document(payload["query"])
        except GraphQLSyntaxError as exc:
            return 400, {}, _errors_body(str(exc), code="GRAPHQL_PARSE_FAILED", type_="graphql error")
        except GraphQLValidationError as exc:
            return 400, {}, _errors_body(str(exc), code="GRAPHQL_VALIDATION_FAILED", type_="graphql error")
        record.string_literals = tuple(doc.string_literals)
        op = self._pick_operation(doc, payload.get("operationName"))
        if isinstance(op, tuple):
            return op
        record.operation, record.operation_name = op.kind, op.name
        record.fields = tuple(sel.name for sel in op.selections)
        try:
            self._check_variables(op, variables)
        except GraphQLValidationError as exc:
            return 400, {}, _errors_body(str(exc), code="GRAPHQL_VALIDATION_FAILED", type_="graphql error")
        return self._execute(op, variables)

    def _pick_operation(self, doc: Document, name: Any) -> Operation | tuple[int, dict[str, str], bytes]:
        if name:
            found = [op for op in doc.operations if op.name == name]
            if not found:
                return 400, {}, _errors_body(f'Unknown operation named "{name}".', code="BAD_USER_INPUT")
            return found[0]
        if len(doc.operations) > 1:
            return (
                400,
                {},
                _errors_body(
                    "Must provide operation name if query contains multiple operations.",
                    code="BAD_USER_INPUT",
                ),
            )
        if doc.operations[0].kind == "subscription":
            return 400, {}, _errors_body("Subscriptions are not supported over HTTP.", code="BAD_USER_INPUT")
        return doc.operations[0]

    @staticmethod
    def _check_variables(op: Operation, variables: dict[str, Any]) -> None:
        for used in _selection_vars(op.selections):
            if used not in op.variables:
                where = f' by operation "{op.name}"' if op.name else ""
                raise GraphQLValidationError(f'Variable "${used}" is not defined{where}.')
        for name, (typ, default) in op.variables.items():
            if typ.endswith("!") and variables.get(name, default) is None:
                raise GraphQLValidationError(f'Variable "${name}" of required type "{typ}" was not provided.')

    def _execute(self, op: Operation, variables: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        full = {name: variables.get(name, default) for name, (_, default) in op.variables.items()}
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for sel in op.selections:
            args = _substitute(sel.args, full)
            try:
                with self.lock:
                    value = self._resolve(op.kind, sel.name, args)
                    data[sel.key] = _project(value, sel, [sel.key])
            except _Error as exc:
                errors.append(
                    {
                        "message": str(exc),
                        "path": [sel.key],
                        "locations": [{"line": 1, "column": 1}],
                        "extensions": exc.extensions,
                    }
                )
            except (GraphQLValidationError, TypeError) as exc:
                message = str(exc)
                if isinstance(exc, TypeError):  # an argument the field does not take
                    message = f'Unknown or invalid argument on field "{sel.name}": {exc}'
                return 400, {}, _errors_body(message, code="GRAPHQL_VALIDATION_FAILED", type_="graphql error")
        if errors:
            # Linear's top-level fields are non-null: one failing nulls the whole result.
            return 200, {}, json.dumps({"errors": errors, "data": None}).encode()
        return 200, {}, json.dumps({"data": data}).encode()

    def _auth_failure(self, auth: str | None) -> tuple[int, dict[str, str], bytes]:
        if auth and auth.lower().startswith("bearer ") and auth[7:] == self.api_key:
            message = (
                "It looks like you're trying to use an API key as a Bearer token. "
                "Remove the Bearer prefix from the Authorization header."
            )
        else:
            message = "Authentication required, not authenticated"
        return (
            self.auth_failure_status,
            {},
            _errors_body(
                message,
                code="AUTHENTICATION_ERROR",
                type_="authentication error",
                presentable="You need to authenticate to access this operation.",
            ),
        )

    def _fault_response(self, fault: Fault) -> tuple[int, dict[str, str], bytes]:
        status = fault.status or 500
        headers: dict[str, str] = {}
        if fault.body is not None:
            return status, headers, fault.body
        if status == 429:
            with self.lock:
                self.rate_remaining = 0
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            return (
                status,
                headers,
                _errors_body(
                    "Rate limit exceeded",
                    code="RATELIMITED",
                    type_="ratelimited",
                    presentable="You've exceeded the API rate limit. Please wait and try again.",
                ),
            )
        if status in (400, 401):
            return (
                status,
                headers,
                _errors_body(
                    "Authentication required, not authenticated",
                    code="AUTHENTICATION_ERROR",
                    type_="authentication error",
                    presentable="You need to authenticate to access this operation.",
                ),
            )
        if status == 403:
            return (
                status,
                headers,
                _errors_body(
                    "Forbidden", code="FORBIDDEN", type_="forbidden", presentable="You don't have access."
                ),
            )
        # 5xx from the edge: an HTML page, not GraphQL
        html = f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
        return status, {"Content-Type": "text/html"}, html.encode()


def _project(value: Any, sel: Selection, path: list[Any]) -> Any:
    """Keep only the selected fields of ``value``, renamed by alias, like a GraphQL executor."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_project(v, sel, [*path, i]) for i, v in enumerate(value)]
    if isinstance(value, dict):
        typename = value.get("__typename", "Object")
        if sel.selections is None:
            raise GraphQLValidationError(
                f'Field "{sel.name}" of type "{typename}" must have a selection of subfields.'
            )
        out = {}
        for sub in sel.selections:
            if sub.name == "__typename":
                out[sub.key] = typename
                continue
            if sub.name not in value:
                raise GraphQLValidationError(f'Cannot query field "{sub.name}" on type "{typename}".')
            out[sub.key] = _project(value[sub.name], sub, [*path, sub.key])
        return out
    if sel.selections is not None:
        raise GraphQLValidationError(f'Field "{sel.name}" must not have a selection since it is a scalar.')
    return value


def _require_keys(obj: Any, required: set[str], typename: str, *, optional: set[str] = frozenset()) -> None:
    if not isinstance(obj, dict):
        raise GraphQLValidationError(f'Expected type "{typename}" to be an object.')
    for key in obj:
        if key not in required | set(optional):
            raise GraphQLValidationError(f'Field "{key}" is not defined by type "{typename}".')
    for key in required:
        if obj.get(key) is None:
            raise GraphQLValidationError(f'Field "{typename}.{key}" of required type was not provided.')


def _errors_body(
    message: str, *, code: str, type_: str = "invalid input", presentable: str | None = None
) -> bytes:
    return json.dumps(
        {
            "errors": [
                {
                    "message": message,
                    "extensions": {
                        "type": type_,
                        "code": code,
                        "userError": True,
                        "userPresentableMessage": presentable or message,
                    },
                }
            ]
        }
    ).encode()


RESOLVERS: dict[tuple[str, str], Callable[..., Any]] = {
    ("query", "viewer"): FakeLinear.q_viewer,
    ("query", "issue"): FakeLinear.q_issue,
    ("query", "issues"): FakeLinear.q_issues,
    ("query", "team"): FakeLinear.q_team,
    ("query", "teams"): FakeLinear.q_teams,
    ("query", "workflowStates"): FakeLinear.q_workflow_states,
    ("query", "issueLabels"): FakeLinear.q_issue_labels,
    ("mutation", "commentCreate"): FakeLinear.m_comment_create,
    ("mutation", "issueUpdate"): FakeLinear.m_issue_update,
    ("mutation", "issueLabelCreate"): FakeLinear.m_issue_label_create,
    ("mutation", "issueCreate"): FakeLinear.m_issue_create,
}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLinear
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/_fake/"):
            self._control(body)
            return
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        with self.fake.lock:
            self.fake.requests.append(record)
        status, headers, payload = self.fake.handle(record)
        record.status = status
        try:
            self.send_response(status)
            headers = {"Content-Type": "application/json; charset=utf-8", **headers}
            for name, value in {**self.fake.rate_headers(), **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _control(self, body: bytes) -> None:
        """The fake run as a process: a test adds issues and reads them back (the module's docstring)."""
        fake = self.fake
        op, _, raw_query = self.path[len("/_fake/") :].partition("?")
        args = json.loads(body) if body else {}
        args.update({k: v[0] for k, v in urllib.parse.parse_qs(raw_query).items()})
        status, result = 200, {}
        try:
            if op == "issue" and self.command == "POST":
                issue = fake.add_issue(
                    args["team"], args["title"], description=args.get("description", ""),
                    state=args.get("state", "Todo"), labels=args.get("labels", ()),
                )  # fmt: skip
                result = {"identifier": issue.identifier}
            elif op == "issue" and self.command == "GET":
                result = {"state": fake.issue_state(args["id"]), "labels": fake.issue_labels(args["id"]),
                          "comments": fake.comments_on(args["id"])}  # fmt: skip
            else:
                status, result = 404, {"message": f"no control {self.command} {op}"}
        except KeyError as exc:
            status, result = 404, {"message": f"not found: {exc}"}
        data = json.dumps(result).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = _serve
    do_GET = _serve
    do_PUT = _serve


def main() -> None:
    """Run the fake as its own process until interrupted (see the module's docstring)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.linear")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="lin_api_fake_0123456789abcdef")
    parser.add_argument("--team", action="append", default=[], help="a team's key (repeatable)")
    args = parser.parse_args()
    fake = FakeLinear(api_key=args.api_key, port=args.port)
    for key in args.team:
        fake.add_team(key)
    fake.start()
    serve_until_interrupted(fake._server.server_address[1], fake.stop)  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
