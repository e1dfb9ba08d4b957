"""Reaction rules: defaults, global and per-project overrides, trust, durations."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from reactions import rules as R


def project(reactions=None, key="web"):
    return SimpleNamespace(key=key, reactions=reactions or {})


DEFAULTS = [
    # rule, action, priority, retries, escalate_after, threshold
    ("ci-failed", "send-to-agent", "urgent", 2, None, None),
    ("changes-requested", "send-to-agent", "urgent", 2, timedelta(minutes=30), None),
    ("bot-review-comments", "send-to-agent", "warning", 2, None, None),
    ("merge-conflicts", "send-to-agent", "urgent", 2, timedelta(minutes=15), None),
    ("approved-and-green", "notify", "action", None, None, None),
    ("review-requested", "notify", "action", None, None, None),
    ("agent-stuck", "notify", "urgent", None, None, timedelta(minutes=10)),
    ("agent-needs-input", "notify", "urgent", None, None, None),
    ("agent-exited", "notify", "urgent", None, None, None),
    ("agent-idle", "send-to-agent", "warning", 2, None, timedelta(minutes=2)),
    ("pr-closed", "notify", "info", None, None, None),
    ("all-complete", "notify", "info", None, None, None),
]


@pytest.mark.parametrize(("name", "action", "priority", "retries", "escalate_after", "threshold"), DEFAULTS)
def test_defaults(name, action, priority, retries, escalate_after, threshold):
    rule = R.rules_for(project(), global_overrides={})[name]

    assert (rule.action, rule.priority, rule.retries, rule.escalate_after, rule.threshold) == (
        action,
        priority,
        retries,
        escalate_after,
        threshold,
    )
    assert rule.auto is True and rule.message == ""


def test_every_rule_has_a_default():
    assert set(R.RULE_NAMES) == {row[0] for row in DEFAULTS}


def test_project_overrides_global_overrides_defaults_key_by_key():
    global_overrides = {
        "ci-failed": {"retries": 5, "escalateAfter": "1h", "message": "Fix CI on {pr}"},
        "agent-stuck": {"threshold": "20m", "priority": "action"},
    }
    proj = project(
        {
            "ci-failed": {"retries": 1},
            "approved-and-green": {"action": "auto-merge"},
            "bot-review-comments": {"trustedBots": ["coderabbitai[bot]"]},
            "autoCleanupOnMerge": True,
        }
    )

    rules = R.rules_for(proj, global_overrides=global_overrides)

    ci = rules["ci-failed"]
    assert (ci.retries, ci.escalate_after, ci.message) == (1, timedelta(hours=1), "Fix CI on {pr}")
    assert (rules["agent-stuck"].threshold, rules["agent-stuck"].priority) == (
        timedelta(minutes=20),
        "action",
    )
    assert rules["approved-and-green"].action == "auto-merge"
    assert rules["bot-review-comments"].trusted_bots == ("coderabbitai[bot]",)
    assert rules["changes-requested"] == R.DEFAULT_RULES["changes-requested"]
    assert R.auto_cleanup_on_merge(proj) is True
    assert R.auto_cleanup_on_merge(project()) is False


def test_escalate_after_count_and_auto_false():
    rules = R.rules_merge(("p", {"merge-conflicts": {"escalateAfter": 3, "auto": False}}))

    rule = rules["merge-conflicts"]
    assert rule.escalate_after == 3
    assert rule.effective_action == "notify"  # auto: false only tells a person


def test_global_overrides_accept_pydantic_reaction_configs():
    from sessions.core.config.schema import ReactionConfig

    config = ReactionConfig.model_validate({"retries": 4, "escalateAfter": "10m", "priority": "warning"})

    rule = R.rules_for(project(), global_overrides={"ci-failed": config})["ci-failed"]

    assert (rule.retries, rule.escalate_after, rule.priority) == (4, timedelta(minutes=10), "warning")


def test_bad_values_and_unknown_rules_are_ignored_not_fatal(caplog):
    rules = R.rules_merge(
        ("p", {"ci-failed": {"retries": "3", "escalateAfter": "soon", "action": "explode"}, "no-such": {}})
    )

    assert rules["ci-failed"] == R.DEFAULT_RULES["ci-failed"]
    assert "no-such" not in rules
    assert "unknown reaction rule" in caplog.text and "escalateAfter ignored" in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1500ms", timedelta(seconds=1.5)),
    ],
)
def test_durations(text, expected):
    assert R.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "m", "1w", "-5m", "5 m"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        R.parse_duration(text)


@pytest.mark.parametrize(
    ("author", "association", "is_bot", "bots", "trusted"),
    [
        ("alice", "OWNER", False, (), True),
        ("bob", "MEMBER", False, (), True),
        ("carol", "COLLABORATOR", False, (), True),
        ("mallory", "CONTRIBUTOR", False, (), False),
        ("eve", "NONE", False, (), False),
        ("eve", "FIRST_TIME_CONTRIBUTOR", False, (), False),
        ("coderabbitai", "NONE", True, ("coderabbitai[bot]",), True),
        ("CodeRabbitAI[bot]", "NONE", True, ("coderabbitai",), True),
        ("spambot", "NONE", True, ("coderabbitai[bot]",), False),
        ("spambot", "MEMBER", True, (), False),  # bots only by name
    ],
)
def test_trust(author, association, is_bot, bots, trusted):
    assert R.is_trusted(author=author, association=association, is_bot=is_bot, trusted_bots=bots) is trusted


def test_top_level_reactions_come_from_the_config_file(tmp_path, monkeypatch, settings):
    (tmp_path / "repo").mkdir()
    config = tmp_path / "ao.config.yaml"
    config.write_text(
        "projects:\n  web:\n    path: repo\n    agent: custom\n"
        "    agentConfig:\n      command: [echo]\n"
        "reactions:\n  ci-failed:\n    retries: 7\n"
    )
    settings.AO_CONFIG = str(config)

    assert R.global_overrides_current() == {"ci-failed": {"retries": 7}}
    assert R.rules_for(project())["ci-failed"].retries == 7

    settings.AO_CONFIG = str(tmp_path / "missing.yaml")
    assert R.global_overrides_current() == {}  # a broken config never stops reactions


def test_top_level_reactions_are_read_again_only_when_the_file_changes(tmp_path, settings):
    """Every reaction asks for them: the file is parsed once per (path, mtime, size)."""
    import os

    (tmp_path / "repo").mkdir()
    config = tmp_path / "ao.config.yaml"
    head = "projects:\n  web:\n    path: repo\n    agent: custom\n    agentConfig:\n      command: [echo]\n"
    config.write_text(head + "reactions:\n  ci-failed:\n    retries: 7\n")
    settings.AO_CONFIG = str(config)
    assert R.global_overrides_current() == {"ci-failed": {"retries": 7}}

    # same size, same mtime: the remembered rules, the file is not parsed again
    stat = config.stat()
    config.write_text(head + "reactions:\n  ci-failed:\n    retries: 8\n")
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert R.global_overrides_current() == {"ci-failed": {"retries": 7}}

    # a change the file's stat shows: read again
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert R.global_overrides_current() == {"ci-failed": {"retries": 8}}


def test_threshold_and_trusted_bots_only_on_the_rules_that_read_them(caplog):
    rules = R.rules_merge(
        (
            "p",
            {
                "ci-failed": {"threshold": "5m", "trustedBots": ["coderabbitai"], "retries": 4},
                "agent-idle": {"threshold": "0m"},
                "agent-stuck": {"threshold": "3m"},
            },
        )
    )

    assert (rules["ci-failed"].threshold, rules["ci-failed"].trusted_bots, rules["ci-failed"].retries) == (
        None,
        (),
        4,
    )
    assert rules["agent-idle"].threshold == timedelta(minutes=2)  # 0 is refused
    assert rules["agent-stuck"].threshold == timedelta(minutes=3)
    assert "ci-failed.threshold ignored: only agent-stuck and agent-idle read threshold" in caplog.text
    assert "ci-failed.trustedBots ignored: only bot-review-comments read trustedBots" in caplog.text
    assert "agent-idle.threshold ignored: a threshold must be longer than 0" in caplog.text


def test_only_approved_and_green_can_auto_merge(caplog):
    rules = R.rules_merge(
        ("p", {"ci-failed": {"action": "auto-merge"}, "approved-and-green": {"action": "auto-merge"}})
    )

    assert rules["ci-failed"].action == "send-to-agent"  # a failing PR is never merged by a rule
    assert rules["approved-and-green"].action == "auto-merge"
    assert "ci-failed.action ignored: only approved-and-green can auto-merge" in caplog.text


def test_escalation_priority_is_urgent_unless_configured():
    rules = R.rules_merge(
        ("reactions", {"ci-failed": {"priority": "info"}}), ("p", {"ci-failed": {"retries": 1}})
    )

    assert R.DEFAULT_RULES["bot-review-comments"].priority == "warning"
    assert R.DEFAULT_RULES["bot-review-comments"].escalation_priority == "urgent"
    assert rules["ci-failed"].escalation_priority == "info"  # an earlier layer set it: kept


def test_stuck_after_is_the_effective_agent_stuck_threshold():
    assert R.stuck_after(project(), global_overrides={}) == timedelta(minutes=10)
    assert R.stuck_after(project(), global_overrides={"agent-stuck": {"threshold": "4m"}}) == timedelta(
        minutes=4
    )
    proj = project({"agent-stuck": {"threshold": "30m"}})
    assert R.stuck_after(proj, global_overrides={"agent-stuck": {"threshold": "4m"}}) == timedelta(minutes=30)
