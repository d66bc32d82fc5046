import importlib.util

from django.apps import AppConfig
from django.core.signals import request_started
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

from staste import conf, shutdown


class StasteConfig(AppConfig):
    name = "staste"
    verbose_name = _("Statistics")
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Django's app loading: checks, metricas and annotations may use models, which exist only
        # once apps are ready.  (checks: the system checks; work: its connection_created receiver)
        from staste import annotations, checks, work  # noqa: F401
        from staste.registration import autodiscover  # (apps are ready: stats.py modules can be imported)

        autodiscover()
        shutdown.install()  # buffered kicks are written on SIGTERM (where it has no handler)
        if conf.get("STASTE_CELERY_TIMING") and importlib.util.find_spec("celery") is not None:
            from staste import celery  # Celery's signals: every task run is timed (staste[celery])

            celery.connect()
        # No query at start-up: a new STASTE_RELEASE is annotated on the process' first request,
        # and migrations once per `migrate` (post_migrate is sent for each app: staste's only).
        request_started.connect(annotations.on_request_started, dispatch_uid="staste.annotations.release")
        post_migrate.connect(annotations.on_post_migrate, sender=self, dispatch_uid="staste.annotations.migrate")
