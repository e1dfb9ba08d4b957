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

from ao_site import preflight
from ao_site.celery import app

LOCK_TTL = 30
LOCK_REFRESH = 10
# Refresh the lock if it is ours (1); take it back if it vanished (2: Redis restarted empty, or it
# expired while Redis was unreachable and no other beat took it); 0 if another beat holds it.
KEEP_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 2
end
return 0
"""


class Command(BaseCommand):
    help = "Run the scheduler that fans out periodic work; run exactly one (needs REDIS_URL)."
    requires_system_checks = []
    requires_migrations_checks = False

    def handle(self, *args, **options) -> None:
        preflight.require_scale_out("beat")
        preflight.check_database()
        preflight.check_redis()

        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=10)
        key = preflight.beat_lock_key()
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wait_for_lock(client, key, owner)
        stop = threading.Event()
        keeper = threading.Thread(target=self._keep_lock, args=(client, key, owner, stop), daemon=True)
        keeper.start()

        app.set_current()
        app.set_default()
        self.stdout.write("ao beat is scheduling periodic work (Ctrl-C stops).")
        self.stdout.flush()
        try:
            app.Beat(
                scheduler="ao_site.celery:BeatScheduler",
                loglevel=settings.LOGGING["loggers"]["celery"]["level"],
                quiet=True,
                redirect_stdouts=False,
            ).run()
        finally:
            stop.set()
            try:  # release only our own lock
                if client.get(key) == owner.encode():
                    client.delete(key)
            except redis.RedisError:
                pass  # Redis is away: the lock lapses after LOCK_TTL

    def _wait_for_lock(self, client, key: str, owner: str) -> None:
        """Exactly one beat: a second one waits as a standby until the first one's lock lapses."""
        import redis

        told = outage = False
        while True:
            try:
                if client.set(key, owner, nx=True, ex=LOCK_TTL):
                    return
                holder = (client.get(key) or b"?").decode(errors="replace")
            except redis.RedisError as exc:
                if not outage:
                    self.stderr.write(f"ao: cannot reach Redis ({exc}); the standby beat keeps trying")
                outage = True
                time.sleep(2)
                continue
            outage = False
            if not told:
                self.stderr.write(
                    f"ao: another `ao beat` is running ({holder}) — waiting as a standby; run exactly one"
                )
                told = True
            time.sleep(2)

    def _keep_lock(self, client, key: str, owner: str, stop: threading.Event) -> None:
        """Keep the lock while the beat runs. Only a lock held by another beat stops this one: a
        lock that vanished (Redis restarted empty) is taken back, and while Redis is unreachable
        the beat keeps its schedule and retries (one line per outage)."""
        import redis

        down_since: float | None = None
        while not stop.wait(LOCK_REFRESH):
            try:
                kept = client.eval(KEEP_LOCK, 1, key, owner, LOCK_TTL)
            except redis.RedisError as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    self.stderr.write(f"ao: cannot reach Redis to keep the beat lock ({exc}); retrying")
                continue
            if down_since is not None:
                self.stderr.write(f"ao: Redis is reachable again after {time.monotonic() - down_since:.0f} s")
                down_since = None
            if kept == 0:
                self.stderr.write("ao: this beat lost its lock to another `ao beat`; stopping")
                os.kill(os.getpid(), signal.SIGTERM)
                return
            if kept == 2:
                self.stderr.write(
                    "ao: the beat lock had vanished (Redis restarted empty?); this beat took it back"
                )
