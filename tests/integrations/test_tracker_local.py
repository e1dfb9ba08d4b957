"""The local tracker, through its plugin interface and `ao issue`."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from integrations.base import IssueNotFound
from integrations.registry import plugin_for
from sessions.models import Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_issues_are_numbered_per_project_and_listed_by_label() -> None:
    a, b = ProjectFactory(tracker="local"), ProjectFactory(tracker="local")
    ta, tb = plugin_for(a, "tracker"), plugin_for(b, "tracker")

    first = ta.create_issue(title="Fix login", body="It 500s", labels=["agent:backlog"])
    second = ta.create_issue(title="Add dark mode")
    other = tb.create_issue(title="Other project")

    assert (first.ref, second.ref, other.ref) == ("1", "2", "1")
    assert ta.get_issue("#1").body == "It 500s"
    assert [i.ref for i in ta.list_issues()] == ["2", "1"]
    assert [i.ref for i in ta.list_issues(label="agent:backlog")] == ["1"]


def test_comment_labels_and_close() -> None:
    tracker = plugin_for(ProjectFactory(tracker="local"), "tracker")
    tracker.create_issue(title="Fix login", labels=["agent:backlog"])

    tracker.comment("1", "Working on it in ao-3")
    tracker.set_labels("1", add=["agent:in-progress"], remove=["agent:backlog"])
    tracker.close("1")

    issue = tracker.get_issue("1")
    assert issue.labels == ("agent:in-progress",)
    assert (issue.state, issue.state_name) == ("done", "closed")
    assert tracker.list_issues() == []


@pytest.mark.parametrize("ref", ["99", "abc", "1;rm -rf /", ""])
def test_unknown_issue_is_not_found(ref: str) -> None:
    tracker = plugin_for(ProjectFactory(tracker="local"), "tracker")
    with pytest.raises(IssueNotFound):
        tracker.get_issue(ref)


def test_ao_issue_commands(capsys) -> None:
    ProjectFactory(key="web", tracker="local")

    call_command("issue", "add", "Fix login", "--label", "bug")
    call_command("issue", "ls", "--json")
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])

    assert listed == [
        {"ref": "1", "title": "Fix login", "body": "", "url": "", "labels": ["bug"], "state": "open"}
    ]


def test_ao_issue_needs_a_project_choice_when_there_are_several() -> None:
    ProjectFactory(key="web")
    ProjectFactory(key="api")
    with pytest.raises(CommandError, match=r"several projects \(api, web\)"):
        call_command("issue", "ls")
    with pytest.raises(CommandError, match="no project 'nope'; projects: api, web"):
        call_command("issue", "--project", "nope", "ls")


def test_blocked_by_links_keep_the_open_blockers() -> None:
    tracker = plugin_for(ProjectFactory(tracker="local"), "tracker")
    for title in ("Schema", "Old step", "Use the schema"):
        tracker.create_issue(title=title)

    assert tracker.set_blocked_by("#3", ["1", "#2", "1"]) == ["1", "2"]
    assert tracker.blocked_by("3") == ["1", "2"]
    tracker.close("2")
    assert tracker.blocked_by("3") == ["1"]
    assert tracker.blocked_by("1") == []
    with pytest.raises(IssueNotFound):
        tracker.set_blocked_by("3", ["9"])
    with pytest.raises(ValueError, match="blocked by itself"):
        tracker.set_blocked_by("3", ["3"])
    assert tracker.blocked_by("3") == ["1"]  # a refused change changes nothing


def test_ao_issue_add_blocked_by_and_show(capsys) -> None:
    ProjectFactory(key="web", tracker="local")
    call_command("issue", "add", "Schema")
    call_command("issue", "add", "Use it", "--blocked-by", "1", "--body", "after the schema")
    out = capsys.readouterr().out
    assert "created #2: Use it\nblocked by #1" in out

    call_command("issue", "show", "2")
    assert capsys.readouterr().out == "#2 Use it (open)\nblocked by: #1\n\nafter the schema\n"
    call_command("issue", "show", "2", "--json")
    assert json.loads(capsys.readouterr().out)["blocked_by"] == ["1"]

    with pytest.raises(CommandError, match="not found"):
        call_command("issue", "add", "Orphan", "--blocked-by", "7")
    project = Project.objects.get(key="web")
    # nothing created for the refused one
    assert [i.ref for i in plugin_for(project, "tracker").list_issues()] == ["2", "1"]
