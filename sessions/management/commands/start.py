"""``ao start``: migrate, load the config, then serve the dashboard, worker and beat."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from ao_site import preflight, runner
from ao_site.celery import app
from sessions.watchers.orchestrator import orchestrators_start_all


class Command(BaseCommand):
    help = "Start ao: the dashboard, background worker and scheduler in one process (Ctrl-C stops)."
    requires_system_checks = []  # checked by migrate; keeps the error for a dead database to one line
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
        )
        parser.add_argument(
            "--no-browser-link",
            action="store_true",
            help="do not print the one-time login link (e.g. when stdout goes to a shared log)",
        )

    def handle(self, *args, port: int, host: str, no_browser_link: bool, **options) -> None:
        if not 0 < port < 65536:
            raise CommandError(f"{port} is not a port number — use e.g. `--port 8000`")
        preflight.check_port_free(host, port)
        preflight.check_database()
        self.check(display_num_errors=False)
        preflight.warn_if_host_not_allowed(host, self.stderr)
        if not settings.AO_EMBEDDED:
            preflight.check_redis()
        preflight.warn_if_no_tmux(self.stderr)
        preflight.warn_if_home_open(self.stderr)
        url = runner.dashboard_url(host, port)

        with runner.pid_file_held({"url": url, "host": host, "port": port}), runner.serving(host, port):
            call_command("migrate", interactive=False, verbosity=0)
            runner.config_load_and_apply(self.stdout, self.stderr)
            orchestrators_start_all(stdout=self.stdout, stderr=self.stderr)  # orchestrator.enabled
            user, created = runner.admin_ensure()
            if settings.AO_EMBEDDED:
                ok = self._serve_embedded(
                    host=host, port=port, url=url, user=user, created=created, link=not no_browser_link
                )
            else:
                ok = self._serve_scale_out(
                    host=host, port=port, url=url, user=user, created=created, link=not no_browser_link
                )
        if not ok:
            raise CommandError(f"could not listen on {host}:{port} — run `ao start --port {port + 1}`")
        self.stdout.write("ao stopped.")

    # --- the two shapes ---------------------------------------------------------------------------
    def _serve_embedded(self, *, host, port, url, user, created, link) -> bool:
        # local: the web server (daphne, Channels) loads only to serve; ao --help loads every command
        from ao_site import embedded

        background = embedded.Background(app, host=runner.default_host_name())
        background.start()
        # This process has a worker now: tasks go to its threads instead of running inline in the
        # request that queued them (an agent's `ao pr create` must not wait for a message to it).
        settings.CELERY_TASK_ALWAYS_EAGER = False
        app.conf.task_always_eager = False
        try:
            return embedded.serve(
                host=host,
                port=port,
                on_ready=lambda: self._announce(
                    url=url,
                    mode="embedded: web, worker and beat in this process",
                    user=user,
                    created=created,
                    link=link,
                ),
            )
        finally:
            background.stop()

    def _serve_scale_out(self, *, host, port, url, user, created, link) -> bool:
        # local: the web server (daphne, Channels) loads only to serve; ao --help loads every command
        from ao_site import embedded

        children = [runner.ao_child(["worker"]), runner.ao_child(["beat"])]
        failed: list[str] = []

        def watch_children() -> None:
            for name, child in zip(("worker", "beat"), children, strict=True):
                if child.poll() is not None and not failed:
                    failed.append(name)
                    self.stderr.write(
                        f"ao: `ao {name}` exited with status {child.returncode} — see its output above; stopping"
                    )
                    embedded.stop_server()

        try:
            ok = embedded.serve(
                host=host,
                port=port,
                on_ready=lambda: self._announce(
                    url=url,
                    mode="scale-out: web here, `ao worker` and `ao beat` as child processes",
                    user=user,
                    created=created,
                    link=link,
                ),
                tick=watch_children,
            )
        finally:
            runner.stop_children(children)
        if failed:
            raise CommandError(f"`ao {failed[0]}` stopped unexpectedly — fix the error above and start again")
        return ok

    def _announce(self, *, url: str, mode: str, user, created: bool, link: bool) -> None:
        out = self.stdout
        out.write(f"ao is running ({mode}).")
        out.write(f"Dashboard: {url}")
        if user is not None:
            if created:
                out.write(f"Created the admin account {user.get_username()!r}.")
            if link:
                # local: the views load only for the first-run link
                from sessions.dashboard.views_auth import one_time_login_url

                # stdout only: the link logs its holder in, so it never goes to a log.
                out.write("One-time login link (valid 15 minutes, works once; open it and press Sign in):")
                out.write(f"  {one_time_login_url(user, base_url=url)}")
            else:
                out.write(f"Set a password with `ao changepassword {user.get_username()}` to log in.")
        out.write("Press Ctrl-C to stop (or run `ao stop`).")
        out.flush()
        sys.stdout.flush()
