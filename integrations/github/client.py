"""One rate-aware GitHub client per credential.

Every GitHub call ao makes (REST and GraphQL, for the SCM and the tracker, for every project
using the token) goes through the ``GitHubClient`` returned by ``pool.get_client(base_url,
token)``. It:

- sends requests through PyGithub's authenticated requester (``Github(base_url=..., auth=
  Auth.Token(...), timeout=..., retry=...)``); PyGithub's connection object is not safe to share
  between threads, so the client keeps a small pool of them, whose size is the concurrency cap;
- makes GET requests conditional (``If-None-Match`` with the last ``ETag``): a ``304`` costs no
  quota and returns the cached body;
- reads ``X-RateLimit-*`` after every response (and ``rateLimit { cost remaining resetAt }``
  from GraphQL bodies) and keeps a budget per resource (``core``, ``graphql``);
- when a budget is empty, refuses non-essential calls until its reset instead of burning
  requests (``TransientIntegrationError("GitHub rate limited until HH:MM UTC")``);
- honours ``retry-after`` and secondary rate limits with bounded waits, and retries idempotent
  calls on 5xx and network errors a bounded number of times;
- never puts the token in a log line or an exception message (only a short hash of it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from integrations.base import PermanentIntegrationError, TransientIntegrationError
from integrations.github.budget import Budget, RateBudgets, clock_time
from integrations.github.results import (
    GitHubAuthError,
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubResponse,
    GraphQLResult,
)

# requests, urllib3 and PyGithub are loaded with the first client (_load_http): most ao commands
# never talk to GitHub and should not pay for importing them.
requests: Any = None
urllib3: Any = None
Auth: Any = None
Github: Any = None


def _load_http() -> None:
    global requests, urllib3, Auth, Github  # a lazy import, done once
    if Github is None:
        import requests as requests_module
        import urllib3 as urllib3_module
        from github import Auth as auth_module
        from github import Github as github_class

        requests, urllib3, Auth = requests_module, urllib3_module, auth_module
        Github = github_class


log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.github.com"
USER_AGENT = "ao (agent orchestrator)"
ETAG_CACHE_SIZE = 1024


@dataclass
class ClientStats:
    """What this credential has spent, for benchmarks, the dashboard and `ao doctor`."""

    requests: int = 0  # HTTP requests sent (including retries, 304s and log downloads)
    rest: int = 0
    graphql: int = 0
    graphql_points: int = 0
    not_modified: int = 0  # 304s: free
    retries: int = 0
    refused: int = 0  # calls not sent because the budget was gone
    waited_s: float = 0.0  # time slept honouring retry-after / backoff

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class _Tunables:
    timeout: float = 15.0
    max_retries: int = 2  # extra attempts after a 5xx / network error / secondary limit
    max_wait: float = 60.0  # longest single wait we accept before giving up (seconds)
    backoff: float = 1.0  # first backoff after a 5xx; doubles per attempt
    secondary_wait: float = 60.0  # wait for a secondary limit without retry-after (GitHub: >= 1 min)
    write_interval: float = 1.0  # minimum seconds between mutating requests (GitHub's advice)
    extra: dict[str, Any] = field(default_factory=dict)


def token_fingerprint(token: str) -> str:
    """A short, non-reversible name for a token: safe in logs and cache keys."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class GitHubClient(RateBudgets):
    """Rate-aware access to one GitHub (or GitHub Enterprise) host with one token."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        max_concurrency: int = 4,
        timeout: float = 15.0,
        max_retries: int = 2,
        max_wait: float = 60.0,
        backoff: float = 1.0,
        secondary_wait: float = 60.0,
        write_interval: float = 1.0,
    ) -> None:
        if not token:
            raise PermanentIntegrationError("no GitHub token given")
        _load_http()
        self.base_url = base_url.rstrip("/")
        self.fingerprint = token_fingerprint(token)
        self.max_concurrency = max(1, int(max_concurrency))
        self.tunables = _Tunables(
            timeout=timeout,
            max_retries=max_retries,
            max_wait=max_wait,
            backoff=backoff,
            secondary_wait=secondary_wait,
            write_interval=write_interval,
        )
        self.stats = ClientStats()
        self._auth = Auth.Token(token)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._last_write = 0.0
        self._budgets: dict[str, Budget] = {}
        self._blocked_until = 0.0  # from a secondary limit that asked for a long wait
        self._etags: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._pool: queue.LifoQueue[Github] = queue.LifoQueue()
        for _ in range(self.max_concurrency):
            self._pool.put(self._new_github())
        self._blob_session = requests.Session()  # pre-signed log URLs: no Authorization, ever
        self.graphql_url = self._pool.queue[0].requester.graphql_url

    def __repr__(self) -> str:
        return f"<GitHubClient {self.base_url} token#{self.fingerprint}>"

    def _new_github(self) -> Github:
        # Retries inside PyGithub only for failures to connect (nothing was sent); status-based
        # retries, rate limits and pacing are this client's job.
        retry = urllib3.util.Retry(
            total=2,
            connect=2,
            read=0,
            status=0,
            other=0,
            redirect=0,
            backoff_factor=0.2,
            respect_retry_after_header=False,  # 429/503 + Retry-After are handled (and counted) here
            raise_on_status=False,
        )
        return Github(
            base_url=self.base_url,
            auth=self._auth,
            timeout=max(1, round(self.tunables.timeout)),
            retry=retry,
            pool_size=1,
            user_agent=USER_AGENT,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

    def configure(self, **tunables: Any) -> None:
        """Update waits/retries/timeouts (None values are ignored). The concurrency cap is fixed."""
        for name, value in tunables.items():
            if value is not None and hasattr(self.tunables, name):
                setattr(self.tunables, name, value)

    # --- transport -----------------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[Github]:
        gh = self._pool.get()  # blocks while max_concurrency calls are in flight
        try:
            yield gh
        finally:
            self._pool.put(gh)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.stats.waited_s += seconds
            time.sleep(seconds)

    def _pace_write(self) -> None:
        interval = self.tunables.write_interval
        if interval <= 0:
            return
        with self._write_lock:
            wait = self._last_write + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_write = time.monotonic()

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        body: Any,
        headers: dict[str, str],
        resource: str,
        essential: bool,
        idempotent: bool,
    ) -> tuple[int, dict[str, str], str]:
        """One logical call with bounded retries; returns (status, headers, text) of the final answer."""
        what = f"{method} {_path_of(url)}"
        attempt = 0
        secondary_waits = 0
        while True:
            self._check_budget(resource, essential)
            if method != "GET" and resource == "core":
                self._pace_write()
            try:
                with self._connection() as gh:
                    status, raw_headers, text = gh.requester.requestJson(
                        method, url, parameters=dict(params or {}), headers=dict(headers), input=body
                    )
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                with self._lock:
                    self.stats.requests += 1
                if idempotent and attempt < self.tunables.max_retries:
                    attempt += 1
                    self._back_off(what, type(exc).__name__, attempt)
                    continue
                raise TransientIntegrationError(
                    f"GitHub unreachable ({type(exc).__name__}) for {what}"
                ) from None
            resp_headers = self._count_answer(what, status, raw_headers, resource)
            if status in (403, 429):
                wait = self._rate_limit_wait(what, status, text, resp_headers, secondary_waits)
                secondary_waits += 1
                self._retry_note(what, f"{status} secondary rate limit, waiting {wait:g}s", secondary_waits)
                self._sleep(wait)
                continue
            if status >= 500 or status == 0:
                if idempotent and attempt < self.tunables.max_retries:
                    attempt += 1
                    self._back_off(what, str(status), attempt)
                    continue
                raise TransientIntegrationError(f"GitHub answered {status} for {what}")
            if status == 401:
                raise GitHubAuthError(
                    f"GitHub refused the token (401 {_message_of(text) or 'Bad credentials'}) for {what}",
                    status=401,
                )
            return status, resp_headers, text

    def _count_answer(
        self, what: str, status: int, raw_headers: Mapping[str, str], resource: str
    ) -> dict[str, str]:
        """Count an answer and record the budget its headers report; its headers, lowercased."""
        resp_headers = {k.lower(): v for k, v in raw_headers.items()}
        with self._lock:
            self.stats.requests += 1
            if resource == "graphql":
                self.stats.graphql += 1
            else:
                self.stats.rest += 1
        self._record_headers(resp_headers, resource)
        log.debug("github %s -> %s (token#%s)", what, status, self.fingerprint)
        return resp_headers

    def _rate_limit_wait(
        self, what: str, status: int, text: str, resp_headers: Mapping[str, str], secondary_waits: int
    ) -> float:
        """For a 403 or 429: the seconds to wait before trying again (a secondary rate limit we
        will wait out); else raises GitHubRateLimited (the budget is gone, or the wait is too long
        or too often) or GitHubAuthError (a 403 that is no rate limit)."""
        message = _message_of(text)
        retry_after = _float(resp_headers.get("retry-after"))
        remaining = _float(resp_headers.get("x-ratelimit-remaining"))
        reset = _float(resp_headers.get("x-ratelimit-reset")) or 0.0
        secondary = retry_after is not None or "secondary rate limit" in message.lower()
        if remaining == 0 and not secondary:
            until = reset if reset > time.time() else time.time() + 60
            raise GitHubRateLimited(
                f"GitHub rate limit exhausted: rate limited until {clock_time(until)}", until=until
            )
        if secondary or status == 429 or "rate limit" in message.lower():
            wait = (
                retry_after if retry_after is not None else self.tunables.secondary_wait * 2**secondary_waits
            )
            if remaining == 0 and reset > time.time():
                wait = max(wait, reset - time.time())
            if wait > self.tunables.max_wait or secondary_waits >= self.tunables.max_retries:
                until = time.time() + wait
                with self._lock:
                    self._blocked_until = max(self._blocked_until, until)
                raise GitHubRateLimited(
                    f"GitHub secondary rate limit: rate limited until {clock_time(until)}", until=until
                )
            return wait
        raise GitHubAuthError(
            f"GitHub refused the token (403 {message or 'Forbidden'}) for {what}",
            status=status,
            gh_message=message,
        )

    def _back_off(self, what: str, why: str, attempt: int) -> None:
        self._retry_note(what, why, attempt)
        self._sleep(self.tunables.backoff * 2 ** (attempt - 1))

    def _retry_note(self, what: str, why: str, attempt: int) -> None:
        with self._lock:
            self.stats.retries += 1
        log.info("github %s: %s; retry %d", what, why, attempt)

    # --- public calls --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        essential: bool = False,
        conditional: bool = True,
        etag: str | None = None,
    ) -> GitHubResponse:
        """A REST call. ``path`` is relative to the base URL (``/repos/o/r/pulls/1``).

        GETs are conditional (ETag) unless ``conditional`` is False. With ``etag`` (a change
        probe whose ETag the caller keeps, e.g. across processes) the GET sends that ETag and
        nothing is cached here: a 304 comes back with ``not_modified`` and no data. 4xx answers
        other than 401/403/429 are raised as GitHubNotFound (404) or GitHubError; the caller
        decides what they mean.
        """
        method = method.upper()
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        cache_key = ""
        cached = None
        if etag is not None:
            conditional = False
            if etag:
                headers["If-None-Match"] = etag
        if method == "GET" and conditional:
            cache_key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
            with self._lock:
                cached = self._etags.get(cache_key)
            if cached is not None:
                headers["If-None-Match"] = cached[0]
        status, resp_headers, text = self._send(
            method,
            path,
            params=params,
            body=json_body,
            headers=headers,
            resource="core",
            essential=essential,
            idempotent=method in ("GET", "HEAD", "PUT", "DELETE"),
        )
        if status == 304 and cached is not None:
            with self._lock:
                self.stats.not_modified += 1
                self._etags.move_to_end(cache_key)
            return GitHubResponse(status=304, headers=resp_headers, data=cached[1], not_modified=True)
        if status == 304 and etag:
            with self._lock:
                self.stats.not_modified += 1
            return GitHubResponse(status=304, headers=resp_headers, data=None, not_modified=True)
        data = _parse(text, resp_headers)
        if status >= 400:
            message = _message_of(text)
            what = f"{method} {path}"
            if status == 404:
                raise GitHubNotFound(f"GitHub: not found: {what}", status=404, gh_message=message)
            raise GitHubError(
                f"GitHub answered {status} ({message or 'error'}) for {what}",
                status=status,
                gh_message=message,
            )
        if cache_key and status == 200 and resp_headers.get("etag"):
            with self._lock:
                self._etags[cache_key] = (resp_headers["etag"], data)
                self._etags.move_to_end(cache_key)
                while len(self._etags) > ETAG_CACHE_SIZE:
                    self._etags.popitem(last=False)
        return GitHubResponse(status=status, headers=resp_headers, data=data)

    def get(
        self, path: str, *, params: Mapping[str, Any] | None = None, essential: bool = False
    ) -> GitHubResponse:
        return self.request("GET", path, params=params, essential=essential)

    def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, *, essential: bool = False
    ) -> GraphQLResult:
        """POST a GraphQL query. Partial results come back with their errors; a result with no
        data raises (GitHubError, or GitHubRateLimited for RATE_LIMITED)."""
        status, headers, text = self._send(
            "POST",
            self.graphql_url,
            params=None,
            body={"query": query, "variables": dict(variables or {})},
            headers={"Accept": "application/json"},
            resource="graphql",
            essential=essential,
            idempotent=True,  # ao sends queries only: safe to repeat
        )
        body = _parse(text, headers)
        if status >= 400 or not isinstance(body, dict):
            message = _message_of(text)
            raise GitHubError(
                f"GitHub GraphQL answered {status} ({message or 'error'})", status=status, gh_message=message
            )
        errors = tuple(e for e in body.get("errors") or () if isinstance(e, dict))
        if any(e.get("type") == "RATE_LIMITED" for e in errors):
            reset = _float(headers.get("x-ratelimit-reset")) or time.time() + 60
            with self._lock:
                budget = self._budgets.setdefault("graphql", Budget())
                budget.remaining, budget.reset, budget.known = 0, reset, True
            raise GitHubRateLimited(
                f"GitHub GraphQL rate limit exhausted: rate limited until {clock_time(reset)}", until=reset
            )
        data = body.get("data")
        if not isinstance(data, dict):
            detail = "; ".join(str(e.get("message", ""))[:200] for e in errors) or "no data"
            raise GitHubError(f"GitHub GraphQL error: {detail}", status=status, gh_message=detail)
        cost = None
        if isinstance(data.get("rateLimit"), dict):
            cost = self._record_graphql_rate(data["rateLimit"])
        return GraphQLResult(data=data, errors=errors, cost=cost)

    def download_log(self, path: str, *, max_bytes: int = 512_000, essential: bool = False) -> str:
        """GET a log endpoint that redirects (302) to a pre-signed URL; return the log's last ``max_bytes``.

        The pre-signed URL is fetched without the token (it may be on another host).
        """
        status, headers, text = self._send(
            "GET",
            path,
            params=None,
            body=None,
            headers={"Accept": "application/vnd.github+json"},
            resource="core",
            essential=essential,
            idempotent=True,
        )
        if status in (301, 302, 303, 307, 308) and headers.get("location"):
            return self._fetch_blob(headers["location"], max_bytes=max_bytes)
        if status == 404 or status == 410:
            raise GitHubNotFound(f"GitHub: no log at {path}", status=status)
        if status >= 400:
            raise GitHubError(f"GitHub answered {status} for GET {path}", status=status)
        return text[-max_bytes:]

    def _fetch_blob(self, url: str, *, max_bytes: int) -> str:
        tail = b""
        try:
            with self._blob_session.get(
                url, stream=True, timeout=self.tunables.timeout, allow_redirects=True
            ) as resp:
                with self._lock:
                    self.stats.requests += 1
                if resp.status_code in (403, 404, 410):
                    raise GitHubNotFound("GitHub: the log is no longer available", status=resp.status_code)
                if resp.status_code >= 400:
                    raise TransientIntegrationError(f"log download answered {resp.status_code}")
                for chunk in resp.iter_content(chunk_size=65536):
                    tail = (tail + chunk)[-max_bytes:]
        except requests.RequestException as exc:
            raise TransientIntegrationError(f"log download failed ({type(exc).__name__})") from None
        return tail.decode("utf-8", errors="replace")

    def close(self) -> None:
        while True:
            try:
                gh = self._pool.get_nowait()
            except queue.Empty:
                break
            gh.close()
        self._blob_session.close()


# --- helpers -------------------------------------------------------------------------------------
def _path_of(url: str) -> str:
    if url.startswith("/"):
        return url.split("?", 1)[0]
    from urllib.parse import urlsplit

    return urlsplit(url).path


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _parse(text: str, headers: Mapping[str, str]) -> Any:
    if not text:
        return None
    if "json" in headers.get("content-type", "json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _message_of(text: str) -> str:
    try:
        body = json.loads(text) if text else None
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("message") or "")[:200]
    return ""
