"""``ao lessons``: what ao learned from finished sessions; accept or reject its proposals."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from sessions.core import selectors
from sessions.management.commands._common import cli_audit, cli_errors
from sessions.models import Lesson
from sessions.watchers import lessons


def _effect_line(effect: dict | None) -> str:
    if not effect:
        return ""
    before, after = effect.get("before") or {}, effect.get("after") or {}

    def rate(m: dict) -> str:
        return f"{m['hits']}/{m['sessions']}" if m.get("sessions") else "-"

    return f"    before {rate(before)} → after {rate(after)}: {effect['verdict']}"


class Command(BaseCommand):
    help = "Lessons from finished sessions: `ao lessons ls|propose|accept ID|reject ID`."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("ls", help="list lessons")
        ls.add_argument("--project")
        ls.add_argument("--status", choices=Lesson.State.values)
        ls.add_argument("--json", action="store_true")
        propose = sub.add_parser("propose", help="propose lessons from the recent outcomes now")
        propose.add_argument("--project")
        for name in ("accept", "reject"):
            p = sub.add_parser(name, help=f"{name} a lesson")
            p.add_argument("id", type=int)
            p.add_argument("--user", help="record this ao user as the one who decided")

    def handle(self, *args, **options):
        action = options["action"]
        with cli_errors(), cli_audit():
            if action == "ls":
                return self._ls(options)
            if action == "propose":
                project = selectors.project_resolve(key=options["project"])
                created = lessons.lessons_propose(project=project)
                for lesson in created:
                    self.stdout.write(f"proposed #{lesson.pk}: {lesson.text}")
                self.stdout.write(f"{len(created)} new proposal(s) for {project.key}")
                return None
            lesson = Lesson.objects.select_related("project").filter(pk=options["id"]).first()
            if lesson is None:
                raise CommandError(f"no lesson #{options['id']} (see `ao lessons ls`)")
            by = None
            if options.get("user"):
                by = get_user_model().objects.filter(username=options["user"]).first()
                if by is None:
                    raise CommandError(f"no ao user {options['user']!r}")
            lesson = lessons.lesson_decide(lesson=lesson, accept=action == "accept", by=by)
            self.stdout.write(f"{lesson.status} #{lesson.pk}: {lesson.text}")
            if lesson.status == Lesson.State.ACCEPTED and lesson.prompt_text:
                self.stdout.write("later workers of this project are told: " + lesson.prompt_text)
        return None

    def _ls(self, options) -> None:
        qs = Lesson.objects.select_related("project", "decided_by").order_by("project__key", "pk")
        if options["project"]:
            qs = qs.filter(project=selectors.project_resolve(key=options["project"]))
        if options["status"]:
            qs = qs.filter(status=options["status"])
        rows = [lessons.lesson_summary(lesson) for lesson in qs]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2, sort_keys=True))
            return
        if not rows:
            self.stdout.write("No lessons yet: they are proposed from finished sessions (see `ao retro`).")
            return
        for row in rows:
            self.stdout.write(f"#{row['id']} [{row['status']}] {row['project']} {row['kind']}: {row['text']}")
            if row["effect"]:
                self.stdout.write(_effect_line(row["effect"]))
