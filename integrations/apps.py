from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import registry  # local: the plugins import models, loaded before ready()

        registry.load_builtin_plugins()
        registry.load_entry_point_plugins()
