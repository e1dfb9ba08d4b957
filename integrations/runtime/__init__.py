"""Runtime plugins (``tmux``, ``process``) and what they share.

Both start the agent through the same tiny launcher (:data:`LAUNCHER`): ``python -I -c
LAUNCHER <spec.json>``. The spec file (mode 0600, deleted by the launcher as soon as it is
read) holds the argv, the working directory and the agent's whole environment: ao's own
environment at the moment it starts the agent, with the variables given layered over it (a
variable given as None is removed, so ao's own secrets need not reach the agent). The launcher
changes directory, takes from its own environment only what the terminal provides
(:data:`TERMINAL_ENV`: TERM, TMUX, TMUX_PANE, ...) and ``execvp``s the argv with that environment.
So the agent sees what ao decides, whatever tmux server its pane lives in (a tmux server keeps
the environment of whoever started it: a person's own tmux, an earlier ao with other variables),
and the same again on restore; the spec file is private to ao's user and gone once read. So the agent's
command line never passes through a shell or through tmux's own argument parsing (tmux
runs a lone command string with ``sh -c`` and treats any argument ending in ``;`` as a
command separator), and secrets in the environment are not visible on any command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from integrations.base import PermanentIntegrationError
from sessions.domain.text import strip_controls

# Executed as ``python -I -c LAUNCHER <spec-path> [ctty]``: stdlib only, no ao imports, so it
# runs under any working directory and ignores PYTHON* variables meant for the agent.
LAUNCHER = """\
import json, os, sys
path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    spec = json.load(f)
os.unlink(path)
if spec.get("ctty"):
    import fcntl, termios
    try:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    except OSError:
        pass
env = dict(spec["env"])
for name in spec["terminal"]:
    env.pop(name, None)
    if name in os.environ:
        env[name] = os.environ[name]
argv = spec["argv"]
try:
    os.chdir(spec["cwd"])
    os.execvpe(argv[0], argv, env)
except OSError as exc:
    sys.stderr.write("ao: cannot run %r: %s\\n" % (argv[0], exc))
    sys.stderr.flush()
    sys.exit(127)
"""

# What the agent's terminal itself provides: taken from the pane (tmux sets TERM, TMUX, TMUX_PANE,
# TERM_PROGRAM...), never from ao's environment (ao may run in another terminal, or none);
# COLUMNS/LINES from ao's terminal would give the agent the wrong size.
TERMINAL_ENV = ("TERM", "TMUX", "TMUX_PANE", "COLORTERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION",
                "COLUMNS", "LINES")  # fmt: skip

# Never removed from an agent's environment, whatever a (mis)configured setting names: the agent
# cannot run without them (``starting.agent_environment``).
ESSENTIAL_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TMPDIR"})

# All of ao's environment a tmux client ao runs (and so a tmux server it starts) gets: what tmux
# needs (its socket directory, the locale for UTF-8, HOME for its config, SHELL for new windows)
# and nothing else. A tmux server keeps the environment it was started with for good: anyone on
# it reads it (``tmux show-environment -g``, the agents included) and every new window (prefix-key
# ``c``) starts with it. The agents do not need it: theirs comes whole from the launcher's spec.
SERVER_ENV = ESSENTIAL_ENV | {"LANGUAGE", "TMUX_TMPDIR"}
SERVER_ENV_PREFIXES = ("LC_", "XDG_")


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a tmux client ao runs (:data:`SERVER_ENV`), from ``base`` (ao's own)."""
    base = os.environ if base is None else base
    return {k: v for k, v in base.items() if k in SERVER_ENV or k.startswith(SERVER_ENV_PREFIXES)}


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\Z")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

LONG_TEXT = 200  # characters: longer (or multi-line) text is pasted, shorter is typed
BRACKETED_PASTE_START = "\x1b[200~"
BRACKETED_PASTE_END = "\x1b[201~"


def validate_name(name: str) -> str:
    """A runtime session name (the session id): letters, digits, ``_`` and ``-``; no ``.``/``:`` (tmux)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PermanentIntegrationError(
            f"invalid runtime session name {name!r}: use letters, digits, '_' or '-' (at most 100), "
            "starting with a letter or digit"
        )
    return name


def clean_text(text: str) -> str:
    """Normalise line endings to ``\\n`` and strip control characters other than newline and tab."""
    return strip_controls(text)


def needs_paste(text: str, *, threshold: int = LONG_TEXT) -> bool:
    return "\n" in text or len(text) > threshold


def validate_command(command: Sequence[str], env: Mapping[str, str]) -> None:
    if isinstance(command, str) or not command or not all(isinstance(a, str) for a in command):
        raise PermanentIntegrationError(f"a runtime command must be a non-empty argv list, not {command!r}")
    if any("\0" in a for a in command):
        raise PermanentIntegrationError("a runtime command argument contains a NUL byte")
    for key, value in env.items():
        if value is None and ENV_KEY_RE.match(key):
            continue  # removed from the agent's environment
        if not ENV_KEY_RE.match(key) or not isinstance(value, str) or "\0" in value:
            raise PermanentIntegrationError(f"invalid environment variable {key!r}")


def agent_env(env: Mapping[str, str | None], *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agent's whole environment: ``base`` (ao's own environment now) with ``env`` layered
    over it, a None value removing the variable."""
    full = dict(os.environ if base is None else base)
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return full


def write_launch_spec(
    *, command: Sequence[str], cwd: Path, env: Mapping[str, str | None], ctty: bool = False
) -> str:
    """Write the launcher's spec (argv, cwd, the agent's whole environment: :func:`agent_env`) to
    a private temp file and return its path."""
    validate_command(command, env)
    if not Path(cwd).is_dir():
        raise PermanentIntegrationError(f"working directory {cwd} does not exist")
    full = agent_env(env)
    fd, path = tempfile.mkstemp(prefix="ao-launch-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(
            {
                "argv": list(command),
                "cwd": str(cwd),
                "env": full,
                "terminal": TERMINAL_ENV,
                "ctty": ctty,
            },
            f,
        )
    return path


def launcher_argv(spec_path: str) -> list[str]:
    return [sys.executable, "-I", "-c", LAUNCHER, spec_path]


def discard_launch_spec(path: str | None) -> None:
    """Delete a spec file the launcher never got to read (the agent was killed first)."""
    if not path:
        return
    spec = Path(path)
    if spec.parent == Path(tempfile.gettempdir()) and re.match(
        r"^ao-launch-[A-Za-z0-9_]+\.json\Z", spec.name
    ):
        with contextlib.suppress(OSError):
            spec.unlink()
