"""Install the pinned real agent CLIs into a cache outside the repository, reusing it when present.

    python -m tests.agent_clis.install            # every pinned CLI (what .ci/run does)
    python -m tests.agent_clis.install codex      # one

The cache is ``$AO_AGENT_CLI_CACHE`` (default ``~/.cache/ao-agent-clis``); each CLI lives in
``<cache>/<key>-<version>/`` and counts as installed once its ``.complete`` marker exists, so an
interrupted install is redone, never half-used. npm packages install as npm installs them
for a user (Claude Code and OpenCode link their native binary, shipped as a platform package, in a
post-install step); aider gets a virtualenv of its own. Concurrent installs of one CLI (two xdist workers) wait on a
lock file. Only the registries are contacted.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pin:
    key: str
    registry: str  # "npm" | "pypi"
    package: str
    version: str
    binary: str


# The versions the real-CLI tests are written against. Claude Code twice: the current release
# (a native binary) and an older 2.1.x (the JavaScript build), whose screens and records differ.
PINS: dict[str, Pin] = {
    pin.key: pin
    for pin in (
        Pin("claude-code", "npm", "@anthropic-ai/claude-code", "2.1.328", "claude"),
        Pin("claude-code-old", "npm", "@anthropic-ai/claude-code", "2.1.100", "claude"),
        Pin("codex", "npm", "@openai/codex", "0.169.0", "codex"),
        Pin("opencode", "npm", "opencode-ai", "1.18.33", "opencode"),
        Pin("gemini", "npm", "@google/gemini-cli", "0.61.0", "gemini"),
        Pin("aider", "pypi", "aider-chat", "0.86.2", "aider"),
    )
}


# The home the test run started with: tests set HOME to a fresh directory for the agent before
# they ask for its CLI, and the cache must not follow it (each test installed the CLI again).
USER_HOME = Path.home()


def cache_root() -> Path:
    return Path(os.environ.get("AO_AGENT_CLI_CACHE") or USER_HOME / ".cache" / "ao-agent-clis")


def _home(pin: Pin) -> Path:
    return cache_root() / f"{pin.key}-{pin.version}"


def _bin_path(pin: Pin) -> Path:
    if pin.registry == "npm":
        return _home(pin) / "node_modules" / ".bin" / pin.binary
    return _home(pin) / "venv" / "bin" / pin.binary


def _run(argv: list[str], cwd: Path) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{tail}")


def _install(pin: Pin, home: Path) -> None:
    if pin.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: the real agent CLIs come from the npm registry")
        (home / "package.json").write_text('{"private": true}\n')
        _run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(home),
                f"{pin.package}@{pin.version}",
            ],
            home,
        )
    else:
        python = shutil.which("python3.11") or shutil.which("python3") or sys.executable
        _run([python, "-m", "venv", str(home / "venv")], home)
        _run(
            [str(home / "venv" / "bin" / "pip"), "install", "--quiet", f"{pin.package}=={pin.version}"], home
        )


def ensure(key: str) -> Path:
    """The path of the pinned CLI's executable, installing it into the cache first if needed."""
    pin = PINS[key]
    home = _home(pin)
    marker = home / ".complete"
    if marker.exists():
        return _bin_path(pin)
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f".{pin.key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            if home.exists():
                shutil.rmtree(home)  # an interrupted install
            home.mkdir(parents=True)
            _install(pin, home)
            if not _bin_path(pin).exists():
                raise RuntimeError(f"{pin.package}@{pin.version} installed no {pin.binary!r}")
            marker.write_text(f"{pin.package}@{pin.version}\n")
    return _bin_path(pin)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", nargs="*", metavar="KEY", help=f"default: all of {', '.join(PINS)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.keys) - set(PINS))
    if unknown:
        parser.error(f"unknown CLI {', '.join(unknown)}; pinned: {', '.join(PINS)}")
    for key in args.keys or PINS:
        pin = PINS[key]
        cached = (_home(pin) / ".complete").exists()
        path = ensure(key)
        print(f"{pin.package}@{pin.version}: {path}{' (cached)' if cached else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
