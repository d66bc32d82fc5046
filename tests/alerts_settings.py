"""The test settings for processes of their own (tests/test_alerts_processes.py): a SQLite file
they share, and a real SMTP server, both given by the environment."""

import os

from tests.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["ALERTS_TEST_DATABASE"]}}
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("ALERTS_TEST_SMTP_PORT", "25"))
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = "staste@example.com"
STASTE_SITE_URL = "https://shop.example"
