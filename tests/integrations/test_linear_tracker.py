"""The `linear` tracker, through its real plugin code, against the local Linear fake over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import integrations.tracker.linear as linear_module
from integrations.base import IssueNotFound, PermanentIntegrationError, TransientIntegrationError
from integrations.records import Issue
from integrations.registry import BUILTIN_PLUGIN_MODULES, ConfigurationError, trackers
from integrations.tracker.linear import LinearRateLimited, LinearTracker
from tests.fakes.linear import FakeLinear

KEY_ENV = "AO_TEST_LINEAR_API_KEY"


@pytest.fixture
def linear(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLinear]:
    with FakeLinear() as fake:
        fake.add_team("ENG", "Engineering")
        monkeypatch.setenv(KEY_ENV, fake.api_key)
        yield fake


def tracker_for(fake: FakeLinear, **settings: Any) -> LinearTracker:
    return trackers.create(
        "linear", {"team": "ENG", "api_url": fake.url, "api_key_env": KEY_ENV, "timeout": 2, **settings}
    )


def raw_post(fake: FakeLinear, payload: Any, *, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """A hand-made request, for checking the fake itself."""
    request = urllib.request.Request(
        fake.url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# --- configuration -------------------------------------------------------------------------------
def test_registered_as_linear_with_defaults() -> None:
    assert "integrations.tracker.linear" in BUILTIN_PLUGIN_MODULES
    assert trackers.get("linear") is LinearTracker

    config = trackers.validate_settings("linear", {"team": " eng "})

    assert (config.team, config.api_url, config.api_key_env) == (
        "ENG",
        "https://api.linear.app/graphql",
        "LINEAR_API_KEY",
    )
    assert (config.in_progress_state, config.done_state) == ("In Progress", "Done")


@pytest.mark.parametrize(
    "settings",
    [{}, {"team": "EN G"}, {"team": "ENG", "api_url": "file:///etc/passwd"}, {"team": "ENG", "api_key": "x"}],
)
def test_invalid_settings_are_configuration_errors(settings: dict) -> None:
    with pytest.raises(ConfigurationError):
        trackers.validate_settings("linear", settings)


# --- reads ---------------------------------------------------------------------------------------
def test_get_issue_by_identifier_and_by_bare_number(linear: FakeLinear) -> None:
    linear.add_label("bug")
    linear.add_issue(
        "ENG", "Fix login", description="It 500s", state="In Progress", labels=["bug", "agent:backlog"]
    )
    tracker = tracker_for(linear)

    issue = tracker.get_issue("ENG-1")

    assert issue == Issue(
        ref="ENG-1",
        title="Fix login",
        body="It 500s",
        url="https://linear.app/ao-test/issue/ENG-1/fix-login",
        labels=("bug", "agent:backlog"),
        branch_name="ao/eng-1-fix-login",
        state="in_progress",  # Linear's "started" type, whatever the team calls it
        state_name="In Progress",
    )
    assert tracker.get_issue("1") == issue
    assert tracker.get_issue("#1") == issue
    assert tracker.get_issue("eng-1") == issue
    assert [r.variables for r in linear.requests] == [{"id": "ENG-1"}] * 4
    assert all(r.headers["authorization"] == linear.api_key for r in linear.requests)
    assert tracker.rate_limit_remaining == linear.rate_limit - 4


def test_unknown_issue_is_issue_not_found(linear: FakeLinear) -> None:
    tracker = tracker_for(linear)

    with pytest.raises(IssueNotFound, match="ENG-99"):
        tracker.get_issue("99")
    with pytest.raises(IssueNotFound, match="not a Linear issue identifier"):
        tracker.get_issue("fix the login page")

    assert linear.request_count == 1  # the junk ref never left the process
    body = json.loads(linear.requests[0].body)
    assert body["variables"] == {"id": "ENG-99"}


def test_another_teams_identifier_is_refused_before_asking_linear(linear: FakeLinear) -> None:
    """The API key may see every team; the project's tracker is one team. An identifier with
    another team's prefix is not an issue of this tracker, whatever the key can see."""
    linear.add_team("HR", "People")
    linear.add_issue("HR", "Confidential: salary review", description="names and numbers")
    linear.add_issue("ENG", "Fix login")
    tracker = tracker_for(linear)

    for call in (
        lambda: tracker.get_issue("HR-1"),
        lambda: tracker.get_issue("hr-1"),
        lambda: tracker.comment("HR-1", "hello"),
        lambda: tracker.set_labels("HR-1", add=["agent:working"]),
        lambda: tracker.mark_in_progress("HR-1"),
        lambda: tracker.close("HR-1"),
        lambda: tracker.blocked_by("HR-1"),
    ):
        with pytest.raises(IssueNotFound, match="HR-1 is not an issue of Linear team ENG"):
            call()

    assert linear.request_count == 0  # never left the process
    assert linear.comments_on("HR-1") == [] and linear.issue_labels("HR-1") == []
    assert linear.issue_state("HR-1") == "Todo"
    assert tracker.get_issue("ENG-1").title == "Fix login"


def test_another_teams_issue_by_uuid_is_refused_and_left_alone(linear: FakeLinear) -> None:
    """A UUID names no team: the issue Linear answers is checked to be the configured team's,
    before anything of it is returned or anything is written to it."""
    linear.add_team("HR", "People")
    secret = linear.add_issue("HR", "Confidential: salary review", description="names and numbers")
    mine = linear.add_issue("ENG", "Fix login")
    tracker = tracker_for(linear)

    for call in (
        lambda: tracker.get_issue(secret.id),
        lambda: tracker.comment(secret.id, "hello"),
        lambda: tracker.set_labels(secret.id, add=["agent:working"]),
        lambda: tracker.mark_in_progress(secret.id),
        lambda: tracker.blocked_by(secret.id),
    ):
        with pytest.raises(IssueNotFound, match="not found in Linear team ENG") as caught:
            call()
        assert "Confidential" not in str(caught.value) and "HR-1" not in str(caught.value)

    assert linear.mutations() == []
    assert linear.comments_on("HR-1") == [] and linear.issue_labels("HR-1") == []
    assert linear.issue_state("HR-1") == "Todo"
    assert tracker.get_issue(mine.id.upper()).ref == "ENG-1"


def test_list_issues_open_by_default_filtered_by_label_or_state(linear: FakeLinear) -> None:
    linear.add_team("OPS")
    linear.add_issue("ENG", "one", labels=["agent:backlog"])
    linear.add_issue("ENG", "two", state="In Progress")
    linear.add_issue("ENG", "three", state="Done", labels=["agent:backlog"])
    linear.add_issue("ENG", "four", state="Canceled")
    linear.add_issue("ENG", "five", state="Backlog", labels=["agent:backlog"])
    linear.add_issue("OPS", "other team", labels=["agent:backlog"])
    tracker = tracker_for(linear)

    assert [i.ref for i in tracker.list_issues()] == ["ENG-5", "ENG-2", "ENG-1"]
    assert [i.ref for i in tracker.list_issues(label="agent:backlog")] == ["ENG-5", "ENG-1"]
    assert [i.ref for i in tracker.list_issues(state="Done")] == ["ENG-3"]
    assert [i.ref for i in tracker.list_issues(label="agent:backlog", state="Backlog")] == ["ENG-5"]
    assert tracker.list_issues(label="no-such-label") == []
    assert linear.requests[1].variables["filter"] == {
        "team": {"key": {"eq": "ENG"}},
        "state": {"type": {"nin": ["completed", "canceled"]}},
        "labels": {"name": {"eq": "agent:backlog"}},
    }


def test_list_issues_pages_until_the_limit(linear: FakeLinear, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linear_module, "PAGE_SIZE", 2)
    for n in range(5):
        linear.add_issue("ENG", f"issue {n}")
    tracker = tracker_for(linear)

    assert [i.ref for i in tracker.list_issues(limit=5)] == ["ENG-5", "ENG-4", "ENG-3", "ENG-2", "ENG-1"]
    assert linear.request_count == 3
    assert [i.ref for i in tracker.list_issues(limit=3)] == ["ENG-5", "ENG-4", "ENG-3"]
    assert [r.variables["first"] for r in linear.requests[3:]] == [2, 1]


# --- writes --------------------------------------------------------------------------------------
def test_comment(linear: FakeLinear) -> None:
    linear.add_issue("ENG", "Fix login")
    tracker = tracker_for(linear)
    body = 'Working on it in ao-3: `"quoted"` } { $input\nsecond line'

    tracker.comment("ENG-1", body)

    assert linear.comments_on("ENG-1") == [body]
    (mutation,) = linear.mutations()
    assert mutation.fields == ("commentCreate",)
    assert mutation.variables == {"input": {"issueId": linear.issue("ENG-1").id, "body": body}}


def test_comment_on_unknown_issue_writes_nothing(linear: FakeLinear) -> None:
    with pytest.raises(IssueNotFound):
        tracker_for(linear).comment("ENG-7", "hello")

    assert linear.comments == []
    assert linear.mutations() == []


def test_set_labels_adds_existing_and_new_labels_and_removes(linear: FakeLinear) -> None:
    linear.add_team("OPS")
    linear.add_label("agent:backlog")  # workspace label
    linear.add_label("agent:in-progress", team="OPS")  # another team's label of the same name: unusable
    team_label = linear.add_label("agent:in-progress", team="ENG")
    linear.add_issue("ENG", "Fix login", labels=["bug", "agent:backlog"])
    tracker = tracker_for(linear)

    tracker.set_labels("ENG-1", add=["agent:in-progress", "ao:new"], remove=["agent:backlog", "absent"])

    assert linear.issue_labels("ENG-1") == ["bug", "agent:in-progress", "ao:new"]
    assert linear.issue("ENG-1").label_ids[1] == team_label.id
    created = [lb for lb in linear.labels.values() if lb.name == "ao:new"]
    assert [(lb.team_id) for lb in created] == [linear.team("ENG").id]
    assert [m.fields for m in linear.mutations()] == [("issueLabelCreate",), ("issueUpdate",)]
    update = linear.mutations()[-1].variables["input"]
    assert set(update) == {"addedLabelIds", "removedLabelIds"}  # no read-modify-write of labelIds


def test_set_labels_with_nothing_to_change_sends_no_mutation(linear: FakeLinear) -> None:
    linear.add_issue("ENG", "Fix login", labels=["agent:backlog"])
    tracker = tracker_for(linear)

    tracker.set_labels("ENG-1", add=["agent:backlog"], remove=["not-there"])
    tracker.set_labels("ENG-1", add=["agent:backlog"], remove=["agent:backlog"])  # both: stays present

    assert linear.issue_labels("ENG-1") == ["agent:backlog"]
    assert linear.mutations() == []


def test_close_moves_to_done_state_once(linear: FakeLinear) -> None:
    linear.add_issue("ENG", "Fix login", state="In Progress")
    tracker = tracker_for(linear)

    tracker.close("ENG-1")
    tracker.close("ENG-1")

    assert linear.issue_state("ENG-1") == "Done"
    (mutation,) = linear.mutations()
    assert mutation.variables == {
        "id": linear.issue("ENG-1").id,
        "input": {"stateId": linear.state("ENG", "Done").id},
    }


def test_move_and_mark_in_progress_with_configured_state_names(linear: FakeLinear) -> None:
    linear.add_team("WEB", states=[("Queued", "unstarted"), ("Doing", "started"), ("Shipped", "completed")])
    linear.add_issue("WEB", "Landing page", state="Queued")
    tracker = tracker_for(linear, team="WEB", in_progress_state="Doing", done_state="Shipped")

    tracker.mark_in_progress("1")
    assert linear.issue_state("WEB-1") == "Doing"
    tracker.move("WEB-1", "queued")  # names match case-insensitively when nothing matches exactly
    assert linear.issue_state("WEB-1") == "Queued"
    tracker.close("WEB-1")
    assert linear.issue_state("WEB-1") == "Shipped"


def test_move_to_unknown_state_names_the_valid_ones_and_changes_nothing(linear: FakeLinear) -> None:
    linear.add_issue("ENG", "Fix login")
    tracker = tracker_for(linear)

    with pytest.raises(PermanentIntegrationError, match=r"no workflow state named 'Shipped'.*In Progress"):
        tracker.move("ENG-1", "Shipped")

    assert linear.issue_state("ENG-1") == "Todo"
    assert linear.mutations() == []


def test_create_issue(linear: FakeLinear) -> None:
    linear.add_label("agent:backlog")
    tracker = tracker_for(linear)

    issue = tracker.create_issue(title="  Add dark mode ", body="Please", labels=["agent:backlog"])

    assert (issue.ref, issue.title, issue.body, issue.labels, issue.state, issue.state_name) == (
        "ENG-1",
        "Add dark mode",
        "Please",
        ("agent:backlog",),
        "open",
        "Todo",
    )
    assert linear.issue_labels("ENG-1") == ["agent:backlog"]
    with pytest.raises(ValueError, match="title"):
        tracker.create_issue(title=" ")


# --- failures ------------------------------------------------------------------------------------
@pytest.mark.parametrize("auth_status", [400, 401])
def test_refused_key_is_permanent_and_never_echoed(
    linear: FakeLinear, monkeypatch: pytest.MonkeyPatch, auth_status: int
) -> None:
    linear.add_issue("ENG", "Fix login")
    linear.auth_failure_status = auth_status
    monkeypatch.setenv(KEY_ENV, "lin_api_wrong_key_do_not_print")

    with pytest.raises(PermanentIntegrationError, match="Linear refused the API key") as caught:
        tracker_for(linear).get_issue("ENG-1")

    assert not isinstance(caught.value, IssueNotFound)
    assert "lin_api_wrong_key" not in str(caught.value)
    assert KEY_ENV in str(caught.value)


def test_missing_key_is_permanent_and_sends_nothing(
    linear: FakeLinear, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)

    with pytest.raises(PermanentIntegrationError, match=KEY_ENV):
        tracker_for(linear).get_issue("ENG-1")

    assert linear.request_count == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(linear: FakeLinear, status: int) -> None:
    linear.add_issue("ENG", "Fix login")
    tracker = tracker_for(linear)
    linear.fail_next(status)

    with pytest.raises(TransientIntegrationError, match=f"HTTP {status}"):
        tracker.close("ENG-1")

    assert linear.issue_state("ENG-1") == "Todo"
    tracker.close("ENG-1")  # the retry goes through
    assert linear.issue_state("ENG-1") == "Done"


def test_rate_limit_is_transient_with_retry_after(linear: FakeLinear) -> None:
    linear.add_issue("ENG", "Fix login")
    tracker = tracker_for(linear)
    linear.fail_next(429, retry_after=30)

    with pytest.raises(LinearRateLimited, match="retry after 30s") as caught:
        tracker.comment("ENG-1", "hi")

    assert isinstance(caught.value, TransientIntegrationError)
    assert caught.value.retry_after == 30
    assert tracker.rate_limit_remaining == 0
    assert linear.comments == []


def test_401_from_the_edge_and_403_are_permanent(linear: FakeLinear) -> None:
    tracker = tracker_for(linear)
    linear.fail_next(401)
    with pytest.raises(PermanentIntegrationError, match=r"Linear refused the API key .*HTTP 401"):
        tracker.get_issue("ENG-1")
    linear.fail_next(403)
    with pytest.raises(PermanentIntegrationError, match=r"Linear refused the API key .*HTTP 403"):
        tracker.get_issue("ENG-1")


def test_internal_graphql_error_is_transient(linear: FakeLinear) -> None:
    body = {
        "data": None,
        "errors": [
            {
                "message": "Internal server error",
                "extensions": {"type": "internal error", "code": "INTERNAL_SERVER_ERROR"},
            }
        ],
    }
    linear.fail_next(200, body=json.dumps(body).encode())

    with pytest.raises(TransientIntegrationError, match="Internal server error"):
        tracker_for(linear).get_issue("ENG-1")


def test_other_missing_entities_are_permanent_not_issue_not_found(linear: FakeLinear) -> None:
    body = {
        "data": None,
        "errors": [
            {
                "message": "Entity not found: WorkflowState",
                "path": ["issueUpdate"],
                "extensions": {"type": "invalid input", "code": "INPUT_ERROR", "userError": True},
            }
        ],
    }
    linear.fail_next(200, body=json.dumps(body).encode())

    with pytest.raises(PermanentIntegrationError, match="Entity not found: WorkflowState") as caught:
        tracker_for(linear).get_issue("ENG-1")

    assert not isinstance(caught.value, IssueNotFound)


def test_slow_answer_is_transient(linear: FakeLinear) -> None:
    linear.add_issue("ENG", "Fix login")
    linear.delay_next(1.5)

    with pytest.raises(TransientIntegrationError, match=r"did not answer within 0\.3s"):
        tracker_for(linear, timeout=0.3).get_issue("ENG-1")


def test_unreachable_server_is_transient(linear: FakeLinear) -> None:
    url = linear.url
    linear.stop()

    with pytest.raises(TransientIntegrationError, match="could not reach Linear"):
        trackers.create("linear", {"team": "ENG", "api_url": url, "api_key_env": KEY_ENV}).get_issue("1")


# --- the wire ------------------------------------------------------------------------------------
def test_requests_are_json_graphql_with_user_input_only_in_variables(linear: FakeLinear) -> None:
    # Every value a person or agent supplies carries the marker "zq" and GraphQL-breaking characters.
    linear.add_issue("ENG", 'Title zq with "quotes" and } braces')
    tracker = tracker_for(linear)
    odd = 'label-zq "x" } { $y'

    tracker.get_issue("ENG-1")
    tracker.list_issues(label=odd, state='State-zq "z"')
    tracker.comment("ENG-1", 'Body-zq "with" } { $quotes')
    tracker.set_labels("ENG-1", add=[odd])
    tracker.move("ENG-1", "In Review")
    tracker.create_issue(title='New-zq "issue" }', body="{ $body-zq }")

    assert linear.request_count == 13
    for request in linear.requests:
        assert request.method == "POST"
        assert request.status == 200
        assert request.headers["content-type"] == "application/json"
        assert set(request.payload) == {"query", "variables"}
        assert isinstance(request.payload["variables"], dict)
        assert request.string_literals == ()  # no quoted value spliced into a document
        assert "zq" not in request.payload["query"]
        assert "ENG-1" not in request.payload["query"]
        assert "In Review" not in request.payload["query"]
    # the list, the comment, the label lookup and creation, the new issue
    assert sum("zq" in json.dumps(r.variables) for r in linear.requests) == 5
    assert linear.issue_labels("ENG-1") == [odd]
    assert linear.comments_on("ENG-1") == ['Body-zq "with" } { $quotes']


def test_fake_rejects_requests_without_the_right_authorization(linear: FakeLinear) -> None:
    query = {"query": "query { viewer { id } }"}

    assert raw_post(linear, query)[0] == 400
    assert (
        raw_post(linear, query, headers={"Authorization": "wrong"})[1]["errors"][0]["extensions"]["code"]
        == "AUTHENTICATION_ERROR"
    )
    status, body = raw_post(linear, query, headers={"Authorization": f"Bearer {linear.api_key}"})
    assert status == 400 and "Bearer" in body["errors"][0]["message"]
    assert raw_post(linear, query, headers={"Authorization": linear.api_key}) == (
        200,
        {"data": {"viewer": {"id": "user-ao"}}},
    )


def test_fake_validates_documents_like_a_graphql_server(linear: FakeLinear) -> None:
    auth = {"Authorization": linear.api_key}

    unknown_field = raw_post(linear, {"query": "query { issue(id: $id) { nope } }"}, headers=auth)
    undeclared = raw_post(linear, {"query": "query Q { issues(filter: $f) { nodes { id } } }"}, headers=auth)
    bad_filter = raw_post(
        linear,
        {
            "query": "query Q($f: IssueFilter) { issues(filter: $f) { nodes { id } } }",
            "variables": {"f": {"tema": {}}},
        },
        headers=auth,
    )
    aliased = raw_post(linear, {"query": "{ me: viewer { who: name } }"}, headers=auth)

    assert unknown_field[0] == 400 and "$id" in unknown_field[1]["errors"][0]["message"]
    assert undeclared[0] == 400 and 'Variable "$f" is not defined' in undeclared[1]["errors"][0]["message"]
    assert (
        bad_filter[0] == 400
        and '"tema" is not defined by type "IssueFilter"' in bad_filter[1]["errors"][0]["message"]
    )
    assert aliased == (200, {"data": {"me": {"who": "ao bot"}}})


# --- "blocked by" (issue relations of type "blocks") ----------------------------------------------
def test_blocked_by_reads_open_blocking_relations_pointing_at_the_issue(linear: FakeLinear) -> None:
    for title, state in [("schema", "In Progress"), ("old", "Done"), ("target", "Todo"), ("x", "Todo")]:
        linear.add_issue("ENG", title, state=state)
    linear.add_issue("ENG", "dropped", state="Canceled")
    linear.add_relation("ENG-1", "ENG-3")  # ENG-1 blocks ENG-3
    linear.add_relation("ENG-2", "ENG-3")  # done: no longer blocks
    linear.add_relation("ENG-5", "ENG-3")  # canceled: no longer blocks
    linear.add_relation("ENG-4", "ENG-3", type="related")
    linear.add_relation("ENG-3", "ENG-4")  # ENG-3 blocks ENG-4: not a blocker of ENG-3
    tracker = tracker_for(linear)

    assert tracker.blocked_by("ENG-3") == ["ENG-1"]
    assert tracker.blocked_by("4") == ["ENG-3"]
    assert tracker.blocked_by("eng-1") == []
    query = linear.requests[0].payload["query"]
    assert "inverseRelations" in query and linear.requests[0].variables == {"id": "ENG-3"}
    with pytest.raises(IssueNotFound, match="ENG-99"):
        tracker.blocked_by("ENG-99")


def test_fake_relations_have_both_directions(linear: FakeLinear) -> None:
    linear.add_issue("ENG", "a")
    linear.add_issue("ENG", "b")
    linear.add_relation("ENG-1", "ENG-2")
    query = """query Rel($id: String!) { issue(id: $id) {
      relations { nodes { type issue { identifier } relatedIssue { identifier } } }
      inverseRelations { nodes { type issue { identifier } relatedIssue { identifier } } } } }"""

    status, one = raw_post(linear, {"query": query, "variables": {"id": "ENG-1"}},
                           headers={"Authorization": linear.api_key})  # fmt: skip
    _, two = raw_post(linear, {"query": query, "variables": {"id": "ENG-2"}},
                      headers={"Authorization": linear.api_key})  # fmt: skip

    edge = {"type": "blocks", "issue": {"identifier": "ENG-1"}, "relatedIssue": {"identifier": "ENG-2"}}
    assert status == 200
    assert one["data"]["issue"] == {"relations": {"nodes": [edge]}, "inverseRelations": {"nodes": []}}
    assert two["data"]["issue"] == {"relations": {"nodes": []}, "inverseRelations": {"nodes": [edge]}}


def test_a_redirect_never_carries_the_api_key_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API URL answers with a redirect (a proxy, a wrong address): the key is not sent on to
    where it points, and the read fails plainly instead."""
    import http.server
    import threading

    seen: list[str | None] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(404)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    target = f"http://localhost:{elsewhere.server_address[1]}/graphql"

    class Redirects(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    redirects = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirects)
    for server in (elsewhere, redirects):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(KEY_ENV, "lin_api_secret_key")
    tracker = trackers.create(
        "linear",
        {"team": "ENG", "api_url": f"http://127.0.0.1:{redirects.server_address[1]}/graphql",
         "api_key_env": KEY_ENV, "timeout": 2},
    )  # fmt: skip
    try:
        with pytest.raises((PermanentIntegrationError, TransientIntegrationError)):
            tracker.get_issue("ENG-1")
    finally:
        for server in (elsewhere, redirects):
            server.shutdown()
    assert seen == []
