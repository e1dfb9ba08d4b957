"""The fake GitHub itself: wire format, auth, ETags, rate limits, faults, GraphQL, webhooks.

Raw HTTP (requests) and stock PyGithub talk to it, so the fake is checked independently of
ao's client.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests
from github import Auth, Github

from tests.fakes.github import FakeGitHub, parse_graphql, query_cost


@pytest.fixture
def gh():
    with FakeGitHub() as fake:
        yield fake


def _get(gh: FakeGitHub, path: str, **headers: str) -> requests.Response:
    return requests.get(
        gh.base_url + path,
        headers={"Authorization": f"token {gh.token}", **headers},
        timeout=5,
        allow_redirects=False,
    )


def _graphql(gh: FakeGitHub, query: str, variables: dict | None = None) -> dict:
    resp = requests.post(
        gh.graphql_url,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"bearer {gh.token}"},
        timeout=5,
    )
    assert resp.status_code == 200
    return resp.json()


def test_requires_a_known_token(gh: FakeGitHub) -> None:
    gh.add_repo("acme/widgets")
    for headers in ({}, {"Authorization": "token nope"}, {"Authorization": f"Basic {gh.token}"}):
        resp = requests.get(gh.base_url + "/repos/acme/widgets", headers=headers, timeout=5)
        assert resp.status_code == 401
        assert resp.json()["message"] == "Bad credentials"
    assert _get(gh, "/repos/acme/widgets").status_code == 200
    assert gh.counts["unauthenticated"] == 3
    assert gh.bucket("core").used == 1  # failed auth spends nothing


def test_rate_headers_etag_and_free_304(gh: FakeGitHub) -> None:
    gh.add_repo("acme/widgets")
    first = _get(gh, "/repos/acme/widgets")
    assert first.headers["X-RateLimit-Limit"] == "5000"
    assert first.headers["X-RateLimit-Remaining"] == "4999"
    assert first.headers["X-RateLimit-Used"] == "1"
    assert first.headers["X-RateLimit-Resource"] == "core"
    assert int(first.headers["X-RateLimit-Reset"]) > 0
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')

    second = _get(gh, "/repos/acme/widgets", **{"If-None-Match": etag})
    assert second.status_code == 304
    assert second.content == b""
    assert second.headers["X-RateLimit-Remaining"] == "4999"  # a 304 is free
    assert (gh.counts["rest"], gh.counts["304"]) == (1, 1)


def test_exhausted_core_budget_answers_403_with_zero_remaining(gh: FakeGitHub) -> None:
    gh.add_repo("acme/widgets")
    gh.set_remaining("core", 0, reset_in=120)
    resp = _get(gh, "/repos/acme/widgets")
    assert resp.status_code == 403
    assert resp.json()["message"].startswith("API rate limit exceeded")
    assert resp.headers["X-RateLimit-Remaining"] == "0"


def test_faults_secondary_limit_and_5xx(gh: FakeGitHub) -> None:
    gh.add_repo("acme/widgets")
    gh.fail(403, retry_after=7, path="/repos/acme/widgets")
    gh.fail(502)
    limited = _get(gh, "/repos/acme/widgets")
    assert limited.status_code == 403
    assert limited.headers["Retry-After"] == "7"
    assert "secondary rate limit" in limited.json()["message"]
    assert _get(gh, "/repos/acme/widgets").status_code == 502
    assert _get(gh, "/repos/acme/widgets").status_code == 200
    assert gh.counts["fault"] == 2


def test_stock_pygithub_reads_and_writes(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/widgets")
    pull = repo.add_pull("feat/login", title="Fix login")
    issue = repo.add_issue("Broken login", labels=["bug"])
    g = Github(
        base_url=gh.base_url,
        auth=Auth.Token(gh.token),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )

    remote = g.get_repo("acme/widgets")
    assert remote.full_name == "acme/widgets"
    pr = remote.get_pull(pull.number)
    assert (pr.title, pr.head.ref, pr.head.sha, pr.mergeable_state) == (
        "Fix login",
        "feat/login",
        pull.head_sha,
        "clean",
    )
    [listed] = list(remote.get_pulls(head="acme:feat/login"))
    assert listed.number == pull.number
    remote.get_issue(issue.number).create_comment("on it")
    assert [c.body for c in issue.comments] == ["on it"]
    assert [i.number for i in remote.get_issues(labels=["bug"])] == [issue.number]
    status = pr.merge(merge_method="squash", sha=pull.head_sha)
    assert status.merged is True
    assert (pull.merged, pull.state) == (True, "closed")


def test_merge_refusals(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/widgets")
    dirty = repo.add_pull("feat/a", mergeable_state="dirty")
    clean = repo.add_pull("feat/b")

    def merge(number: int, **body: str) -> requests.Response:
        return requests.put(
            f"{gh.base_url}/repos/acme/widgets/pulls/{number}/merge",
            json=body,
            headers={"Authorization": f"token {gh.token}"},
            timeout=5,
        )

    assert merge(dirty.number).status_code == 405
    assert merge(clean.number, sha="0" * 40).status_code == 409
    assert merge(clean.number, merge_method="octopus").status_code == 422
    assert not clean.merged


def test_job_log_redirects_to_an_unauthenticated_signed_url(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/widgets")
    pull = repo.add_pull("feat/a")
    check = repo.add_check_run(pull.head_sha, "tests", conclusion="failure", log="line 1\n##[error]boom\n")
    resp = _get(gh, f"/repos/acme/widgets/actions/jobs/{check.id}/logs")
    assert resp.status_code == 302
    blob = requests.get(resp.headers["Location"], timeout=5)  # no Authorization
    assert blob.text == "line 1\n##[error]boom\n"
    forged = requests.get(resp.headers["Location"].replace("sig=", "sig=x"), timeout=5)
    assert forged.status_code == 403

    gh.logs_redirect = False
    assert _get(gh, f"/repos/acme/widgets/actions/jobs/{check.id}/logs").text == "line 1\n##[error]boom\n"


def test_graphql_executes_aliases_fragments_and_reports_cost(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/widgets")
    pull = repo.add_pull("feat/a", mergeable_state="behind")
    repo.add_check_run(pull.head_sha, "tests", conclusion="failure")
    repo.add_status(pull.head_sha, "ci/legacy", "pending")
    gh.add_thread(pull, body="nit", author="bot-x[bot]", bot=True)
    query = """
    query($owner: String!, $name: String!, $n: Int!) {
      rateLimit { cost remaining resetAt limit }
      repository(owner: $owner, name: $name) {
        a: pullRequest(number: $n) { ...F }
        missing: pullRequest(number: 999) { number }
      }
    }
    fragment F on PullRequest {
      number mergeable mergeStateStatus
      commits(last: 1) { nodes { commit { statusCheckRollup { state contexts(first: 10) { nodes {
        __typename ... on CheckRun { name conclusion databaseId } ... on StatusContext { context state } } } } } } }
      reviewThreads(first: 10) { nodes { isResolved comments(first: 1) { nodes { body author { login __typename } } } } }
    }"""
    body = _graphql(gh, query, {"owner": "acme", "name": "widgets", "n": pull.number})
    pr = body["data"]["repository"]["a"]
    assert (pr["number"], pr["mergeable"], pr["mergeStateStatus"]) == (pull.number, "MERGEABLE", "BEHIND")
    rollup = pr["commits"]["nodes"][0]["commit"]["statusCheckRollup"]
    assert rollup["state"] == "FAILURE"
    assert [c["__typename"] for c in rollup["contexts"]["nodes"]] == ["CheckRun", "StatusContext"]
    assert pr["reviewThreads"]["nodes"][0]["comments"]["nodes"][0]["author"] == {
        "login": "bot-x[bot]",
        "__typename": "Bot",
    }
    assert body["data"]["repository"]["missing"] is None
    assert body["errors"][0]["type"] == "NOT_FOUND"
    assert body["errors"][0]["path"] == ["repository", "missing"]
    assert body["data"]["rateLimit"]["cost"] == 1
    assert body["data"]["rateLimit"]["remaining"] == 4999
    assert gh.graphql_points == 1


def test_graphql_unknown_field_fails_the_whole_query(gh: FakeGitHub) -> None:
    gh.add_repo("acme/widgets")
    body = _graphql(gh, '{ repository(owner: "acme", name: "widgets") { noSuchField } }')
    assert "data" not in body
    assert body["errors"][0]["message"] == "Field 'noSuchField' doesn't exist on type 'Repository'"


def test_graphql_cost_follows_githubs_formula() -> None:
    doc = parse_graphql(
        '{ repository(owner: "a", name: "b") { pullRequests(first: 100) { nodes { '
        "reviewThreads(first: 50) { nodes { comments(first: 10) { nodes { body } } } } } } } }"
    )
    # 1 (PRs) + 100 (threads per PR) + 100*50 (comments per thread) = 5101 requests -> 51 points
    assert query_cost(doc, {}) == 51


def test_graphql_rate_limited_when_points_run_out(gh: FakeGitHub) -> None:
    gh.add_repo("acme/widgets")
    gh.set_remaining("graphql", 0)
    body = _graphql(gh, '{ repository(owner: "acme", name: "widgets") { name } }')
    assert body["errors"][0]["type"] == "RATE_LIMITED"


def test_enterprise_paths(gh: FakeGitHub) -> None:
    with FakeGitHub(enterprise=True) as ghe:
        ghe.add_repo("acme/widgets")
        assert ghe.base_url.endswith("/api/v3") and ghe.graphql_url.endswith("/api/graphql")
        assert _get(ghe, "/repos/acme/widgets").status_code == 200
        outside = requests.get(
            ghe.origin + "/repos/acme/widgets", headers={"Authorization": f"token {ghe.token}"}, timeout=5
        )
        assert outside.status_code == 404
        assert _graphql(ghe, '{ repository(owner: "acme", name: "widgets") { nameWithOwner } }')["data"] == {
            "repository": {"nameWithOwner": "acme/widgets"}
        }


def test_signed_webhooks_from_state(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/widgets")
    pull = repo.add_pull("feat/a")
    check = repo.add_check_run(pull.head_sha, "tests", conclusion="failure")
    status = repo.add_status(pull.head_sha, "ci/legacy", "error")

    for event, kwargs in (
        ("ping", {}),
        ("pull_request", {"number": pull.number, "action": "opened"}),
        ("pull_request_review", {"number": pull.number, "state": "changes_requested"}),
        ("check_run", {"check_id": check.id}),
        ("check_suite", {"sha": pull.head_sha}),
        ("status", {"status_id": status.id}),
        ("workflow_job", {"check_id": check.id}),
        ("push", {"ref": "refs/heads/feat/a", "after": pull.head_sha}),
    ):
        delivery = gh.webhook(event, secret="s3cret", **kwargs)
        expected = "sha256=" + hmac.new(b"s3cret", delivery.body, hashlib.sha256).hexdigest()
        assert delivery.headers["X-Hub-Signature-256"] == expected
        assert delivery.headers["X-GitHub-Event"] == event
        assert delivery.headers["X-GitHub-Delivery"]
        payload = json.loads(delivery.body)
        assert payload["repository"]["full_name"] == "acme/widgets"

    check_run = json.loads(gh.webhook("check_run", secret="s", check_id=check.id).body)["check_run"]
    assert (check_run["conclusion"], check_run["head_sha"]) == ("failure", pull.head_sha)
    assert [p["number"] for p in check_run["pull_requests"]] == [pull.number]
    assert (
        json.loads(gh.webhook("status", secret="s", status_id=status.id).body)["branches"][0]["name"]
        == "feat/a"
    )


def test_webhook_post_to_a_url(gh: FakeGitHub) -> None:
    import http.server
    import threading

    received = {}

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received["event"] = self.headers["X-GitHub-Event"]  # case-insensitive
            received["body"] = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    gh.add_repo("acme/widgets")
    delivery = gh.webhook("ping", secret="s")
    assert delivery.post(f"http://127.0.0.1:{server.server_address[1]}/hook") == 202
    thread.join(5)
    server.server_close()
    assert received["body"] == delivery.body
    assert received["event"] == "ping"
