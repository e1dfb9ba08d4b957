"""ao: run a fleet of AI coding agents and supervise them so that humans only make decisions."""

__version__ = "0.1.0"

# Load the Celery app with Django so that shared tasks always use it (not Celery's default app).
from ao_site.celery import app as celery_app

__all__ = ["__version__", "celery_app"]
