import importlib.util

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from staste import conf, shutdown


class StasteConfig(AppConfig):
    name = "staste"
    verbose_name = _("Statistics")
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Django's app loading: checks and metricas may use models, which exist only once apps are ready.
        from staste import checks, work  # noqa: F401  (checks: the system checks; work: its connection_created receiver)
        from staste.registration import autodiscover  # (apps are ready: stats.py modules can be imported)

        autodiscover()
        shutdown.install()  # buffered kicks are written on SIGTERM (where it has no handler)
        if conf.get("STASTE_CELERY_TIMING") and importlib.util.find_spec("celery") is not None:
            from staste import celery  # Celery's signals: every task run is timed (staste[celery])

            celery.connect()
