"""``ao`` against a remote ao: the CLI over the REST API with AO_URL + AO_TOKEN (a user token).

When AO_URL and AO_TOKEN (``ao_...``, from ``ao token create``) are set and AO_SESSION is not
(agents keep using ``sessions.cli.agent_client`` with their session token), ``ao spawn``, ``ao
batch-spawn``, ``ao send``, ``ao session ls|kill|restore``, ``ao status`` and ``ao issue`` call
the API instead of the local database. Each function here returns the lines the command prints
and raises ``ApiError`` with the server's message on failure.

Standard library only (``ao status``, ``ao session ls`` and ``ao send`` call it from
``sessions.cli.light_commands``, before Django loads).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessions.cli.httpclient import RedirectRefused, open_url
from sessions.domain.text import strip_controls

USER_TOKEN_PREFIX = "ao_"  # noqa: S105 - a prefix, not a secret
# ao's commands that talk to a remote ao over the API; the others that act on ao's data refuse
# in remote mode instead of silently using this machine's database.
REMOTE_COMMANDS = frozenset({"spawn", "batch-spawn", "send", "session", "status", "issue", "host"})
LOCAL_DATA_COMMANDS = frozenset(
    {"intake", "pr", "retro", "lessons", "orchestrator", "token", "secret", "login-link", "login-unlock"}
    | {"config", "project", "budget"}
)
# Commands about this machine (its processes, its tools) or for agents (their own session token).
HOST_COMMANDS = frozenset({"start", "stop", "web", "worker", "beat", "version", "doctor", "init", "report"})


class ApiError(Exception):
    def __init__(self, message: str, *, status: int = 0, code: str = "", field: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field


class ApiClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        base_url = base_url.rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ApiError(f"AO_URL must be an http(s) URL, not {base_url!r}")
        self.base_url, self.token, self.timeout = base_url, token, timeout
        self.last_status = 0  # the last answer's HTTP status (202: requested on another host)

    def request(self, method: str, path: str, *, body: Any = None, params: dict | None = None) -> Any:
        url = (
            path if path.startswith(("http://", "https://")) else f"{self.base_url}/api/v1/{path.lstrip('/')}"
        )
        if params:
            query = {k: v for k, v in params.items() if v not in (None, "")}
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
        if not url.startswith(self.base_url + "/"):
            raise ApiError(f"refusing to follow a link off {self.base_url}: {url}")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            url,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-AO-Client": "cli",
            },
        )
        try:
            with open_url(request, timeout=self.timeout) as response:
                raw = response.read()
                self.last_status = response.status
        except RedirectRefused as exc:
            raise ApiError(f"ao at {self.base_url} was not reached: {exc}") from exc
        except urllib.error.HTTPError as exc:
            raw = exc.read()[:4000]
            try:
                error = json.loads(raw)["error"]
                message = error.get("message") or str(error)
                if error.get("field"):
                    message = f"{error['field']}: {message}"
                raise ApiError(
                    message, status=exc.code, code=error.get("code", ""), field=error.get("field", "")
                ) from exc
            except (ValueError, KeyError, TypeError):
                raise ApiError(f"ao at {self.base_url} answered {exc.code}", status=exc.code) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ApiError(f"cannot reach ao at {self.base_url}: {exc}") from exc
        return json.loads(raw) if raw else None

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body if body is not None else {})

    def paginate(self, path: str, *, limit: int = 1000, **params) -> Iterator[dict]:
        page = self.get(path, limit=200, **params)
        count = 0
        while True:
            for row in page["results"]:
                yield row
                count += 1
                if count >= limit:
                    return
            if not page.get("next"):
                return
            page = self.request("GET", page["next"])


def client_from_env() -> ApiClient | None:
    """The remote client when AO_URL + a user AO_TOKEN are set and this is not an agent, else None."""
    url, token = os.environ.get("AO_URL", ""), os.environ.get("AO_TOKEN", "")
    if not url or not token.startswith(USER_TOKEN_PREFIX) or os.environ.get("AO_SESSION"):
        return None
    return ApiClient(url, token)


def remote_refusal(command: str, args: Sequence[str] = ()) -> str:
    """Why ``ao <command>`` will not run here in remote mode, or "" when it may."""
    if command not in LOCAL_DATA_COMMANDS or client_from_env() is None:
        return ""
    if command == "secret" and "--mine" in args:  # your personal credentials, over the API
        return ""
    return (
        f"`ao {command}` works on the ao host only, not over the API (AO_URL and AO_TOKEN are set): run it "
        f"there, or unset AO_TOKEN to use this machine's ao"
    )


def _project_key(client: ApiClient, key: str | None, *, cwd: Path | None = None) -> str:
    """``key``; else the only project the token sees; else the one whose ``repo`` (owner/name on the
    SCM) a remote of the git repository holding ``cwd`` (default: the current directory) points at.
    The server's checkout paths mean nothing on this machine, so the remotes are what is compared."""
    if key:
        return key
    projects = list(client.paginate("projects/"))
    if len(projects) == 1:
        return projects[0]["key"]
    if not projects:
        raise ApiError("no projects visible to your token")
    keys = ", ".join(p["key"] for p in projects)
    matches = _projects_for_remotes(projects, _git_remotes(Path.cwd() if cwd is None else cwd))
    found = sorted({k for ks in matches.values() for k in ks})
    if len(found) == 1:
        return found[0]
    if len(matches.get("origin", [])) == 1:
        return matches["origin"][0]  # other remotes (upstream, a fork) match other projects
    if found:
        raise ApiError(
            f"several projects ({', '.join(found)}) are on this repository's remotes: choose one with --project"
        )
    raise ApiError(
        f"several projects ({keys}) and none is on a remote of this directory's git repository: "
        "choose one with --project"
    )


def _git_remotes(cwd: Path) -> dict[str, str]:
    """Remote name -> URL of the git repository holding ``cwd`` ({} outside one, or without git)."""
    try:
        proc = subprocess.run(
            ["git", "config", "--get-regexp", r"^remote\..*\.url$"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    remotes = {}
    for line in proc.stdout.splitlines() if proc.returncode == 0 else ():
        name, _, url = line.partition(" ")
        remotes[name.removeprefix("remote.").removesuffix(".url")] = url.strip()
    return remotes


def _projects_for_remotes(projects: list[dict], remotes: dict[str, str]) -> dict[str, list[str]]:
    """Remote name -> keys of the projects whose ``repo`` (owner/name, any case) its URL names."""
    # local: config loads Django; the light commands import this module
    from sessions.core.config.init import git_remote_parse

    by_repo: dict[str, list[str]] = {}
    for project in projects:
        if project.get("repo"):
            by_repo.setdefault(project["repo"].strip().lower(), []).append(project["key"])
    out = {}
    for name, url in remotes.items():
        remote = git_remote_parse(url)
        if remote and (keys := by_repo.get(f"{remote.owner}/{remote.name}".lower())):
            out[name] = keys
    return out


def _session_line(row: dict) -> str:
    return f"{row['id']}: {row['status'].replace('_', ' ')} — {row['reason']}"


# --- commands -------------------------------------------------------------------------------------
def spawn(
    client: ApiClient,
    *,
    project,
    issue,
    prompt,
    agent,
    branch,
    missing_issue_ok=False,
    host=None,
    as_json: bool = False,
) -> list[str]:
    key = _project_key(client, project)
    fields = {
        "issue": issue,
        "prompt": prompt,
        "agent": agent,
        "branch": branch,
        "missing_issue_ok": missing_issue_ok,
        "host": host,
    }
    body = {k: v for k, v in fields.items() if v}
    row = client.post(f"projects/{key}/spawn", body)
    if as_json:  # the shape of the local `ao spawn --json` (the workspace is the agent host's own)
        spawned = {k: row.get(k) for k in SUMMARY_KEYS}
        spawned.update(
            host=row.get("host") or "",
            workspace=row.get("workspace_path") or "",
            error=row.get("error") or "",
        )
        return [json.dumps(spawned, indent=2)]
    return [f"{_session_line(row)} (host {row['host']})" if row.get("host") else _session_line(row)]


def batch_spawn(client: ApiClient, *, project, issues, agent) -> tuple[list[str], list[str]]:
    key = _project_key(client, project)
    result = client.post(f"projects/{key}/batch-spawn", {"issues": list(issues), "agent": agent or ""})
    ok = [
        f"{r['issue']}: {r['session']['id']} {r['session']['status']}"
        for r in result["results"]
        if r["session"]
    ]
    failed = [f"{r['issue']}: not spawned: {r['error']['message']}" for r in result["results"] if r["error"]]
    return ok, failed


def send(client: ApiClient, *, session: str, text: str, answers_prompt: bool) -> list[str]:
    message = client.post(f"sessions/{session}/send", {"text": text, "answers_prompt": answers_prompt})
    restored = message.get("restored") or ""
    lead = f"{session} {restored} (it was not running); " if restored else ""
    return [f"{lead}message {message['id']} to {session}: {message.get('delivery') or message['state']}"]


def session_kill(client: ApiClient, *, session: str) -> list[str]:
    row = client.post(f"sessions/{session}/kill", {"reason": "ao session kill"})
    if client.last_status == 202:
        return [f"{session}: kill requested; runs on host {row['host']}"]
    return [f"{session} killed; `ao session restore {session}` brings it back"]


def session_claim_pr(client: ApiClient, *, session: str, pr: str) -> list[str]:
    text = pr.strip().lstrip("#")
    row = client.post(
        f"sessions/{session}/claim-pr", {"number": int(text)} if text.isdigit() else {"url": pr}
    )
    return [f"{session} now has PR #{(row.get('pull_request') or {}).get('number', text)}"]


def session_restore(client: ApiClient, *, session: str) -> list[str]:
    row = client.post(f"sessions/{session}/restore")
    if client.last_status == 202:
        return [f"{session}: restore requested; runs on host {row['host']}"]
    return [f"{session} restored: {row['reason']}"]


SUMMARY_KEYS = (
    "id",
    "project",
    "kind",
    "status",
    "zone",
    "reason",
    "agent",
    "issue",
    "title",
    "branch",
    "activity",
    "created_at",
)


def sessions_list(client: ApiClient, *, project=None, include_done=True) -> list[dict]:
    params = {"project": project, "include_done": "true" if include_done else "false"}
    return list(client.paginate("sessions/", **params))


def session_ls(client: ApiClient, *, project, include_done: bool, as_json: bool) -> list[str]:
    rows = [
        {k: row.get(k) for k in SUMMARY_KEYS}
        for row in sessions_list(client, project=project, include_done=include_done)
    ]
    if as_json:
        return [json.dumps(rows, indent=2)]
    if not rows:
        return ["no sessions"]
    lines = [f"{'SESSION':<18} {'STATUS':<18} {'ZONE':<8} {'AGENT':<12} {'ISSUE':<8} TITLE"]
    for row in rows:
        issue, title = (strip_controls(row[k] or "", one_line=True) for k in ("issue", "title"))
        lines.append(
            f"{row['id']:<18} {row['status']:<18} {row['zone']:<8} {row['agent']:<12} "
            f"{issue or '-':<8} {title[:50]}"
        )
    return lines


def status_snapshot(client: ApiClient, *, include_done: bool = True) -> dict:
    """``ao status --json``'s shape, from the API."""
    now = datetime.now(UTC)
    sessions = []
    counts: dict[str, int] = {}
    for row in sessions_list(client, include_done=include_done):
        created = datetime.fromisoformat(row["created_at"])
        counts[row["project"]] = counts.get(row["project"], 0) + 1
        sessions.append(
            {
                "id": row["id"],
                "project": row["project"],
                "kind": row["kind"],
                "status": row["status"],
                "zone": row["zone"],
                "reason": row["reason"],
                "agent": row["agent"],
                "issue": row["issue"],
                "issue_title": row["title"],
                "branch": row["branch"],
                "host": row["host"],
                "created_at": row["created_at"],
                "status_changed_at": row["status_changed_at"],
                "age_seconds": round((now - created).total_seconds(), 1),
            }
        )
    projects = []
    for project in client.paginate("projects/"):
        # live: as the server counts them (lifecycle.is_live: an errored or killed session is not)
        live, total = project["live_sessions"], counts.get(project["key"], 0)
        projects.append(
            {
                "key": project["key"],
                "name": project["name"],
                "repo": project["repo"],
                "path": "",
                "default_branch": project["default_branch"],
                "session_prefix": project["session_prefix"],
                "live_sessions": live,
                "sessions": total,
            }
        )
    return {
        "generated_at": now.isoformat(),
        "mode": "remote",
        "server": {"running": True, "pid": None, "url": client.base_url},
        "projects": projects,
        "sessions": sessions,
    }


def issue(client: ApiClient, *, project, action: str, options: dict) -> list[str]:
    key = _project_key(client, project)
    if action == "add":
        created = client.post(
            f"projects/{key}/issues/",
            {
                "title": options["title"],
                "body": options["body"],
                "labels": options["labels"],
                "blocked_by": options.get("blocked_by") or [],
            },
        )
        lines = [strip_controls(f"created #{created['ref']}: {created['title']}", one_line=True)]
        if created.get("blocked_by"):
            lines.append("blocked by " + ", ".join(f"#{n}" for n in created["blocked_by"]))
        return lines
    if action == "ls":
        issues = client.get(f"projects/{key}/issues/", label=options.get("label"))
        if options.get("json"):
            return [
                json.dumps(
                    [{k: i[k] for k in ("ref", "title", "body", "url", "labels", "state")} for i in issues],
                    indent=2,
                )
            ]
        return [
            strip_controls(
                f"#{i['ref']:<6} {i['title']}" + (f"  [{', '.join(i['labels'])}]" if i["labels"] else ""),
                one_line=True,
            )
            for i in issues
        ]
    found = client.get(f"projects/{key}/issues/{urllib.parse.quote(options['ref'], safe='')}/")
    if options.get("json"):
        return [
            json.dumps({k: found[k] for k in ("ref", "title", "body", "url", "labels", "state")}, indent=2)
        ]
    head = strip_controls(f"#{found['ref']} {found['title']} ({found['state']})", one_line=True)
    return [f"{head}\n\n{strip_controls(found['body'])}"]
