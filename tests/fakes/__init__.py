"""Faithful local fakes of hosted services, speaking their real wire formats over HTTP.

Tests and benchmarks run ao's real plugin code against these; nothing here is mocked.
"""


def serve_until_interrupted(port: int, close) -> None:
    """A fake run as its own process (``python -m tests.fakes.NAME``): say its port on stdout for
    the process that started it, serve until SIGINT/SIGTERM's KeyboardInterrupt, then ``close()``."""
    import sys
    import time

    print(f"listening on {port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        close()
    sys.exit(0)
