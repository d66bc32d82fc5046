"""Django settings for a benchmark run, configured in code: the run starts its own Redis."""

from __future__ import annotations

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
    """Point staste at ``redis_url`` and start Django."""
    settings.configure(**SETTINGS, STASTE_REDIS_URL=redis_url)
    django.setup()
