from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from staste import shutdown


class StasteConfig(AppConfig):
    name = "staste"
    verbose_name = _("Statistics")
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Django's app loading: checks and metricas may use models, which exist only once apps are ready.
        from staste import checks  # noqa: F401  (registers the system checks)
        from staste.registration import autodiscover

        autodiscover()
        shutdown.install()  # buffered kicks are written on SIGTERM (where it has no handler)
