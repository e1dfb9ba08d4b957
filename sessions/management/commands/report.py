import json
import os
import urllib.error
import urllib.request

from django.core.management.base import BaseCommand, CommandError

from sessions.lifecycle import Reported

STATES = [c for c in Reported.values if c]


class Command(BaseCommand):
    help = "For agents: report your state to ao (`ao report working|needs_input|blocked|done [NOTE] [--pr URL]`)."

    def add_arguments(self, parser):
        parser.add_argument("state", choices=STATES)
        parser.add_argument("note", nargs="*", help="a short note shown on the dashboard")
        parser.add_argument("--pr", default="", help="URL of the pull request you opened")

    def handle(self, *args, **options):
        missing = [name for name in ("AO_URL", "AO_SESSION", "AO_TOKEN") if not os.environ.get(name)]
        if missing:
            raise CommandError(
                f"{', '.join(missing)} not set: `ao report` is for agents started by ao, which sets them"
            )
        url = f"{os.environ['AO_URL'].rstrip('/')}/api/v1/sessions/{os.environ['AO_SESSION']}/report"
        if not url.startswith(("http://", "https://")):
            raise CommandError(f"AO_URL must be an http(s) URL, not {os.environ['AO_URL']!r}")
        body = json.dumps({"state": options["state"], "note": " ".join(options["note"]), "pr": options["pr"]})
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=body.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {os.environ['AO_TOKEN']}",
                "X-AO-Session": os.environ["AO_SESSION"],
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                result = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise CommandError(
                f"ao refused the report ({exc.code}): {exc.read()[:300].decode(errors='replace')}"
            ) from exc
        except (urllib.error.URLError, TimeoutError) as exc:
            raise CommandError(f"cannot reach ao at {os.environ['AO_URL']}: {exc}") from exc
        self.stdout.write(f"reported {options['state']}; {result['session']} is now {result['status']}")
