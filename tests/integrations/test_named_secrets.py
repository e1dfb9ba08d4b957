"""Plugins reading their credentials from secrets stored in ao (by name), through their real code
against the local fakes: GitHub, Linear, a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.base import PermanentIntegrationError
from integrations.credentials import CredentialUnavailable
from integrations.github.pool import forget_clients
from integrations.notifier import NotifyFailed
from integrations.notifier.webhook import verify
from integrations.records import Notification
from integrations.registry import ConfigurationError, notifiers, scms, trackers
from integrations.scm.github import GitHubSCM
from integrations.tracker.linear import LinearTracker
from sessions.core import secrets
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError
from sessions.models import Secret
from tests.fakes.github import FakeGitHub
from tests.fakes.hooks import FakeHooks
from tests.fakes.linear import FakeLinear

pytestmark = pytest.mark.django_db

TOKEN_A = "ghp_" + "a" * 36
TOKEN_B = "ghp_" + "b" * 36
FAST = {"backoff": 0.01, "secondary_wait": 0.05, "max_wait": 2.0, "write_interval": 0, "timeout": 5}
HOOK_PATH = "/services/T000/B000/s3cr3tT0k3n"
URGENT = Notification(
    title="CI failed on web-3", body="2 checks failed", priority="urgent", project_key="web"
)


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens={TOKEN_A: "ao-bot", TOKEN_B: "ao-bot"}) as fake:
        fake.add_repo("acme/widgets")
        # The default token_env holds the *other* token: a named secret must win over it.
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN_B)
        yield fake
    forget_clients()


@pytest.fixture
def hooks() -> Iterator[FakeHooks]:
    with FakeHooks() as server:
        yield server


def github_scm(gh: FakeGitHub, **settings) -> GitHubSCM:
    config = scms.validate_settings(
        "github",
        {"repo": "acme/widgets", "base_url": gh.base_url, "token_secret": "github-prod", **FAST, **settings},
    )
    return GitHubSCM(config)


def used(gh: FakeGitHub, token: str) -> int:
    return gh.bucket("graphql", token=token).used + gh.bucket("core", token=token).used


# --- GitHub ---------------------------------------------------------------------------------------
def test_github_scm_with_token_secret_authenticates_with_the_stored_value(gh: FakeGitHub) -> None:
    secrets.secret_set(name="github-prod", value=TOKEN_A)
    pull = gh.repo("acme/widgets").add_pull("feat/x")

    infos = github_scm(gh).fetch_pull_requests(numbers=[pull.number])

    assert infos[pull.number].branch == "feat/x"
    assert used(gh, TOKEN_A) >= 1
    assert used(gh, TOKEN_B) == 0  # $GITHUB_TOKEN (the default token_env) was not used


def test_a_replaced_secret_is_used_on_the_next_call_without_a_restart(gh: FakeGitHub) -> None:
    secrets.secret_set(name="github-prod", value=TOKEN_A)
    pull = gh.repo("acme/widgets").add_pull("feat/x")
    scm = github_scm(gh)
    scm.fetch_pull_requests(numbers=[pull.number])
    before_a = used(gh, TOKEN_A)

    secrets.secret_set(name="github-prod", value=TOKEN_B)
    del gh.tokens[TOKEN_A]  # the old token is revoked: using it again would be a 401

    assert scm.fetch_pull_requests(numbers=[pull.number])[pull.number].branch == "feat/x"
    assert used(gh, TOKEN_B) >= 1
    assert used(gh, TOKEN_A) == before_a


def test_the_github_tracker_shares_token_secret(gh: FakeGitHub) -> None:
    secrets.secret_set(name="github-prod", value=TOKEN_A)
    issue = gh.repo("acme/widgets").add_issue("Fix the login")
    tracker = trackers.create(
        "github", {"repo": "acme/widgets", "base_url": gh.base_url, "token_secret": "github-prod", **FAST}
    )

    assert tracker.get_issue(f"#{issue.number}").title == "Fix the login"
    assert used(gh, TOKEN_A) >= 1 and used(gh, TOKEN_B) == 0


def test_a_missing_secret_is_a_clear_error_naming_it_and_the_fix(gh: FakeGitHub) -> None:
    scm = github_scm(gh, token_secret="github-nope")

    with pytest.raises(PermanentIntegrationError) as caught:
        scm.fetch_pull_requests(numbers=[1])

    message = str(caught.value)
    assert "no secret named 'github-nope' holding the GitHub token" in message
    assert "`ao secret set github-nope`" in message and "admin under Secrets" in message
    assert isinstance(caught.value, CredentialUnavailable)
    assert gh.requests == []  # nothing was sent without a token


def test_an_undecryptable_secret_says_so_and_never_shows_the_ciphertext(gh: FakeGitHub) -> None:
    Secret.objects.create(name="github-prod", ciphertext="gAAAAAB-not-a-fernet-token")

    with pytest.raises(PermanentIntegrationError, match=r"'github-prod' .* cannot be decrypted") as caught:
        github_scm(gh).fetch_pull_requests(numbers=[1])

    assert "gAAAAA" not in str(caught.value)
    assert "`ao secret set github-prod`" in str(caught.value)


def test_token_env_and_token_secret_together_are_a_config_error_naming_both(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="token_env and token_secret are both set"):
        scms.validate_settings("github", {"token_env": "GH_TOKEN", "token_secret": "github-prod"})

    (tmp_path / "repo").mkdir()
    (tmp_path / "ao.config.yaml").write_text(
        "projects:\n  web:\n    path: repo\n    repo: acme/web\n"
        "    scm:\n      plugin: github\n      token_env: GH_TOKEN\n      token_secret: github-prod\n"
    )
    with pytest.raises(ConfigError) as caught:
        config_load(tmp_path / "ao.config.yaml")
    assert "projects.web.scm" in str(caught.value)
    assert "token_env and token_secret are both set" in str(caught.value)


def test_a_token_pasted_where_its_name_belongs_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError, match="looks like a token") as caught:
        scms.validate_settings("github", {"token_secret": TOKEN_A})
    assert TOKEN_A not in str(caught.value)
    with pytest.raises(ConfigurationError, match="name of a secret"):
        scms.validate_settings("github", {"token_secret": "not a name"})


# --- Linear ---------------------------------------------------------------------------------------
def test_linear_with_api_key_secret_uses_the_stored_key_and_follows_a_replacement(monkeypatch) -> None:
    monkeypatch.delenv("LINEAR_API_KEY", raising=False)
    with FakeLinear() as fake:
        fake.add_team("ENG", "Engineering")
        fake.add_issue("ENG", "Fix the login")
        secrets.secret_set(name="linear", value=fake.api_key)
        tracker = trackers.create(
            "linear", {"team": "ENG", "api_url": fake.url, "api_key_secret": "linear", "timeout": 2}
        )
        assert isinstance(tracker, LinearTracker)

        assert tracker.get_issue("ENG-1").title == "Fix the login"

        fake.api_key = "lin_api_rotated_0000000000000000"
        secrets.secret_set(name="linear", value=fake.api_key)
        assert tracker.get_issue("ENG-1").title == "Fix the login"

        secrets.secret_set(name="linear", value="lin_api_revoked")
        with pytest.raises(
            PermanentIntegrationError, match="refused the API key from secret 'linear'"
        ) as caught:
            tracker.get_issue("ENG-1")
        assert "lin_api_revoked" not in str(caught.value)


def test_linear_missing_secret_and_both_forms() -> None:
    tracker = trackers.create(
        "linear", {"team": "ENG", "api_url": "http://127.0.0.1:9/", "api_key_secret": "nope"}
    )
    with pytest.raises(PermanentIntegrationError, match="no secret named 'nope' holding the Linear API key"):
        tracker.get_issue("ENG-1")
    with pytest.raises(ConfigurationError, match="api_key_env and api_key_secret are both set"):
        trackers.validate_settings("linear", {"team": "ENG", "api_key_env": "K", "api_key_secret": "linear"})


# --- notifiers ------------------------------------------------------------------------------------
def test_slack_with_webhook_url_secret_posts_to_the_stored_url(hooks: FakeHooks) -> None:
    secrets.secret_set(name="slack-team", value=hooks.url(HOOK_PATH))
    slack = notifiers.create("slack", {"webhookUrlSecret": "slack-team"})  # camelCase, as YAML writes it

    slack.send(URGENT)

    assert [(r.method, r.path) for r in hooks.requests] == [("POST", HOOK_PATH)]
    assert hooks.requests[0].json()["text"] == "[urgent] CI failed on web-3"


def test_discord_with_a_missing_secret_fails_with_the_fix_and_sends_nothing(hooks: FakeHooks) -> None:
    discord = notifiers.create("discord", {"webhook_url_secret": "discord-ops"})

    with pytest.raises(NotifyFailed, match="no secret named 'discord-ops' holding the webhook URL") as caught:
        discord.send(URGENT)

    assert "ao secret set discord-ops" in caught.value.fix
    assert hooks.requests == []


def test_a_stored_url_that_is_not_http_is_refused_without_showing_it() -> None:
    secrets.secret_set(name="slack-team", value="ftp://hooks.example/s3cr3t")
    slack = notifiers.create("slack", {"webhook_url_secret": "slack-team"})

    with pytest.raises(NotifyFailed, match="secret 'slack-team' is not an http") as caught:
        slack.send(URGENT)

    assert "s3cr3t" not in str(caught.value) and "s3cr3t" not in caught.value.fix


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"webhook_url_env": "X", "webhook_url_secret": "slack-team"},
            "webhook_url_env and webhook_url_secret",
        ),
        ({"webhook_url": "http://a.test/x", "webhook_url_secret": "s"}, "exactly one of webhook_url_env"),
    ],
)
def test_slack_url_sources_are_exclusive(settings, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        notifiers.create("slack", settings, where="notifiers.team")


def test_webhook_notifier_with_url_secret_and_signing_secret(hooks: FakeHooks) -> None:
    secrets.secret_set(name="hook-url", value=hooks.url("/ao"))
    secrets.secret_set(name="hook-signing", value="shh-stored-secret")
    webhook = notifiers.create("webhook", {"url_secret": "hook-url", "signing_secret": "hook-signing"})

    webhook.send(URGENT)

    request = hooks.requests[0]
    assert request.path == "/ao"
    assert verify("shh-stored-secret", request.body, request.header("X-AO-Signature-256"))

    with pytest.raises(ConfigurationError, match="secret_env and signing_secret are both set"):
        notifiers.create("webhook", {"url": "http://a.test/", "secret_env": "S", "signing_secret": "s"})
    with pytest.raises(ConfigurationError, match="url_env and url_secret are both set"):
        notifiers.create("webhook", {"url_env": "U", "url_secret": "u", "secret_env": "S"})
