"""The GitHub-mode journey's world: the team journey's world (``world.py``: the person's repository,
``ao start --port N`` as the installed console script with its own AO_HOME, a private tmux
server; no browser here) plus everything ao talks to in GitHub mode, each a process or a server of
its own:

- the fake GitHub (``python -m tests.fakes.github``), an Enterprise server (``/api/v3``,
  ``/api/graphql``) hosting ``acme/calc``, whose git is a bare repository under ``git_root`` (the
  person's ``origin``), delivering signed webhooks to ao's ``/webhooks/github/calc``;
- the fake Linear (``python -m tests.fakes.linear``) with team ENG;
- an SMTP server process (``python -m tests.fakes.smtp``) requiring AUTH;
- capture servers for the Slack, Discord and webhook notifiers (``tests.fakes.hooks``), and a
  ``notify-send`` stand-in for the desktop notifier that logs its argv.

Tests drive the fakes through their ``/_fake/`` control endpoints (``FakeProcess.call``) and read
only what ao's users could see: ao's CLI, API and pages, the agents' panes and logs, git, and what
each channel received.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fakes.hooks import FakeHooks
from tests.journey.world import AGENT_SCRIPT, World, git, journey_world, make_user_repo
from tests.test_embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
GITHUB_TOKEN = "ghp_journey000000000000000000000000000000"
WEBHOOK_SECRET = "journey-webhook-secret"
LINEAR_KEY = "lin_api_journey_0123456789abcdef"
SMTP_USER, SMTP_PASSWORD = "ao-mailer", "mail-s3cret"
MODEL = "journey-model-7"
QUESTION_PATTERN = r"Proceed with the refactor\? \(y/n\)\s*$"


class FakeProcess:
    """A fake run as its own process (``python -m MODULE ...``, which prints ``listening on PORT``)."""

    def __init__(self, module: str, *args: str) -> None:
        self.module = module
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert line.startswith("listening on "), f"{module} did not start: {line!r}"
        self.port = int(line.split()[-1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, op: str, *, method: str = "POST", **args: Any) -> Any:
        """One control request (``/_fake/<op>``); its JSON answer."""
        if method == "GET":
            response = httpx.get(f"{self.origin}/_fake/{op}", params=args, timeout=30)
        else:
            response = httpx.post(f"{self.origin}/_fake/{op}", json=args, timeout=30)
        assert response.status_code == 200, (
            f"{self.module} /_fake/{op}: {response.status_code} {response.text}"
        )
        return response.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Outside:
    """Everything outside ao in the GitHub-mode journey."""

    github: FakeProcess
    linear: FakeProcess
    smtp: FakeProcess
    mail_out: Path
    slack: FakeHooks
    discord: FakeHooks
    webhook: FakeHooks
    notify_log: Path
    git_root: Path

    @property
    def github_api(self) -> str:
        return f"{self.github.origin}/api/v3"

    def github_requests(self, method: str, path: str) -> int:
        """How many ``method path`` requests the fake GitHub answered (REST paths, without /api/v3)."""
        return sum(
            1
            for r in self.github.call("requests", method="GET")
            if (r["method"], r["path"]) == (method, path)
        )

    def deliver(self, event: str, **kwargs: Any) -> int:
        """GitHub delivers a signed ``event`` about the current state to ao; ao's HTTP status."""
        return self.github.call("webhook", event=event, **kwargs)["status"]

    def mail(self) -> list[dict]:
        if not self.mail_out.exists():
            return []
        return [json.loads(line) for line in self.mail_out.read_text().splitlines() if line.strip()]

    def desktop(self) -> list[list[str]]:
        if not self.notify_log.exists():
            return []
        return [json.loads(line) for line in self.notify_log.read_text().splitlines() if line.strip()]


def notify_send_stand_in(path: Path, log: Path) -> Path:
    """A ``notify-send`` that appends its argv to ``log`` as a JSON line."""
    path.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def outside_world(root: Path, *, ao_port: int) -> Iterator[Outside]:
    """Start the fakes and capture servers (always stopped at the end)."""
    git_root = root / "github-git"
    (git_root / "acme").mkdir(parents=True)
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(git_root / "acme" / "calc.git")], check=True
    )
    started: list[FakeProcess] = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [fake.stop() for fake in started])
        github = FakeProcess(
            "tests.fakes.github", "--enterprise", "--repo", "acme/calc", "--token", GITHUB_TOKEN,
            "--git-root", str(git_root), "--hook", f"http://127.0.0.1:{ao_port}/webhooks/github/calc",
            "--hook-secret", WEBHOOK_SECRET,
        )  # fmt: skip
        started.append(github)
        linear = FakeProcess("tests.fakes.linear", "--team", "ENG", "--api-key", LINEAR_KEY)
        started.append(linear)
        mail_out = root / "mail.jsonl"
        smtp = FakeProcess(
            "tests.fakes.smtp", "--user", SMTP_USER, "--password", SMTP_PASSWORD, "--out", str(mail_out)
        )
        started.append(smtp)
        slack = stack.enter_context(FakeHooks())
        discord = stack.enter_context(FakeHooks(status=204, body=""))
        webhook = stack.enter_context(FakeHooks())
        yield Outside(
            github=github, linear=linear, smtp=smtp, mail_out=mail_out, slack=slack, discord=discord,
            webhook=webhook, notify_log=root / "notify-send.jsonl", git_root=git_root,
        )  # fmt: skip


def ao_environment(outside: Outside) -> dict[str, str]:
    """What the person exports before `ao start` (README, docs/CONFIG.md): the GitHub token and
    webhook secret, the Linear key and the mail server."""
    return {
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "AO_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "AO_JOURNEY_LINEAR_KEY": LINEAR_KEY,
        "AO_JOURNEY_HOOK_SECRET": "journey-hook-secret",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(outside.smtp.port),
        "EMAIL_HOST_USER": SMTP_USER,
        "EMAIL_HOST_PASSWORD": SMTP_PASSWORD,
        "DEFAULT_FROM_EMAIL": "ao@calc.test",
    }


def agent_setting(world: World, *github: str) -> dict[str, Any]:
    command = [sys.executable, str(AGENT_SCRIPT), "--log-dir", str(world.agent_log)]
    if github:
        api, token, repo = github
        command += ["--github-api", api, "--github-token", token, "--github-repo", repo]
    return {
        "plugin": "custom",
        "command": command,
        "prompt_mode": "send",
        "ready_pattern": r"^journey-agent>\s*$",
        "waiting_pattern": QUESTION_PATTERN,
        "model": MODEL,
    }


def configure_github_mode(world: World, outside: Outside) -> Path:
    """The person's ao.config.yaml for GitHub mode, as docs/CONFIG.md describes it: ``calc`` on
    GitHub Enterprise (tracker and SCM), ``ops`` on Linear with backlog intake, and five channels.
    The checkout's ``origin`` is the repository's git on "GitHub"."""
    git(world.repo, "remote", "add", "origin", str(outside.git_root / "acme" / "calc.git"))
    git(world.repo, "push", "-q", "origin", "main")
    ops = make_user_repo(world.root / "ops")
    github = {"base_url": outside.github_api}
    config = {
        "notifiers": {
            "slack": {"plugin": "slack", "webhook_url": outside.slack.url("/slack"), "retries": 0},
            "discord": {"plugin": "discord", "webhook_url": outside.discord.url("/discord"), "retries": 0},
            "hook": {
                "plugin": "webhook",
                "url": outside.webhook.url("/hook"),
                "secret_env": "AO_JOURNEY_HOOK_SECRET",
                "retries": 0,
            },
            "mail": {"plugin": "email", "to": ["pat@calc.test"], "retries": 0},
            "desk": {
                "plugin": "desktop",
                "binary": str(notify_send_stand_in(world.root / "notify-send", outside.notify_log)),
                "retries": 0,
            },
        },
        "projects": {
            "calc": {
                "path": str(world.repo),
                "repo": "acme/calc",
                "sessionPrefix": "calc",
                "tracker": {"plugin": "github", **github},
                "scm": {"plugin": "github", **github},
                "agent": agent_setting(world, outside.github_api, GITHUB_TOKEN, "acme/calc"),
                "orchestrator": {"enabled": False},
            },
            "ops": {
                "path": str(ops),
                "sessionPrefix": "ops",
                "tracker": {
                    "plugin": "linear",
                    "team": "ENG",
                    "api_url": f"{outside.linear.origin}/graphql",
                    "api_key_env": "AO_JOURNEY_LINEAR_KEY",
                },
                "scm": "local",
                "agent": agent_setting(world),
                "intake": {"enabled": True},
                "reactions": {"agent-stuck": {"threshold": "3s"}},
                "orchestrator": {"enabled": False},
            },
        },
    }
    path = world.repo / "ao.config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with open(world.repo / ".git" / "info" / "exclude", "a") as fh:
        fh.write("ao.config.yaml\n")
    return path


@contextlib.contextmanager
def github_journey_world(root: Path) -> Iterator[tuple[World, Outside]]:
    ao_port = free_port()
    with outside_world(root, ao_port=ao_port) as outside:
        with journey_world(root, browser=False, port=ao_port, env=ao_environment(outside)) as world:
            world.env["PATH"] = os.environ["PATH"]
            yield world, outside
