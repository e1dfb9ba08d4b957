"""GitHub access shared by the ``github`` SCM and tracker plugins.

``pool.get_client`` gives the one rate-aware client (``client.GitHubClient``) per credential;
``GitHubSettings`` is the settings both plugins share (repo, host, where the token lives, waits)
and ``GitHubPluginMixin`` turns them into a client for the plugin's project. The token comes from the environment variable
named by ``token_env`` (default ``GITHUB_TOKEN``) or from the secret stored in ao named by
``token_secret``, read on every ``client()`` call (clients are shared per token).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from integrations.base import PermanentIntegrationError, PluginConfig
from integrations.credentials import ENV_NAME_RE, EnvName, SecretName, credential, one_source, secret_name
from integrations.github.client import DEFAULT_BASE_URL, GitHubClient
from integrations.github.pool import get_client
from integrations.github.results import GitHubAuthError, GitHubError, GitHubNotFound, GitHubRateLimited

__all__ = [
    "DEFAULT_BASE_URL",
    "GitHubAuthError",
    "GitHubClient",
    "GitHubError",
    "GitHubNotFound",
    "GitHubPluginMixin",
    "GitHubRateLimited",
    "GitHubSettings",
    "get_client",
]

REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


class GitHubSettings(PluginConfig):
    repo: str = Field("", description="owner/name; defaults to the project's repo")
    base_url: str = Field(
        DEFAULT_BASE_URL,
        description="API root: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
    )
    token_env: str = EnvName("environment variable holding the token", default="GITHUB_TOKEN")
    token_secret: str | None = SecretName(
        "name of the secret stored in ao holding the token (not with token_env)"
    )
    timeout: float = Field(15.0, gt=0, le=300, description="seconds per HTTP request")
    max_concurrency: int = Field(4, ge=1, le=32, description="parallel calls per credential")
    max_retries: int = Field(
        2, ge=0, le=10, description="retries after 5xx, network errors, secondary limits"
    )
    max_wait: float = Field(60.0, ge=0, le=3600, description="longest retry-after wait before giving up (s)")
    backoff: float = Field(1.0, ge=0, le=60, description="first backoff after a 5xx (s), doubling")
    secondary_wait: float = Field(
        60.0, ge=0, le=3600, description="wait after a secondary limit without retry-after"
    )
    write_interval: float = Field(1.0, ge=0, le=60, description="minimum seconds between writes")

    @model_validator(mode="before")
    @classmethod
    def _no_token_in_config(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data for key in ("token", "api_token", "access_token")):
            raise ValueError(
                "tokens never go in ao's config: store it with `ao secret set NAME` and set "
                "token_secret: NAME, or put it in an environment variable named by token_env "
                "(default GITHUB_TOKEN)"
            )
        return data

    @model_validator(mode="after")
    def _one_token_source(self) -> GitHubSettings:
        one_source(self, "token_env", "token_secret")
        return self

    @field_validator("repo")
    @classmethod
    def _repo_shape(cls, value: str) -> str:
        value = value.strip()
        if value and not REPO_RE.match(value):
            raise ValueError("expected owner/name, e.g. acme/widgets")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_shape(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError(
                "expected an http(s) URL such as https://api.github.com or https://ghe.example.com/api/v3"
            )
        return value

    @field_validator("token_env")
    @classmethod
    def _env_shape(cls, value: str) -> str:
        if not ENV_NAME_RE.fullmatch(value):
            raise ValueError("expected an environment variable name such as GITHUB_TOKEN")
        return value

    @field_validator("token_secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        return secret_name(value)


class GitHubPluginMixin:
    """For plugins whose Config subclasses GitHubSettings and which have ``self.project``."""

    config: GitHubSettings
    project: Any

    @property
    def repo_full_name(self) -> str:
        repo = self.config.repo or (getattr(self.project, "repo", "") or "").strip()
        if not repo or not REPO_RE.match(repo):
            where = f"project {self.project.key}" if self.project is not None else "this plugin"
            raise PermanentIntegrationError(
                f"no GitHub repository for {where}: set the project's repo (owner/name) or the plugin's repo setting"
            )
        return repo

    def client(self) -> GitHubClient:
        c = self.config
        token = credential(
            env=c.token_env,
            secret=c.token_secret,
            what="GitHub token",
            who="github",
            hint="a personal access token or fine-grained token with repo access",
            stored_as="token_secret",
        )
        return get_client(
            token=token,
            base_url=c.base_url,
            max_concurrency=c.max_concurrency,
            timeout=c.timeout,
            max_retries=c.max_retries,
            max_wait=c.max_wait,
            backoff=c.backoff,
            secondary_wait=c.secondary_wait,
            write_interval=c.write_interval,
        )
