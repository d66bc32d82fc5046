"""Django settings for a benchmark run, configured in code: the run starts its own Redis."""

from __future__ import annotations

import importlib.util
from typing import Any

import django
from django.conf import settings

SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "SECRET_KEY": "staste-benchmarks-not-secret",
    "ALLOWED_HOSTS": ["*"],
    "USE_TZ": True,
    "TIME_ZONE": "UTC",
    "INSTALLED_APPS": [
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "staste",
    ],
    "MIDDLEWARE": [],
    "ROOT_URLCONF": "benchmarks.urls",
    "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
    "LOGGING_CONFIG": None,
    "STASTE_METRICS_PREFIX": "bench",
}


def configure(redis_url: str) -> None:
    """Point staste at ``redis_url`` and start Django (with django-silk, the performance-insight
    benchmark's baseline, when it is installed: ``make bench`` installs it)."""
    configured = dict(SETTINGS)
    if importlib.util.find_spec("silk") is not None:
        configured["INSTALLED_APPS"] = [*SETTINGS["INSTALLED_APPS"], "silk"]
        configured.update(SILKY_PYTHON_PROFILER=False, SILKY_META=False, SILKY_AUTHENTICATION=False)
    settings.configure(**configured, STASTE_REDIS_URL=redis_url)
    django.setup()
