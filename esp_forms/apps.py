from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EspFormsConfig(AppConfig):
    name = "esp_forms"
    verbose_name = _("Newsletter signup forms")
    # Pinned so the host project's DEFAULT_AUTO_FIELD never creates migrations for us.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for their side effects: system checks and signal receivers register here.
        import esp_forms.cors  # noqa: F401  (connects the CORS signal receiver)
        from esp_forms import checks, formcache, signals  # noqa: F401
