"""The README's GitHub webhook setup names exactly the events ao acts on, so a repository set up as
it says delivers every event ao needs (a base-branch `push` included) and none it ignores."""

from __future__ import annotations

import re
from pathlib import Path

from sessions.flows.webhooks import KNOWN_EVENTS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_exactly_the_events_ao_uses():
    text = README.read_text()
    github = text[text.index("### GitHub") :]
    setup = github[github.index("Which events would you like") : github.index("Without\nwebhooks ao polls")]

    named = set(re.findall(r"`([a-z_]+)`", setup))

    assert named == KNOWN_EVENTS - {"ping"}  # ping is GitHub's own test delivery, always sent
    assert "push" in named
