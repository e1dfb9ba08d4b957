"""An in-memory SCM plugin for tests of the interfaces (API, chat) that only need PR facts and merges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from integrations.base import SCM, PluginConfig
from integrations.records import PullRequestInfo
from integrations.registry import scms


class InMemorySCM(SCM):
    """PRs in a class-level dict; merges recorded as (number, expected head) and mark the PR merged."""

    class Config(PluginConfig):
        pass

    prs: dict[int, PullRequestInfo]
    merged: list[tuple[int, str]]

    def find_pull_requests(self, *, branches: Sequence[str], since=None) -> dict[str, PullRequestInfo]:
        return {pr.branch: pr for pr in self.prs.values() if pr.branch in branches}

    def fetch_pull_requests(
        self,
        *,
        numbers: Sequence[int],
        previous: Mapping[int, PullRequestInfo] | None = None,
        complete: bool = False,
    ) -> dict[int, PullRequestInfo]:
        return {n: self.prs[n] for n in numbers if n in self.prs}

    def merge(self, *, number: int, method: str = "squash", expected_head_sha: str = "") -> None:
        self.merged.append((number, expected_head_sha))
        self.prs[number] = replace(self.prs[number], state="merged")

    def comment(self, *, number: int, body: str) -> None:
        pass


def in_memory_scm(key: str) -> type[InMemorySCM]:
    """A subclass with its own PR store, registered under ``key`` (once per test run)."""
    if key not in scms:
        scms.add(key, type(f"InMemorySCM[{key}]", (InMemorySCM,), {"prs": {}, "merged": []}))
    return scms.get(key)
