from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    # The plugins load at the first look in a registry, not here (integrations.registry.load_plugins).
    name = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"
