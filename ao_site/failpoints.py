"""Named points where a fault test can make this process die at the worst moment.

``AO_FAILPOINTS="message.claimed@2,sweep.claimed"`` makes the process SIGKILL itself the 2nd time
it reaches ``message.claimed`` (or the 1st time it reaches ``sweep.claimed``). A SIGKILL, not an
exception: nothing after that point runs, no ``finally`` block, no lease release — what a power
cut or the OOM killer does. Unset (always, outside the fault tests), :func:`reach` is a dict
lookup on an empty dict.

The points:

- ``message.claimed``: a deliverer has claimed a message and not yet typed it;
- ``sweep.claimed``: a sweep holds its project's lease and has observed one session.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections import Counter


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition("@")
        points[name] = int(nth) if nth.isdigit() and int(nth) > 0 else 1
    return points


_POINTS = _parse(os.environ.get("AO_FAILPOINTS", ""))
_reached: Counter[str] = Counter()
_lock = threading.Lock()


def reach(name: str) -> None:
    """Die here (SIGKILL) if a fault test asked for it at this point and this count."""
    if name not in _POINTS:
        return
    with _lock:
        _reached[name] += 1
        if _reached[name] != _POINTS[name]:
            return
    sys.stderr.write(f"ao: failpoint {name} reached: killing this process (AO_FAILPOINTS)\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
