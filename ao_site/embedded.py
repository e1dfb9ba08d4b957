"""ao in one process: daphne in the main thread, a Celery worker and Celery beat in threads.

The embedded worker is a plain ``WorkController`` (the ``celery worker`` program's ``Worker``
installs signal handlers, which only the main thread may do) on the in-memory transport with a
thread pool; beat is ``celery.beat.EmbeddedService(thread=True)`` with the non-persistent
scheduler. Both share the process with daphne, so broadcasts from task threads reach websocket
consumers through the in-memory channel layer: ``sessions.core.realtime`` hands them to daphne's
event loop, which is bound as soon as the server runs.

The same ``serve`` runs the web role alone for ``ao web``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from celery import Celery
from celery.worker import WorkController
from django.conf import settings

from sessions.core import realtime
from sessions.flows.watch import ActivityWatcher

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 15.0


class _EmbeddedWorkController(WorkController):
    """A worker that says when its consumer is ready (the stock one never tells a thread)."""

    def __init__(self, *args, **kwargs):
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer) -> None:
        self.ready.set()


class Background:
    """The embedded Celery worker and beat, started and stopped together."""

    def __init__(self, app: Celery, *, host: str, concurrency: int = 4, beat: bool = True) -> None:
        self.app = app
        self.host = host
        self.concurrency = concurrency
        self.with_beat = beat
        self.worker: _EmbeddedWorkController | None = None
        self.worker_thread: threading.Thread | None = None
        self.beat = None
        self.watcher = None
        self._error: BaseException | None = None

    @property
    def queues(self) -> list[str]:
        return [self.app.conf.task_default_queue or "ao", f"host.{self.host}"]

    def start(self) -> None:
        app = self.app
        app.finalize()
        app.set_current()
        app.set_default()
        self.worker = _EmbeddedWorkController(
            app=app,
            hostname=f"ao@{self.host}",
            pool="threads",
            concurrency=self.concurrency,
            queues=self.queues,
            loglevel=logging.getLevelName(logging.getLogger("celery").getEffectiveLevel()),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self.worker_thread = threading.Thread(target=self._run_worker, name="ao-worker", daemon=True)
        self.worker_thread.start()
        if not self.worker.ready.wait(WORKER_START_TIMEOUT):
            raise RuntimeError("the embedded Celery worker did not start")
        if self._error is not None:
            raise RuntimeError(f"the embedded Celery worker failed: {self._error}") from self._error
        if self.with_beat:
            from celery import beat

            self.beat = beat.EmbeddedService(app, thread=True, scheduler_cls="celery.beat:Scheduler")
            self.beat.start()
        self.watcher = ActivityWatcher()
        self.watcher.start()

    def _run_worker(self) -> None:
        assert self.worker is not None
        try:
            self.worker.start()
        except BaseException as exc:  # recorded and re-raised in the main thread
            self._error = exc
        finally:
            self.worker.ready.set()

    def stop(self) -> None:
        """Stop beat and let the worker finish its running tasks (warm shutdown), in parallel."""
        from celery.worker import state

        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.worker_thread is not None:
            state.should_stop = 0
        if self.beat is not None:
            self.beat.stop()
            self.beat.join(5)
            self.beat = None
        if self.worker_thread is None:
            return
        self.worker_thread.join(WORKER_STOP_TIMEOUT)
        if self.worker_thread.is_alive():
            log.warning("the embedded worker did not stop in %.0f s; terminating it", WORKER_STOP_TIMEOUT)
            state.should_terminate = 0
            self.worker_thread.join(5)
        state.should_stop = None
        state.should_terminate = None
        self.worker_thread = None


def serve(*, host: str, port: int, on_ready: Callable[[], None] | None = None, tick=None) -> bool:
    """Run daphne serving ``ao_site.asgi:application`` until SIGINT/SIGTERM.

    ``on_ready`` runs inside the server's event loop once it listens; ``tick`` (if given) runs
    there every second and may call ``stop_server()``. Returns False if it could not listen.
    """
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from twisted.internet import reactor

    from ao_site import bodylimit  # local: it loads daphne's HTTP protocol (Twisted); only when serving
    from ao_site.asgi import application  # local: building the ASGI app sets Django up; only when serving

    bodylimit.install(settings.AO_MAX_REQUEST_BYTES)
    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        signal_handlers=True,
        action_logger=None,  # no access log: one-time login links must never reach a log
        verbosity=0,
        ready_callable=lambda: reactor.callLater(0, _running),
    )

    def _running() -> None:
        # Bind the loop before any request arrives, so task threads can broadcast at once.
        realtime.bind_server_loop()
        if not server.listening_addresses:
            return  # listen failed; daphne stops the reactor
        if on_ready is not None:
            on_ready()
        if tick is not None:
            _schedule_tick()

    def _schedule_tick() -> None:
        def run() -> None:
            try:
                tick()
            finally:
                if reactor.running:
                    reactor.callLater(1, run)

        reactor.callLater(1, run)

    server.run()
    return bool(server.listening_addresses)


def stop_server() -> None:
    from twisted.internet import reactor

    if reactor.running:
        reactor.stop()
