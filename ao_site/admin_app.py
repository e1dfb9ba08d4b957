"""Django's admin, with the apps' admin modules imported when the admin is first needed.

Django's own ``AdminConfig`` imports every app's ``admin.py`` while Django sets up. ao's import
much of ao (the agents, the plugins' registry, the configuration, Celery through the jobs): about
0.3 CPU-s that every ``ao status``, ``ao session ls`` or ``ao send`` paid without showing a page.
Here they are imported by ``ao_site.urls`` (before ``admin.site.urls`` builds the admin's pages)
and by the admin's system check (which then sees every ModelAdmin, as before).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import SimpleAdminConfig
from django.contrib.admin.checks import check_admin_app, check_dependencies
from django.core import checks


class AdminConfig(SimpleAdminConfig):
    def ready(self) -> None:
        checks.register(check_dependencies, checks.Tags.admin)
        checks.register(check_admin_modules, checks.Tags.admin)


def check_admin_modules(app_configs, **kwargs) -> list:
    """Django's check of the registered ModelAdmins, once the apps' admin modules registered them."""
    admin.autodiscover()
    return check_admin_app(app_configs, **kwargs)
