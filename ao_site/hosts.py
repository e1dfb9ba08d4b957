"""Agent host names: the name a machine's worker consumes ``host.<name>`` under, and the name a
session records as where it runs. One rule for both, so a spawn and its worker always agree."""

from __future__ import annotations

import re
import socket

HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def machine_host_name() -> str:
    """This machine's short host name (``build-1`` for ``build-1.example.com``), or ``localhost``
    when it is not a usable queue name."""
    name = socket.gethostname().split(".")[0]
    return name if HOST_NAME_RE.match(name) else "localhost"
