"""``ao web``: the web role alone (daphne), for scale-out behind a proxy."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ao_site import preflight, runner


class Command(BaseCommand):
    help = "Serve the dashboard, API, webhooks and websockets (scale-out; needs REDIS_URL)."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")

    def handle(self, *args, port: int, host: str, **options) -> None:
        preflight.require_scale_out("web")
        if not 0 < port < 65536:
            raise CommandError(f"{port} is not a port number — use e.g. `--port 8000`")
        preflight.check_port_free(host, port)
        preflight.check_database()
        self.check(display_num_errors=False)
        preflight.warn_if_host_not_allowed(host, self.stderr)
        preflight.check_redis()
        preflight.check_migrations_applied()

        # local: the web server (daphne, Channels) loads only to serve; ao --help loads every command
        from ao_site import embedded

        url = runner.dashboard_url(host, port)

        def ready() -> None:
            self.stdout.write(f"ao web is serving {url} (Ctrl-C stops).")
            self.stdout.flush()

        with runner.serving(host, port):
            ok = embedded.serve(host=host, port=port, on_ready=ready)
        if not ok:
            raise CommandError(f"could not listen on {host}:{port} — run `ao web --port {port + 1}`")
        self.stdout.write("ao web stopped.")
