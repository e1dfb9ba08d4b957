"""ao: run a fleet of AI coding agents and supervise them so that humans only make decisions."""

__version__ = "0.1.0"

# ao's Celery app is loaded by whatever defines or sends a task (ao_site.settings says which), so
# that shared tasks always use it (not Celery's default app); importing this package alone stays
# cheap, for the `ao` commands that run without Django (sessions.cli.light_commands).


def __getattr__(name: str):
    if name == "celery_app":
        # local: the Celery app loads Django's settings; light commands import this package
        from ao_site.celery import app

        return app
    raise AttributeError(f"module 'ao_site' has no attribute {name!r}")


__all__ = ["__version__", "celery_app"]
