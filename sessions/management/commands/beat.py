"""``ao beat``: the one scheduler of a scale-out install (needs REDIS_URL)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid

from django.conf import settings
from django.core.management.base import BaseCommand

from ao_site import runner

LOCK_TTL = 30
LOCK_REFRESH = 10


class Command(BaseCommand):
    help = "Run the scheduler that fans out periodic work; run exactly one (needs REDIS_URL)."
    requires_system_checks = []
    requires_migrations_checks = False

    def handle(self, *args, **options) -> None:
        runner.require_scale_out("beat")
        runner.check_database()
        runner.check_redis()

        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=10)
        key = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:beat-lock"
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wait_for_lock(client, key, owner)
        stop = threading.Event()
        keeper = threading.Thread(target=self._keep_lock, args=(client, key, owner, stop), daemon=True)
        keeper.start()

        from ao_site.celery import app

        app.set_current()
        app.set_default()
        self.stdout.write("ao beat is scheduling periodic work (Ctrl-C stops).")
        self.stdout.flush()
        try:
            app.Beat(
                scheduler="celery.beat:Scheduler",
                loglevel=settings.LOGGING["loggers"]["celery"]["level"],
                quiet=True,
                redirect_stdouts=False,
            ).run()
        finally:
            stop.set()
            # Release only our own lock.
            if client.get(key) == owner.encode():
                client.delete(key)

    def _wait_for_lock(self, client, key: str, owner: str) -> None:
        """Exactly one beat: a second one waits as a standby until the first one's lock lapses."""
        told = False
        while not client.set(key, owner, nx=True, ex=LOCK_TTL):
            if not told:
                holder = (client.get(key) or b"?").decode(errors="replace")
                self.stderr.write(
                    f"ao: another `ao beat` is running ({holder}) — waiting as a standby; run exactly one"
                )
                told = True
            time.sleep(2)

    def _keep_lock(self, client, key: str, owner: str, stop: threading.Event) -> None:
        while not stop.wait(LOCK_REFRESH):
            try:
                if client.get(key) != owner.encode():
                    self.stderr.write("ao: this beat lost its lock to another `ao beat`; stopping")
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                client.expire(key, LOCK_TTL)
            except Exception as exc:  # Redis briefly away: keep trying until the TTL says otherwise
                self.stderr.write(f"ao: cannot refresh the beat lock ({exc}); retrying")
