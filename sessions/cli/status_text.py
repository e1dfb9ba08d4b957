"""What ``ao status`` prints, from its snapshot (a dict): the table and the JSON.

Standard library only: the snapshot comes from the database (``ao status``), from the API of a
remote ao, or from the running ``ao start`` (``sessions.cli.light_commands``), and is printed the
same way by each.
"""

from __future__ import annotations

import json

from sessions.domain.text import strip_controls

CLEAR = "\x1b[H\x1b[2J"
SESSION_COLUMNS = ("id", "project", "status", "zone", "agent", "issue", "age")


def _age(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


def _scale_out_line(found: dict) -> str:
    if found["broker"] and not found["web"]:
        return f"ao (scale-out): {found['broker']}"
    workers = found["workers"]
    parts = [
        f"ao web at {found['web']}" if found["web"] else "no `ao web` seen",
        f"{len(workers)} worker{'s' if len(workers) != 1 else ''} ({', '.join(workers)})"
        if workers
        else "no worker answers",
        "ao beat running" if found["beat"] else "no `ao beat` holds the lock",
    ]
    if found["broker"]:
        parts.append(found["broker"])
    return "ao (scale-out): " + "; ".join(parts)


def _table(rows: list[list[str]], headers: tuple[str, ...]) -> list[str]:
    rows = [[strip_controls(cell, one_line=True) for cell in row] for row in rows]  # stored outside text
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    out = [line]
    for row in rows:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return out


def render_table(snapshot: dict) -> str:
    server = snapshot["server"]
    if "scale_out" in snapshot and server["pid"] is None:
        head = _scale_out_line(snapshot["scale_out"])
    elif server["running"]:
        head = f"ao is running at {server['url']} (pid {server['pid']})"
    else:
        head = "ao is not running from this AO_HOME (`ao start` starts it)"
    lines = [head, ""]
    if snapshot["projects"]:
        rows = [
            [p["key"], p["path"], f"{p['live_sessions']} live / {p['sessions']}"]
            for p in snapshot["projects"]
        ]
        lines += _table(rows, ("project", "path", "sessions"))
    else:
        lines.append("No projects yet: run `ao start` inside a git repository to add it.")
    lines.append("")
    if snapshot["sessions"]:
        rows = [
            [
                s["id"],
                s["project"],
                s["status"],
                s["zone"],
                s["agent"] or "-",
                s["issue"] or "-",
                _age(s["age_seconds"]),
            ]
            for s in snapshot["sessions"]
        ]
        lines += _table(rows, SESSION_COLUMNS)
    else:
        lines.append("No sessions.")
    needs = [p for p in snapshot["projects"] if p.get("needs_you")]
    if needs:
        lines += ["", "NEEDS YOU"]
        for p in needs:
            lines += [
                strip_controls(
                    f"  {p['key']}  {n['session']}  {n['label']}: {n['reason']}  {n['url']}", one_line=True
                )
                for n in p["needs_you"]
            ]
            if more := p.get("needs_you_more", 0):
                lines.append(
                    f"  {p['key']}  … and {more} more (the dashboard's Needs you page lists them all)"
                )
    return "\n".join(lines)


def dump_json(data: dict, *, compact: bool) -> str:
    if compact:
        return json.dumps(data, separators=(",", ":"))
    return json.dumps(data, indent=2)
