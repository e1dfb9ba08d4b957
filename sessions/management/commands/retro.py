"""``ao retro``: how finished sessions went, per project, agent and model; and what every session
spawned in the window used, per person, agent and model, project (the usage page's numbers)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from sessions.core import selectors, usage
from sessions.management.commands._common import cli_errors
from sessions.models import Project
from sessions.watchers import outcomes

GROUP_COLUMNS = ("sessions", "merged", "success", "1st PR", "merge", "CI fails", "humans", "cost $")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


def _row(name: str, s: dict) -> list[str]:
    rate = "-" if s["success_rate"] is None else f"{round(s['success_rate'] * 100)}%"
    return [
        name,
        str(s["sessions"]),
        str(s["merged"]),
        rate,
        duration(s["median_first_pr_seconds"]),
        duration(s["median_merge_seconds"]),
        str(s["ci_failure_cycles"]),
        str(s["needed_human"]),
        f"{s['cost_usd']:.2f}",
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]


USAGE_COLUMNS = ("sessions", "tokens in", "tokens out", "cost $")


def render_usage(usage: dict) -> list[str]:
    """The usage page's numbers (sessions.core.usage): every session spawned in the window."""
    totals = usage["totals"]
    lines = [
        "",
        f"Usage of the {totals['sessions']} session(s) spawned in the window, finished or not "
        f"({totals['tokens']} tokens, ${totals['cost_usd']:.4f}):",
    ]
    if not totals["sessions"]:
        return lines
    for title, key in (("person", "by_user"), ("agent/model", "by_agent_model"), ("project", "by_project")):
        rows = [
            [r["name"], str(r["sessions"]), str(r["tokens_in"]), str(r["tokens_out"]), f"{r['cost_usd']:.4f}"]
            for r in usage[key]
        ]
        lines += ["", f"Usage by {title}:", *_table([title, *USAGE_COLUMNS], rows)]
    return lines


def render_text(summary: dict) -> str:
    since = summary["since"] or "the beginning"
    overall = summary["overall"]
    lines = [f"Retrospective since {since}: {overall['sessions']} finished session(s)"]
    if not overall["sessions"]:
        lines.append("Nothing finished in this window yet.")
        return "\n".join(lines + render_usage(summary["usage"]))
    for title, key in (("project", "by_project"), ("agent", "by_agent"), ("agent/model", "by_model")):
        lines += ["", f"By {title} (medians for times):"]
        rows = [_row(name, stats) for name, stats in summary[key].items()]
        lines += _table([title, *GROUP_COLUMNS], [*rows, _row("all", overall)])
    if summary["failing_checks"]:
        lines += ["", f"Failing checks ({summary['ci_sessions']} session(s) ran CI):"]
        lines += _table(
            ["check", "sessions", "failed first", "cycles"],
            [
                [c["name"], str(c["sessions"]), str(c["failed_first"]), str(c["cycles"])]
                for c in summary["failing_checks"]
            ],
        )
    if summary["failure_patterns"]:
        lines += ["", "Costliest failure patterns:"]
        lines += _table(
            ["pattern", "sessions", "cost $"],
            [[p["pattern"], str(p["sessions"]), f"{p['cost_usd']:.2f}"] for p in summary["failure_patterns"]],
        )
    if summary["needed_humans"]:
        lines += ["", "Sessions that needed people:"]
        for h in summary["needed_humans"]:
            why = "; ".join(h["reasons"]) or "-"
            lines.append(
                f"  {h['session']} ({h['agent']}{'/' + h['model'] if h['model'] else ''}, {h['result']}): "
                f"{h['human_messages']} message(s) from people, {h['escalations']} escalation(s); {why}"
            )
    return "\n".join(lines + render_usage(summary["usage"]))


class Command(BaseCommand):
    help = "Retrospective: success rate, times, CI failures, costs and human help of finished sessions."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="only this project (default: all)")
        parser.add_argument(
            "--since", default="7d", help="window: 7d, 12h, 2w, an ISO date, or all (default 7d)"
        )
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args, **options):
        with cli_errors():
            projects = [selectors.project_resolve(key=options["project"])] if options["project"] else None
            try:
                since = outcomes.parse_since(options["since"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            summary = outcomes.retro_summary(projects=projects, since=since)
            summary["usage"] = usage.usage_summary(
                projects=projects if projects is not None else Project.objects.all(), since=since
            )
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2, sort_keys=True))
        else:
            self.stdout.write(render_text(summary))
