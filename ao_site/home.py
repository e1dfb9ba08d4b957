"""The ao home directory (``AO_HOME``, default ``~/.ao``) and the secrets kept in it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def ao_home() -> Path:
    """Return the ao home directory, creating it (mode 0700) on first use."""
    home = Path(os.environ.get("AO_HOME") or Path.home() / ".ao").expanduser()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def read_or_create_secret(path: Path, *, nbytes: int = 50) -> str:
    """Read a secret from ``path``; on first use generate one and write it with mode 0600.

    The file is created with O_EXCL so two processes starting at once agree on one secret.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
