"""The rate-aware GitHub client against the fake: ETags, budgets, retry-after, faults, GHE."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from integrations.base import PermanentIntegrationError, TransientIntegrationError
from integrations.github.client import GitHubClient
from integrations.github.pool import forget_clients, get_client
from integrations.github.results import GitHubAuthError, GitHubNotFound, GitHubRateLimited
from tests.fakes.github import FakeGitHub

FAST = {"backoff": 0.01, "secondary_wait": 0.05, "max_wait": 2.0, "write_interval": 0, "timeout": 5}


@pytest.fixture
def gh():
    with FakeGitHub() as fake:
        fake.add_repo("acme/widgets")
        yield fake
    forget_clients()


def client_for(gh: FakeGitHub, **options) -> GitHubClient:
    return get_client(token=gh.token, base_url=gh.base_url, **{**FAST, **options})


def test_one_client_per_credential(gh: FakeGitHub) -> None:
    a = client_for(gh)
    assert client_for(gh) is a
    assert get_client(token="other-token", base_url=gh.base_url) is not a
    assert get_client(token=gh.token, base_url=gh.base_url + "/") is a
    assert gh.token not in repr(a)


def test_repeated_get_is_a_free_304(gh: FakeGitHub) -> None:
    client = client_for(gh)
    first = client.get("/repos/acme/widgets")
    second = client.get("/repos/acme/widgets")
    assert first.not_modified is False and second.not_modified is True
    assert second.data == first.data
    assert (gh.counts["rest"], gh.counts["304"]) == (1, 1)
    assert gh.bucket("core").used == 1
    assert client.stats.not_modified == 1
    assert client.rate_status("core").remaining == 4999


def test_a_change_invalidates_the_etag(gh: FakeGitHub) -> None:
    issue = gh.repo("acme/widgets").add_issue("Old title")
    client = client_for(gh)
    assert client.get(f"/repos/acme/widgets/issues/{issue.number}").data["title"] == "Old title"
    issue.title = "New title"
    response = client.get(f"/repos/acme/widgets/issues/{issue.number}")
    assert (response.not_modified, response.data["title"]) == (False, "New title")


def test_exhausted_budget_refuses_calls_until_reset(gh: FakeGitHub) -> None:
    client = client_for(gh)
    client.get("/repos/acme/widgets")
    gh.set_remaining("core", 0, reset_in=600)
    with pytest.raises(GitHubRateLimited, match=r"rate limited until \d\d:\d\d"):
        client.request("GET", "/repos/acme/widgets", conditional=False)
    sent = gh.counts["total"]

    with pytest.raises(TransientIntegrationError, match="rate limited until"):
        client.get("/repos/acme/widgets/issues")
    assert gh.counts["total"] == sent  # refused locally: nothing sent
    status = client.rate_status("core")
    assert status.exhausted is True and status.remaining == 0
    assert client.rate_status().exhausted is True
    assert client.stats.refused == 1


def test_exhausted_graphql_points_refuse_the_next_query(gh: FakeGitHub) -> None:
    client = client_for(gh)
    gh.set_remaining("graphql", 0, reset_in=600)
    with pytest.raises(GitHubRateLimited):
        client.graphql('{ repository(owner: "acme", name: "widgets") { name } }')
    with pytest.raises(GitHubRateLimited):
        client.graphql('{ repository(owner: "acme", name: "widgets") { name } }')
    assert gh.counts["graphql"] == 1
    assert client.rate_status("graphql").exhausted is True


def test_graphql_records_its_rate_limit_cost(gh: FakeGitHub) -> None:
    client = client_for(gh)
    result = client.graphql("{ rateLimit { cost remaining resetAt limit } viewer { login } }")
    assert result.data["viewer"] == {"login": "ao-bot"}
    assert result.cost == 1
    assert client.stats.graphql_points == 1
    assert client.rate_status("graphql").remaining == 4999


def test_secondary_limit_retry_after_is_honoured(gh: FakeGitHub) -> None:
    client = client_for(gh)
    gh.fail(403, retry_after=1, path="/repos/acme/widgets")
    started = time.monotonic()
    response = client.get("/repos/acme/widgets")
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert elapsed >= 0.9  # waited what GitHub asked for before the retry
    assert (gh.counts["fault"], gh.counts["rest"]) == (1, 1)
    assert client.stats.retries == 1


def test_secondary_limit_longer_than_max_wait_blocks_non_essential_calls(gh: FakeGitHub) -> None:
    client = client_for(gh, max_wait=1.0)
    gh.fail(429, retry_after=120)
    with pytest.raises(GitHubRateLimited, match="secondary rate limit"):
        client.get("/repos/acme/widgets")
    with pytest.raises(GitHubRateLimited):
        client.get("/repos/acme/widgets")
    assert gh.counts["total"] == 1
    assert client.get("/repos/acme/widgets", essential=True).status == 200


def test_5xx_is_retried_then_transient(gh: FakeGitHub) -> None:
    client = client_for(gh, max_retries=2)
    gh.fail(502, times=1)
    assert client.get("/repos/acme/widgets").status == 200
    assert gh.counts["fault"] == 1

    gh.fail(503, times=3)
    with pytest.raises(TransientIntegrationError, match="GitHub answered 503"):
        client.request("GET", "/repos/acme/widgets", conditional=False)
    assert gh.counts["fault"] == 4


def test_5xx_on_a_write_is_not_repeated(gh: FakeGitHub) -> None:
    issue = gh.repo("acme/widgets").add_issue("x")
    client = client_for(gh)
    gh.fail(500, method="POST")
    with pytest.raises(TransientIntegrationError):
        client.request(
            "POST", f"/repos/acme/widgets/issues/{issue.number}/comments", json_body={"body": "hi"}
        )
    assert gh.counts["fault"] == 1 and issue.comments == []


def test_slow_answer_past_the_timeout_is_transient(gh: FakeGitHub) -> None:
    client = client_for(gh, timeout=1, max_retries=0)
    gh.fail(0, delay=1.5)
    with pytest.raises(TransientIntegrationError, match="unreachable"):
        client.get("/repos/acme/widgets")


def test_bad_token_is_permanent_and_never_echoed(gh: FakeGitHub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "ghp_not_a_real_token_abcdefghijklmnop"
    client = get_client(token=secret, base_url=gh.base_url, **FAST)
    with pytest.raises(PermanentIntegrationError, match="GitHub refused the token") as info:
        client.get("/repos/acme/widgets")
    assert isinstance(info.value, GitHubAuthError)
    assert secret not in str(info.value)
    assert secret not in caplog.text


def test_forbidden_without_rate_limit_is_permanent(gh: FakeGitHub) -> None:
    gh.fail(403, message="Resource not accessible by personal access token")
    with pytest.raises(GitHubAuthError, match="Resource not accessible"):
        client_for(gh).get("/repos/acme/widgets")


def test_not_found(gh: FakeGitHub) -> None:
    with pytest.raises(GitHubNotFound):
        client_for(gh).get("/repos/acme/nope")


def test_concurrency_is_capped(gh: FakeGitHub) -> None:
    client = get_client(token=gh.token, base_url=gh.base_url, max_concurrency=2, **FAST)
    gh.fail(0, delay=0.2, times=6)
    threads = [threading.Thread(target=client.request, args=("GET", "/repos/acme/widgets")) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert gh.counts["total"] == 6
    assert gh.max_in_flight == 2


def test_enterprise_base_url() -> None:
    with FakeGitHub(enterprise=True) as ghe:
        ghe.add_repo("acme/widgets")
        client = get_client(token=ghe.token, base_url=ghe.base_url, **FAST)
        assert client.graphql_url == ghe.graphql_url
        assert client.get("/repos/acme/widgets").data["full_name"] == "acme/widgets"
        result = client.graphql('{ repository(owner: "acme", name: "widgets") { nameWithOwner } }')
        assert result.data["repository"]["nameWithOwner"] == "acme/widgets"
        assert (ghe.counts["rest"], ghe.counts["graphql"]) == (1, 1)
    forget_clients()
